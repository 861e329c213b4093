package query_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// oddSymbols are symbols whose partition path must be escaped: an accent,
// a percent sign that looks like an escape, a slash and a space.
var oddSymbols = []string{"ÉTHUSDT", "ETH%20USDT", "BTC/USD", "BRK B"}

// Symbols that need escaping in a partition path are stored and read like
// any other, filtered or not, on every lake flavour.
func oddSymbolsScenario(t *testing.T, tl *testLake) {
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
}

func TestOddSymbolsEmbedded(t *testing.T) {
	// A warehouse whose path needs escaping too.
	oddSymbolsScenario(t, newTestLake(t, lake.Options{Warehouse: filepath.Join(t.TempDir(), "ware house %41")}))
}

func TestOddSymbolsPostgresS3(t *testing.T) {
	s3 := testsvc.S3(t)
	oddSymbolsScenario(t, newTestLake(t, lake.Options{Catalog: testsvc.FreshPostgresDB(t), Warehouse: testsvc.NewS3Prefix(t),
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey}}))
}
