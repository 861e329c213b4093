package api_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/k2-market-data/k2/internal/testutil"
)

// aedt is Sydney's offset on the sample's dates (10–14 March 2014).
var aedt = time.FixedZone("AEDT", 11*3600)

// rawRow is a line of an ASX sample file: its instant and its fields.
type rawRow struct {
	at time.Time
	f  []string
}

// readRaw reads an ASX sample file in file order, sharing no code with the
// loader.
func readRaw(t *testing.T, kind string) []rawRow {
	t.Helper()
	f, err := os.Open(testutil.Data(t, "asx", kind, "7078.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rawRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimRight(sc.Text(), "\r"), ",")
		at, err := time.ParseInLocation("01/02/2006 15:04:05.000", fields[0]+" "+fields[1], aedt)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawRow{at, fields})
	}
	return out
}

func rat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic(s)
	}
	return r
}

// roundHalfUp8 writes r rounded half away from zero to 8 decimals, as K2
// writes decimals (no trailing zeros).
func roundHalfUp8(r *big.Rat) string {
	scaled := new(big.Rat).Mul(r, big.NewRat(100_000_000, 1))
	scaled.Add(scaled, big.NewRat(1, 2))
	s := fmt.Sprintf("%09s", new(big.Int).Quo(scaled.Num(), scaled.Denom()).String())
	return strings.TrimRight(strings.TrimRight(s[:len(s)-8]+"."+s[len(s)-8:], "0"), ".")
}

// hourBucket is what the raw file says of one hour of BHP's trades.
type hourBucket struct {
	open, high, low, close string
	count                  int
	volume, notional       *big.Rat
	trades                 []rawRow
}

// bhpHours buckets the file's trades in [from, to) by UTC hour.
func bhpHours(t *testing.T, from, to time.Time) (map[time.Time]*hourBucket, []time.Time) {
	hours := map[time.Time]*hourBucket{}
	var order []time.Time
	for _, r := range readRaw(t, "trades") {
		if r.at.Before(from) || !r.at.Before(to) {
			continue
		}
		h := r.at.UTC().Truncate(time.Hour)
		b := hours[h]
		price, qty := r.f[2], rat(r.f[3])
		if b == nil {
			b = &hourBucket{open: price, high: price, low: price, volume: new(big.Rat), notional: new(big.Rat)}
			hours[h] = b
			order = append(order, h)
		}
		b.close = price
		if rat(price).Cmp(rat(b.high)) > 0 {
			b.high = price
		}
		if rat(price).Cmp(rat(b.low)) < 0 {
			b.low = price
		}
		b.count++
		b.volume.Add(b.volume, qty)
		b.notional.Add(b.notional, new(big.Rat).Mul(rat(price), qty))
		b.trades = append(b.trades, r)
	}
	return hours, order
}

// twapOf is the time-weighted price of trades (in file order, which is
// time then sequence order) up to end: each price holds until the next
// trade, the last until end.
func twapOf(trades []rawRow, end time.Time) string {
	area := new(big.Rat)
	for i, r := range trades {
		next := end
		if i+1 < len(trades) {
			next = trades[i+1].at
		}
		area.Add(area, new(big.Rat).Mul(rat(r.f[2]), big.NewRat(next.Sub(r.at).Microseconds(), 1)))
	}
	return roundHalfUp8(area.Quo(area, big.NewRat(end.Sub(trades[0].at).Microseconds(), 1)))
}

type aggAnswer struct {
	Success bool             `json:"success"`
	Data    []map[string]any `json:"data"`
	Meta    struct {
		Count          int `json:"count"`
		RequestSummary struct {
			Symbols     []string `json:"symbols"`
			Metrics     []string `json:"metrics"`
			Interval    string   `json:"interval"`
			StartTime   string   `json:"start_time"`
			EndTime     string   `json:"end_time"`
			BucketCount int      `json:"bucket_count"`
		} `json:"request_summary"`
	} `json:"meta"`
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

// The aggregation, batch and join routes answer as the raw ASX files say.
func TestAggregationRoutesAnswerBHP(t *testing.T) {
	srv, _ := bhp(t)
	// 11 March 2014, Sydney's day.
	from, to := time.Date(2014, 3, 11, 0, 0, 0, 0, aedt), time.Date(2014, 3, 12, 0, 0, 0, 0, aedt)
	day := map[string]any{"start_time": from.UTC().Format(time.RFC3339), "end_time": to.UTC().Format(time.RFC3339)}
	body := func(extra map[string]any) map[string]any {
		b := map[string]any{"symbols": []string{"bhp"}, "interval": "1hour"}
		for k, v := range day {
			b[k] = v
		}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	aggregate := func(t *testing.T, b any) (int, aggAnswer) {
		t.Helper()
		status, raw, _ := post(t, srv, "/v1/aggregations", b)
		var a aggAnswer
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%v: %d %.300s", b, status, raw)
		}
		return status, a
	}

	t.Run("aggregations", func(t *testing.T) {
		hours, order := bhpHours(t, from, to)
		status, a := aggregate(t, body(map[string]any{"metrics": []string{"vwap", "ohlcv", "volume", "trade_count", "twap"}}))
		if status != 200 || !a.Success || len(a.Data) != len(order) || a.Meta.Count != len(order) {
			t.Fatalf("%d: %d buckets, the file has %d: %+v", status, len(a.Data), len(order), a)
		}
		s := a.Meta.RequestSummary
		if fmt.Sprint(s.Symbols, s.Metrics, s.Interval, s.BucketCount) != fmt.Sprint([]string{"BHP"}, []string{"vwap", "ohlcv", "volume", "trade_count", "twap"}, "1h", len(order)) ||
			s.StartTime != "2014-03-10T13:00:00.000000Z" || s.EndTime != "2014-03-11T13:00:00.000000Z" {
			t.Errorf("request summary %+v", s)
		}
		for i, row := range a.Data {
			h := order[i]
			b := hours[h]
			want := map[string]any{"symbol": "BHP", "exchange": "ASX",
				"interval_start": h.Format("2006-01-02T15:04:05.000000Z"), "interval_end": h.Add(time.Hour).Format("2006-01-02T15:04:05.000000Z"),
				"open": roundHalfUp8(rat(b.open)), "high": roundHalfUp8(rat(b.high)), "low": roundHalfUp8(rat(b.low)), "close": roundHalfUp8(rat(b.close)),
				"volume": roundHalfUp8(b.volume), "trade_count": float64(b.count), "vwap": roundHalfUp8(new(big.Rat).Quo(b.notional, b.volume)),
				"twap": twapOf(b.trades, h.Add(time.Hour))}
			if !reflect.DeepEqual(row, want) {
				t.Errorf("bucket %s:\n got %v\nfile %v", h, row, want)
			}
		}
		// One bucket by hand: 11:00–12:00 Sydney, whose first trade comes
		// after the hour starts, weighs each price by how long it held.
		noon := time.Date(2014, 3, 11, 12, 0, 0, 0, aedt)
		var row map[string]any
		for _, r := range a.Data {
			if r["interval_end"] == noon.UTC().Format("2006-01-02T15:04:05.000000Z") {
				row = r
			}
		}
		if b := hours[noon.Add(-time.Hour).UTC()]; b == nil || len(b.trades) < 100 || row["twap"] != twapOf(b.trades, noon) ||
			row["twap"] == roundHalfUp8(new(big.Rat).Quo(sumPrices(b.trades), big.NewRat(int64(len(b.trades)), 1))) {
			t.Errorf("11:00 bucket: twap %v", row)
		}

		// Only the requested metrics' fields; the original's names.
		status, only := aggregate(t, body(map[string]any{"metrics": []string{"volume_profile", "vwap"}, "interval": "1h"}))
		if status != 200 || len(only.Data) != len(order) || len(only.Data[0]) != 6 || only.Data[0]["trade_count"] == nil ||
			only.Data[0]["vwap"] != a.Data[0]["vwap"] || only.Meta.RequestSummary.Metrics[0] != "trade_count" {
			t.Errorf("vwap and volume_profile: %d %v", status, only.Data[:1])
		}
		// A range that cuts a bucket says so.
		cut := body(map[string]any{"metrics": []string{"trade_count"}, "interval": "1day"})
		cut["start_time"] = "2014-03-11T00:30:00Z"
		if status, c := aggregate(t, cut); status != 200 || len(c.Data) != 1 || c.Data[0]["partial"] != true {
			t.Errorf("a day cut short: %d %v", status, c.Data)
		}
		// CSV: a header and a row a bucket.
		status, raw, _ := post(t, srv, "/v1/aggregations", body(map[string]any{"metrics": []string{"ohlcv"}, "format": "csv"}))
		recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
		if status != 200 || err != nil || len(recs) != len(order)+1 || strings.Join(recs[0], ",") != "symbol,exchange,interval_start,interval_end,open,high,low,close,partial" ||
			recs[1][4] != a.Data[0]["open"] {
			t.Errorf("csv: %d %v %.300s", status, err, raw)
		}
		// A quoted, semicoloned symbol is a value like any other.
		if status, inj := aggregate(t, body(map[string]any{"metrics": []string{"vwap"}, "symbols": []string{"BHP'; DROP TABLE trades;--", "x\" OR 1=1"}})); status != 200 || len(inj.Data) != 0 {
			t.Errorf("injection: %d %+v", status, inj)
		}
		if status, again := aggregate(t, body(map[string]any{"metrics": []string{"vwap"}})); status != 200 || len(again.Data) != len(order) {
			t.Errorf("after the injection attempt: %d %d buckets", status, len(again.Data))
		}
	})

	t.Run("aggregation errors", func(t *testing.T) {
		many := make([]string, 51)
		for i := range many {
			many[i] = fmt.Sprintf("S%d", i)
		}
		for _, c := range []struct {
			body  any
			param string
		}{
			{body(map[string]any{"symbols": nil, "metrics": []string{"vwap"}}), "symbols"},
			{body(map[string]any{"symbols": many, "metrics": []string{"vwap"}}), "symbols"},
			{body(map[string]any{"symbols": []string{"BHP", ""}, "metrics": []string{"vwap"}}), "symbols"},
			{body(nil), "metrics"},
			{body(map[string]any{"metrics": []string{"vwap", "median"}}), "metrics"},
			{body(map[string]any{"metrics": []string{"vwap"}, "interval": "2min"}), "interval"},
			{body(map[string]any{"metrics": []string{"vwap"}, "interval": nil}), "interval"},
			{body(map[string]any{"metrics": []string{"vwap"}, "start_time": nil}), "start_time"},
			{body(map[string]any{"metrics": []string{"vwap"}, "end_time": "2014-04-20T00:00:00Z"}), "end_time"},
			{body(map[string]any{"metrics": []string{"vwap"}, "interval": "1m", "symbols": many[:5], "start_time": "2014-03-01T00:00:00Z", "end_time": "2014-03-31T00:00:00Z"}), "interval"},
			{body(map[string]any{"metrics": []string{"vwap"}, "format": "parquet"}), "format"},
			{body(map[string]any{"metrics": []string{"vwap"}, "colour": "red"}), "colour"},
			{`[{"symbols": ["BHP"]}]`, ""},
		} {
			status, a := aggregate(t, c.body)
			if status != 400 || a.Success || a.Error.Code != "INVALID_PARAMETERS" || c.param != "" && a.Error.Details["parameter"] != c.param {
				t.Errorf("%v: %d %+v", c.body, status, a.Error)
			}
		}
	})

	t.Run("batch", func(t *testing.T) {
		q := url.Values{"symbol": {"BHP"}, "start_time": {day["start_time"].(string)}, "end_time": {day["end_time"].(string)}, "limit": {"5"}}
		_, hourly, _ := get(t, srv, "GET", "/v1/bars/1h?"+q.Encode())
		_, daily, _ := get(t, srv, "GET", "/v1/bars/1d?symbol=bhp&exchange=ASX")
		status, raw, _ := post(t, srv, "/v1/ohlcv/batch", []map[string]any{
			{"symbol": "BHP", "timeframe": "1h", "start_time": day["start_time"], "end_time": day["end_time"], "limit": 5},
			{"symbol": "bhp", "interval": "1d", "exchange": "ASX"},
		})
		var b struct {
			Success bool `json:"success"`
			Data    map[string]struct {
				Success bool            `json:"success"`
				Data    json.RawMessage `json:"data"`
				Count   int             `json:"count"`
				Error   *struct {
					Code    string         `json:"code"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &b); status != 200 || err != nil || !b.Success || len(b.Data) != 2 {
			t.Fatalf("batch: %d %v %.300s", status, err, raw)
		}
		if h := b.Data["1h_BHP"]; !h.Success || h.Count != 5 || !bytes.Equal(h.Data, hourly.Data) || h.Error != nil {
			t.Errorf("1h_BHP: %+v\nGET: %s", h, hourly.Data)
		}
		if d := b.Data["1d_BHP"]; !d.Success || d.Count != 5 || !bytes.Equal(d.Data, daily.Data) {
			t.Errorf("1d_BHP: %+v\nGET: %s", d, daily.Data)
		}

		// A bad item is answered as such; the others are not held back.
		status, raw, _ = post(t, srv, "/v1/ohlcv/batch", []map[string]any{
			{"symbol": "BHP", "timeframe": "2m"},
			{"symbol": "BHP", "timeframe": "1d", "limit": 1},
			{"symbol": "BHP'; DROP TABLE trades;--", "timeframe": "1d"},
			{"timeframe": "1h"},
		})
		b.Data = nil
		json.Unmarshal(raw, &b)
		bad, good, inj, none := b.Data["2m_BHP"], b.Data["1d_BHP"], b.Data["1d_BHP'; DROP TABLE TRADES;--"], b.Data["1h_"]
		if status != 200 || bad.Success || bad.Error == nil || bad.Error.Code != "INVALID_PARAMETERS" || bad.Error.Details["parameter"] != "timeframe" ||
			!good.Success || good.Count != 1 || !inj.Success || inj.Count != 0 || none.Success || none.Error.Details["parameter"] != "symbol" {
			t.Errorf("a bad item: %d %s", status, raw)
		}

		items := func(n int, limit int) []map[string]any {
			out := make([]map[string]any, n)
			for i := range out {
				out[i] = map[string]any{"symbol": fmt.Sprintf("S%d", i), "timeframe": "1h", "limit": limit}
			}
			return out
		}
		over := items(3, 10_000)
		over[2]["limit"] = 5_001
		for _, c := range []struct {
			body any
			want string
		}{
			{[]any{}, "empty"},
			{items(6, 10), "more than 5"},
			{over, "25001"},
			{items(2, 10)[:1][0], "array"},
			{[]any{"BHP"}, "not a JSON object"},
			{[]map[string]any{{"symbol": "BHP", "timeframe": "1h"}, {"symbol": "bhp", "timeframe": "1h"}}, "both answer"},
		} {
			status, raw, _ := post(t, srv, "/v1/ohlcv/batch", c.body)
			var e aggAnswer
			json.Unmarshal(raw, &e)
			if status != 400 || e.Success || e.Error.Code != "INVALID_PARAMETERS" || !strings.Contains(e.Error.Message, c.want) {
				t.Errorf("%v: %d %s", c.body, status, raw)
			}
		}
		if status, raw, _ := post(t, srv, "/v1/ohlcv/batch", items(3, 10_000)[:2]); status != 200 {
			t.Errorf("limits of 20,000: %d %.200s", status, raw)
		}
	})

	t.Run("with quote", func(t *testing.T) {
		quotes := readRaw(t, "quotes")
		// The file's prevailing quote at an instant: its last line at or
		// before it, on the same Sydney date.
		for i := 1; i < len(quotes); i++ {
			if quotes[i].at.Before(quotes[i-1].at) {
				t.Fatalf("the quotes file is not in time order at line %d", i+1)
			}
		}
		prevailing := func(at time.Time) *rawRow {
			i := sort.Search(len(quotes), func(i int) bool { return quotes[i].at.After(at) })
			if i == 0 || quotes[i-1].f[0] != at.In(aedt).Format("01/02/2006") {
				return nil
			}
			return &quotes[i-1]
		}
		side := func(price, size string) (any, any) {
			if rat(price).Sign() == 0 {
				return nil, nil
			}
			return roundHalfUp8(rat(price)), roundHalfUp8(rat(size))
		}
		check := func(t *testing.T, rows []map[string]any) {
			t.Helper()
			for _, r := range rows {
				at, _ := time.Parse(time.RFC3339Nano, r["timestamp"].(string))
				q := prevailing(at)
				if q == nil {
					t.Fatalf("trade %v: the file has no quote before it", r)
				}
				bp, bq := side(q.f[2], q.f[4])
				ap, aq := side(q.f[3], q.f[5])
				got := []any{r["quote_bid_price"], r["quote_bid_quantity"], r["quote_ask_price"], r["quote_ask_quantity"], r["quote_timestamp"]}
				want := []any{bp, bq, ap, aq, q.at.UTC().Format("2006-01-02T15:04:05.000000Z")}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("trade %s at %s: quote %v, the file's %v", r["trade_id"], at, got, want)
				}
			}
		}
		// The day's first trades (the pre-open book, a side empty), a busy
		// stretch after the open, and trades sharing a quote's millisecond.
		for _, start := range []string{"2014-03-10T20:00:00Z", "2014-03-10T23:10:00Z", "2014-03-12T03:00:00Z"} {
			_, b := fetch(t, srv, "/v1/trades?symbol=BHP&order=asc&limit=300&with=quote&start_time="+start)
			var p page
			if err := json.Unmarshal(b, &p); err != nil || len(p.Data) != 300 {
				t.Fatalf("with=quote from %s: %v %.300s", start, err, b)
			}
			check(t, p.Data)
		}
		// A whole page of 10,000 trades through POST, and CSV holding the
		// same columns.
		req := map[string]any{"symbols": []string{"BHP"}, "order": "asc", "limit": 10_000, "with": "quote", "start_time": "2014-03-13T00:00:00Z"}
		_, b, _ := post(t, srv, "/v1/trades/query", req)
		var all page
		if err := json.Unmarshal(b, &all); err != nil || len(all.Data) != 10_000 {
			t.Fatalf("POST with quote: %v %.300s", err, b)
		}
		check(t, all.Data[:500])
		check(t, all.Data[9_500:])
		req["format"], req["limit"], req["fields"] = "csv", 50, []string{"trade_id", "price"}
		_, b, _ = post(t, srv, "/v1/trades/query", req)
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(recs) != 51 || strings.Join(recs[0], ",") != "trade_id,price,quote_bid_price,quote_bid_quantity,quote_ask_price,quote_ask_quantity,quote_timestamp" ||
			recs[50][0] != all.Data[49]["trade_id"] || recs[50][2] != all.Data[49]["quote_bid_price"] || recs[50][6] != all.Data[49]["quote_timestamp"] {
			t.Errorf("csv with quote: %v %.500s", err, b)
		}
		// Arrow and Parquet carry the same columns, nullable.
		req["format"] = "arrow"
		_, b, _ = post(t, srv, "/v1/trades/query", req)
		rd, err := ipc.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("arrow with quote: %v", err)
		}
		n := 0
		for rd.Next() {
			rec := rd.RecordBatch()
			bid := rec.Column(rec.Schema().FieldIndices("quote_bid_price")[0]).(*array.Decimal128)
			if got := bid.Value(0).ToString(8); !sameDecimal(got, all.Data[n]["quote_bid_price"].(string)) {
				t.Errorf("arrow: bid %s, json %v", got, all.Data[n]["quote_bid_price"])
			}
			n += int(rec.NumRows())
		}
		if rd.Err() != nil || n != 50 {
			t.Errorf("arrow with quote: %d rows, %v", n, rd.Err())
		}
		req["format"] = "parquet"
		_, b, _ = post(t, srv, "/v1/trades/query", req)
		pf, err := file.NewParquetReader(bytes.NewReader(b))
		if err != nil || pf.NumRows() != 50 || pf.MetaData().Schema.ColumnIndexByName("quote_timestamp") < 0 {
			t.Errorf("parquet with quote: %v", err)
		}
		for _, path := range []string{"/v1/quotes?symbol=BHP&with=quote", "/v1/trades?symbol=BHP&with=quotes"} {
			if status, env, _ := get(t, srv, "GET", path); status != 400 || env.Error.Details["parameter"] != "with" {
				t.Errorf("%s: %d %+v", path, status, env)
			}
		}
	})
}

func sumPrices(trades []rawRow) *big.Rat {
	s := new(big.Rat)
	for _, r := range trades {
		s.Add(s, rat(r.f[2]))
	}
	return s
}
