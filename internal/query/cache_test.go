package query

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// commitMinutes commits ten trades of BTCUSDT, one a second from
// 2025-01-01 plus from seconds.
func commitMinutes(t *testing.T, l *lake.Lake, from int64) {
	t.Helper()
	w, _ := record.Trade.Writer(l)
	base := md.Timestamp(1_735_689_600_000_000)
	var rows []md.Trade
	for i := from; i < from+10; i++ {
		id := fmt.Sprintf("BINANCE-%d", i)
		rows = append(rows, md.Trade{
			MessageID: md.MessageID("trade", "BTCUSDT", id), TradeID: id, Symbol: "BTCUSDT", Exchange: "BINANCE",
			AssetClass: md.Crypto, Timestamp: base + md.Timestamp(i*1_000_000), Price: md.MustDecimal("1"),
			Quantity: md.MustDecimal("1"), Currency: "USDT", Side: md.Buy, TradeConditions: []string{},
			SourceSequence: md.SomeInt64(i), IngestionTimestamp: base,
		})
	}
	if _, err := w.Commit(context.Background(), rows, nil); err != nil {
		t.Fatal(err)
	}
}

// A bar query reads a data file's minutes once: the first query misses
// the cache, the next hits it; minutes warmed ahead count as neither.
func TestBarMinuteCacheCountsHitsAndMisses(t *testing.T) {
	reg := ops.NewRegistry()
	e := testEngine(t, Options{Registerer: reg})
	ctx := context.Background()
	count := func(family string) float64 { return ops.Sum(reg, family, "cache_tier", "bar_minutes") }
	commitMinutes(t, e.lake, 0)
	q := BarQuery{Filter: Filter{Symbol: "BTCUSDT"}, Interval: md.Interval1m}
	for i := range 2 {
		if bars, err := e.Bars(ctx, q); err != nil || len(bars) != 1 {
			t.Fatalf("bars: %v %v", bars, err)
		}
		if h, m := count("k2_query_cache_hits_total"), count("k2_query_cache_misses_total"); h != float64(i) || m != 1 {
			t.Fatalf("after query %d: %v hits, %v misses; want %d and 1", i+1, h, m, i)
		}
	}
	commitMinutes(t, e.lake, 100)
	if err := e.WarmBars(ctx); err != nil {
		t.Fatal(err)
	}
	if m := count("k2_query_cache_misses_total"); m != 1 {
		t.Fatalf("warming counted as %v misses", m-1)
	}
	if _, err := e.Bars(ctx, q); err != nil {
		t.Fatal(err)
	}
	if h, m := count("k2_query_cache_hits_total"), count("k2_query_cache_misses_total"); h != 3 || m != 1 {
		t.Fatalf("after warming: %v hits, %v misses; want 3 and 1", h, m)
	}
}

// With the warehouse on S3, queries copy each data file once: the first
// lookup misses the local file cache, every later one hits it.
func TestDataFileCacheCountsHitsAndMisses(t *testing.T) {
	s3 := testsvc.S3(t)
	dir := t.TempDir()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog: filepath.Join(dir, "c.db"), Warehouse: testsvc.NewS3Prefix(t),
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	reg := ops.NewRegistry()
	e, err := New(l, Options{WorkDir: filepath.Join(dir, "q"), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	commitMinutes(t, l, 0)
	count := func(family string) float64 { return ops.Sum(reg, family, "cache_tier", "data_files") }
	// A read may look a file up more than once (it reads in rounds): the
	// first copies it, every later lookup is a hit.
	hits := -1.0
	for i := range 2 {
		trades, err := e.Trades(context.Background(), RecordQuery{Filter: Filter{Symbol: "BTCUSDT"}})
		if err != nil || len(trades) != 10 {
			t.Fatalf("trades: %d %v", len(trades), err)
		}
		h, m := count("k2_query_cache_hits_total"), count("k2_query_cache_misses_total")
		if m != 1 || h <= hits {
			t.Fatalf("after read %d: %v hits (%v before), %v misses; want more hits and 1 miss", i+1, h, hits, m)
		}
		hits = h
	}
}
