package query

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// barsLake commits trades in several commits whose times overlap: late
// trades, non-market prints, trades without a sequence; no two trades of
// a symbol share a time and sequence (which would leave open and close to
// chance in any engine). Some are written as the sink writes them
// (lake.WithTransientFiles).
func barsLake(t *testing.T, part lake.SymbolPartition) *Engine {
	dir := t.TempDir()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "c.db"),
		Warehouse: filepath.Join(dir, "w"), SymbolPartition: part})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(l, Options{WorkDir: filepath.Join(dir, "q"), Query: config.Query{PoolSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); l.Close() })
	table, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := record.Trade.Writer(l, lake.WithTransientFiles())
	if err != nil {
		t.Fatal(err)
	}
	gen := synth.New(synth.Config{Seed: 11, Symbols: []string{"AAAUSD", "BBBUSD", "CCCUSD"}, Rate: 5})
	rng := rand.New(rand.NewPCG(8, 9))
	type tk struct {
		sym    string
		ts     md.Timestamp
		seq    int64
		hasSeq bool
	}
	seen := map[tk]bool{}
	var all []md.Trade
	for c := range 3 {
		var batch []md.Trade
		for _, tr := range gen.Trades(nil, 50_000) {
			if rng.IntN(50) == 0 {
				tr.TradeConditions = [][]string{{"ADL"}, {"X", "NA"}, {"X"}, {"INSURANCE_FUND"}}[rng.IntN(4)]
			}
			batch = append(batch, tr)
		}
		for i := range 3_000 {
			src := all
			if len(src) == 0 {
				src = batch
			}
			late := src[rng.IntN(len(src))]
			late.TradeID = fmt.Sprintf("late-%d-%d", c, i)
			late.Timestamp -= md.Timestamp(rng.Int64N(7_200_000_000))
			late.Price += md.Decimal(rng.Int64N(1_000_000))
			if rng.IntN(3) == 0 {
				late.SourceSequence = md.NullInt64{}
			}
			late.MessageID = md.MessageID(record.Trade.Name, late.Symbol, late.TradeID)
			batch = append(batch, late)
		}
		kept := batch[:0]
		for _, tr := range batch {
			k := tk{tr.Symbol, tr.Timestamp, tr.SourceSequence.Int64, tr.SourceSequence.Valid}
			if !seen[k] {
				seen[k] = true
				kept = append(kept, tr)
			}
		}
		w := table
		if c != 1 {
			w = sink
		}
		if _, err := w.Commit(context.Background(), kept, nil); err != nil {
			t.Fatal(err)
		}
		all = append(all, kept...)
	}
	return e
}

func sortMinutes(m []minute) {
	slices.SortFunc(m, func(a, b minute) int {
		if a.symbol != b.symbol {
			return map[bool]int{true: -1, false: 1}[a.symbol < b.symbol]
		}
		if a.exchange != b.exchange {
			return map[bool]int{true: -1, false: 1}[a.exchange < b.exchange]
		}
		return int(a.m - b.m)
	})
}

func sameMinute(a, b minute) bool {
	return a.exchange == b.exchange && a.symbol == b.symbol && a.m == b.m && a.openKey == b.openKey && a.closeKey == b.closeKey &&
		a.open == b.open && a.close == b.close && a.high == b.high && a.low == b.low && a.count == b.count &&
		a.volume == b.volume && a.notional == b.notional
}

// Every data file's minutes computed in Go are DuckDB's (minuteSQL), and a
// cold bar query answers what the DuckDB aggregation gives, with one
// symbol per file and with several, before and after compaction.
func TestMinutesInGoAreDuckDBs(t *testing.T) {
	for _, part := range []string{"identity", "bucket[2]"} {
		t.Run(part, func(t *testing.T) {
			p, err := lake.ParseSymbolPartition(part)
			if err != nil {
				t.Fatal(err)
			}
			e := barsLake(t, p)
			ctx := context.Background()
			check := func() {
				st, err := e.load(ctx, record.Trade.Table.Name)
				if err != nil {
					t.Fatal(err)
				}
				files, err := e.plan(ctx, st, st.tbl.CurrentSnapshot(), "timestamp", Filter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(files) < 3 {
					t.Fatalf("only %d files", len(files))
				}
				paths, err := e.paths(ctx, files)
				if err != nil {
					t.Fatal(err)
				}
				plain := 0
				for _, path := range paths {
					r, err := e.openParquet(path)
					if err != nil {
						t.Fatal(err)
					}
					for rg := range r.NumRowGroups() {
						rgr := r.RowGroup(rg)
						n, col := int(rgr.NumRows()), leafIndex(r, "price")
						fast, ok, err := plainFixed8(rgr, col, n)
						if err != nil {
							t.Fatal(err)
						}
						if !ok {
							continue
						}
						plain++
						cr, _ := r.RowGroup(rg).Column(col)
						vals := make([]parquet.FixedLenByteArray, n)
						if _, got, err := cr.(*file.FixedLenByteArrayColumnChunkReader).ReadBatch(int64(n), vals, nil, nil); err != nil || got != n {
							t.Fatal(got, err)
						}
						for i := range n {
							if want := int64(binary.BigEndian.Uint64(vals[i])); fast[i] != want {
								t.Fatalf("%s row %d: price %d read from the pages, %d decoded", path, i, fast[i], want)
							}
						}
					}
					r.Close()
				}
				if plain == 0 {
					t.Fatal("no row group's prices were read from plain pages")
				}
				for i, path := range paths {
					got, err := e.minutesInGo(ctx, files[i], path, md.NonMarketConditions)
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					want, err := e.minutes(ctx, []string{path}, filterWhere(Filter{ExcludeConditions: md.NonMarketConditions}, `"timestamp"`), false)
					if err != nil {
						t.Fatal(err)
					}
					sortMinutes(got)
					sortMinutes(want)
					if len(got) != len(want) {
						t.Fatalf("%s: %d minutes in Go, %d from DuckDB", path, len(got), len(want))
					}
					for i := range got {
						if !sameMinute(got[i], want[i]) {
							t.Fatalf("%s: minute %d differs:\n Go     %+v\n DuckDB %+v", path, i, got[i], want[i])
						}
					}
				}
				// A cold bar query of each symbol-day against the same days
				// aggregated by DuckDB in one query.
				for _, sym := range []string{"AAAUSD", "BBBUSD", "CCCUSD"} {
					from := md.Timestamp(1_735_689_600_000_000)
					f := Filter{Symbol: sym, From: from, To: from + 86_400_000_000}
					DropMinuteCache(e)
					got, err := e.Bars(ctx, BarQuery{Filter: f, Interval: md.Interval5m})
					if err != nil {
						t.Fatal(err)
					}
					ff := f
					ff.ExcludeConditions = md.NonMarketConditions
					mins, err := e.minutes(ctx, paths, filterWhere(ff, `"timestamp"`), false)
					if err != nil {
						t.Fatal(err)
					}
					aggs, err := mergeBars(mins, BarQuery{Filter: f, Interval: md.Interval5m})
					if err != nil {
						t.Fatal(err)
					}
					want := BarsOf(aggs)
					if len(got) == 0 || len(got) != len(want) {
						t.Fatalf("%s: %d bars, DuckDB %d", sym, len(got), len(want))
					}
					for i := range got {
						if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
							t.Fatalf("%s bar %d:\n cold %v\n DuckDB %v", sym, i, got[i], want[i])
						}
					}
				}
			}
			check()
			if _, err := e.lake.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			check()
		})
	}
}

// A sum read from DuckDB's text takes the same 128 bits back, negative or
// past 64 bits; past 126 bits it is refused, not wrapped.
func TestScaledInt128(t *testing.T) {
	for _, text := range []string{"0", "1", "-1", "0.00000001", "-0.00000001", "184467440737.09551616", "-184467440737.09551621",
		"425352958651173079329.21804222", "-425352958651173079329.21804222"} {
		v, err := scaledInt128(text, 8)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		want, _ := scaledInt(text, 8)
		if v.big().Cmp(want) != 0 {
			t.Errorf("%s: %s, want %s", text, v.big(), want)
		}
	}
	if _, err := scaledInt128("1"+strings.Repeat("0", 38), 8); err == nil {
		t.Error("a sum past 128 bits was taken")
	}
}
