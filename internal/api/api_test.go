package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/testutil"
)

// bhp serves the API over a lake holding the shared ASX sample, with the
// options given (at most one; the defaults without).
func bhp(t *testing.T, opts ...api.Options) (*httptest.Server, *ops.Registry) {
	t.Helper()
	srv, reg, _ := bhpWith(t, query.Options{}, opts...)
	return srv, reg
}

// bhpWith is bhp with the engine's options, returning the engine too.
func bhpWith(t *testing.T, qo query.Options, opts ...api.Options) (*httptest.Server, *ops.Registry, *query.Engine) {
	t.Helper()
	e := bhpEngineWith(t, qo)
	reg := ops.NewRegistry()
	mux := http.NewServeMux()
	var o api.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	o.Registerer = reg
	api.New(e, o).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg, e
}

// bhpEngine is a query engine over a lake holding the shared ASX sample.
func bhpEngine(t *testing.T) *query.Engine { return bhpEngineWith(t, query.Options{}) }

func bhpEngineWith(t *testing.T, qo query.Options) *query.Engine {
	t.Helper()
	l := laketest.Open(t)
	ctx := context.Background()
	ld, err := loader.New(l, loader.Options{Source: "asx", DeadLetter: filepath.Join(t.TempDir(), "dl.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	var asx *feed.Format
	for _, f := range exchanges.Formats() {
		if f.Name == "asx" {
			asx = f
		}
	}
	if err := ld.Load(ctx, asx, testutil.Data(t, "asx")); err != nil {
		t.Fatal(err)
	}
	if _, err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	qo.WorkDir = t.TempDir()
	e, err := query.New(l, qo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
	Meta struct {
		RequestID  string `json:"request_id"`
		Count      *int   `json:"count"`
		SnapshotID int64  `json:"snapshot_id"`
	} `json:"meta"`
}

func get(t *testing.T, srv *httptest.Server, method, path string, header ...string) (int, envelope, http.Header) {
	t.Helper()
	return send(t, srv, method, path, "", header...)
}

// send asks with a body (none when "").
func send(t *testing.T, srv *httptest.Server, method, path, body string, header ...string) (int, envelope, http.Header) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, srv.URL+path, r)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Type") == "application/x-ndjson" { // the envelope is the last line
		lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
		b = lines[len(lines)-1]
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%s %s: not JSON: %v %.200s", method, path, err, b)
	}
	return resp.StatusCode, env, resp.Header
}

// bhpDays computes BHP's daily bars straight from the raw file: Sydney
// dates, open and close by file order, exact volume.
func bhpDays(t *testing.T) map[string][4]string {
	t.Helper()
	b, err := os.ReadFile(testutil.Data(t, "asx", "trades", "7078.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][4]string{} // date → open, close, volume, count
	counts := map[string]int{}
	vols := map[string]*big.Rat{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ",")
		d, err := time.Parse("01/02/2006", f[0])
		if err != nil {
			continue
		}
		day := d.Format(time.DateOnly)
		v := out[day]
		if counts[day] == 0 {
			v[0] = f[2]
		}
		v[1] = f[2]
		counts[day]++
		if vols[day] == nil {
			vols[day] = new(big.Rat)
		}
		q, _ := new(big.Rat).SetString(f[3])
		vols[day].Add(vols[day], q)
		v[2], v[3] = strings.TrimSuffix(vols[day].FloatString(0), ".0"), ""
		out[day] = v
	}
	for d, v := range out {
		v[3] = big.NewInt(int64(counts[d])).String()
		out[d] = v
	}
	return out
}

// The record routes answer BHP as the raw file says, in the one shape.
func TestRoutesAnswerBHP(t *testing.T) {
	srv, reg := bhp(t)
	status, env, h := get(t, srv, "GET", "/v1/trades?symbol=bhp&exchange=ASX&order=asc&limit=2", "X-Request-ID", "req-42")
	var trades []map[string]any
	json.Unmarshal(env.Data, &trades)
	// 03/10/2014,07:57:14.754,36.667,20000,3,X, — Sydney is UTC+11 in March.
	if status != 200 || !env.Success || len(trades) != 2 || *env.Meta.Count != 2 || h.Get("X-Request-ID") != "req-42" || env.Meta.RequestID != "req-42" ||
		trades[0]["price"] != "36.667" || trades[0]["quantity"] != "20000" || trades[0]["timestamp"] != "2014-03-09T20:57:14.754000Z" {
		t.Fatalf("trades: %d %+v %v", status, env, trades)
	}
	status, env, _ = get(t, srv, "GET", "/v1/bars/1d?symbol=BHP&exchange=ASX")
	var bars []map[string]any
	json.Unmarshal(env.Data, &bars)
	want := bhpDays(t)
	if status != 200 || len(bars) != len(want) {
		t.Fatalf("bars: %d, %d bars, want %d", status, len(bars), len(want))
	}
	for _, b := range bars {
		ws, _ := time.Parse(time.RFC3339Nano, b["window_start"].(string))
		sydney, _ := time.LoadLocation("Australia/Sydney")
		w := want[ws.In(sydney).Format(time.DateOnly)]
		if !sameDecimal(b["open"], w[0]) || !sameDecimal(b["close"], w[1]) || b["volume"] != w[2] || jsonInt(b["trade_count"]) != w[3] {
			t.Errorf("bar %v, from the file %v", b, w)
		}
	}
	// The original's path and its plain symbol list.
	if status, env, _ := get(t, srv, "GET", "/v1/ohlcv/1h?symbol=BHP&limit=3"); status != 200 || *env.Meta.Count != 3 {
		t.Errorf("ohlcv: %d %+v", status, env)
	}
	// The instruments as objects: market and counts, the trades as the file has them.
	status, env, _ = get(t, srv, "GET", "/v1/symbols?exchange=ASX")
	var objs []struct {
		Symbol, Exchange, Market, Timezone string
		Trades, Quotes                     int
	}
	json.Unmarshal(env.Data, &objs)
	n, _, _, _ := bhpFile(t, "0", "0")
	found := false
	for _, o := range objs {
		if o.Symbol == "BHP" {
			found = true
			if o.Exchange != "ASX" || o.Market != "equities" || o.Timezone != "Australia/Sydney" || o.Trades != n || o.Quotes == 0 {
				t.Errorf("symbols: BHP is %+v; the file has %d trades", o, n)
			}
		}
	}
	if status != 200 || !found {
		t.Errorf("symbols: %d %s", status, env.Data)
	}
	// Nothing is an empty list, not null.
	if status, env, _ := get(t, srv, "GET", "/v1/symbols?exchange=NOWHERE"); status != 200 || string(env.Data) != "[]" {
		t.Errorf("symbols of no exchange: %d %s", status, env.Data)
	}
	if status, env, _ := get(t, srv, "GET", "/v1/bars/1m?symbol=NOTHING"); status != 200 || string(env.Data) != "[]" {
		t.Errorf("bars of no trades: %d %s", status, env.Data)
	}
	status, env, _ = get(t, srv, "GET", "/v1/symbols?format=list")
	var names []string
	json.Unmarshal(env.Data, &names)
	if status != 200 || strings.Join(names, ",") == "" || !strings.Contains(strings.Join(names, ","), "BHP") {
		t.Errorf("symbols: %d %v", status, names)
	}
	// The daily summary is the 1d bar of the Sydney date; a day without
	// trades is 404.
	status, env, _ = get(t, srv, "GET", "/v1/summary/bhp/2014-03-11")
	var day map[string]any
	json.Unmarshal(env.Data, &day)
	if w := want["2014-03-11"]; status != 200 || !sameDecimal(day["open"], w[0]) || !sameDecimal(day["close"], w[1]) || day["volume"] != w[2] {
		t.Errorf("summary: %d %v, from the file %v", status, day, w)
	}
	if status, env, _ := get(t, srv, "GET", "/v1/summary/BHP/2014-03-15"); status != 404 || env.Error.Code != "NOT_FOUND" {
		t.Errorf("summary of a Saturday: %d %+v", status, env)
	}
	status, env, _ = get(t, srv, "GET", "/v1/stats")
	var stats struct {
		Tables []struct {
			Table string
			Rows  int64
		}
		Pool struct {
			PoolSize int `json:"pool_size"`
		}
	}
	json.Unmarshal(env.Data, &stats)
	if status != 200 || len(stats.Tables) == 0 || stats.Tables[0].Rows == 0 || stats.Pool.PoolSize == 0 {
		t.Errorf("stats: %d %s", status, env.Data)
	}
	if status, env, _ := get(t, srv, "GET", "/v1/snapshots?table=quotes&limit=1"); status != 200 || *env.Meta.Count != 1 {
		t.Errorf("snapshots: %d %+v", status, env)
	}
	if got := ops.Sum(reg, "k2_http_requests_total", "route", "GET /v1/bars/{interval}", "status", "2xx"); got != 2 { // the BHP bars and the empty ones
		t.Errorf("requests counted under the route template: %v", got)
	}
	// Cache-Control as the original set it; errors are never kept.
	for path, want := range map[string]string{"/v1/symbols": "private, max-age=300", "/v1/trades?symbol=BHP&limit=1": "private, max-age=5",
		"/v1/bars/1m?symbol=BHP&limit=1": "no-store", "/v1/trades?limit=0": "no-store"} {
		if _, _, h := get(t, srv, "GET", path); h.Get("Cache-Control") != want {
			t.Errorf("%s: Cache-Control %q, want %q", path, h.Get("Cache-Control"), want)
		}
	}
	// Failed answers are counted by route and error code: the Saturday's
	// summary, the limit of 0.
	for _, c := range []struct {
		route, typ string
	}{{"GET /v1/summary/{symbol}/{date}", "not_found"}, {"GET /v1/trades", "invalid_parameters"}} {
		if got := ops.Sum(reg, "k2_http_request_errors_total", "route", c.route, "error_type", c.typ); got != 1 {
			t.Errorf("k2_http_request_errors_total{route=%q,error_type=%q} %v, want 1", c.route, c.typ, got)
		}
	}
	if got := ops.Sum(reg, "k2_http_request_errors_total"); got != 2 {
		t.Errorf("%v failed answers counted, want 2", got)
	}
}

// sameDecimal compares the API's decimal text with the file's ("40" and "40.0").
func sameDecimal(api any, file string) bool {
	a, ok1 := new(big.Rat).SetString(api.(string))
	b, ok2 := new(big.Rat).SetString(file)
	return ok1 && ok2 && a.Cmp(b) == 0
}

func jsonInt(v any) string {
	switch n := v.(type) {
	case float64:
		return big.NewInt(int64(n)).String()
	case string:
		return n
	}
	return ""
}

// Every failure answers in the one shape with the seed's codes.
func TestErrorsHaveOneShape(t *testing.T) {
	srv, _ := bhp(t)
	for _, c := range []struct {
		method, path string
		status       int
		code, param  string
	}{
		{"GET", "/v1/nothing", 404, "NOT_FOUND", ""},
		{"POST", "/v1/trades", 405, "METHOD_NOT_ALLOWED", ""},
		{"GET", "/v1/trades?limit=0", 400, "INVALID_PARAMETERS", "limit"},
		{"GET", "/v1/trades?limit=10001", 400, "INVALID_PARAMETERS", "limit"},
		{"GET", "/v1/trades?start_time=yesterday", 400, "INVALID_PARAMETERS", "start_time"},
		{"GET", "/v1/trades?start_time=2014-03-11T00:00:00Z&end_time=2014-03-10T00:00:00Z", 400, "INVALID_PARAMETERS", "end_time"},
		{"GET", "/v1/trades?start_time=2014-01-01T00:00:00Z&end_time=2014-06-01T00:00:00Z", 400, "INVALID_PARAMETERS", "end_time"},
		{"GET", "/v1/trades?symbol=%FF", 400, "INVALID_PARAMETERS", "symbol"},
		{"GET", "/v1/trades?symbol=" + strings.Repeat("A", 257), 400, "INVALID_PARAMETERS", "symbol"},
		{"GET", "/v1/trades?order=sideways", 400, "INVALID_PARAMETERS", "order"},
		{"GET", "/v1/bars/2m?symbol=BHP", 400, "INVALID_PARAMETERS", "interval"},
		{"GET", "/v1/bars/1m", 400, "INVALID_PARAMETERS", "symbol"},
		{"GET", "/v1/trades?as_of_snapshot=42", 404, "NOT_FOUND", ""},
		{"GET", "/v1/snapshots?table=bars", 400, "INVALID_PARAMETERS", "table"},
		{"GET", "/v1/summary/BHP/11-03-2014", 400, "INVALID_PARAMETERS", "date"},
	} {
		status, env, _ := get(t, srv, c.method, c.path)
		if status != c.status || env.Success || env.Error.Code != c.code || env.Error.Message == "" || env.Meta.RequestID == "" ||
			c.param != "" && env.Error.Details["parameter"] != c.param {
			t.Errorf("%s %s: %d %+v; want %d %s (%s)", c.method, c.path, status, env, c.status, c.code, c.param)
		}
	}
	// The SQL route is off unless turned on, and says how.
	if status, env, _ := send(t, srv, "POST", "/v1/sql", `{"sql": "SELECT 1"}`); status != 404 || env.Error.Code != "NOT_FOUND" ||
		!strings.Contains(env.Error.Message, "--api-sql") {
		t.Errorf("POST /v1/sql, off: %d %+v", status, env)
	}
	// A symbol of quotes and semicolons is a value like any other: bound,
	// never interpolated, it matches nothing.
	status, env, _ := get(t, srv, "GET", "/v1/trades?symbol=BHP'%3B%20DROP%20TABLE%20trades%3B--")
	if status != 200 || *env.Meta.Count != 0 {
		t.Fatalf("injection: %d %+v", status, env)
	}
	if status, env, _ := get(t, srv, "GET", "/v1/trades?symbol=BHP&limit=1"); status != 200 || *env.Meta.Count != 1 {
		t.Fatalf("the table after the injection attempt: %d %+v", status, env)
	}
}

// The curl examples of docs/api.md work as written, against the ASX
// sample: those without a key against an open API (k2 up's default, with
// the SQL route on as its section says to start k2), those with one
// ($K2_KEY) against an API that asks for it.
func TestDocumentedExamples(t *testing.T) {
	e := bhpEngine(t)
	const key = "docs-3e8c1a9f"
	serve := func(a config.API) *httptest.Server {
		g, err := api.NewGuard(api.GuardOptions{API: a, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		api.New(e, api.Options{Guard: g, SQL: true}).Register(mux)
		srv := httptest.NewServer(g.Wrap(mux))
		t.Cleanup(srv.Close)
		return srv
	}
	open := serve(config.Default().API)
	keyed := config.Default().API
	keyed.Keys = []string{"dash:" + key}
	withKey := serve(keyed)
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile(`-H "([^:"]+): ([^"]*)"`)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		_, rest, ok := strings.Cut(line, "'http://127.0.0.1:8000")
		if !strings.HasPrefix(line, "curl -s ") || !ok {
			continue
		}
		path, rest, _ := strings.Cut(rest, "'")
		method, body := "GET", ""
		if _, data, ok := strings.Cut(rest, " -d '"); ok {
			method, body = "POST", strings.TrimSuffix(strings.TrimSpace(data), "'")
		}
		srv, h := open, []string{}
		for _, m := range header.FindAllStringSubmatch(line, -1) {
			h = append(h, m[1], strings.ReplaceAll(m[2], "$K2_KEY", key))
			srv = withKey
		}
		n++
		if status, env, _ := send(t, srv, method, path, body, h...); status != 200 || !env.Success || env.Meta.Count != nil && *env.Meta.Count == 0 ||
			len(env.Data) < 3 && !strings.Contains(path, "replay") {
			t.Errorf("%s: %d %+v", line, status, env)
		}
		if srv == withKey {
			if status, _, _ := send(t, srv, method, path, body); status != 401 {
				t.Errorf("%s without its key: %d", path, status)
			}
		}
	}
	if n < 7 {
		t.Fatalf("docs/api.md has %d curl examples", n)
	}
}

// Bars name the snapshot they were read from, as of a time too, so that a
// chart can say which table it shows.
func TestBarsNameTheirSnapshot(t *testing.T) {
	srv, _ := bhp(t)
	_, env, _ := get(t, srv, "GET", "/v1/snapshots?table=trades")
	var snaps []struct {
		ID int64 `json:"snapshot_id"`
	}
	if err := json.Unmarshal(env.Data, &snaps); err != nil || len(snaps) == 0 {
		t.Fatalf("snapshots: %v %s", err, env.Data)
	}
	id := snaps[0].ID
	for _, q := range []string{"", "&as_of_time=" + time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf("&as_of_snapshot=%d", id)} {
		status, env, _ := get(t, srv, "GET", "/v1/bars/1d?symbol=BHP&exchange=ASX"+q)
		if status != 200 || env.Meta.SnapshotID != id || env.Meta.Count == nil || *env.Meta.Count == 0 {
			t.Errorf("bars%s: %d, snapshot %d (want %d), count %v", q, status, env.Meta.SnapshotID, id, env.Meta.Count)
		}
	}
	if status, env, _ := get(t, srv, "GET", "/v1/bars/1d?symbol=BHP&as_of_time=2001-01-01T00:00:00Z"); status != 400 || !strings.Contains(env.Error.Message, "no snapshot at or before") {
		t.Errorf("bars before the first snapshot: %d %+v", status, env.Error)
	}
}
