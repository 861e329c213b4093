package rollup

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// start is the first trade's time: three days before a month ends, so
// the trades cross UTC days and a month.
var start = md.TimestampOf(time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC))

type fixture struct {
	dir    string
	lake   *lake.Lake
	engine *query.Engine
	roller *Roller
	writer *lake.Writer[md.Trade]
	gen    *synth.Generator
	rng    *rand.Rand
	now    time.Time
	reg    *prometheus.Registry
	all    []md.Trade
	n      int
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	l := laketest.OpenIn(t, dir)
	reg := prometheus.NewRegistry()
	e, err := query.New(l, query.Options{WorkDir: filepath.Join(dir, "q"), Query: config.Query{PoolSize: 2}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, lake: l, engine: e, writer: w, reg: reg, now: start.Time().Add(10 * 24 * time.Hour),
		gen: synth.New(synth.Config{Seed: 5, Symbols: []string{"AAAUSD", "BBBUSD"}, Rate: 0.5, Start: start}),
		rng: rand.New(rand.NewPCG(1, 2))}
	f.roller = New(l, e, Options{Now: func() time.Time { return f.now }})
	return f
}

// commit stores n new trades and some late ones (hours back, some in
// the day or month before), some non-market prints among them.
func (f *fixture) commit(t *testing.T, n int) {
	var batch []md.Trade
	for _, tr := range f.gen.Trades(nil, n) {
		if f.rng.IntN(40) == 0 {
			tr.TradeConditions = []string{"ADL"}
		}
		batch = append(batch, tr)
	}
	for range n / 20 {
		src := batch
		if len(f.all) > 0 && f.rng.IntN(2) == 0 {
			src = f.all
		}
		late := src[f.rng.IntN(len(src))]
		f.n++
		late.TradeID = fmt.Sprintf("late-%d", f.n)
		late.Timestamp -= md.Timestamp(f.rng.Int64N(30 * 3_600_000_000))
		late.Price += md.Decimal(f.rng.Int64N(1_000_000))
		late.SourceSequence = md.NullInt64{}
		batch = append(batch, late)
	}
	if _, err := f.writer.Commit(context.Background(), batch, nil); err != nil {
		t.Fatal(err)
	}
	f.all = append(f.all, batch...)
}

func (f *fixture) roll(t *testing.T) []Report {
	reps, err := f.roller.Roll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return reps
}

// fromTrades computes a table's bars from the trades of the current
// snapshot, within the table's retention.
func (f *fixture) fromTrades(t *testing.T, bt record.BarTable) []md.Bar {
	var out []md.Bar
	for _, s := range []string{"AAAUSD", "BBBUSD"} {
		aggs, err := f.engine.Aggregates(context.Background(), query.BarQuery{
			Filter:   query.Filter{Symbol: s, From: md.TimestampOf(start.Time().Add(-72 * time.Hour).Truncate(24 * time.Hour)), To: start + 30*microsPerDay},
			Interval: bt.Interval, TradesOnly: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		cutoff := md.TimestampOf(f.now.Add(-bt.Retention))
		for _, a := range aggs {
			if spanOf(bt).end(spanOf(bt).of(a.WindowStart)) > cutoff {
				out = append(out, a.Bar)
			}
		}
	}
	sortBars(out)
	return out
}

// asTrades asks the engine for q's bars and fails unless they are the
// bars computed from the trades alone, which it returns.
func (f *fixture) asTrades(t *testing.T, q query.BarQuery) []query.Aggregate {
	t.Helper()
	got, err := f.engine.Aggregates(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	q.TradesOnly = true
	want, err := f.engine.Aggregates(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := sameBars(query.BarsOf(got), query.BarsOf(want)); !ok {
		t.Fatalf("%s %v: the engine's bars differ at %d (of %d, %d)\n%+v\nfrom the trades:\n%+v", q.Interval, q.Filter, i, len(got), len(want), got, want)
	}
	return want
}

// stored reads a bar table's rows, in sortBars' order.
func (f *fixture) stored(t *testing.T, bt record.BarTable) []md.Bar {
	t.Helper()
	bars, _, err := f.engine.StoredBars(context.Background(), bt)
	if err != nil {
		t.Fatal(err)
	}
	sortBars(bars)
	return bars
}

// sameBars finds the first difference of two lists of bars (-1: their
// lengths differ).
func sameBars(a, b []md.Bar) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if !sameBar(a[i], b[i]) {
			return i, false
		}
	}
	return 0, true
}

// check compares every bar table with the bars of the trades, and
// Verify agrees.
func (f *fixture) check(t *testing.T, when string) {
	t.Helper()
	if err := f.roller.Verify(context.Background()); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	for _, bt := range record.BarTables {
		got, want := f.stored(t, bt), f.fromTrades(t, bt)
		if len(want) == 0 {
			t.Fatalf("%s: no bars from the trades", when)
		}
		if i, ok := sameBars(got, want); !ok {
			if i < 0 {
				t.Fatalf("%s: %s holds %d bars, the trades make %d", when, bt.Table.Name, len(got), len(want))
			}
			t.Fatalf("%s: %s bar %d is %+v, the trades make %+v", when, bt.Table.Name, i, got[i], want[i])
		}
	}
}

// The bar tables hold exactly the bars of the trades, however commits
// and rolls interleave: late trades in earlier days and the month
// before, rolls repeated, commits between rolls, trades compacted.
func TestBarTablesAreTheTradesBars(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.commit(t, 40_000)
	reps := f.roll(t)
	if !reps[0].Rebuilt || reps[0].Bars == 0 {
		t.Fatalf("first roll: %+v", reps[0])
	}
	f.check(t, "after the first roll")
	if reps := f.roll(t); !reps[0].Unchanged {
		t.Fatalf("a roll with no new trades changed %+v", reps[0])
	}
	f.check(t, "after a repeated roll")

	f.commit(t, 40_000)
	f.commit(t, 40_000)
	reps = f.roll(t)
	if reps[0].Rebuilt || reps[0].Partitions == 0 {
		t.Fatalf("roll after two commits: %+v", reps[0])
	}
	f.check(t, "after two commits and one roll")

	if _, err := f.lake.Compact(ctx, record.Trade.Table.Name, lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	f.commit(t, 10_000)
	f.roll(t)
	f.check(t, "after compaction and a commit")

	// Queries of whole windows read the bar table and answer as the trades do.
	fromTable := func() float64 {
		return counter(t, f.reg, "k2_query_bars_source_total", "table")
	}
	before := fromTable()
	for _, bt := range record.BarTables {
		q := query.BarQuery{Filter: query.Filter{Symbol: "AAAUSD", From: start + 3*3_600_000_000, To: start + 27*3_600_000_000}, Interval: bt.Interval}
		if bt.Interval == md.Interval1d {
			q.From, q.To = start+3*3_600_000_000, start+51*3_600_000_000 // local midnights of a UTC exchange
		}
		if want := f.asTrades(t, q); len(want) == 0 {
			t.Fatalf("%s: no bars in %v", bt.Interval, q.Filter)
		}
	}
	if n := fromTable() - before; n != float64(len(record.BarTables)) {
		t.Errorf("%v of %d bar queries were answered from the bar tables", n, len(record.BarTables))
	}

	// Ranges that cut windows, a commit the tables have not seen and the
	// stream's tail: the whole windows before the first unseen trade come
	// from the table, the rest from the trades, and the answer is theirs.
	committed := f.gen.Trades(nil, 2_000)
	if _, err := f.writer.Commit(ctx, committed, nil); err != nil {
		t.Fatal(err)
	}
	tail := f.gen.Trades(nil, 100)
	before = fromTable()
	for _, bt := range record.BarTables[:4] {
		q := query.BarQuery{Filter: query.Filter{Symbol: "AAAUSD", From: start + 3*3_600_000_000 + 17_500_123,
			To: tail[len(tail)-1].Timestamp + 1_234_567}, Interval: bt.Interval, Extra: tail, Desc: true, Limit: 5_000}
		if want := f.asTrades(t, q); !want[0].Partial || !want[len(want)-1].Partial {
			t.Fatalf("%s: the range cuts no window: %+v … %+v", bt.Interval, want[0], want[len(want)-1])
		}
	}
	if n := fromTable() - before; n != 4 {
		t.Errorf("%v of 4 cut, partly unseen intraday queries used the bar tables", n)
	}

	// Past retention, partitions go: 1m bars keep 90 days, by UTC day.
	f.now = start.Time().Add(92 * 24 * time.Hour)
	f.commit(t, 100)
	reps = f.roll(t)
	if reps[0].Dropped == 0 {
		t.Errorf("no 1m partition dropped 92 days on: %+v", reps[0])
	}
	cutoff := md.TimestampOf(f.now.Add(-90 * 24 * time.Hour))
	for _, b := range f.stored(t, record.BarTables[0]) {
		if b.WindowStart < cutoff-microsPerDay {
			t.Fatalf("a 1m bar of %s is kept 92 days on", b.WindowStart)
		}
	}
	f.check(t, "after retention")
}

// counter reads a counter of a registry by name and label value.
func counter(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == name && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, value)
	return 0
}

// Another engine reads the bar tables: PyIceberg through the same SQL
// catalog sees every bar, its declared columns and the same exact sums.
func TestBarTablesReadByPyIceberg(t *testing.T) {
	f := newFixture(t)
	f.commit(t, 20_000)
	f.roll(t)
	args := []string{"--catalog-uri", "sqlite:///" + filepath.Join(f.dir, "catalog.db"), "--warehouse", filepath.Join(f.dir, "warehouse")}
	for _, bt := range record.BarTables {
		args = append(args, "--table", bt.Table.FullName())
	}
	out := testsvc.RunPyIceberg(t, args...)
	tables, _ := out["tables"].(map[string]any)
	for _, bt := range record.BarTables {
		got, _ := tables[bt.Table.FullName()].(map[string]any)
		bars := f.stored(t, bt)
		volume, count := new(big.Int), int64(0)
		for _, b := range bars {
			volume.Add(volume, b.Volume.Units)
			count += b.TradeCount
		}
		if n := fmt.Sprint(got["rows"]); n != fmt.Sprint(len(bars)) || len(bars) == 0 {
			t.Errorf("%s: PyIceberg reads %s rows, K2 holds %d", bt.Table.Name, n, len(bars))
		}
		sums, _ := got["decimal_sums"].(map[string]any)
		if v := fmt.Sprint(sums["volume"]); v != (md.WideDecimal{Units: volume}).String() {
			t.Errorf("%s: PyIceberg sums volume %s, K2 %s", bt.Table.Name, v, md.WideDecimal{Units: volume})
		}
		schema, _ := got["schema"].([]any)
		if len(schema) != len(bt.Table.Schema.Fields()) {
			t.Errorf("%s: PyIceberg sees %d columns, K2 declared %d", bt.Table.Name, len(schema), len(bt.Table.Schema.Fields()))
		}
	}
}
