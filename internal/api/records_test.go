package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/k2-market-data/k2/internal/testutil"
)

// bhpFile is what the raw file says of BHP's trades: their count and
// total quantity, and the count and quantity of those priced in [lo, hi].
func bhpFile(t *testing.T, lo, hi string) (n int, qty *big.Rat, nIn int, qtyIn *big.Rat) {
	t.Helper()
	b, err := os.ReadFile(testutil.Data(t, "asx", "trades", "7078.csv"))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := new(big.Rat).SetString(lo)
	h, _ := new(big.Rat).SetString(hi)
	qty, qtyIn = new(big.Rat), new(big.Rat)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ",")
		p, ok1 := new(big.Rat).SetString(f[2])
		q, ok2 := new(big.Rat).SetString(f[3])
		if len(f) < 4 || !ok1 || !ok2 {
			continue
		}
		n++
		qty.Add(qty, q)
		if p.Cmp(l) >= 0 && p.Cmp(h) <= 0 {
			nIn++
			qtyIn.Add(qtyIn, q)
		}
	}
	return n, qty, nIn, qtyIn
}

type page struct {
	Success    bool             `json:"success"`
	Data       []map[string]any `json:"data"`
	Pagination struct {
		Limit      int    `json:"limit"`
		Count      int    `json:"count"`
		HasMore    bool   `json:"has_more"`
		NextCursor string `json:"next_cursor"`
	} `json:"pagination"`
	Meta struct {
		SnapshotID int64 `json:"snapshot_id"`
		Count      int   `json:"count"`
	} `json:"meta"`
	Error struct {
		Code    string         `json:"code"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

func post(t *testing.T, srv *httptest.Server, path string, body any) (int, []byte, http.Header) {
	t.Helper()
	b, _ := json.Marshal(body)
	if s, ok := body.(string); ok {
		b = []byte(s)
	}
	resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Trailer
}

func fetch(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Every BHP trade is read exactly once, in order, whether in one large
// answer (read from the lake page by page) or by following cursors; the
// quantities add up to the file's.
func TestPagingReadsEveryTradeOnce(t *testing.T) {
	srv, _ := bhp(t)
	n, qty, _, _ := bhpFile(t, "0", "0")
	check := func(name string, rows []map[string]any) {
		t.Helper()
		seen := map[string]bool{}
		sum := new(big.Rat)
		last := ""
		for _, r := range rows {
			id := r["trade_id"].(string)
			if seen[id] {
				t.Fatalf("%s: trade %s twice", name, id)
			}
			seen[id] = true
			q, _ := new(big.Rat).SetString(r["quantity"].(string))
			sum.Add(sum, q)
			if ts := r["timestamp"].(string); ts < last {
				t.Fatalf("%s: %s after %s", name, ts, last)
			} else {
				last = ts
			}
		}
		if len(rows) != n || sum.Cmp(qty) != 0 {
			t.Fatalf("%s: %d trades of total quantity %s; the file has %d of %s", name, len(rows), sum.FloatString(0), n, qty.FloatString(0))
		}
	}
	status, b, tr := post(t, srv, "/v1/trades/query", map[string]any{"symbols": []string{"BHP"}, "order": "asc", "limit": 100_000})
	var all page
	if err := json.Unmarshal(b, &all); status != 200 || err != nil || !all.Success {
		t.Fatalf("query: %d %v %.300s", status, err, b)
	}
	check("one answer", all.Data)
	if all.Pagination.HasMore || all.Meta.Count != n || tr.Get("X-Record-Count") != fmt.Sprint(n) {
		t.Errorf("one answer: pagination %+v, meta %+v", all.Pagination, all.Meta)
	}

	var rows []map[string]any
	path := "/v1/trades?symbol=BHP&order=asc&limit=10000"
	for pages := 0; ; pages++ {
		status, b := fetch(t, srv, path)
		var p page
		if err := json.Unmarshal(b, &p); status != 200 || err != nil {
			t.Fatalf("page %d: %d %v %.300s", pages, status, err, b)
		}
		rows = append(rows, p.Data...)
		if !p.Pagination.HasMore {
			break
		}
		if pages > 20 || p.Pagination.NextCursor == "" {
			t.Fatalf("page %d: %+v", pages, p.Pagination)
		}
		path = "/v1/trades?symbol=BHP&order=asc&limit=10000&cursor=" + url.QueryEscape(p.Pagination.NextCursor)
	}
	check("cursor pages", rows)

	// Newest first, the cursor continues backwards.
	status, b = fetch(t, srv, "/v1/trades?symbol=BHP&limit=3")
	var p1 page
	json.Unmarshal(b, &p1)
	status, b = fetch(t, srv, "/v1/trades?symbol=BHP&limit=3&cursor="+url.QueryEscape(p1.Pagination.NextCursor))
	var p2 page
	json.Unmarshal(b, &p2)
	if status != 200 || len(p2.Data) != 3 || p2.Data[0]["timestamp"].(string) > p1.Data[2]["timestamp"].(string) ||
		p1.Data[0]["trade_id"] != all.Data[n-1]["trade_id"] || p2.Data[2]["trade_id"] != all.Data[n-6]["trade_id"] {
		t.Errorf("newest first: %v then %v", p1.Data, p2.Data)
	}
}

// A query route's answer is the same rows in every format.
func TestFormatsAgree(t *testing.T) {
	srv, _ := bhp(t)
	body := func(format string) map[string]any {
		return map[string]any{"symbol": "BHP", "order": "asc", "limit": 500, "format": format,
			"start_time": "2014-03-11T00:00:00Z", "end_time": "2014-03-12T00:00:00Z"}
	}
	status, b, _ := post(t, srv, "/v1/trades/query", body("json"))
	var want page
	json.Unmarshal(b, &want)
	if status != 200 || len(want.Data) != 500 {
		t.Fatalf("json: %d %.300s", status, b)
	}
	key := func(id, price, ts any) string { return id.(string) + " " + price.(string) + " " + ts.(string) }

	status, b, _ = post(t, srv, "/v1/trades/query", body("csv"))
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if status != 200 || err != nil || len(recs) != 501 || recs[0][0] != "message_id" {
		t.Fatalf("csv: %d %v %d rows %.200s", status, err, len(recs), b)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, r := range recs[1:] {
		w := want.Data[i]
		if key(r[col["trade_id"]], r[col["price"]], r[col["timestamp"]]) != key(w["trade_id"], w["price"], w["timestamp"]) || r[0] != w["message_id"] {
			t.Fatalf("csv row %d: %v, json %v", i, r, w)
		}
	}

	readTable := func(name string, rec arrow.RecordBatch, at int) {
		t.Helper()
		sc := rec.Schema()
		get := func(c string) arrow.Array { return rec.Column(sc.FieldIndices(c)[0]) }
		for i := range int(rec.NumRows()) {
			w := want.Data[at+i]
			price := get("price").(*array.Decimal128)
			p := price.Value(i).ToString(price.DataType().(*arrow.Decimal128Type).Scale)
			pr, _ := new(big.Rat).SetString(p)
			wp, _ := new(big.Rat).SetString(w["price"].(string))
			if get("trade_id").(*array.String).Value(i) != w["trade_id"] || pr.Cmp(wp) != 0 || get("message_id").(*array.String).Value(i) != w["message_id"] {
				t.Fatalf("%s row %d: %v %s, json %v", name, at+i, get("trade_id").ValueStr(i), p, w)
			}
		}
	}
	status, b, _ = post(t, srv, "/v1/trades/query", body("arrow"))
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if status != 200 || err != nil {
		t.Fatalf("arrow: %d %v", status, err)
	}
	at := 0
	for rd.Next() {
		readTable("arrow", rd.RecordBatch(), at)
		at += int(rd.RecordBatch().NumRows())
	}
	if rd.Err() != nil || at != 500 {
		t.Fatalf("arrow: %d rows, %v", at, rd.Err())
	}

	status, b, _ = post(t, srv, "/v1/trades/query", body("parquet"))
	pf, err := file.NewParquetReader(bytes.NewReader(b))
	if status != 200 || err != nil {
		t.Fatalf("parquet: %d %v", status, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil || tbl.NumRows() != 500 {
		t.Fatalf("parquet: %v rows, %v", tbl.NumRows(), err)
	}
	tr := array.NewTableReader(tbl, 1000)
	at = 0
	for tr.Next() {
		readTable("parquet", tr.RecordBatch(), at)
		at += int(tr.RecordBatch().NumRows())
	}
}

// Price bounds, column choice and offset work as the original's query
// route documented them, against the file's own arithmetic.
func TestQueryFilters(t *testing.T) {
	srv, _ := bhp(t)
	_, _, nIn, qtyIn := bhpFile(t, "36.5", "36.6")
	status, b, _ := post(t, srv, "/v1/trades/query", map[string]any{"symbols": []string{"BHP"}, "min_price": "36.5", "max_price": 36.6,
		"fields": []string{"trade_id", "quantity"}, "limit": 100_000})
	var p page
	json.Unmarshal(b, &p)
	sum := new(big.Rat)
	for _, r := range p.Data {
		if len(r) != 2 {
			t.Fatalf("fields: a row holds %v", r)
		}
		q, _ := new(big.Rat).SetString(r["quantity"].(string))
		sum.Add(sum, q)
	}
	if status != 200 || len(p.Data) != nIn || sum.Cmp(qtyIn) != 0 {
		t.Fatalf("priced 36.5–36.6: %d, %d trades of %s; the file has %d of %s", status, len(p.Data), sum.FloatString(0), nIn, qtyIn.FloatString(0))
	}
	_, b, _ = post(t, srv, "/v1/trades/query", map[string]any{"symbol": "BHP", "order": "asc", "limit": 5, "offset": 3})
	var off page
	json.Unmarshal(b, &off)
	_, b, _ = post(t, srv, "/v1/trades/query", map[string]any{"symbol": "BHP", "order": "asc", "limit": 8})
	var first page
	json.Unmarshal(b, &first)
	if len(off.Data) != 5 || off.Data[0]["trade_id"] != first.Data[3]["trade_id"] || off.Data[4]["trade_id"] != first.Data[7]["trade_id"] {
		t.Errorf("offset 3: %v; the first 8: %v", off.Data, first.Data)
	}

	for _, c := range []struct {
		body  any
		param string
	}{
		{map[string]any{"symbol": "BHP", "limit": 100_001}, "limit"},
		{map[string]any{"symbol": "BHP", "colour": "red"}, "colour"},
		{map[string]any{"symbol": "BHP", "fields": []string{"price", "password"}}, "fields"},
		{map[string]any{"symbol": "BHP", "min_price": "cheap"}, "min_price"},
		{map[string]any{"symbols": []any{"BHP", 7}}, "symbols"},
		{map[string]any{"symbol": "BHP", "format": "xlsx"}, "format"},
		{map[string]any{"symbol": "BHP", "cursor": "bm90IGEgY3Vyc29y"}, "cursor"},
		{map[string]any{"symbol": "BHP", "cursor": "bm90IGEgY3Vyc29y", "offset": 1}, "offset"},
		{`{"symbol": "BHP"`, ""},
		{`{"symbol": "BHP"} {}`, ""},
		{`[1, 2]`, ""},
	} {
		status, b, _ := post(t, srv, "/v1/trades/query", c.body)
		var p page
		json.Unmarshal(b, &p)
		if status != 400 || p.Success || p.Error.Code != "INVALID_PARAMETERS" || c.param != "" && p.Error.Details["parameter"] != c.param {
			t.Errorf("%v: %d %s", c.body, status, b)
		}
	}
	// A cursor is for the request that issued it.
	_, b, _ = post(t, srv, "/v1/trades/query", map[string]any{"symbol": "BHP", "limit": 2})
	json.Unmarshal(b, &p)
	status, b, _ = post(t, srv, "/v1/trades/query", map[string]any{"symbol": "RIO", "limit": 2, "cursor": p.Pagination.NextCursor})
	if status != 400 || !strings.Contains(string(b), "other filters") {
		t.Errorf("a cursor with other filters: %d %s", status, b)
	}
	status, b, _ = post(t, srv, "/v1/quotes/query", map[string]any{"symbol": "BHP", "limit": 2, "cursor": p.Pagination.NextCursor})
	if status != 400 || !strings.Contains(string(b), "belongs to trades") {
		t.Errorf("a trades cursor on quotes: %d %s", status, b)
	}
}

// bhpBetween counts BHP's trades in the file between two UTC instants
// (its times are Sydney's).
func bhpBetween(t *testing.T, from, to time.Time) int {
	t.Helper()
	b, err := os.ReadFile(testutil.Data(t, "asx", "trades", "7078.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sydney, _ := time.LoadLocation("Australia/Sydney")
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ",")
		if len(f) < 2 {
			continue
		}
		ts, err := time.ParseInLocation("01/02/2006 15:04:05.000", f[0]+" "+f[1], sydney)
		if err == nil && !ts.Before(from) && ts.Before(to) {
			n++
		}
	}
	return n
}

// Replay streams a range oldest first as NDJSON with checkpoints; a
// client cut off after a checkpoint continues from its cursor and gets
// every remaining record once.
func TestReplayResumes(t *testing.T) {
	srv, _ := bhp(t)
	from, to := time.Date(2014, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2014, 3, 12, 0, 0, 0, 0, time.UTC)
	want := bhpBetween(t, from, to)
	body := map[string]any{"data_type": "trades", "symbol": "BHP", "start_time": from.Format(time.RFC3339), "end_time": to.Format(time.RFC3339), "batch_size": 1000}
	lines := func(b []byte) (ids []string, cursors []string, counts []int, last map[string]any) {
		for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("not NDJSON: %.200s", l)
			}
			switch {
			case m["trade_id"] != nil:
				ids = append(ids, m["trade_id"].(string))
			case m["cursor"] != nil:
				cursors, counts = append(cursors, m["cursor"].(string)), append(counts, int(m["count"].(float64)))
			default:
				last = m
			}
		}
		return
	}
	status, b, _ := post(t, srv, "/v1/replay", body)
	ids, cursors, counts, last := lines(b)
	if status != 200 || len(ids) != want || want < 3000 || last["success"] != true {
		t.Fatalf("replay: %d, %d records (the file has %d), end %v", status, len(ids), want, last)
	}
	if len(cursors) < 3 || counts[2] != 3000 {
		t.Fatalf("checkpoints: %d, counts %v", len(cursors), counts)
	}
	body["cursor"] = cursors[2]
	status, b, _ = post(t, srv, "/v1/replay", body)
	rest, _, _, _ := lines(b)
	if status != 200 || len(rest) != want-3000 || rest[0] != ids[3000] || rest[len(rest)-1] != ids[want-1] {
		t.Fatalf("resumed: %d, %d records, want %d from %s", status, len(rest), want-3000, ids[3000])
	}
	for _, c := range []struct {
		body  map[string]any
		param string
	}{
		{map[string]any{"symbol": "BHP", "start_time": from.Format(time.RFC3339)}, "end_time"},
		{map[string]any{"data_type": "bars", "start_time": from.Format(time.RFC3339), "end_time": to.Format(time.RFC3339)}, "data_type"},
		{map[string]any{"start_time": from.Format(time.RFC3339), "end_time": to.Format(time.RFC3339), "batch_size": 10}, "batch_size"},
	} {
		status, b, _ := post(t, srv, "/v1/replay", c.body)
		var p page
		json.Unmarshal(b, &p)
		if status != 400 || p.Error.Details["parameter"] != c.param {
			t.Errorf("%v: %d %s", c.body, status, b)
		}
	}
}

// A snapshot query reads the table as it stood at that snapshot.
func TestSnapshotQuery(t *testing.T) {
	srv, _ := bhp(t)
	_, b := fetch(t, srv, "/v1/snapshots?table=trades&limit=1")
	var snaps struct {
		Data []struct {
			SnapshotID int64 `json:"snapshot_id"`
		} `json:"data"`
	}
	json.Unmarshal(b, &snaps)
	if len(snaps.Data) != 1 {
		t.Fatalf("snapshots: %s", b)
	}
	id := snaps.Data[0].SnapshotID
	status, b, _ := post(t, srv, fmt.Sprintf("/v1/snapshots/%d/query", id), map[string]any{"data_type": "trades", "symbol": "BHP", "limit": 5})
	var p page
	json.Unmarshal(b, &p)
	if status != 200 || len(p.Data) != 5 || p.Meta.SnapshotID != id {
		t.Fatalf("snapshot %d: %d %s", id, status, b)
	}
	if status, b, _ := post(t, srv, "/v1/snapshots/42/query", map[string]any{"symbol": "BHP"}); status != 404 || !strings.Contains(string(b), "NOT_FOUND") {
		t.Errorf("an unknown snapshot: %d %s", status, b)
	}
	if status, b, _ := post(t, srv, "/v1/snapshots/latest/query", map[string]any{}); status != 400 {
		t.Errorf("a snapshot id that is not a number: %d %s", status, b)
	}
}

// A recent route with nothing in its window (the sample is from 2014)
// answers an empty list, oldest first as by default, in whole.
func TestRecentWithNothingRecent(t *testing.T) {
	srv, _ := bhp(t)
	status, env, _ := get(t, srv, "GET", "/v1/trades/recent?symbol=BHP")
	if status != 200 || !env.Success || string(env.Data) != "[]" || env.Meta.Count == nil || *env.Meta.Count != 0 {
		t.Errorf("JSON: %d %+v %s", status, env, env.Data)
	}
	status, b := fetch(t, srv, "/v1/quotes/recent?symbol=BHP&format=csv")
	if status != 200 || !strings.HasPrefix(string(b), "message_id,quote_id,") || strings.Count(string(b), "\n") != 1 {
		t.Errorf("CSV: %d %q", status, b)
	}
}

// An injection string in any parameter of any read route is a value like
// another: refused as a bad value, or matching nothing; the table is as
// it was.
func TestInjectionInEveryParameter(t *testing.T) {
	srv, _ := bhp(t)
	n, _, _, _ := bhpFile(t, "0", "0")
	inj := url.QueryEscape(`BHP' OR '1'='1'; DROP TABLE trades; --`)
	params := []string{"symbol", "symbols", "exchange", "exchanges", "start_time", "end_time", "limit", "offset", "order", "format",
		"fields", "cursor", "as_of_snapshot", "as_of_time", "min_price", "max_price", "min_quantity", "max_quantity", "with"}
	for _, route := range []string{"/v1/trades?", "/v1/quotes?", "/v1/bars/1m?symbol=BHP&", "/v1/symbols?", "/v1/stats?", "/v1/trades/recent?symbol=BHP&"} {
		for _, p := range params {
			status, b := fetch(t, srv, route+p+"="+inj)
			if status != 200 && status != 400 && status != 404 {
				t.Errorf("%s%s=…: %d %.200s", route, p, status, b)
			}
		}
	}
	status, b, _ := post(t, srv, "/v1/trades/query", map[string]any{"symbols": []string{"BHP"}, "limit": 100_000, "fields": []string{"trade_id"}})
	var p page
	json.Unmarshal(b, &p)
	if status != 200 || len(p.Data) != n {
		t.Fatalf("BHP after the injections: %d, %d trades; the file has %d", status, len(p.Data), n)
	}
}
