package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/k2-market-data/k2/internal/config"
)

// The guard's own cost per request, with rate limits off (what k2 bench
// api sets) and on, from parallel clients: off takes no lock of its own.
func BenchmarkGuard(b *testing.B) {
	for _, limit := range []string{config.RateOff, "1000000/s"} {
		b.Run("rate-limit="+limit, func(b *testing.B) {
			a := config.Default().API
			a.RateLimit, a.Keys = limit, []string{"bench:k-9f8e7d6c"}
			g, err := NewGuard(GuardOptions{API: a, Listen: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			s := New(nil, Options{Guard: g})
			s.mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
			mux := http.NewServeMux()
			s.Register(mux)
			h := g.Wrap(mux)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/v1/ping", nil)
				req.Header.Set("X-API-Key", "k-9f8e7d6c")
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusNoContent {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			})
		})
	}
}
