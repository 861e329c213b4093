package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Health is a process's health: named checks, each saying whether a part
// it runs works. /ready answers 200 when every check passes and 503 when
// one fails, with what each said and how long it took, so a load
// balancer, a supervisor or a person sees the same answer; /health is
// liveness: 200 while the process serves, whatever its dependencies do.
type Health struct {
	mu     sync.Mutex
	names  []string
	checks map[string]func(context.Context) error
	role   string
}

// NewHealth starts an empty set of checks for a process running role.
func NewHealth(role string) *Health {
	return &Health{role: role, checks: map[string]func(context.Context) error{}}
}

// Add registers a check; nil from it means healthy.
func (h *Health) Add(name string, check func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.checks[name]; !ok {
		h.names = append(h.names, name)
	}
	h.checks[name] = check
}

// Check is one check's outcome.
type Check struct {
	Status    string  `json:"status"` // ok or failing
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"` // how long the check took
}

// Report is what /health answers.
type Report struct {
	Status string           `json:"status"` // ok or failing
	Role   string           `json:"role"`
	Build  Build            `json:"build"`
	Checks map[string]Check `json:"checks,omitempty"`
}

// Run runs every check, each within timeout.
func (h *Health) Run(ctx context.Context, timeout time.Duration) Report {
	h.mu.Lock()
	names := append([]string(nil), h.names...)
	checks := make([]func(context.Context) error, len(names))
	for i, n := range names {
		checks[i] = h.checks[n]
	}
	h.mu.Unlock()
	r := Report{Status: "ok", Role: h.role, Build: BuildInfo(), Checks: map[string]Check{}}
	for i, n := range names {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		err := checks[i](cctx)
		ms := float64(time.Since(start).Microseconds()) / 1000
		cancel()
		if err != nil {
			r.Status = "failing"
			r.Checks[n] = Check{Status: "failing", Error: err.Error(), LatencyMS: ms}
			continue
		}
		r.Checks[n] = Check{Status: "ok", LatencyMS: ms}
	}
	return r
}

// Live serves /health: the process answers, so it lives. Restarting it
// would not mend a dependency, which /ready reports.
func (h *Health) Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(Report{Status: "ok", Role: h.role, Build: BuildInfo()})
	})
}

// Handler serves /ready.
func (h *Health) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r := h.Run(req.Context(), 5*time.Second)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if r.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	})
}
