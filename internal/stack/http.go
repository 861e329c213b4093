package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
)

// httpServer is the process's one HTTP listener: /health and /metrics
// now, the API and the dashboard in k2 up later.
type httpServer struct {
	mux  *http.ServeMux
	srv  *http.Server
	addr string
	errc chan error
	once sync.Once
	// guard wraps the whole listener when it serves the API (nil
	// otherwise): keys, rate limits, body limit and CORS for every route,
	// the ones added later included.
	guard *api.Guard
}

// startHTTP listens on --http-listen and serves there until Close; a
// listener that cannot be opened stops the start with a message naming
// the flag, so two processes do not fight for a port in silence.
func (st *Stack) startHTTP() (*httpServer, error) {
	h := &httpServer{mux: http.NewServeMux(), errc: make(chan error, 1)}
	h.mux.Handle("GET /metrics", st.metrics.Handler())
	h.mux.Handle("GET /health", st.health.Live())
	h.mux.Handle("GET /ready", st.health.Handler())
	h.mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, ops.BuildInfo())
	})
	// Go's profiles, for an operator asking where a running process spends
	// its CPU or memory (go tool pprof http://…/debug/pprof/profile).
	h.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	h.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	listen := st.cfg.HTTP.Listen
	if listen == "" || listen == config.HTTPOff {
		return h, nil
	}
	if st.parts.API {
		// Before listening: without keys the API may only be open on a
		// loopback address, and a process that would serve it to the
		// network refuses to start.
		var err error
		h.guard, err = api.NewGuard(api.GuardOptions{API: st.cfg.API, Listen: listen, WriteTimeout: st.cfg.HTTP.WriteTimeout,
			Logger: st.log, Registerer: st.metrics})
		if err != nil {
			return nil, fmt.Errorf("API: %w", err)
		}
		// The guard keeps the keys' hashes; the process needs the keys no more.
		st.cfg.API.Keys = nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w (another k2 %s? choose another address, or off)", listen, err, st.role)
	}
	h.addr = ln.Addr().String()
	var handler http.Handler = h.mux
	if h.guard != nil {
		handler = h.guard.Wrap(h.mux)
	}
	// Timeouts against slow clients: ReadHeaderTimeout cuts off one that
	// sends its headers byte by byte, ReadTimeout one that trickles its
	// body, IdleTimeout one that holds a kept-alive connection. After the
	// body is read net/http clears the read deadline, so a long answer is
	// not cut by ReadTimeout. WriteTimeout stays on, for a client that does
	// not read its answer; a stream (server-sent events, NDJSON replays)
	// would outlive any fixed one, so the guard's response writer pushes
	// the deadline a WriteTimeout ahead on each Flush (api.recorder):
	// a stream that flushes lives as long as it has something to send,
	// one whose client stopped reading is cut. The default WriteTimeout
	// is above the query's acquire and run timeouts together.
	h.srv = &http.Server{Handler: handler, ReadHeaderTimeout: st.cfg.HTTP.ReadHeaderTimeout, ReadTimeout: st.cfg.HTTP.ReadTimeout,
		WriteTimeout: st.cfg.HTTP.WriteTimeout, IdleTimeout: st.cfg.HTTP.IdleTimeout}
	go func() {
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			h.errc <- fmt.Errorf("http on %s: %w", h.addr, err)
		}
	}()
	st.onClose(h.shutdown)
	st.log.Info("serving health and metrics", "url", "http://"+h.addr+"/metrics")
	return h, nil
}

// drainTimeout bounds how long a stopping process waits for requests in
// flight to finish.
const drainTimeout = 5 * time.Second

// shutdown stops listening and waits for requests in flight (once).
func (h *httpServer) shutdown() {
	h.once.Do(func() {
		if h.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		h.srv.Shutdown(ctx)
	})
}

// HTTPAddr is where the process serves HTTP ("" when it does not).
func (st *Stack) HTTPAddr() string { return st.http.addr }

// Handle adds a route to the process's HTTP listener (the API and the
// dashboard register theirs here).
func (st *Stack) Handle(pattern string, h http.Handler) { st.http.mux.Handle(pattern, h) }
