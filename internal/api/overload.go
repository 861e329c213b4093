package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/k2-market-data/k2/internal/ops"
)

// The query engine's circuit breaker, with the original's defaults: five
// failures in a row open it for 60 s; then two trial requests close it
// again. While it is open, routes that query the engine answer 503 at
// once instead of piling onto a failing engine (an object store gone, a
// catalog down).
const (
	breakerFailures = 5
	breakerOpenFor  = 60 * time.Second
	breakerTrials   = 2
)

// errFailed marks a request the engine failed (500 or 504) for the breaker.
var errFailed = errors.New("the engine failed the request")

// overload guards the engine: its breaker, and the shedding of heavy
// routes while the query pool is saturated.
type overload struct {
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	mu       sync.Mutex
	openedAt time.Time
	state    *prometheus.GaugeVec
	failures prometheus.Counter
	rejected *prometheus.CounterVec
	shed     *prometheus.CounterVec
	opened   prometheus.Counter
	// consecutive is the failures in a row the breaker has counted: five
	// open it.
	consecutive prometheus.Gauge
}

func newOverload(reg prometheus.Registerer) *overload {
	f := ops.NewMetrics(reg)
	o := &overload{
		state: f.GaugeVec("k2_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", "breaker_name"),
		failures: f.CounterVec("k2_circuit_breaker_failures_total", "Requests a circuit breaker counted as failed.", "breaker_name").
			WithLabelValues("query_engine"),
		rejected: f.CounterVec("k2_circuit_breaker_rejections_total", "Requests a circuit breaker turned away.", "breaker_name"),
		shed:     f.CounterVec("k2_api_requests_shed_total", "Requests answered 503 because the query pool was saturated, by route.", "route"),
		opened: f.CounterVec("k2_circuit_breaker_opened_total", "Times a circuit breaker opened.", "breaker_name").
			WithLabelValues("query_engine"),
		consecutive: f.GaugeVec("k2_circuit_breaker_consecutive_failures", "Failures in a row a circuit breaker has counted (it opens at 5).", "breaker_name").
			WithLabelValues("query_engine"),
	}
	o.state.WithLabelValues("query_engine").Set(0)
	o.rejected.WithLabelValues("query_engine")
	o.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name: "query_engine", MaxRequests: breakerTrials, Timeout: breakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerFailures },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			o.mu.Lock()
			if to == gobreaker.StateOpen {
				o.openedAt = time.Now()
				o.opened.Inc()
			}
			o.mu.Unlock()
			o.state.WithLabelValues("query_engine").Set(map[gobreaker.State]float64{
				gobreaker.StateClosed: 0, gobreaker.StateOpen: 1, gobreaker.StateHalfOpen: 2}[to])
		},
	})
	return o
}

// weight says how much of the engine a route takes: shedding turns the
// heaviest away first.
func weight(pattern string) int {
	switch {
	case strings.HasPrefix(pattern, "POST "): // queries, replay, aggregations, batches
		return 2
	case strings.Contains(pattern, "/bars/"), strings.Contains(pattern, "/ohlcv/"), strings.Contains(pattern, "/summary/"),
		strings.HasSuffix(pattern, "/symbols"), strings.HasSuffix(pattern, "/stats"):
		return 1
	}
	return 0 // latest records, recent, snapshots: cheap, and what dashboards poll
}

// engineRoute says whether a route queries the engine (event streams
// read the tail; unrouted requests nothing).
func engineRoute(pattern string) bool {
	return strings.Contains(pattern, " /v1/") && !strings.Contains(pattern, "/v1/stream/")
}

// admit decides whether a request to pattern may run now. When it may,
// done records its outcome for the breaker; when not, it has answered 503
// with Retry-After.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, pattern string) (done func(status int), ok bool) {
	if !engineRoute(pattern) || s.engine == nil { // (a server without an engine serves tests' routes)
		return func(int) {}, true
	}
	o := s.over
	if pool := s.engine.PoolStats(); pool.Waiting > 0 {
		// Saturated: heavy routes go first, then medium ones once as many
		// wait as the pool holds; the light ones wait their turn.
		if w8 := weight(pattern); w8 == 2 || w8 == 1 && pool.Waiting >= pool.PoolSize {
			o.shed.WithLabelValues(pattern).Inc()
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, codeUnavailable,
				fmt.Sprintf("the query engine is saturated (%d queries waiting for %d connections); retry shortly", pool.Waiting, pool.PoolSize), nil)
			return nil, false
		}
	}
	report, err := o.breaker.Allow()
	if err != nil {
		o.rejected.WithLabelValues("query_engine").Inc()
		o.mu.Lock()
		wait := max(time.Second, breakerOpenFor-time.Since(o.openedAt))
		o.mu.Unlock()
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Round(time.Second).Seconds())))
		writeError(w, r, http.StatusServiceUnavailable, codeUnavailable,
			"the query engine is failing; its circuit breaker is open (it retries on its own)", map[string]any{"breaker": "query_engine"})
		return nil, false
	}
	return func(status int) {
		if status == http.StatusInternalServerError || status == http.StatusGatewayTimeout {
			o.failures.Inc()
			report(errFailed)
		} else {
			report(nil)
		}
		o.consecutive.Set(float64(o.breaker.Counts().ConsecutiveFailures))
	}, true
}
