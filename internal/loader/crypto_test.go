package loader_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/testutil"
)

// tradeColumns are the trade columns checked against the source files.
var tradeColumns = []string{"timestamp", "price", "quantity", "side"}

// binanceCapture is what a Binance WebSocket capture holds, read
// independently of the parser: trades by id, quotes by update id, and the
// other frames by event type ("no_stream" for the REST snapshot).
type binanceCapture struct {
	trades  map[string][]string // BINANCE-{t} → tradeColumns
	quotes  map[string]int      // BINANCE-{u}
	skipped map[string]int64
}

func readCapture(t *testing.T, paths ...string) binanceCapture {
	t.Helper()
	c := binanceCapture{trades: map[string][]string{}, quotes: map[string]int{}, skipped: map[string]int64{}}
	for _, p := range paths {
		for _, line := range lines(t, p) {
			_, frame, _ := strings.Cut(line, " ")
			// Keys differ only in case (e/E, t/T, m/M, u/U): each needs its own
			// field, or encoding/json fills one field with both.
			var f struct {
				Stream *string
				Data   struct {
					Event     string      `json:"e"`
					EventTime json.Number `json:"E"`
					TradeID   json.Number `json:"t"`
					TradeTime json.Number `json:"T"`
					Price     string      `json:"p"`
					Qty       string      `json:"q"`
					Maker     bool        `json:"m"`
					BestMatch bool        `json:"M"`
					Update    json.Number `json:"u"`
					First     json.Number `json:"U"`
				}
			}
			if err := json.Unmarshal([]byte(frame), &f); err != nil {
				t.Fatalf("%s: %v: %.100s", p, err, frame)
			}
			switch {
			case f.Stream == nil:
				c.skipped["no_stream"]++
			case strings.HasSuffix(*f.Stream, "@trade"):
				ms, _ := f.Data.TradeTime.Int64()
				side := "BUY"
				if f.Data.Maker { // the buyer made the price: the aggressor sold
					side = "SELL"
				}
				c.trades["BINANCE-"+f.Data.TradeID.String()] = []string{strconv.FormatInt(ms*1000, 10), number(f.Data.Price), number(f.Data.Qty), side}
			case strings.HasSuffix(*f.Stream, "@bookTicker"):
				c.quotes["BINANCE-"+f.Data.Update.String()]++
			default:
				c.skipped[f.Data.Event]++
			}
		}
	}
	return c
}

// TestBinanceCaptureLoadsTradesAndQuotesAndCountsTheRest: the two files of
// one capture give every trade and bookTicker once; depth updates and the
// REST snapshot are counted as skipped, by kind. The same trades in the
// public-data layout are then all duplicates.
func TestBinanceCaptureLoadsTradesAndQuotesAndCountsTheRest(t *testing.T) {
	t.Parallel()
	files := []string{testutil.Data(t, "binance", "ws", "spot_btcusdt_20240808.gz"), testutil.Data(t, "binance", "ws", "spot_btcusdt_20240809.gz")}
	in := readCapture(t, files...)
	if len(in.trades) != 19_904 || in.skipped["no_stream"] != 1 {
		t.Fatalf("the shared capture changed: %d trades, skipped %v", len(in.trades), in.skipped)
	}
	l := laketest.Open(t)
	sum := mustLoad(t, l, loader.Options{Source: "binance-ws:test"}, "binance-ws", files...)
	rows := int64(len(in.trades) + len(in.quotes))
	var skipped int64
	for _, n := range in.skipped {
		skipped += n
	}
	if sum.Read != rows || sum.Written != rows || sum.Rejected != 0 || sum.Duplicates != 0 || sum.Commits != 2 ||
		sum.Skipped != skipped || !maps.Equal(sum.SkippedBy, in.skipped) ||
		sum.Tables[tradesTable] != int64(len(in.trades)) || sum.Tables[quotesTable] != int64(len(in.quotes)) {
		t.Fatalf("summary %+v, want %d trades, %d quotes, skipped %v", sum, len(in.trades), len(in.quotes), in.skipped)
	}
	sameRows(t, "trades", values(t, l, tradesTable, "trade_id", tradeColumns...), in.trades)
	if got := laketest.Keys(t, l, short(quotesTable), "quote_id"); !maps.Equal(got, in.quotes) {
		t.Fatalf("%d quote ids stored, want the %d update ids of the capture", len(got), len(in.quotes))
	}
	if got := bySymbol(t, l, tradesTable); !maps.Equal(got, map[string]int{"BTCUSDT": len(in.trades)}) {
		t.Fatalf("trades by symbol %v", got)
	}

	// The public-data file of the same trades, its symbol from its name.
	vision := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv")
	again := mustLoad(t, l, loader.Options{}, "binance-csv", vision)
	if again.Read != int64(len(in.trades)) || again.Written != 0 || again.Duplicates != again.Read || again.Commits != 0 {
		t.Fatalf("the capture's trades from the public-data file: %+v, want all %d duplicates", again, len(in.trades))
	}
}

// readVision reads a public-data trade file: BINANCE-{id} → tradeColumns;
// times in ms before 2025, µs after.
func readVision(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range lines(t, path) {
		f := strings.Split(line, ",")
		ts, _ := strconv.ParseInt(f[4], 10, 64)
		if len(f[4]) == 13 {
			ts *= 1000
		}
		side := map[string]string{"True": "SELL", "False": "BUY"}[f[5]]
		out["BINANCE-"+f[0]] = []string{strconv.FormatInt(ts, 10), number(f[1]), number(f[2]), side}
	}
	return out
}

// TestBinancePublicDataTakesItsSymbolFromTheFileName: without --symbol
// the data.binance.vision name says the pair; --symbol, in any case,
// overrides it; a name that says nothing is an error naming the file.
func TestBinancePublicDataTakesItsSymbolFromTheFileName(t *testing.T) {
	t.Parallel()
	path := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2025-01-01.first210.csv")
	want := readVision(t, path)
	l := laketest.Open(t)
	sum := mustLoad(t, l, loader.Options{}, "binance-csv", path)
	if sum.Read != 210 || sum.Written != 210 || sum.Tables[tradesTable] != 210 || sum.Rejected != 0 {
		t.Fatalf("summary %+v, want 210 trades", sum)
	}
	if got := bySymbol(t, l, tradesTable); !maps.Equal(got, map[string]int{"BTCUSDT": 210}) {
		t.Fatalf("trades by symbol %v", got)
	}
	sameRows(t, "trades", values(t, l, tradesTable, "trade_id", tradeColumns...), want)

	// Renamed, the file needs --symbol.
	b := readFile(t, path)
	dir := t.TempDir()
	unnamed := filepath.Join(dir, "download.csv")
	writeFile(t, unnamed, b)
	if _, err := loadInto(t, l, loader.Options{}, "binance-csv", unnamed); err == nil ||
		err.Error() != unnamed+": --symbol is required: public-data files do not name their pair" {
		t.Fatalf("a file without a symbol in its name: %v", err)
	}
	// --symbol names the pair of an unnamed file, and wins over the name
	// of a named one: both are the same BTCUSDT trades, stored already.
	other := filepath.Join(dir, "ETHUSDT-trades-2025-01-01.csv")
	writeFile(t, other, b)
	for _, p := range []string{unnamed, other} {
		s := mustLoad(t, l, loader.Options{Symbol: " btcusdt "}, "binance-csv", p)
		if s.Read != 210 || s.Written != 0 || s.Duplicates != 210 {
			t.Fatalf("%s with --symbol btcusdt: %+v, want 210 duplicates", filepath.Base(p), s)
		}
	}
	if got := bySymbol(t, l, tradesTable); !maps.Equal(got, map[string]int{"BTCUSDT": 210}) {
		t.Fatalf("trades by symbol %v", got)
	}
}

// readKraken reads Kraken v2 trade messages: KRAKEN-{trade_id} →
// tradeColumns, numbers as sent.
func readKraken(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range lines(t, path) {
		var msg struct {
			Data []map[string]json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			t.Fatal(err)
		}
		for _, d := range msg.Data {
			var ts, side string
			err1, err2 := json.Unmarshal(d["timestamp"], &ts), json.Unmarshal(d["side"], &side)
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err1 != nil || err2 != nil || err != nil {
				t.Fatalf("%s: %v %v %v", path, err1, err2, err)
			}
			out["KRAKEN-"+string(d["trade_id"])] = []string{strconv.FormatInt(at.UnixMicro(), 10),
				number(string(d["price"])), number(string(d["qty"])), strings.ToUpper(side)}
		}
	}
	return out
}

// TestKrakenMessagesLoadEveryTradeAndSetAsideTheRest: every trade of the
// snapshot and update messages is stored with the exact decimals sent;
// heartbeats and status messages are skipped by channel; malformed and
// mistyped messages are dead-lettered with their reason, a long one cut.
func TestKrakenMessagesLoadEveryTradeAndSetAsideTheRest(t *testing.T) {
	t.Parallel()
	src := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	want := readKraken(t, src)
	if len(want) != 1000 {
		t.Fatalf("the shared Kraken file changed: %d trades", len(want))
	}
	b := readFile(t, src)
	n := len(lines(t, src))
	long := `{"channel":"trade","type":"update","data":[` + strings.Repeat(" ", 5000) + "x"
	extra := []string{
		`{"channel":"heartbeat"}`,
		`{"channel":"status","type":"update","data":[{"version":"2.0.0","system":"online","api_version":"v2","connection_id":12345678901234567890}]}`,
		`{"channel":"trade","type":"update","data":[{"symbol":"BTC/USDT","side":"buy","price":105433.6,`,
		`{"channel":"trade","type":"update","data":[{"symbol":"BTC/USDT","side":"buy","price":1,"qty":1,"ord_type":"limit","trade_id":1,"timestamp":1762795433}]}`,
		long,
	}
	path := filepath.Join(t.TempDir(), "kraken.jsonl")
	writeFile(t, path, append(b, []byte(strings.Join(extra, "\n")+"\n")...))
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	l := laketest.Open(t)
	sum := mustLoad(t, l, loader.Options{DeadLetter: dlq}, "kraken-ws", path)
	if sum.Read != 1000 || sum.Written != 1000 || sum.Tables[tradesTable] != 1000 || sum.Rejected != 3 ||
		sum.Skipped != 2 || !maps.Equal(sum.SkippedBy, map[string]int64{"heartbeat": 1, "status": 1}) {
		t.Fatalf("summary %+v", sum)
	}
	sameRows(t, "trades", values(t, l, tradesTable, "trade_id", tradeColumns...), want)
	if got := bySymbol(t, l, tradesTable); !maps.Equal(got, map[string]int{"BTCUSDT": 1000}) {
		t.Fatalf("trades by symbol %v", got)
	}
	got := deadLetters(t, dlq)
	wantDLQ := []loader.Rejection{
		{File: "kraken.jsonl", Line: int64(n + 3), Reason: "malformed_json", Raw: extra[2]},
		{File: "kraken.jsonl", Line: int64(n + 4), Reason: "wrong_type", Raw: extra[3]},
		{File: "kraken.jsonl", Line: int64(n + 5), Reason: "malformed_json", Raw: long[:4096] + "…"},
	}
	if len(got) != len(wantDLQ) {
		t.Fatalf("dead letters %+v", got)
	}
	for i, r := range got {
		w := wantDLQ[i]
		if r.File != w.File || r.Line != w.Line || r.Reason != w.Reason || r.Raw != w.Raw || r.Error == "" {
			t.Errorf("dead letter %d: %+v, want %+v", i+1, r, w)
		}
	}
}

// TestRepeatedTradesAreStoredOnceAcrossBatches: a capture that repeats
// itself (a reconnect's overlap), gzip-compressed under a plain name, is
// read by its magic bytes; the repeats are dropped whether they fall in
// the batch that holds the original or in later ones.
func TestRepeatedTradesAreStoredOnceAcrossBatches(t *testing.T) {
	t.Parallel()
	src := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	b := readFile(t, src)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(b)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "twice.jsonl")
	writeFile(t, path, gz.Bytes())

	l := laketest.Open(t)
	sum := mustLoad(t, l, batched(300, 0), "kraken-ws", path)
	// Batches of 300: three of the first copy, one of its last 100 and
	// the repeat's first 200, then only repeats, which commit nothing.
	if sum.Read != 2000 || sum.Written != 1000 || sum.Duplicates != 1000 || sum.Commits != 4 {
		t.Fatalf("summary %+v, want 1000 of 2000 written in 4 commits", sum)
	}
	if got := added(t, l, tradesTable); !slices.Equal(got, []int{300, 300, 300, 100}) {
		t.Fatalf("snapshots added %v rows", got)
	}
	sameRows(t, "trades", values(t, l, tradesTable, "trade_id", tradeColumns...), readKraken(t, src))
}
