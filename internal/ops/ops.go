// Package ops is K2's operational plumbing shared by every component: the
// one Prometheus registry all metrics live in, structured logging, and the
// standard buckets. It sits below every other package and imports none of
// them.
package ops

import (
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every K2 metric. One registry, so /metrics and tests see
// exactly what the process exports.
var Registry = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Factory registers new metrics with Registry.
var Factory = promauto.With(Registry)

// Histogram buckets, in seconds: latency for in-memory and network paths,
// storage for object-store and catalog work that takes longer.
var (
	LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	StorageBuckets = []float64{.01, .05, .1, .2, .5, 1, 2, 5, 10, 30}
	RowBuckets     = prometheus.ExponentialBuckets(10, 4, 10) // 10 … 2.6M rows
)

// NewLogger builds the process logger. format is "json" (for machines) or
// "text"; level is debug, info, warn or error.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if strings.ToLower(format) == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// MetricsHandler serves Registry in the Prometheus exposition format.
func MetricsHandler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}
