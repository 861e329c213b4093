package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// fakeAPI answers the two routes of the API benchmark the way the mode
// says: "right", "other symbol" (trades and bars of another symbol),
// "99 trades", "fail" (500 in the error shape) or "lie" (200 with
// success false).
func fakeAPI(t *testing.T, mode string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		sym := q.Get("symbol")
		if mode == "other symbol" {
			sym = "NOTASKED"
		}
		var data []map[string]any
		switch {
		case mode == "fail":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"success":false,"error":{"code":"INTERNAL_ERROR","message":"the query failed"}}`)
			return
		case r.URL.Path == "/v1/trades":
			n := 100
			if mode == "99 trades" {
				n = 99
			}
			ts := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range n {
				data = append(data, map[string]any{"symbol": sym, "timestamp": md.TimestampOf(ts.Add(-time.Duration(i) * time.Second))})
			}
		case r.URL.Path == "/v1/bars/1m":
			start, _ := time.Parse(time.RFC3339, q.Get("start_time"))
			for i := range 60 {
				data = append(data, map[string]any{"symbol": sym, "interval": "1m", "trade_count": 3,
					"window_start": md.TimestampOf(start.Add(time.Duration(i) * time.Minute)), "volume": "1.5"})
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"success": mode != "lie", "data": data, "meta": map[string]any{"count": len(data)}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func testAPIBench(base string) *apiBench {
	from := md.TimestampOf(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	return &apiBench{
		o:    APIOptions{Connections: 4, CheckEvery: 1, Seed: 1},
		lake: apiLake{Symbols: marketSymbols(5), SimRate: 20, Appended: appended{From: from, To: from + md.Timestamp(3*time.Hour/time.Microsecond)}},
		base: base, http: http.DefaultClient,
	}
}

// The load generator counts a 500 as an error and checks what a 200
// says: a server answering another symbol's trades, too few of them, or
// success false fails the benchmark's "errors 0" target.
func TestAPIBenchCountsFailuresAndWrongAnswers(t *testing.T) {
	for _, tc := range []struct {
		mode              string
		errors, wrong     bool
		latestBad, barBad string
	}{
		{mode: "right"},
		{mode: "fail", errors: true},
		{mode: "lie", wrong: true, latestBad: "success is not true", barBad: "success is not true"},
		{mode: "other symbol", wrong: true, latestBad: "a trade of NOTASKED", barBad: "a bar of NOTASKED"},
		{mode: "99 trades", wrong: true, latestBad: "99 trades of"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			b := testAPIBench(fakeAPI(t, tc.mode).URL)
			for i, sc := range b.scenarios() {
				run, err := b.attack(context.Background(), sc, 300*time.Millisecond, nil)
				if err != nil {
					t.Fatal(err)
				}
				wantBad := []string{tc.latestBad, tc.barBad}[i]
				if run.requests == 0 || len(run.latencies) != run.requests {
					t.Fatalf("%s: %d requests, %d latencies", sc.name, run.requests, len(run.latencies))
				}
				if got := run.errors() > 0; got != tc.errors || tc.errors && run.codes[500] != run.requests {
					t.Errorf("%s: errors %v (%s), want %v", sc.name, run.errors(), run.errorText(), tc.errors)
				}
				if !tc.errors && run.checked != run.requests {
					t.Errorf("%s: %d of %d answers checked with CheckEvery 1", sc.name, run.checked, run.requests)
				}
				if (run.wrong > 0) != (wantBad != "") || !strings.Contains(run.firstBad, wantBad) {
					t.Errorf("%s: %d of %d wrong, first %q; want %q", sc.name, run.wrong, run.checked, run.firstBad, wantBad)
				}
				checks := judgeAPI(sc, run, nil)
				if errCheck := checks[len(checks)-1]; (errCheck.Status == checkPass) != (!tc.errors && wantBad == "") {
					t.Errorf("%s: %s %s (%s)", sc.name, errCheck.Name, errCheck.Status, errCheck.Detail)
				}
			}
		})
	}
}

// The bar checker holds every bar to the symbol, interval and hour asked
// for, and an empty answer is wrong only where the market trades enough
// to expect bars.
func TestCheckBars(t *testing.T) {
	u, _ := url.Parse("/v1/bars/1m?symbol=BTCUSD&start_time=2025-01-01T10:00:00Z&end_time=2025-01-01T11:00:00Z")
	bar := func(sym, iv, start string, trades int) string {
		return fmt.Sprintf(`{"symbol":%q,"interval":%q,"window_start":%q,"trade_count":%d,"volume":"2"}`, sym, iv, start, trades)
	}
	answer := func(bars ...string) []byte {
		return fmt.Appendf(nil, `{"success":true,"data":[%s],"meta":{"count":%d}}`, strings.Join(bars, ","), len(bars))
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		dense bool
		want  string
	}{
		{"right", answer(bar("BTCUSD", "1m", "2025-01-01T10:00:00Z", 5), bar("BTCUSD", "1m", "2025-01-01T10:59:00Z", 1)), true, ""},
		{"empty, thin market", answer(), false, ""},
		{"empty, busy market", answer(), true, "no bars of BTCUSD"},
		{"before the hour", answer(bar("BTCUSD", "1m", "2025-01-01T09:59:00Z", 5)), true, "outside"},
		{"after the hour", answer(bar("BTCUSD", "1m", "2025-01-01T11:00:00Z", 5)), true, "outside"},
		{"another interval", answer(bar("BTCUSD", "5m", "2025-01-01T10:00:00Z", 5)), true, "a 5m bar"},
		{"out of order", answer(bar("BTCUSD", "1m", "2025-01-01T10:05:00Z", 5), bar("BTCUSD", "1m", "2025-01-01T10:01:00Z", 5)), true, "not in order"},
		{"no trades", answer(bar("BTCUSD", "1m", "2025-01-01T10:05:00Z", 0)), true, "with 0 trades"},
		{"count not the rows'", []byte(`{"success":true,"data":[],"meta":{"count":3}}`), false, "meta.count"},
		{"no count", []byte(`{"success":true,"data":[]}`), false, "meta.count"},
		{"an HTML page", []byte(`<html>`), false, "not the API's JSON"},
	} {
		err := checkBars(u, tc.body, tc.dense)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A busy lake expects bars in every symbol's every hour; a thin one not.
func TestExpectedTradesInABarWindow(t *testing.T) {
	day := md.Timestamp(24 * time.Hour / time.Microsecond)
	lk := apiLake{SimRate: 20, Appended: appended{From: 0, To: 6 * day}}
	if n := expectedInWindow(lk, 100); n < minTradesDense {
		t.Errorf("100 symbols at 20 trades/s: the least active makes %.0f trades an hour, want ≥ %d", n, minTradesDense)
	}
	if n := expectedInWindow(lk, 10_000); n >= minTradesDense {
		t.Errorf("10,000 symbols at 20 trades/s: %.1f trades an hour expected of the least active", n)
	}
}

// Latency is judged on the run paced at the target rate, and passes only
// when that run reached the rate; without one, the fastest run's counts.
func TestJudgeAPILatencyAtTheTargetRate(t *testing.T) {
	sc := apiScenario{name: "latest", minRate: 1000, maxP99: 20 * time.Millisecond}
	run := func(n int, lat time.Duration) *apiRun {
		r := &apiRun{requests: n, took: time.Second, codes: map[int]int{200: n}, checked: 1}
		for range n {
			r.latencies = append(r.latencies, lat)
		}
		return r
	}
	fastest := run(2000, 60*time.Millisecond) // 2,000 req/s, queued behind each other
	for _, tc := range []struct {
		name string
		at   *apiRun
		pass bool
	}{
		{"no paced run", nil, false},
		{"paced, quick", run(1000, 5*time.Millisecond), true},
		{"paced, short of the rate", run(900, 5*time.Millisecond), false},
		{"paced, slow", run(1000, 30*time.Millisecond), false},
	} {
		checks := judgeAPI(sc, fastest, tc.at)
		if rate := checks[0]; rate.Status != checkPass {
			t.Errorf("%s: %s %s", tc.name, rate.Name, rate.Status)
		}
		if p99 := checks[1]; (p99.Status == checkPass) != tc.pass {
			t.Errorf("%s: %s %s (%s)", tc.name, p99.Name, p99.Status, p99.Detail)
		}
	}
}
