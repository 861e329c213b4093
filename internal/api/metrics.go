package api

import "github.com/prometheus/client_golang/prometheus"

// metrics are the API's, labelled by route template, never by raw path.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	streams  *prometheus.GaugeVec
	events   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_http_requests_total",
			Help: "API requests by route template, method and status class."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "k2_http_request_duration_seconds",
			Help:    "API request duration by route template.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "k2_http_requests_in_flight",
			Help: "API requests being answered now."}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "k2_api_stream_clients",
			Help: "Clients following an event stream, by table."}, []string{"table"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "k2_api_stream_events_total",
			Help: "Events sent to stream clients, by table."}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inFlight, m.streams, m.events)
	}
	return m
}
