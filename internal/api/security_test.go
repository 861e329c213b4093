package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
)

// listener is a listener as k2 up builds it: /health, /metrics, the
// dashboard's page and assets, Go's profiles and the API over an empty
// lake, the whole of it behind a guard of the given settings.
type listener struct {
	*httptest.Server
	reg *ops.Registry
	log *syncBuffer
}

func guarded(t *testing.T, a config.API) *listener {
	t.Helper()
	e, err := query.New(laketest.Open(t), query.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	l := &listener{reg: ops.NewRegistry(), log: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(l.log, &slog.HandlerOptions{Level: ops.LevelRoutine}))
	g, err := api.NewGuard(api.GuardOptions{API: a, Listen: "127.0.0.1:0", Logger: logger, Registerer: l.reg})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	text := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, s) }
	}
	mux.Handle("GET /health", text("ok"))
	mux.Handle("GET /metrics", l.reg.Handler())
	mux.Handle("GET /{$}", text("<html>dashboard</html>"))
	mux.Handle("GET /assets/", text("asset"))
	mux.Handle("GET /debug/pprof/", text("profiles"))
	api.New(e, api.Options{Guard: g, Logger: logger, Registerer: l.reg}).Register(mux)
	l.Server = httptest.NewServer(g.Wrap(mux))
	t.Cleanup(l.Close)
	return l
}

// call asks path with the given headers, and returns the status, the
// error code (if the answer is an error in the one shape) and the headers.
func (l *listener) call(t *testing.T, method, path string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, l.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if resp.StatusCode >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var env envelope
		if err := json.Unmarshal(b, &env); err != nil || env.Success || env.Meta.RequestID == "" || env.Meta.RequestID != resp.Header.Get("X-Request-ID") {
			t.Fatalf("%s %s: %d not in the one shape: %s", method, path, resp.StatusCode, b)
		}
		code = env.Error.Code
	}
	return resp.StatusCode, code, resp.Header
}

const (
	dashKey = "dash-7f3a9c1e5b2d"
	bareKey = "bare-0c4e8a2f6d1b"
)

func withKeys(a config.API) config.API {
	a.Keys = []string{"dash:" + dashKey, bareKey}
	return a
}

func defaults() config.API {
	a := config.Default().API
	return a
}

// Without a key the API answers 401, with a wrong one 403, with either
// configured key 200 (X-API-Key or Authorization: Bearer); the public
// paths need none, everything else on the listener does.
func TestAPIKeys(t *testing.T) {
	l := guarded(t, withKeys(defaults()))
	for _, c := range []struct {
		path   string
		header []string
		status int
		code   string
	}{
		{"/v1/symbols", nil, 401, "UNAUTHORIZED"},
		{"/v1/nothing", nil, 401, "UNAUTHORIZED"}, // no route is told without a key
		{"/v1/symbols", []string{"X-API-Key", "not-a-key"}, 403, "FORBIDDEN"},
		{"/v1/symbols", []string{"Authorization", "Bearer not-a-key"}, 403, "FORBIDDEN"},
		{"/v1/symbols", []string{"Authorization", "Basic " + dashKey}, 401, "UNAUTHORIZED"},
		// The name is not part of the key.
		{"/v1/symbols", []string{"X-API-Key", "dash:" + dashKey}, 403, "FORBIDDEN"},
		{"/v1/symbols", []string{"X-API-Key", dashKey}, 200, ""},
		{"/v1/symbols", []string{"X-API-Key", bareKey}, 200, ""},
		{"/v1/stats", []string{"Authorization", "Bearer " + dashKey}, 200, ""},
		{"/v1/stats", []string{"Authorization", "bearer " + bareKey}, 200, ""},
		{"/v1/nothing", []string{"X-API-Key", dashKey}, 404, "NOT_FOUND"},
		// Public: health, metrics, the dashboard's page and assets, docs.
		{"/health", nil, 200, ""},
		{"/metrics", nil, 200, ""},
		{"/", nil, 200, ""},
		{"/assets/app.js", nil, 200, ""},
		{"/docs", nil, 200, ""},
		// Not public: the profiles, or a path that is not clean.
		{"/debug/pprof/", nil, 401, "UNAUTHORIZED"},
		{"/debug/pprof/", []string{"X-API-Key", dashKey}, 200, ""},
		{"/assets/../debug/pprof/", nil, 401, "UNAUTHORIZED"},
		{"/index.html", nil, 401, "UNAUTHORIZED"}, // "/" is the page, not a prefix
	} {
		status, code, h := l.call(t, "GET", c.path, c.header...)
		if status != c.status || code != c.code || h.Get("X-Request-ID") == "" {
			t.Errorf("GET %s %v: %d %s; want %d %s", c.path, c.header, status, code, c.status, c.code)
		}
		if status == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", c.path)
		}
	}
	// Refusals are counted and logged like any request, by route template;
	// the log knows a caller by its key's name, never by the key.
	if n := ops.Sum(l.reg, "k2_http_requests_total", "route", "GET /v1/symbols", "status", "4xx"); n != 5 {
		t.Errorf("refusals of GET /v1/symbols counted %v times, want 5", n)
	}
	if n := ops.Sum(l.reg, "k2_http_auth_rejected_total", "reason", "missing"); n != 6 {
		t.Errorf("missing keys counted %v", n)
	}
	if n := ops.Sum(l.reg, "k2_http_auth_rejected_total", "reason", "invalid"); n != 3 {
		t.Errorf("invalid keys counted %v", n)
	}
	log := l.log.String()
	if strings.Contains(log, dashKey) || strings.Contains(log, bareKey) {
		t.Errorf("the log shows a key:\n%s", log)
	}
	if !strings.Contains(log, "client=dash") || !strings.Contains(log, "client=key-2") || !strings.Contains(log, "status=401") {
		t.Errorf("the access log does not name the callers:\n%s", log)
	}
}

// The public paths are a setting: left out of them, /metrics needs a key.
func TestPublicPathsAreConfigured(t *testing.T) {
	a := withKeys(defaults())
	a.PublicPaths = []string{"/health"}
	l := guarded(t, a)
	if status, _, _ := l.call(t, "GET", "/health"); status != 200 {
		t.Errorf("/health: %d", status)
	}
	for _, p := range []string{"/metrics", "/", "/assets/app.js"} {
		if status, code, _ := l.call(t, "GET", p); status != 401 || code != "UNAUTHORIZED" {
			t.Errorf("%s: %d %s", p, status, code)
		}
	}
}

// Without keys the API is open, and only on a loopback address.
func TestOpenOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8005", ":8005", "[::]:8005", "10.1.2.3:8005", "k2.example.com:8005", ""} {
		_, err := api.NewGuard(api.GuardOptions{API: defaults(), Listen: addr})
		if err == nil || !strings.Contains(err.Error(), "--api-keys") || !strings.Contains(err.Error(), "K2_API_KEYS") || !strings.Contains(err.Error(), addr) {
			t.Errorf("open on %q: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8005", "127.0.0.1:0", "[::1]:8005", "localhost:8005"} {
		var log bytes.Buffer
		if _, err := api.NewGuard(api.GuardOptions{API: defaults(), Listen: addr, Logger: slog.New(slog.NewTextHandler(&log, nil))}); err != nil {
			t.Errorf("open on %s: %v", addr, err)
		}
		if !strings.Contains(log.String(), "open to anyone on this machine") {
			t.Errorf("open on %s without saying so: %q", addr, log.String())
		}
	}
	if _, err := api.NewGuard(api.GuardOptions{API: withKeys(defaults()), Listen: "0.0.0.0:8005"}); err != nil {
		t.Errorf("with keys on 0.0.0.0: %v", err)
	}
	// Open, the API answers without a key.
	l := guarded(t, defaults())
	if status, _, _ := l.call(t, "GET", "/v1/symbols"); status != 200 {
		t.Errorf("open: %d", status)
	}
}

// rateHeaders reads the X-RateLimit-* headers (-1: absent).
func rateHeaders(h http.Header) (limit, remaining, reset int) {
	read := func(name string) int {
		v, err := strconv.Atoi(h.Get(name))
		if err != nil {
			return -1
		}
		return v
	}
	return read("X-RateLimit-Limit"), read("X-RateLimit-Remaining"), read("X-RateLimit-Reset")
}

// Each key has a limit on each route: past it 429 with Retry-After, the
// X-RateLimit-* headers counting down on the way; another key, another
// route, have their own.
func TestRateLimits(t *testing.T) {
	a := withKeys(defaults())
	a.RateLimit = "3/min"
	a.RouteRateLimits = []string{"GET /v1/stats=1/min", "GET /v1/snapshots=off"}
	l := guarded(t, a)
	for i, want := range []int{2, 1, 0} {
		status, _, h := l.call(t, "GET", "/v1/symbols", "X-API-Key", dashKey)
		limit, remaining, reset := rateHeaders(h)
		if status != 200 || limit != 3 || remaining != want || reset < 1 || reset > 60 {
			t.Fatalf("request %d: %d, limit %d remaining %d reset %d", i+1, status, limit, remaining, reset)
		}
	}
	status, code, h := l.call(t, "GET", "/v1/symbols", "X-API-Key", dashKey)
	limit, remaining, reset := rateHeaders(h)
	retry, _ := strconv.Atoi(h.Get("Retry-After"))
	if status != 429 || code != "RATE_LIMIT_EXCEEDED" || limit != 3 || remaining != 0 || reset < 1 || reset > 60 || retry < 1 || retry > 20 ||
		h.Get("X-Request-ID") == "" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("over the limit: %d %s, limit %d remaining %d reset %d retry %q", status, code, limit, remaining, reset, h.Get("Retry-After"))
	}
	// Another key: its own bucket.
	if status, _, h := l.call(t, "GET", "/v1/symbols", "X-API-Key", bareKey); status != 200 || h.Get("X-RateLimit-Remaining") != "2" {
		t.Errorf("the other key: %d %v", status, h)
	}
	// Another route: its own bucket, and its own limit.
	if status, _, h := l.call(t, "GET", "/v1/stats", "X-API-Key", dashKey); status != 200 || h.Get("X-RateLimit-Limit") != "1" || h.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("another route: %d %v", status, h)
	}
	if status, code, _ := l.call(t, "GET", "/v1/stats", "X-API-Key", dashKey); status != 429 || code != "RATE_LIMIT_EXCEEDED" {
		t.Errorf("stats over its limit: %d %s", status, code)
	}
	// A route set off, and paths outside /v1, are not limited.
	for range 10 {
		if status, _, h := l.call(t, "GET", "/v1/snapshots", "X-API-Key", dashKey); status != 200 || h.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("snapshots (off): %d %v", status, h)
		}
		if status, _, h := l.call(t, "GET", "/health"); status != 200 || h.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("/health: %d %v", status, h)
		}
	}
	if n := ops.Sum(l.reg, "k2_http_rate_limited_total", "route", "GET /v1/symbols"); n != 1 {
		t.Errorf("rate-limited requests counted %v", n)
	}
	if n := ops.Sum(l.reg, "k2_http_requests_total", "route", "GET /v1/symbols", "status", "4xx"); n != 1 {
		t.Errorf("the 429 counted %v times as a request", n)
	}
}

// Open, the limits count by the client's address: X-Forwarded-For only
// when the peer is a trusted proxy.
func TestOpenRateLimitsCountByAddress(t *testing.T) {
	a := defaults()
	a.RateLimit = "1/min"
	l := guarded(t, a)
	if status, _, _ := l.call(t, "GET", "/v1/symbols", "X-Forwarded-For", "203.0.113.7"); status != 200 {
		t.Fatalf("first: %d", status)
	}
	// Not trusted: another X-Forwarded-For is the same client.
	if status, _, _ := l.call(t, "GET", "/v1/symbols", "X-Forwarded-For", "203.0.113.8"); status != 429 {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", status)
	}
	a.TrustedProxies = []string{"127.0.0.1"}
	l = guarded(t, a)
	for _, c := range []struct {
		xff    string
		status int
	}{{"203.0.113.7", 200}, {"203.0.113.7", 429}, {"203.0.113.8", 200}, {"198.51.100.1, 203.0.113.8", 429}, {"", 200}} {
		if status, _, _ := l.call(t, "GET", "/v1/symbols", "X-Forwarded-For", c.xff); status != c.status {
			t.Errorf("behind a trusted proxy, X-Forwarded-For %q: %d, want %d", c.xff, status, c.status)
		}
	}
}

// Rate limits off: no limit and no headers, however many requests.
func TestRateLimitsOff(t *testing.T) {
	a := defaults()
	a.RateLimit = "off"
	l := guarded(t, a)
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for range 8 {
		wg.Go(func() {
			for range 25 {
				req, _ := http.NewRequest("GET", l.URL+"/v1/symbols", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "" {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if bad > 0 {
		t.Fatalf("%d of 200 requests limited or with rate headers", bad)
	}
}

// The configured origins' pages may call the API: their preflight is
// answered without a key, their requests carry the CORS headers, errors
// included; any other origin gets none.
func TestCORS(t *testing.T) {
	a := withKeys(defaults())
	a.CORSOrigins = []string{"http://localhost:3000", "http://127.0.0.1:8080"}
	l := guarded(t, a)
	status, _, h := l.call(t, "OPTIONS", "/v1/trades", "Origin", "http://localhost:3000",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-api-key")
	if status != 204 || h.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "X-API-Key") || !strings.Contains(h.Get("Vary"), "Origin") || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight: %d %v", status, h)
	}
	status, _, h = l.call(t, "GET", "/v1/symbols", "Origin", "http://127.0.0.1:8080", "X-API-Key", dashKey)
	expose := h.Get("Access-Control-Expose-Headers")
	if status != 200 || h.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8080" || !strings.Contains(h.Get("Vary"), "Origin") {
		t.Errorf("simple request: %d %v", status, h)
	}
	for _, name := range []string{"X-Request-ID", "X-Correlation-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"} {
		if !strings.Contains(expose, name) {
			t.Errorf("%s is not exposed: %q", name, expose)
		}
	}
	// The page can read why it was refused.
	if status, _, h := l.call(t, "GET", "/v1/symbols", "Origin", "http://localhost:3000"); status != 401 || h.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("401 to an allowed origin: %d %v", status, h)
	}
	// Another origin: no CORS header, and its preflight is no preflight.
	for _, method := range []string{"GET", "OPTIONS"} {
		status, _, h := l.call(t, method, "/v1/symbols", "Origin", "http://evil.example", "Access-Control-Request-Method", "GET", "X-API-Key", dashKey)
		for name := range h {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Errorf("%s from another origin: %d with %s", method, status, name)
			}
		}
		if method == "OPTIONS" && status == 204 {
			t.Errorf("another origin's preflight answered 204")
		}
	}
	// No origins configured: no CORS headers for anyone.
	l = guarded(t, defaults())
	if _, _, h := l.call(t, "GET", "/v1/symbols", "Origin", "http://localhost:3000"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS without origins configured: %v", h)
	}
}

// syncBuffer is a buffer the server's goroutines log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
