package api

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's, labelled by route template, never by raw path.
// The guard counts every request to the listener it wraps: the API's
// routes by their templates, the listener's other routes (/health,
// /metrics…) by theirs, the rest as "unrouted".
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// The seed's names: bodies over the limit, and lengths that are not
	// lengths.
	sizeExceeded *prometheus.CounterVec
	sizeErrors   *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	authRejected *prometheus.CounterVec
	// errors are the answers of 400 and above by route and error type: the
	// error code of the answer, lower-cased (errorType).
	errors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_requests_total",
			Help: "HTTP requests to the listener serving the API, by route template, method and status class."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "k2_http_request_duration_seconds",
			Help:    "HTTP request duration by route template.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "k2_http_requests_in_flight",
			Help: "HTTP requests being answered now."}),
		sizeExceeded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_request_size_limit_exceeded_total",
			Help: "Requests refused (413) for a body over --api-max-body, declared or read, by method and route template."}, []string{"method", "endpoint"}),
		sizeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_request_size_limit_errors_total",
			Help: "Requests refused (400) for a Content-Length that is not a length, by reason."}, []string{"reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_rate_limited_total",
			Help: "Requests refused (429) over a rate limit, by route template."}, []string{"route"}),
		authRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_auth_rejected_total",
			Help: "Requests refused for their API key: missing (401) or invalid (403)."}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_request_errors_total",
			Help: "Answers with a status of 400 or above, by route template and error type (the answer's error code in lower case: invalid_parameters, not_found, query_timeout, service_unavailable, internal_error, rate_limit_exceeded, …)."}, []string{"route", "error_type"}),
	}
	// The series that exist before the first event, at zero.
	m.sizeErrors.WithLabelValues("invalid_content_length")
	m.authRejected.WithLabelValues("missing")
	m.authRejected.WithLabelValues("invalid")
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inFlight, m.sizeExceeded, m.sizeErrors, m.rateLimited, m.authRejected, m.errors)
	}
	return m
}

// errorType names a failed answer for k2_http_request_errors_total: its
// error code, or, for an answer that is not the API's (the listener's own
// 404 and 405), its status.
func errorType(code string, status int) string {
	if code != "" {
		return strings.ToLower(code)
	}
	switch {
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case status >= 500:
		return "internal_error"
	}
	return "other"
}
