package query_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/loader"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// csvDay is an independent reading of one trading day of an ASX trade
// file: it shares no code with the loader, parses prices with big.Rat and
// converts times with the fixed AEDT offset those dates had.
type csvDay struct {
	count                  int64
	first, last            time.Time
	open, high, low, close *big.Rat
	volume, notional       *big.Rat
}

var aedt = time.FixedZone("AEDT", 11*3600)

func readASXTradesCSV(t *testing.T, path string) (map[string]*csvDay, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	days := map[string]*csvDay{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(strings.TrimRight(sc.Text(), "\r"), ",")
		ts, err := time.ParseInLocation("01/02/2006 15:04:05.000", cols[0]+" "+cols[1], aedt)
		if err != nil {
			t.Fatal(err)
		}
		price, _ := new(big.Rat).SetString(cols[2])
		qty, _ := new(big.Rat).SetString(cols[3])
		date := ts.Format(time.DateOnly)
		d := days[date]
		if d == nil {
			d = &csvDay{first: ts, open: price, high: price, low: price, volume: new(big.Rat), notional: new(big.Rat)}
			days[date] = d
			order = append(order, date)
		}
		d.count++
		if ts.Before(d.first) {
			t.Fatalf("file not in time order at %s", ts)
		}
		d.last, d.close = ts, price
		if price.Cmp(d.high) > 0 {
			d.high = price
		}
		if price.Cmp(d.low) < 0 {
			d.low = price
		}
		d.volume.Add(d.volume, qty)
		d.notional.Add(d.notional, new(big.Rat).Mul(price, qty))
	}
	return days, order
}

// readASXTradesFiltered is readASXTradesCSV leaving out rows whose
// qualifier code is in skip.
func readASXTradesFiltered(t *testing.T, path string, skip map[string]bool) map[string]*csvDay {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if cols := strings.Split(line, ","); len(cols) > 4 && !skip[cols[4]] {
			kept = append(kept, line)
		}
	}
	out := filepath.Join(dir, "filtered.csv")
	os.WriteFile(out, []byte(strings.Join(kept, "\n")), 0o644)
	days, _ := readASXTradesCSV(t, out)
	return days
}

// emptySides counts quote rows whose bid or ask price is zero (Date, Time,
// BidPrice, AskPrice, BidVolume, AskVolume).
func emptySides(t *testing.T, path string) (bids, asks int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		cols := strings.Split(strings.TrimRight(line, "\r"), ",")
		if r, _ := new(big.Rat).SetString(cols[2]); r.Sign() == 0 {
			bids++
		}
		if r, _ := new(big.Rat).SetString(cols[3]); r.Sign() == 0 {
			asks++
		}
	}
	return bids, asks
}

// countASXTrades counts the file's trades in [from, to).
func countASXTrades(t *testing.T, path string, from, to md.Timestamp) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		cols := strings.Split(strings.TrimRight(line, "\r"), ",")
		ts, err := time.ParseInLocation("01/02/2006 15:04:05.000", cols[0]+" "+cols[1], aedt)
		if err != nil {
			t.Fatal(err)
		}
		if v := md.TimestampOf(ts); v >= from && v < to {
			n++
		}
	}
	return n
}

// roundHalfUp8 formats r rounded half away from zero to 8 decimals without
// trailing zeros, independently of marketdata.RoundRat.
func roundHalfUp8(r *big.Rat) string {
	scaled := new(big.Rat).Mul(r, big.NewRat(100_000_000, 1))
	scaled.Add(scaled, big.NewRat(1, 2))
	q := new(big.Int).Quo(scaled.Num(), scaled.Denom())
	s := fmt.Sprintf("%09s", q.String())
	s = s[:len(s)-8] + "." + s[len(s)-8:]
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func ratText(r *big.Rat) string { return roundHalfUp8(r) }

type testLake struct {
	lake   *lake.Lake
	engine *query.Engine
	dir    string
}

func newTestLake(t *testing.T, opts lake.Options) *testLake {
	t.Helper()
	dir := t.TempDir()
	if opts.Catalog == "" {
		opts.Catalog = filepath.Join(dir, "catalog.db")
	}
	if opts.Warehouse == "" {
		opts.Warehouse = filepath.Join(dir, "warehouse")
	}
	opts.Tables = record.Tables()
	l, err := lake.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := query.New(l, query.Options{WorkDir: filepath.Join(dir, "query"), Query: config.Query{PoolSize: 3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); l.Close() })
	return &testLake{lake: l, engine: e, dir: dir}
}

// format is one of the file formats k2 load reads.
func format(t *testing.T, name string) *feed.Format {
	for _, f := range exchanges.Formats() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no format %s", name)
	return nil
}

func (tl *testLake) load(t *testing.T, source string, run func(*loader.Loader) error) loader.Summary {
	t.Helper()
	ld, err := loader.New(tl.lake, loader.Options{Source: source, DeadLetter: filepath.Join(tl.dir, "dead-letter.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	runErr := run(ld)
	sum, err := ld.Finish(context.Background())
	if runErr != nil {
		t.Fatal(runErr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// asxScenario is the real-data acceptance run: it holds on every lake
// flavour (embedded SQLite + folder, PostgreSQL + S3).
func asxScenario(t *testing.T, tl *testLake) {
	ctx := context.Background()
	dir := testutil.Data(t, "asx")
	csvPath := testutil.Data(t, "asx", "trades", "7078.csv")
	days, order := readASXTradesCSV(t, csvPath)

	// A first load (the Binance public-data file) makes a snapshot the ASX
	// load must not be visible in.
	vision := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv")
	first := tl.load(t, "binance-csv", func(ld *loader.Loader) error { return ld.Load(ctx, format(t, "binance-csv"), vision) })
	if first.Written != 19_904 {
		t.Fatalf("Binance file wrote %d trades, want 19,904", first.Written)
	}
	sum := tl.load(t, "asx", func(ld *loader.Loader) error { return ld.Load(ctx, format(t, "asx"), dir) })
	wantTrades := int64(91_631 + 232 + 11)
	wantQuotes := int64(77_849 + 549 + 60)
	if sum.Rejected != 0 || sum.Tables["market_data.trades"] != wantTrades || sum.Tables["market_data.quotes"] != wantQuotes ||
		sum.Tables["market_data.reference_data"] != 4 {
		t.Fatalf("ASX load summary %+v", sum)
	}

	// All 91,631 BHP trades, and per-day counts as in the file.
	bars, err := tl.engine.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: "BHP", Exchange: "ASX"}, Interval: md.Interval1d})
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != len(order) {
		t.Fatalf("%d daily bars, want %d", len(bars), len(order))
	}
	var total int64
	for i, b := range bars {
		d := days[order[i]]
		total += b.TradeCount
		start := b.WindowStart.Time().In(aedt)
		if start.Format(time.DateOnly) != order[i] || start.Hour() != 0 || b.WindowEnd-b.WindowStart != 86_400_000_000 {
			t.Errorf("bar %d window %s–%s, want Sydney day %s", i, b.WindowStart, b.WindowEnd, order[i])
		}
		got := []string{fmt.Sprint(b.TradeCount), b.Open.String(), b.High.String(), b.Low.String(), b.Close.String(), b.Volume.String(), b.VWAP.String()}
		want := []string{fmt.Sprint(d.count), ratText(d.open), ratText(d.high), ratText(d.low), ratText(d.close), ratText(d.volume),
			roundHalfUp8(new(big.Rat).Quo(d.notional, d.volume))}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: count open high low close volume vwap = %v, want %v", order[i], got, want)
		}
	}
	if total != 91_631 {
		t.Fatalf("BHP trades in the lake: %d, want 91,631", total)
	}

	// The same daily bars leaving out trades with condition codes 25 and 26,
	// and intraday bars over a range that does not start on a whole minute:
	// both are computed from the trades rather than the minute cache.
	filtered := readASXTradesFiltered(t, csvPath, map[string]bool{"25": true, "26": true})
	excl, err := tl.engine.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: "BHP", ExcludeConditions: []string{"25", "26"}}, Interval: md.Interval1d})
	if err != nil || len(excl) != len(order) {
		t.Fatalf("bars without conditions 25, 26: %d bars, %v", len(excl), err)
	}
	for i, b := range excl {
		d := filtered[order[i]]
		if b.TradeCount != d.count || b.VWAP.String() != roundHalfUp8(new(big.Rat).Quo(d.notional, d.volume)) || b.Open.String() != ratText(d.open) {
			t.Errorf("%s without 25/26: count %d vwap %s open %s, want %d %s %s", order[i], b.TradeCount, b.VWAP, b.Open,
				d.count, roundHalfUp8(new(big.Rat).Quo(d.notional, d.volume)), ratText(d.open))
		}
	}
	from := md.TimestampOf(time.Date(2014, 3, 10, 10, 0, 30, 0, aedt))
	to := md.TimestampOf(time.Date(2014, 3, 10, 16, 0, 0, 0, aedt))
	hours, err := tl.engine.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: "BHP", From: from, To: to}, Interval: md.Interval1h})
	if err != nil || len(hours) != 6 {
		t.Fatalf("hourly bars 10:00:30–16:00: %d bars, %v", len(hours), err)
	}
	var inRange int64
	for _, h := range hours {
		inRange += h.TradeCount
	}
	if want := countASXTrades(t, csvPath, from, to); inRange != want {
		t.Fatalf("hourly bars from 10:00:30 hold %d trades, the file %d", inRange, want)
	}

	// First and last trade of each day at the right UTC instant.
	asx, _ := md.LookupExchange("ASX")
	for _, date := range order {
		day, _ := time.ParseInLocation(time.DateOnly, date, asx.Location())
		f := query.Filter{Symbol: "BHP", From: md.TimestampOf(day), To: md.TimestampOf(day.AddDate(0, 0, 1))}
		firstTrade, err := tl.engine.Trades(ctx, query.RecordQuery{Filter: f, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		lastTrade, err := tl.engine.Trades(ctx, query.RecordQuery{Filter: f, Limit: 1, Desc: true})
		if err != nil {
			t.Fatal(err)
		}
		wantFirst := md.TimestampOf(days[date].first).String()
		wantLast := md.TimestampOf(days[date].last).String()
		if len(firstTrade) != 1 || len(lastTrade) != 1 || firstTrade[0].Timestamp.String() != wantFirst || lastTrade[0].Timestamp.String() != wantLast {
			t.Fatalf("%s: first/last = %v / %v, want %s / %s", date, firstTrade, lastTrade, wantFirst, wantLast)
		}
	}

	// The daily summary is the 1d bar of the local trading date.
	s, err := tl.engine.Summary(ctx, "BHP", "", "2014-03-11", query.AsOf{})
	if err != nil || s == nil || s.TradeCount != days["2014-03-11"].count {
		t.Fatalf("summary 2014-03-11 = %+v, %v", s, err)
	}

	// Quotes: the real column order, empty sides null.
	quotes, err := tl.engine.Quotes(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BHP"}, Limit: 1})
	if err != nil || len(quotes) != 1 {
		t.Fatalf("quotes: %v %v", quotes, err)
	}
	q := quotes[0]
	if q.BidPrice.String() != "37.7" || q.BidQuantity.String() != "300" || q.AskPrice.Valid || q.AskQuantity.Valid ||
		q.Timestamp.String() != "2014-03-09T18:43:45.676000Z" {
		t.Fatalf("first BHP quote = %+v, want bid 37.7×300, no ask, at 05:43:45.676 Sydney", q)
	}

	all, err := tl.engine.Quotes(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BHP"}, Limit: 100_000})
	if err != nil || len(all) != 77_849 {
		t.Fatalf("BHP quotes: %d, %v", len(all), err)
	}
	var nullBids, nullAsks int
	for _, q := range all {
		if !q.BidPrice.Valid {
			nullBids++
		}
		if !q.AskPrice.Valid {
			nullAsks++
		}
	}
	wantBids, wantAsks := emptySides(t, testutil.Data(t, "asx", "quotes", "7078.csv"))
	if nullBids != wantBids || nullAsks != wantAsks {
		t.Fatalf("null bid/ask sides %d/%d, the file has %d/%d empty ones", nullBids, nullAsks, wantBids, wantAsks)
	}

	// A second load adds nothing.
	snaps, _ := tl.engine.Snapshots(ctx, record.Trade.Table.Name)
	again := tl.load(t, "asx", func(ld *loader.Loader) error { return ld.Load(ctx, format(t, "asx"), dir) })
	if again.Written != 0 || again.Duplicates != wantTrades+wantQuotes+4 || again.Commits != 0 {
		t.Fatalf("second load: %+v", again)
	}
	snaps2, _ := tl.engine.Snapshots(ctx, record.Trade.Table.Name)
	if len(snaps2) != len(snaps) {
		t.Fatalf("second load made snapshots: %d → %d", len(snaps), len(snaps2))
	}

	// Time travel: as of the first snapshot only the first load is visible.
	firstSnap := snaps[len(snaps)-1]
	stats, err := tl.engine.Stats(ctx, query.AsOf{SnapshotID: firstSnap.SnapshotID})
	if err != nil || stats[0].Rows != 19_904 {
		t.Fatalf("as of the first snapshot: %+v %v", stats, err)
	}
	old, err := tl.engine.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BHP"}, AsOf: query.AsOf{SnapshotID: firstSnap.SnapshotID}})
	if err != nil || len(old) != 0 {
		t.Fatalf("BHP visible before it was loaded: %d rows, %v", len(old), err)
	}
	byTime, err := tl.engine.Symbols(ctx, "", query.AsOf{Time: firstSnap.Timestamp})
	if err != nil || len(byTime) != 1 || byTime[0].Symbol != "BTCUSDT" || byTime[0].Trades != 19_904 {
		t.Fatalf("symbols as of %s: %+v %v", firstSnap.Timestamp, byTime, err)
	}
	cur, _ := tl.engine.Stats(ctx, query.AsOf{})
	if cur[0].Rows != 19_904+wantTrades || cur[1].Rows != wantQuotes || cur[2].Rows != 4 {
		t.Fatalf("current stats %+v", cur)
	}
}

func TestASXRealDataEmbedded(t *testing.T) {
	tl := newTestLake(t, lake.Options{})
	asxScenario(t, tl)
	t.Run("pyiceberg", func(t *testing.T) {
		checkWithPyIceberg(t, []string{"--catalog-uri", "sqlite:///" + filepath.Join(tl.dir, "catalog.db"), "--warehouse", filepath.Join(tl.dir, "warehouse")})
	})
}

func TestASXRealDataPostgresS3(t *testing.T) {
	s3 := testsvc.S3(t)
	catalog := testsvc.FreshPostgresDB(t)
	warehouse := testsvc.NewS3Prefix(t)
	tl := newTestLake(t, lake.Options{
		Catalog: catalog, Warehouse: warehouse,
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey},
	})
	asxScenario(t, tl)
	t.Run("pyiceberg", func(t *testing.T) {
		checkWithPyIceberg(t, append([]string{"--catalog-uri", catalog, "--warehouse", warehouse}, s3.PyIcebergArgs()...))
	})
}

// sourceSums are exact sums over the input files of the scenario, read
// independently of the loaders.
type sourceSums struct {
	tradePrice, tradeQty, bidPrice, askQty *big.Rat
}

func sumSources(t *testing.T) sourceSums {
	s := sourceSums{new(big.Rat), new(big.Rat), new(big.Rat), new(big.Rat)}
	add := func(dst *big.Rat, text string) {
		v, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("not a number: %q", text)
		}
		dst.Add(dst, v)
	}
	eachRow := func(path string, fn func([]string)) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fn(strings.Split(strings.TrimRight(sc.Text(), "\r"), ","))
		}
	}
	eachRow(testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv"), func(c []string) {
		add(s.tradePrice, c[1])
		add(s.tradeQty, c[2])
	})
	for _, id := range []string{"7078", "7181", "3153"} {
		eachRow(testutil.Data(t, "asx", "trades", id+".csv"), func(c []string) {
			add(s.tradePrice, c[2])
			add(s.tradeQty, c[3])
		})
		eachRow(testutil.Data(t, "asx", "quotes", id+".csv"), func(c []string) {
			add(s.bidPrice, c[2]) // empty sides are 0.0: they add nothing
			add(s.askQty, c[5])
		})
	}
	return s
}

// checkWithPyIceberg opens the tables with PyIceberg through the same SQL
// catalog and compares row counts, schemas and exact decimal sums.
func checkWithPyIceberg(t *testing.T, args []string) {
	out := testsvc.RunPyIceberg(t, append(args, "--table", "market_data.trades", "--table", "market_data.quotes", "--table", "market_data.reference_data")...)
	tables := out["tables"].(map[string]any)
	sums := sumSources(t)
	want := map[string]struct {
		rows int64
		def  lake.TableDef
		sums map[string]*big.Rat
	}{
		"market_data.trades":         {19_904 + 91_874, record.Trade.Table, map[string]*big.Rat{"price": sums.tradePrice, "quantity": sums.tradeQty}},
		"market_data.quotes":         {78_458, record.Quote.Table, map[string]*big.Rat{"bid_price": sums.bidPrice, "ask_quantity": sums.askQty}},
		"market_data.reference_data": {4, record.Reference.Table, nil},
	}
	for name, w := range want {
		got, ok := tables[name].(map[string]any)
		if !ok {
			t.Fatalf("PyIceberg did not read %s: %v", name, tables)
		}
		if rows, _ := got["rows"].(json.Number).Int64(); rows != w.rows {
			t.Errorf("%s: PyIceberg reads %d rows, want %d", name, rows, w.rows)
		}
		schema := got["schema"].([]any)
		fields := w.def.Schema.Fields()
		if len(schema) != len(fields) {
			t.Fatalf("%s: PyIceberg sees %d columns, want %d", name, len(schema), len(fields))
		}
		for i, f := range fields {
			col := schema[i].(map[string]any)
			if col["name"] != f.Name || col["required"] != f.Required || col["doc"] != f.Doc || col["type"] != f.Type.String() {
				t.Errorf("%s column %d: PyIceberg sees %v, K2 declared %s %s required=%v %q", name, i, col, f.Name, f.Type, f.Required, f.Doc)
			}
		}
		for col, sum := range w.sums {
			gotSum := got["decimal_sums"].(map[string]any)[col]
			if gotSum != strings.TrimRight(strings.TrimRight(sum.FloatString(8), "0"), ".") {
				t.Errorf("%s.%s: PyIceberg sums %v, the source files sum %s", name, col, gotSum, sum.FloatString(8))
			}
		}
	}
}

// binanceCaptureScenario loads the two-file WebSocket capture: every trade
// id once and contiguous, every bookTicker a quote.
func binanceCaptureScenario(t *testing.T, tl *testLake) {
	ctx := context.Background()
	var sum loader.Summary
	for _, f := range []string{"spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"} {
		s := tl.load(t, "binance-ws", func(ld *loader.Loader) error {
			return ld.Load(ctx, format(t, "binance-ws"), testutil.Data(t, "binance", "ws", f))
		})
		sum.Written += s.Written
		sum.Rejected += s.Rejected
	}
	if sum.Rejected != 0 || sum.Written != 19_904+73_174 {
		t.Fatalf("capture load wrote %d rows with %d rejected, want 93,078 and 0", sum.Written, sum.Rejected)
	}
	trades, err := tl.engine.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BTCUSDT", Exchange: "BINANCE"}, Limit: 20_000, Desc: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(trades) != 19_904 {
		t.Fatalf("%d BTCUSDT trades, want 19,904", len(trades))
	}
	// Newest first: ids descend one by one from 3735703162.
	for i, tr := range trades {
		if want := fmt.Sprintf("BINANCE-%d", 3735703162-i); tr.TradeID != want || tr.SourceSequence.Int64 != int64(3735703162-i) {
			t.Fatalf("trade %d is %s, want %s: ids not contiguous", i, tr.TradeID, want)
		}
	}
	stats, err := tl.engine.Stats(ctx, query.AsOf{})
	if err != nil || stats[1].Rows != 73_174 {
		t.Fatalf("quotes %+v %v, want 73,174", stats, err)
	}
	q, err := tl.engine.Quotes(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BTCUSDT"}, Limit: 1, Desc: false})
	if err != nil || len(q) != 1 || q[0].QuoteID != "BINANCE-50093239212" || q[0].BidPrice.String() != "61837.63" || q[0].AskQuantity.String() != "1.54698" {
		t.Fatalf("first quote %+v %v", q, err)
	}
}

func TestBinanceCaptureEmbedded(t *testing.T) {
	binanceCaptureScenario(t, newTestLake(t, lake.Options{}))
}

func TestBinanceCapturePostgresS3(t *testing.T) {
	s3 := testsvc.S3(t)
	binanceCaptureScenario(t, newTestLake(t, lake.Options{
		Catalog: testsvc.FreshPostgresDB(t), Warehouse: testsvc.NewS3Prefix(t),
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey},
	}))
}
