package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// oddSymbols are symbols no path may hold as they are: accents, a percent
// sign that looks like an escape, slashes and dot-dot that look like
// directories, a space, quotes, a backslash, and a 200-byte name (escaped
// byte by byte, 600 bytes: longer than a file name may be).
var oddSymbols = []string{"ÉTHUSDT", "ETH%20USDT", "../../ETHUSDT", "BTC/USD", "BRK B", "..", `O'NEIL"S`, `A\B`, strings.Repeat("Ж", 100)}

// Symbols that need escaping in a partition path are stored and read like
// any other, filtered or not, on every lake flavour.
func oddSymbolsScenario(t *testing.T, tl *testLake, pyiceberg []string) {
	ctx := context.Background()
	w, err := record.Trade.Writer(tl.lake)
	if err != nil {
		t.Fatal(err)
	}
	var rows []md.Trade
	for s, sym := range oddSymbols {
		for i := range 5 {
			id := fmt.Sprintf("BINANCE-%d", s*100+i)
			rows = append(rows, md.Trade{
				MessageID: md.MessageID("trade", sym, id), TradeID: id, Symbol: sym, Exchange: "BINANCE",
				AssetClass: md.Crypto, Timestamp: md.Timestamp(1_735_689_600_000_000 + int64(s*100+i)*1_000_000),
				Price: md.MustDecimal("100.5"), Quantity: md.MustDecimal("0.25"), Currency: "USDT", Side: md.Buy,
				TradeConditions: []string{}, SourceSequence: md.SomeInt64(int64(i)), IngestionTimestamp: 1_735_689_700_000_000,
			})
		}
	}
	if _, err := w.Commit(ctx, rows, nil); err != nil {
		t.Fatal(err)
	}
	all, err := tl.engine.Trades(ctx, query.RecordQuery{Limit: 1000})
	if err != nil || len(all) != len(rows) {
		t.Fatalf("unfiltered: %d trades, %v; want %d", len(all), err, len(rows))
	}
	for _, sym := range oddSymbols {
		got, err := tl.engine.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: sym}, Limit: 1000})
		if err != nil || len(got) != 5 {
			t.Errorf("%q: %d trades, %v; want 5", sym, len(got), err)
			continue
		}
		if got[0].Symbol != sym || got[0].MessageID != md.MessageID("trade", sym, got[0].TradeID) {
			t.Errorf("%q: read back %+v", sym, got[0])
		}
		iv, _ := md.ParseInterval("1m")
		if bars, err := tl.engine.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: sym}, Interval: iv}); err != nil || len(bars) == 0 {
			t.Errorf("%q: bars %v %v", sym, bars, err)
		}
	}
	syms, err := tl.engine.Symbols(ctx, "", query.AsOf{})
	if err != nil || len(syms) != len(oddSymbols) {
		t.Fatalf("symbols %+v %v", syms, err)
	}
	// Compaction rewrites the files under the same escaped paths.
	if _, err := tl.lake.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, rows[:1], nil); err != nil { // a second file to compact with
		t.Fatal(err)
	}
	if _, err := tl.lake.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if all, err := tl.engine.Trades(ctx, query.RecordQuery{Limit: 1000}); err != nil || len(all) != len(rows)+1 {
		t.Fatalf("after compaction: %d trades, %v", len(all), err)
	}
	if pyiceberg == nil {
		return
	}
	// Another engine finds every file: a location another reader takes
	// literally is the path the file is at.
	out := testsvc.RunPyIceberg(t, append(pyiceberg, "--table", "market_data.trades")...)
	got := out["tables"].(map[string]any)["market_data.trades"].(map[string]any)
	if n, _ := got["rows"].(json.Number).Int64(); n != int64(len(rows)+1) {
		t.Errorf("PyIceberg reads %d trades, want %d", n, len(rows)+1)
	}
	lo, hi := slices.Min(oddSymbols), slices.Max(oddSymbols)
	if mm := got["min_max"].(map[string]any)["symbol"].([]any); mm[0] != lo || mm[1] != hi {
		t.Errorf("PyIceberg reads symbols from %q to %q, want %q to %q", mm[0], mm[1], lo, hi)
	}
}

// Every data file of the table lies under its data directory, one
// directory per partition field, each name short and made of characters
// no engine escapes.
func checkDataPaths(t *testing.T, warehouse string) {
	t.Helper()
	data := filepath.Join(warehouse, "market_data", "trades", "data")
	n := 0
	err := filepath.WalkDir(warehouse, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		n++
		rel, err := filepath.Rel(data, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("data file %s is outside %s", path, data)
			return nil
		}
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || !strings.HasPrefix(parts[0], "timestamp_day=") || !strings.HasPrefix(parts[1], "symbol=") {
			t.Errorf("data file %s is not at timestamp_day=…/symbol=…/file", rel)
		}
		for _, p := range parts {
			if len(p) > 100 || strings.IndexFunc(p, func(r rune) bool {
				return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._=", r))
			}) >= 0 {
				t.Errorf("path segment %q of %s", p, rel)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walking %s: %d files, %v", warehouse, n, err)
	}
}

func TestOddSymbolsEmbedded(t *testing.T) {
	tl := newTestLake(t, lake.Options{})
	warehouse := filepath.Join(tl.dir, "warehouse")
	oddSymbolsScenario(t, tl, []string{"--catalog-uri", "sqlite:///" + filepath.Join(tl.dir, "catalog.db"), "--warehouse", warehouse})
	checkDataPaths(t, warehouse)
}

// A warehouse whose own path needs escaping works for K2 (iceberg-go
// escapes every location it derives from it; engines that read locations
// literally do not find them, and K2 warns of that at start).
func TestOddSymbolsInAWarehouseNeedingEscapes(t *testing.T) {
	oddSymbolsScenario(t, newTestLake(t, lake.Options{Warehouse: filepath.Join(t.TempDir(), "ware house %41 ü")}), nil)
}

func TestOddSymbolsPostgresS3(t *testing.T) {
	s3 := testsvc.S3(t)
	catalog, warehouse := testsvc.FreshPostgresDB(t), testsvc.NewS3Prefix(t)
	tl := newTestLake(t, lake.Options{Catalog: catalog, Warehouse: warehouse,
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey}})
	oddSymbolsScenario(t, tl, append([]string{"--catalog-uri", catalog, "--warehouse", warehouse}, s3.PyIcebergArgs()...))
}
