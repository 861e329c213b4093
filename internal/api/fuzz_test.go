package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// Any query string reads as parameters or as an error naming one; it never
// panics, and what it lets through is within the routes' bounds.
func FuzzParams(f *testing.F) {
	for _, s := range []string{
		"symbol=BHP&limit=100&order=asc", "symbols=A,B&min_price=1.5&max_quantity=2&fields=price,trade_id",
		"start_time=2014-03-10T00:00:00Z&end_time=2014-03-11T00:00:00Z", "as_of_snapshot=1&as_of_time=2020-01-01T00:00:00Z",
		"cursor=eyJ0YiI6InRyYWRlcyJ9&format=parquet", "symbol=%FF%00&limit=-1", "window_minutes=61", "offset=99999999999999999999",
		"symbol=BHP'%3B DROP TABLE trades%3B--", "interval=1m&include_non_market=maybe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, k := range record.All {
			p := params{q: q}
			req := p.recordRequest(k, 31*24*time.Hour, postLimits)
			if p.err == nil && (req.limit < 1 || req.limit > 100_000 || req.offset < 0 || len(req.q.Symbols) > 100) {
				t.Fatalf("%q: accepted limit %d offset %d, %d symbols", raw, req.limit, req.offset, len(req.q.Symbols))
			}
			p = params{q: q}
			p.require(recentParams) // as the route does before reading
			req = p.recentRequest(k, time.Now())
			if p.err == nil && req.q.Symbol == "" {
				t.Fatalf("%q: a recent read without a symbol", raw)
			}
		}
		p := params{q: q}
		b := p.barQuery("interval", q.Get("interval"), 31*24*time.Hour)
		if p.err == nil && (b.Symbol == "" || b.From != 0 && b.To != 0 && b.To <= b.From) {
			t.Fatalf("%q: accepted bars %+v", raw, b)
		}
	})
}

// Any request body is read as one JSON value of parameters or refused in
// the error shape; it never panics.
func FuzzBody(f *testing.F) {
	for _, s := range []string{
		`{"symbols":["BHP"],"limit":100000,"format":"csv"}`, `{"symbol":"BHP","min_price":36.5,"max_price":"36.6"}`,
		`{"as_of_snapshot":9223372036854775807}`, `{"symbols":[1,2]}`, `[{"symbol":"BHP","timeframe":"1h"}]`, `{"a":`, ``, `null`,
		`{"symbol":"BHP"} {}`, `{"fields":["price"],"cursor":"x","offset":1e99}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/v1/trades/query", strings.NewReader(string(body)))
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		obj, ok := decodeObject(w, r)
		if !ok {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%q: refused with %d", body, w.Code)
			}
			return
		}
		for _, k := range record.All {
			p := bodyToParams(obj, recordParams(k, postLimits))
			p.recordRequest(k, 31*24*time.Hour, postLimits)
		}
		decodeAnyBytes(body)
	})
}

// decodeAnyBytes decodes body as decodeAny does, for the fuzzer.
func decodeAnyBytes(body []byte) (any, bool) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/ohlcv/batch", strings.NewReader(string(body)))
	return decodeAny(w, r)
}

// Any cursor text is one K2 issued for this request, or an error; never a
// panic.
func FuzzCursor(f *testing.F) {
	good := cursor{Table: "trades", Snapshot: 7, Request: "abc", After: query.Position{Time: 1, Key: "ASX-1"}}.String()
	f.Add(good)
	f.Add("")
	f.Add("eyJ0YiI6InRyYWRlcyIsInJxIjoiYWJjIiwiYSI6eyJ0IjoxLCJrIjoieCJ9fQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, msg := parseCursor(s, "trades", "abc")
		if (c == nil) == (msg == "") {
			t.Fatalf("%q: cursor %v, message %q", s, c, msg)
		}
		if c != nil && c.After.Key == "" {
			t.Fatalf("%q: a cursor without a key", s)
		}
	})
}
