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
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w (another k2 %s? choose another address, or off)", listen, err, st.role)
	}
	h.addr = ln.Addr().String()
	h.srv = &http.Server{Handler: h.mux, ReadHeaderTimeout: 10 * time.Second}
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
