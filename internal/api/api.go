// Package api is K2's REST API: the read routes over the lake, in one
// response shape, behind a Guard (guard.go) that gives every request its
// id, metrics and access-log line, and holds the listener to its API
// keys, rate limits, body limit and CORS origins. k2 up and k2 api mount
// it on their HTTP listener, the whole listener wrapped in the guard
// (docs/api.md).
package api

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/tail"
)

// Options configure a Server.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// MaxSpan bounds the time range one request may ask for (default 31 days).
	MaxSpan time.Duration
	// Guard is the listener's guard (NewGuard), which the server's routes
	// are answered behind; it then owns the API's metrics. Without one the
	// server makes its own, open to anyone and unlimited but for the body
	// (tests, embedding): a process serves through NewGuard's.
	Guard *Guard
	// Tail, when set, holds the stream's records after the lake: recent
	// reads combine both, and the event streams follow it.
	Tail *tail.Tail
	// LatestBytes bounds the memory of the series whose latest records
	// are kept (with a tail; default config's).
	LatestBytes int64
	// SQL turns on POST /v1/sql (off: it answers 404 saying how to turn
	// it on). SQLRows bounds its rows (default query.DefaultSQLRows),
	// SQLTimeout its time (default the engine's query timeout), SQLMemory
	// its DuckDB memory (default query.DefaultSQLMemory).
	SQL        bool
	SQLRows    int
	SQLTimeout time.Duration
	SQLMemory  string
	// Gatherer is this process's metrics registry, PipelineMetrics the
	// /metrics addresses of other roles: GET /v1/pipeline reads both every
	// PipelineStep and keeps PipelineHistory of them (defaults config's).
	Gatherer        prometheus.Gatherer
	PipelineMetrics []string
	PipelineStep    time.Duration
	PipelineHistory time.Duration
}

// Server answers the API's routes from a query engine.
type Server struct {
	engine *query.Engine
	o      Options
	log    *slog.Logger
	guard  *Guard
	mux    *routeMux
	// guarded is the server behind its guard, for requests that did not
	// come through it (a server mounted without Guard.Wrap).
	guarded http.Handler
	over    *overload
	tail    *tail.Tail
	latest  *latest // nil without a tail
	sm      *streamMetrics
	// cacheFor is how long a client may keep a route's answer (the
	// original's Cache-Control); other answers, and every error, are not
	// kept.
	cacheFor map[string]time.Duration
	// routeTable declares every route (routes.go); the OpenAPI document
	// is generated from it once, when first asked for.
	routeTable []route
	specOnce   sync.Once
	specDoc    *document
	specJSON   []byte
	pulse      *pulse
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
	config.Or(&o.PipelineStep, config.Default().API.PipelineStep)
	config.Or(&o.PipelineHistory, config.Default().API.PipelineHistory)
	s := &Server{engine: e, o: o, log: o.Logger, guard: o.Guard, mux: &routeMux{ServeMux: http.NewServeMux()},
		over: newOverload(o.Registerer), tail: o.Tail, sm: newStreamMetrics(o.Registerer),
		cacheFor: maps.Clone(cacheFor), done: make(chan struct{})}
	if o.Tail != nil {
		config.Or(&o.LatestBytes, config.Default().API.LatestBytes)
		s.latest = newLatest(e, o.Tail, o.LatestBytes, o.Registerer)
	}
	if s.guard == nil {
		s.guard = openGuard(o.Logger, o.Registerer)
	}
	s.pulse = s.newPulse()
	s.guard.api.Store(s)
	s.guarded = s.guard.Wrap(http.HandlerFunc(s.route))
	s.routeTable = s.table()
	s.routes()
	return s
}

// Register mounts the API's routes on mux: those under /v1/, and its
// pages /openapi.json (the OpenAPI document) and /docs (public paths by
// default).
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("/v1/", s)
	mux.Handle("/openapi.json", s)
	mux.Handle("/docs", s)
}

// ServeHTTP answers one request of the API. One that came through the
// guard (the listener is wrapped in it) goes to its route; another goes
// through the guard first, so the routes are never answered unguarded.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if stateOf(r.Context()) == nil {
		s.guarded.ServeHTTP(w, r)
		return
	}
	s.route(w, r)
}

// route answers a guarded request: the mux serves a routed request (it
// sets the path values), once the engine's guards admit it; one it has
// no route for gets the error shape.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	_, p := s.mux.Handler(r)
	if p == "" {
		s.unrouted(w, r)
		return
	}
	done, ok := s.admit(w, r, p)
	if !ok {
		return
	}
	// The guard's recorder (every request routed here came through the
	// guard) knows the answer's status.
	rec := stateOf(r.Context()).rec
	defer func() { done(rec.status) }()
	s.mux.ServeHTTP(w, r)
}

// routeMux is the server's mux, keeping the patterns registered on it: a
// test holds them to the OpenAPI document, so a route served but not
// declared in the route table is noticed.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// pattern is the template of a request's route, "unrouted" if none.
func (s *Server) pattern(r *http.Request) string {
	if _, p := s.mux.Handler(r); p != "" {
		return p
	}
	return "unrouted"
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

// recorder keeps the status and size of a response and, for the API's
// routes and the guard's refusals, sets its Cache-Control once the status
// is known.
type recorder struct {
	http.ResponseWriter
	status       int
	bytes        int
	wrote        bool
	manageCache  bool
	cacheControl string // for a 2xx answer; "" is no-store
	writeTimeout time.Duration
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
		if r.manageCache {
			cc := "no-store"
			if code < 300 && r.cacheControl != "" {
				cc = r.cacheControl
			}
			r.Header().Set("Cache-Control", cc)
		}
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

// Flush lets streamed responses reach the client as they are written,
// and pushes the connection's write deadline a write timeout ahead: a
// stream (server-sent events, an NDJSON replay) flushes as it goes, so
// the listener's WriteTimeout cuts off a client that stopped reading, not
// a stream that is long.
func (r *recorder) Flush() {
	if r.writeTimeout > 0 {
		http.NewResponseController(r.ResponseWriter).SetWriteDeadline(time.Now().Add(r.writeTimeout))
	}
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing) through the recorder.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

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
	failing := false // said once when it starts failing, once when it recovers
	for {
		switch err := s.engine.WarmBars(ctx); {
		case err != nil && ctx.Err() == nil && !failing:
			s.log.Warn("warming the bars cache failed; bar queries compute what they need", "error", err)
			failing = true
		case err == nil && failing:
			s.log.Info("warming the bars cache again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
