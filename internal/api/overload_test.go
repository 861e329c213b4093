package api_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
)

// An engine that fails opens the circuit breaker after five failures:
// then requests are turned away at once with 503 and Retry-After, and the
// breaker's state is exported.
func TestBreakerOpensOnAFailingEngine(t *testing.T) {
	srv, reg, e := bhpWith(t, query.Options{})
	e.Close() // every query now fails
	for i := range 5 {
		if status, env, _ := get(t, srv, "GET", "/v1/trades?symbol=BHP&limit=1"); status != 500 || env.Error.Code != "INTERNAL_ERROR" {
			t.Fatalf("failure %d: %d %+v", i, status, env)
		}
		if i == 3 { // the fifth opens it, and a new count begins
			if v := ops.Sum(reg, "k2_circuit_breaker_consecutive_failures", "breaker_name", "query_engine"); v != 4 {
				t.Errorf("after four failures k2_circuit_breaker_consecutive_failures is %v", v)
			}
			if v := ops.Sum(reg, "k2_circuit_breaker_opened_total"); v != 0 {
				t.Errorf("opened %v times before the fifth failure", v)
			}
		}
	}
	if v := ops.Sum(reg, "k2_circuit_breaker_opened_total", "breaker_name", "query_engine"); v != 1 {
		t.Errorf("k2_circuit_breaker_opened_total %v, want 1", v)
	}
	status, env, h := get(t, srv, "GET", "/v1/bars/1m?symbol=BHP")
	if status != 503 || env.Error.Code != "SERVICE_UNAVAILABLE" || h.Get("Retry-After") == "" || h.Get("Retry-After") == "0" {
		t.Fatalf("with the breaker open: %d %+v Retry-After %q", status, env, h.Get("Retry-After"))
	}
	if v := ops.Sum(reg, "k2_circuit_breaker_state", "breaker_name", "query_engine"); v != 1 {
		t.Errorf("k2_circuit_breaker_state %v, want 1 (open)", v)
	}
	if v := ops.Sum(reg, "k2_circuit_breaker_rejections_total"); v != 1 {
		t.Errorf("rejections %v", v)
	}
	// The answers counted by what went wrong.
	for typ, want := range map[string]float64{"internal_error": 5, "service_unavailable": 1} {
		if v := ops.Sum(reg, "k2_http_request_errors_total", "error_type", typ); v != want {
			t.Errorf("k2_http_request_errors_total{error_type=%q} %v, want %v", typ, v, want)
		}
	}
}

// A saturated pool sheds the heavy routes first (503, Retry-After), while
// the light ones wait their turn and succeed.
func TestSaturatedPoolShedsHeavyRoutesFirst(t *testing.T) {
	srv, reg, _ := bhpWith(t, query.Options{Query: config.Query{PoolSize: 1}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	heavy := map[int]int{}
	light := map[int]int{}
	stop := time.Now().Add(3 * time.Second)
	for range 6 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				status, _, _ := post(t, srv, "/v1/trades/query", map[string]any{"symbol": "BHP", "limit": 20_000, "format": "csv"})
				mu.Lock()
				heavy[status]++
				mu.Unlock()
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp, err := http.Get(srv.URL + "/v1/trades?symbol=BHP&limit=5")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				light[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if heavy[503] == 0 || heavy[200] == 0 || len(light) != 1 || light[200] == 0 {
		t.Fatalf("heavy answers %v, light answers %v: want heavy ones shed and every light one answered", heavy, light)
	}
	if v := ops.Sum(reg, "k2_api_requests_shed_total", "route", "POST /v1/trades/query"); v != float64(heavy[503]) {
		t.Errorf("shed counted %v, answered 503 %d times", v, heavy[503])
	}
}
