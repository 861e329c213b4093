// Package api is K2's REST API: the read routes over the lake, in one
// response shape, behind request ids, an access log and per-route metrics.
// k2 up and k2 api mount it on their HTTP listener (docs/api.md).
package api

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/tail"
)

// Options configure a Server.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// MaxSpan bounds the time range one request may ask for (default 31 days).
	MaxSpan time.Duration
	// Tail, when set, holds the stream's records after the lake: recent
	// reads combine both, and the event streams follow it.
	Tail *tail.Tail
	// SQL turns on POST /v1/sql (off: it answers 404 saying how to turn
	// it on). SQLRows bounds its rows (default query.DefaultSQLRows),
	// SQLTimeout its time (default the engine's query timeout), SQLMemory
	// its DuckDB memory (default query.DefaultSQLMemory).
	SQL        bool
	SQLRows    int
	SQLTimeout time.Duration
	SQLMemory  string
}

// Server answers the API's routes from a query engine.
type Server struct {
	engine *query.Engine
	o      Options
	log    *slog.Logger
	m      *metrics
	over   *overload
	mux    *http.ServeMux
	tail   *tail.Tail
	// cacheFor is how long a client may keep a route's answer (the
	// original's Cache-Control); other answers, and every error, are not
	// kept.
	cacheFor map[string]time.Duration
	// done closes when the server stops: event streams end.
	done      chan struct{}
	closeOnce sync.Once
}

// New returns a server over e.
func New(e *query.Engine, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxSpan == 0 {
		o.MaxSpan = 31 * 24 * time.Hour
	}
	if o.SQLRows <= 0 {
		o.SQLRows = query.DefaultSQLRows
	}
	o.SQLRows = min(o.SQLRows, query.MaxLimit)
	s := &Server{engine: e, o: o, log: o.Logger, m: newMetrics(o.Registerer), over: newOverload(o.Registerer), mux: http.NewServeMux(), tail: o.Tail,
		cacheFor: maps.Clone(cacheFor), done: make(chan struct{})}
	s.routes()
	return s
}

// Register mounts the API's routes on mux, each under /v1/.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("/v1/", s)
}

// ServeHTTP answers one request: request id, metrics and the access log
// around the route, and the error shape for paths and methods no route
// has.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r)
	w.Header().Set("X-Request-ID", id)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	// The mux itself serves a routed request (it sets the path values);
	// one it has no route for gets the error shape.
	var h http.Handler = s.mux
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		h, pattern = http.HandlerFunc(s.unrouted), "unrouted"
	}
	if age, ok := s.cacheFor[pattern]; ok && r.Method == http.MethodGet {
		rec.cacheControl = fmt.Sprintf("private, max-age=%d", int(age.Seconds()))
	}
	s.m.inFlight.Inc()
	defer func() {
		s.m.inFlight.Dec()
		if v := recover(); v != nil {
			s.log.Error("API handler panicked", "request_id", id, "route", pattern, "panic", v)
			if !rec.wrote {
				writeError(rec, r, http.StatusInternalServerError, codeInternal, "internal error", nil)
			}
		}
		took := time.Since(start)
		s.m.requests.WithLabelValues(pattern, r.Method, statusClass(rec.status)).Inc()
		s.m.duration.WithLabelValues(pattern).Observe(took.Seconds())
		// Routine: in the log file and collected logs, not on a terminal.
		s.log.Log(r.Context(), ops.LevelRoutine, "request", "request_id", id, "method", r.Method, "route", pattern,
			"path", r.URL.Path, "status", rec.status, "bytes", rec.bytes, "duration_ms", took.Milliseconds())
	}()
	r = r.WithContext(withRequestID(r.Context(), id))
	done, ok := s.admit(rec, r, pattern)
	if !ok {
		return
	}
	defer func() { done(rec.status) }()
	h.ServeHTTP(rec, r)
}

// unrouted answers a path no route has (404), or a route asked with
// another method (405, with Allow).
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := s.mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		for _, m := range allow {
			w.Header().Add("Allow", m)
		}
		writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path, map[string]any{"allow": allow})
		return
	}
	writeError(w, r, http.StatusNotFound, codeNotFound, "no route "+r.URL.Path, nil)
}

// cacheFor is how long a client may keep a route's answer; each record
// kind's GET route adds its own (5 s).
var cacheFor = map[string]time.Duration{
	"GET /v1/summary/{symbol}/{date}": time.Minute,
	"GET /v1/symbols":                 5 * time.Minute,
	"GET /v1/stats":                   30 * time.Second,
	"GET /v1/snapshots":               10 * time.Second,
}

// recorder keeps the status and size of a response, and sets its
// Cache-Control once the status is known.
type recorder struct {
	http.ResponseWriter
	status       int
	bytes        int
	wrote        bool
	cacheControl string // for a 2xx answer; "" is no-store
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
		cc := "no-store"
		if code < 300 && r.cacheControl != "" {
			cc = r.cacheControl
		}
		r.Header().Set("Cache-Control", cc)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Flush lets streamed responses reach the client as they are written.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func statusClass(code int) string {
	return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[min(max(code/100, 1), 5)-1]
}

// warmEvery is how often the server looks for a new trades snapshot to
// warm the bars cache with.
const warmEvery = 2 * time.Second

// Run keeps the bars cache warm until ctx ends: whenever a trades
// snapshot lands, its new files' minute aggregates are computed before a
// bar query asks for them.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(warmEvery)
	defer t.Stop()
	for {
		if err := s.engine.WarmBars(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("warming the bars cache failed; bar queries compute what they need", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
