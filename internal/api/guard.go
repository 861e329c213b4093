package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
)

// GuardOptions configure a Guard: the API settings (config.API, resolved
// or not), the listener it guards, and where it logs and counts.
type GuardOptions struct {
	config.API
	// Listen is the listener's address (host:port): without keys the API
	// is open, and NewGuard refuses any address but a loopback one.
	Listen string
	// WriteTimeout is the listener's (config.HTTP.WriteTimeout): a
	// streaming answer pushes its write deadline this far ahead each time
	// it flushes.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Guard is what every request to a listener serving the API goes
// through, in this order: the request id, metrics and access log
// (outermost, so refusals are counted, logged and carry X-Request-ID),
// CORS, the API key, the rate limit of /v1 routes, the body limit, and
// then the listener's own handler. It wraps the whole listener
// (Wrap(mux)), so any route added to it later — /docs, the dashboard —
// follows the same rule: public only when listed in the public paths.
type Guard struct {
	log     *slog.Logger
	m       *metrics
	keys    []apiKey // nil: the API is open
	public  publicPaths
	lim     *limiter // nil: no rate limits
	proxies []netip.Prefix
	maxBody int64
	cors    cors
	// writeTimeout is pushed forward on each flush of a streaming answer.
	writeTimeout time.Duration
	// api names the /v1 routes by their templates (set by New).
	api atomic.Pointer[Server]
}

// apiKey is a configured key: its name and the SHA-256 of the key, never
// the key itself.
type apiKey struct {
	name string
	hash [sha256.Size]byte
}

// NewGuard builds the guard of a listener. With no keys configured, the
// API is open to whoever reaches the listener: NewGuard then refuses an
// address other than a loopback one (127.0.0.1, ::1, localhost), and says
// at start that the API is open to anyone on this machine.
func NewGuard(o GuardOptions) (*Guard, error) {
	keys, err := o.ParsedKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && !isLoopback(o.Listen) {
		return nil, fmt.Errorf("no keys are configured (--api-keys, K2_API_KEYS, or api-keys in the --config file) and the listener %s (--http-listen) is not a loopback address: anyone who reaches it could read everything; configure keys, or listen on 127.0.0.1", o.Listen)
	}
	g, err := newGuard(o)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		g.log.Warn("the API has no keys (--api-keys, K2_API_KEYS): it is open to anyone on this machine", "listen", o.Listen)
		return g, nil
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		g.keys = append(g.keys, apiKey{name: k.Name, hash: sha256.Sum256([]byte(k.Key))})
		names[i] = k.Name
	}
	g.log.Info("the API asks for a key", "keys", strings.Join(names, ","), "public", strings.Join(o.PublicPaths, ","))
	return g, nil
}

// newGuard builds a guard without keys, whatever the address: NewGuard's
// checks come on top. Its metrics are registered once every setting is
// known to be good.
func newGuard(o GuardOptions) (*Guard, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	def, routes, err := o.Rates()
	if err != nil {
		return nil, err
	}
	proxies, err := o.Proxies()
	if err != nil {
		return nil, err
	}
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 { // not resolved: from MaxBody, else the default
		if maxBody, err = config.ParseBytes(o.MaxBody); err != nil || maxBody <= 0 {
			maxBody, _ = config.ParseBytes(config.Default().API.MaxBody)
		}
	}
	g := &Guard{log: o.Logger, public: newPublicPaths(o.PublicPaths), proxies: proxies, maxBody: maxBody,
		cors: newCORS(o.CORSOrigins), writeTimeout: o.WriteTimeout}
	if !def.Off() {
		g.lim = newLimiter(def, routes)
	}
	g.m = newMetrics(o.Registerer)
	return g, nil
}

// openGuard is the guard of a Server given none: open, unlimited but for
// the body (embedding and tests; processes serve through NewGuard's).
func openGuard(log *slog.Logger, reg prometheus.Registerer) *Guard {
	g, err := newGuard(GuardOptions{API: config.API{RateLimit: config.RateOff}, Logger: log, Registerer: reg})
	if err != nil {
		panic(err) // no setting to get wrong
	}
	return g
}

// isLoopback tells a listen address that only this machine reaches.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, next) })
}

// reqState is what the guard knows of a request, in its context.
type reqState struct {
	id     string
	route  string // the route template, or "unrouted"
	client string // the key's name ("" when open or public)
	// bodyExceeded: the handler read past the body limit.
	bodyExceeded atomic.Bool
	// rec records the answer (its status, for the engine's breaker).
	rec *recorder
	// code is the error code of the answer, when it is the API's error.
	code atomic.Pointer[string]
}

type stateKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

func (g *Guard) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	start := time.Now()
	st := &reqState{id: requestID(r)}
	w.Header().Set("X-Request-ID", st.id)
	var isAPI bool
	st.route, isAPI = g.routeOf(r, next)
	rec := &recorder{ResponseWriter: w, status: http.StatusOK, manageCache: isAPI, writeTimeout: g.writeTimeout}
	st.rec = rec
	if age, ok := g.cacheAge(st.route); ok && isAPI && r.Method == http.MethodGet {
		rec.cacheControl = fmt.Sprintf("private, max-age=%d", int(age.Seconds()))
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	method := methodLabel(r.Method)
	g.m.inFlight.Inc()
	defer func() {
		g.m.inFlight.Dec()
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			g.log.Error("API handler panicked", "request_id", st.id, "route", st.route, "panic", v)
			if !rec.wrote {
				rec.manageCache = true
				writeError(rec, r, http.StatusInternalServerError, codeInternal, "internal error", nil)
			}
		}
		if st.bodyExceeded.Load() {
			g.m.sizeExceeded.WithLabelValues(method, st.route).Inc()
		}
		took := time.Since(start)
		g.m.requests.WithLabelValues(st.route, method, statusClass(rec.status)).Inc()
		if rec.status >= 400 {
			code := ""
			if c := st.code.Load(); c != nil {
				code = *c
			}
			g.m.errors.WithLabelValues(st.route, errorType(code, rec.status)).Inc()
		}
		g.m.duration.WithLabelValues(st.route).Observe(took.Seconds())
		// Routine: in the log file and collected logs, not on a terminal.
		// The client is the key's name, or the address; never the key.
		client := st.client
		if client == "" {
			client = g.clientIP(r).String()
		}
		g.log.Log(r.Context(), ops.LevelRoutine, "request", "request_id", st.id, "method", r.Method, "route", st.route,
			"path", r.URL.Path, "status", rec.status, "bytes", rec.bytes, "duration_ms", took.Milliseconds(), "client", client)
	}()
	if g.cors.apply(rec, r) {
		return // a preflight, answered
	}
	if !g.authenticate(rec, r, st) {
		return
	}
	if isAPI && g.lim != nil && !g.rateLimit(rec, r, st) {
		return
	}
	if !g.limitBody(w, rec, r, st) {
		return
	}
	next.ServeHTTP(rec, r)
}

// cacheAge is how long a client may keep an answer of the API's route.
func (g *Guard) cacheAge(route string) (time.Duration, bool) {
	if s := g.api.Load(); s != nil {
		age, ok := s.cacheFor[route]
		return age, ok
	}
	return 0, false
}

// routeOf names a request's route by its template: an API route by the
// API's own, another by the listener's mux (when next is one); isAPI
// says it is under /v1/, where rate limits and the API's caching apply.
func (g *Guard) routeOf(r *http.Request, next http.Handler) (route string, isAPI bool) {
	isAPI = strings.HasPrefix(r.URL.Path, "/v1/")
	if s := g.api.Load(); s != nil { // the API's routes, and its pages (/docs)
		if p := s.pattern(r); p != "unrouted" || isAPI {
			return p, isAPI
		}
	} else if isAPI {
		return "unrouted", true
	}
	if m, ok := next.(interface {
		Handler(*http.Request) (http.Handler, string)
	}); ok {
		if _, p := m.Handler(r); p != "" {
			return p, false
		}
	}
	return "unrouted", false
}

// authenticate lets a request through when the API is open, its path is
// public, or it carries a configured key (X-API-Key, or Authorization:
// Bearer); else it answers 401 (no key) or 403 (a key not configured).
func (g *Guard) authenticate(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	if g.keys == nil || g.public.match(r.URL.Path) {
		return true
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			key = strings.TrimSpace(a[7:])
		}
	}
	if key == "" {
		g.m.authRejected.WithLabelValues("missing").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="k2"`)
		writeError(w, r, http.StatusUnauthorized, codeUnauthorized, "an API key is needed: send it in the X-API-Key header (or Authorization: Bearer)", nil)
		return false
	}
	sum := sha256.Sum256([]byte(key))
	match := -1
	for i := range g.keys { // every hash, in constant time: no early exit
		if subtle.ConstantTimeCompare(sum[:], g.keys[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		g.m.authRejected.WithLabelValues("invalid").Inc()
		writeError(w, r, http.StatusForbidden, codeForbidden, "the API key is not valid", nil)
		return false
	}
	st.client = g.keys[match].name
	return true
}

// rateLimit takes the request from its caller's bucket of its route, sets
// the X-RateLimit-* headers, and answers 429 when the bucket is empty.
func (g *Guard) rateLimit(w http.ResponseWriter, r *http.Request, st *reqState) bool {
	caller := "key:" + st.client
	if st.client == "" {
		caller = "ip:" + clientPrefix(g.clientIP(r))
	}
	d := g.lim.take(caller, st.route, time.Now())
	if d.rate.Off() {
		return true
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.rate.N))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
	h.Set("X-RateLimit-Reset", strconv.Itoa(seconds(d.reset)))
	if d.ok {
		return true
	}
	retry := max(seconds(d.retry), 1)
	h.Set("Retry-After", strconv.Itoa(retry))
	g.m.rateLimited.WithLabelValues(st.route).Inc()
	writeError(w, r, http.StatusTooManyRequests, codeRateLimited,
		fmt.Sprintf("over the limit of %s on %s; retry in %d s", d.rate, st.route, retry),
		map[string]any{"limit": d.rate.N, "period_seconds": int(d.rate.Per.Seconds()), "retry_after_seconds": retry})
	return false
}

// seconds rounds a wait up to whole seconds.
func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// clientIP is the caller's address: the connection's peer, or, when the
// peer is a trusted proxy, the nearest address of X-Forwarded-For that is
// not one (read from the right: the left is whatever the client wrote).
func (g *Guard) clientIP(r *http.Request) netip.Addr {
	ip := peerIP(r.RemoteAddr)
	if len(g.proxies) == 0 || !g.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = a.Unmap()
		if !g.trusted(ip) {
			break
		}
	}
	return ip
}

func (g *Guard) trusted(ip netip.Addr) bool {
	for _, p := range g.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func peerIP(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	ip, _ := netip.ParseAddr(remote)
	return ip.Unmap()
}

// clientPrefix is what an open API's rate limits count by: an IPv4
// address, or an IPv6 address's /64 (one host holds a whole /64).
func clientPrefix(ip netip.Addr) string {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// publicPaths are the paths answered without a key.
type publicPaths struct {
	exact    map[string]bool
	prefixes []string
}

func newPublicPaths(paths []string) publicPaths {
	p := publicPaths{exact: map[string]bool{}}
	for _, s := range paths {
		switch s = strings.TrimSpace(s); {
		case s == "":
		case s != "/" && strings.HasSuffix(s, "/"):
			p.prefixes = append(p.prefixes, s)
		default:
			p.exact[s] = true
		}
	}
	return p
}

// match tells a public path. A path that is not clean ("/assets/../v1")
// is never public, whatever the handler behind would make of it.
func (p publicPaths) match(urlPath string) bool {
	clean := path.Clean(urlPath)
	if strings.HasSuffix(urlPath, "/") && clean != "/" {
		clean += "/"
	}
	if clean != urlPath {
		return false
	}
	if p.exact[urlPath] {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(urlPath, pre) {
			return true
		}
	}
	return false
}

// methodLabel bounds the method label to the methods HTTP defines.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
