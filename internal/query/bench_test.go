package query_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// benchRows is the table size of the query benchmarks (K2_BENCH_ROWS,
// default 1,000,000): synthetic trades of 20 symbols at 20 trades/s, so a
// symbol-day holds ~86,000 trades for the busiest symbols.
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("K2_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var (
	benchOnce   sync.Once
	benchEngine *query.Engine
	benchSyms   []query.SymbolInfo
	benchErr    error
)

func benchLake(b testing.TB) (*query.Engine, []query.SymbolInfo) {
	benchOnce.Do(func() {
		ctx := context.Background()
		// K2_BENCH_LAKE reuses a lake kept by k2 bench lake --keep (its
		// catalog.db and warehouse) instead of building one.
		if dir := os.Getenv("K2_BENCH_LAKE"); dir != "" {
			l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
			if err == nil {
				benchEngine, err = query.New(l, query.Options{WorkDir: b.TempDir(), Query: config.Query{PoolSize: 2}})
			}
			if err == nil {
				benchSyms, err = benchEngine.Symbols(ctx, "", query.AsOf{})
			}
			benchErr = err
			return
		}
		dir, err := os.MkdirTemp("", "k2-query-bench-")
		if err != nil {
			benchErr = err
			return
		}
		l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
		if err != nil {
			benchErr = err
			return
		}
		w, _ := record.Trade.Writer(l)
		gen := synth.New(synth.Config{Seed: 1, Rate: 20})
		var rows []md.Trade
		for done := 0; done < benchRows(); done += len(rows) {
			rows = gen.Trades(rows[:0], min(500_000, benchRows()-done))
			if _, err := w.Commit(ctx, rows, nil); err != nil {
				benchErr = err
				return
			}
		}
		benchEngine, benchErr = query.New(l, query.Options{WorkDir: filepath.Join(dir, "q"), Query: config.Query{PoolSize: 2}})
		if benchErr == nil {
			benchSyms, benchErr = benchEngine.Symbols(ctx, "", query.AsOf{})
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchEngine, benchSyms
}

// BenchmarkLatest100 asks for the newest 100 trades of a symbol, cycling
// through the symbols.
func BenchmarkLatest100(b *testing.B) {
	e, syms := benchLake(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		s := syms[i%len(syms)].Symbol
		i++
		rows, err := e.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: s}, Limit: 100, Desc: true})
		if err != nil || len(rows) != 100 {
			b.Fatalf("%s: %d rows, %v", s, len(rows), err)
		}
	}
}

// BenchmarkBars1mSymbolDay computes the 1-minute bars of one symbol over
// its first UTC day.
func BenchmarkBars1mSymbolDay(b *testing.B) {
	e, syms := benchLake(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		s := syms[i%len(syms)]
		i++
		from := md.TimestampOf(s.First.Time().Truncate(86400e9))
		bars, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: s.Symbol, From: from, To: from + 86_400_000_000}, Interval: md.Interval1m})
		if err != nil || len(bars) == 0 {
			b.Fatal(fmt.Sprint(len(bars), err))
		}
	}
}

// BenchmarkBars1mSymbolDayCold is BenchmarkBars1mSymbolDay with the
// minute cache emptied before every query: the first bar query of a day.
func BenchmarkBars1mSymbolDayCold(b *testing.B) {
	e, syms := benchLake(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		s := syms[i%len(syms)]
		i++
		query.DropMinuteCache(e)
		from := md.TimestampOf(s.Last.Time().Truncate(86400e9)) - md.Timestamp(86_400_000_000*(i%3))
		bars, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: s.Symbol, From: from, To: from + 86_400_000_000}, Interval: md.Interval1m})
		if err != nil {
			b.Fatal(err)
		}
		_ = bars
	}
}

// BenchmarkBars1mBusiestDayCold is the cold bar query of the busiest
// symbol's second day: the most trades a symbol-day holds.
func BenchmarkBars1mBusiestDayCold(b *testing.B) {
	e, syms := benchLake(b)
	ctx := context.Background()
	busiest := syms[0]
	for _, s := range syms {
		if s.Trades > busiest.Trades {
			busiest = s
		}
	}
	from := md.TimestampOf(busiest.First.Time().Truncate(86400e9)) + 86_400_000_000
	for b.Loop() {
		query.DropMinuteCache(e)
		bars, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: busiest.Symbol, From: from, To: from + 86_400_000_000}, Interval: md.Interval1m})
		if err != nil || len(bars) == 0 {
			b.Fatal(len(bars), err)
		}
	}
}
