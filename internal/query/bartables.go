package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go/table"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Bar tables (record.BarTables) hold the bars of whole windows, computed
// from one trades snapshot (internal/rollup). A bar query is answered from
// them when nothing the answer depends on differs: the trades snapshot
// the query reads either is the one the table was computed from, or
// differs from it only in files that cannot hold the query's symbols and
// times; the range lies within the table's retention; and every window
// lies wholly inside the range (a partial window needs the trades).

// dayPad widens a time range by the longest a trading date can reach past
// the UTC day its trades fall in.
const dayPad = md.Timestamp(2 * 86_400_000_000)

// MarkerOf is the trades snapshot the bar table's current snapshot was
// computed from (0: none known) and the oldest window it keeps. Only the
// rollup's commits record them; maintenance commits that change no bar
// (compaction, manifest rewrites) keep what their parent had.
func MarkerOf(tbl *table.Table) (trades int64, from md.Timestamp) {
	for s := tbl.CurrentSnapshot(); s != nil; {
		if s.Summary != nil {
			if v, ok := s.Summary.Properties[record.TradesSnapshotProperty]; ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				f, _ := strconv.ParseInt(s.Summary.Properties[record.BarsFromProperty], 10, 64)
				return n, md.Timestamp(f)
			}
		}
		if s.ParentSnapshotID == nil {
			return 0, 0
		}
		s = tbl.SnapshotByID(*s.ParentSnapshotID)
	}
	return 0, 0
}

// servableFromTable reports whether q asks only for what a bar table
// holds (its stream tail apart), given the oldest window it keeps.
func servableFromTable(q BarQuery, from md.Timestamp) bool {
	return !q.TradesOnly && !q.TWAP && !q.IncludeNonMarket && len(q.ExcludeConditions) == 0 && len(q.Bounds) == 0 &&
		q.From != 0 && q.From >= from
}

// noDirt says nothing the bar table is behind on touches a query.
const noDirt = md.Timestamp(math.MaxInt64)

// fromBarTable answers q from its interval's bar table, or says it cannot
// (ok false): the caller then computes the bars from the trades. An
// intraday query is split: the whole windows the table holds come from
// it; the window the range starts inside, the one it ends inside, and
// every window from the earliest trade the table has not seen (a later
// commit's file, the stream's tail) come from the trades.
func (e *Engine) fromBarTable(ctx context.Context, q BarQuery, trades *tableState, tradesSnap *table.Snapshot) (bars []Aggregate, ok bool, err error) {
	bt, has := record.BarTableOf(q.Interval)
	if !has || tradesSnap == nil || !servableFromTable(q, math.MinInt64) {
		return nil, false, nil
	}
	st, err := e.load(ctx, bt.Table.Name)
	if err != nil {
		return nil, false, nil // a lake without bar tables
	}
	snap := st.tbl.CurrentSnapshot()
	marker, kept := MarkerOf(st.tbl)
	if marker == 0 || !servableFromTable(q, kept) {
		return nil, false, nil
	}
	daily := q.Interval == md.Interval1d
	pad := md.Timestamp(0)
	if daily {
		pad = dayPad
	}
	f := q.Filter
	f.From, f.To = q.From-pad, 0
	if q.To != 0 {
		f.To = q.To + pad
	}
	dirty := noDirt
	if marker != tradesSnap.SnapshotID {
		old := trades.tbl.SnapshotByID(marker)
		if old == nil {
			return nil, false, nil
		}
		changed, err := e.filesDiff(ctx, trades, old, tradesSnap)
		if err != nil {
			return nil, false, err
		}
		for i := range changed {
			if c := &changed[i]; c.mayHold(f) {
				if !c.hasTime {
					return nil, false, nil
				}
				dirty = min(dirty, c.minT)
			}
		}
	}
	for i := range q.Extra {
		if t := &q.Extra[i]; f.holds(t.Symbol, t.Exchange, t.Timestamp) {
			dirty = min(dirty, t.Timestamp)
		}
	}
	if daily {
		// Trading dates follow each exchange's zone: all or nothing.
		if dirty != noDirt {
			return nil, false, nil
		}
		bars, partial, err := e.readBarTable(ctx, st, snap, q, q.From, q.To, pad)
		if err != nil || partial {
			return nil, false, err
		}
		return limitBars(bars, q), true, nil
	}
	width := md.Timestamp(q.Interval.Duration() / time.Microsecond)
	from := ceilTo(q.From, width)
	to := q.To // 0: open
	if to != 0 {
		to = floorTo(to, width)
	}
	if dirty != noDirt && (to == 0 || floorTo(dirty, width) < to) {
		to = floorTo(dirty, width)
	}
	if to != 0 && to <= from {
		return nil, false, nil
	}
	bars, _, err = e.readBarTable(ctx, st, snap, q, from, to, 0)
	if err != nil {
		return nil, false, err
	}
	// The edges, from the trades of the same snapshot and the same tail.
	edge := func(a, b md.Timestamp) error {
		eq := q
		eq.From, eq.To, eq.TradesOnly, eq.Limit = a, b, true, 0
		aggs, err := e.Aggregates(ctx, eq)
		bars = append(bars, aggs...)
		return err
	}
	if q.From < from {
		if err := edge(q.From, from); err != nil {
			return nil, false, err
		}
	}
	if to != 0 && (q.To == 0 || to < q.To) {
		if err := edge(to, q.To); err != nil {
			return nil, false, err
		}
	}
	return limitBars(bars, q), true, nil
}

func ceilTo(t, w md.Timestamp) md.Timestamp  { return -floorTo(-t, w) }
func floorTo(t, w md.Timestamp) md.Timestamp { return t - ((t%w)+w)%w }

// limitBars orders bars as q asks and keeps its limit.
func limitBars(bars []Aggregate, q BarQuery) []Aggregate {
	sortBars(bars, q.Desc)
	if q.Limit > 0 && len(bars) > q.Limit {
		bars = bars[:q.Limit]
	}
	return bars
}

// readBarTable reads the bars of q's symbols whose windows overlap
// [from, to) (to 0: open), looking pad further back for windows that
// start before from. Partial says a window reaches outside the range.
func (e *Engine) readBarTable(ctx context.Context, st *tableState, snap *table.Snapshot, q BarQuery, from, to, pad md.Timestamp) (bars []Aggregate, partial bool, err error) {
	f := q.Filter
	f.From, f.To = from-pad, to
	files, err := e.plan(ctx, st, snap, "window_start", f)
	if err != nil || len(files) == 0 {
		return nil, false, err
	}
	paths, err := e.paths(ctx, files)
	if err != nil {
		return nil, false, err
	}
	return e.readBarFiles(ctx, paths, q, from, to)
}

// filesDiff lists the files in one snapshot of a table and not the other,
// either way: what a reader of one sees differently from the other.
func (e *Engine) filesDiff(ctx context.Context, st *tableState, a, b *table.Snapshot) ([]dataFile, error) {
	fa, err := e.snapshotFiles(ctx, st, a, "timestamp")
	if err != nil {
		return nil, err
	}
	fb, err := e.snapshotFiles(ctx, st, b, "timestamp")
	if err != nil {
		return nil, err
	}
	in := func(files []dataFile) map[string]struct{} {
		m := make(map[string]struct{}, len(files))
		for _, f := range files {
			m[f.location] = struct{}{}
		}
		return m
	}
	ina, inb := in(fa), in(fb)
	var out []dataFile
	for _, f := range fa {
		if _, ok := inb[f.location]; !ok {
			out = append(out, f)
		}
	}
	for _, f := range fb {
		if _, ok := ina[f.location]; !ok {
			out = append(out, f)
		}
	}
	return out, nil
}

// TradesChange is a part of the trades table that differs between two
// snapshots: symbols whose trades between From and To (inclusive) may
// have changed.
type TradesChange struct {
	Symbols  []string
	From, To md.Timestamp
}

// TradesChanged says what differs in the trades table between snapshot
// since and snapshot until (0: the current one), whose id it returns (0:
// the table has none). All is set when since is 0 or no longer known:
// then the changes cover every file of until.
func (e *Engine) TradesChanged(ctx context.Context, since, until int64) (current int64, changes []TradesChange, all bool, err error) {
	st, err := e.loadFor(ctx, record.Trade.Table.Name, AsOf{SnapshotID: until})
	if err != nil {
		return 0, nil, false, err
	}
	cur := st.tbl.CurrentSnapshot()
	if until != 0 {
		if cur = st.tbl.SnapshotByID(until); cur == nil {
			return 0, nil, false, fmt.Errorf("%s has no snapshot %d", record.Trade.Table.FullName(), until)
		}
	}
	if cur == nil {
		return 0, nil, since != 0, nil
	}
	var files []dataFile
	old := st.tbl.SnapshotByID(since)
	if since == 0 || old == nil {
		all = true
		files, err = e.snapshotFiles(ctx, st, cur, "timestamp")
	} else {
		files, err = e.filesDiff(ctx, st, old, cur)
	}
	if err != nil {
		return 0, nil, false, err
	}
	for i := range files {
		f := &files[i]
		c := TradesChange{From: f.minT, To: f.maxT}
		if !f.hasTime {
			c.From, c.To = md.Timestamp(minTime), md.Timestamp(maxTime)
		}
		switch {
		case f.hasPartSym:
			c.Symbols = []string{f.partSym}
		case f.hasSym && f.symLo == f.symHi:
			c.Symbols = []string{f.symLo}
		default:
			if c.Symbols, err = e.fileSymbols(ctx, *f); err != nil {
				if all {
					return 0, nil, false, err
				}
				// A file removed since, and gone: start again from everything.
				return e.TradesChanged(ctx, 0, until)
			}
		}
		changes = append(changes, c)
	}
	return cur.SnapshotID, changes, all, nil
}

// The widest times a trade may have: the changes of a file without time
// bounds cover them all.
const (
	minTime = -(1 << 62)
	maxTime = 1 << 62
)

// fileSymbols reads the symbols a data file holds.
func (e *Engine) fileSymbols(ctx context.Context, f dataFile) ([]string, error) {
	paths, err := e.paths(ctx, []dataFile{f})
	if err != nil {
		return nil, err
	}
	var out []string
	err = e.run(ctx, "SELECT DISTINCT symbol FROM "+readParquet(paths), nil, func(rows *sql.Rows) error {
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("the symbols of %s: %w", strings.TrimPrefix(f.location, "file://"), err)
	}
	return out, nil
}

// StoredBars reads every bar a bar table's current snapshot holds, with
// the table as read (its MarkerOf names the trades snapshot they were
// computed from): k2 lake bars --verify.
func (e *Engine) StoredBars(ctx context.Context, bt record.BarTable) ([]md.Bar, *table.Table, error) {
	st, err := e.load(ctx, bt.Table.Name)
	if err != nil {
		return nil, nil, err
	}
	aggs, _, err := e.readBarTable(ctx, st, st.tbl.CurrentSnapshot(), BarQuery{Interval: bt.Interval}, minTime, 0, 0)
	if errors.Is(err, errNoFastPath) {
		err = fmt.Errorf("%s has files of other column types than K2 writes", bt.Table.FullName())
	}
	return BarsOf(aggs), st.tbl, err
}

// readBarFiles reads bar files in Go: they are small, and DuckDB's cost
// per query would be most of the answer's. A file of other column types
// (another engine's rewrite) returns errNoFastPath, and the bars are
// computed from the trades.
func (e *Engine) readBarFiles(ctx context.Context, paths []string, q BarQuery, from, to md.Timestamp) (bars []Aggregate, partial bool, err error) {
	who := Filter{Symbol: q.Symbol, Exchange: q.Exchange, Symbols: q.Symbols, Exchanges: q.Exchanges}
	for _, path := range paths {
		r, err := e.openParquet(path)
		if err != nil {
			return nil, false, err
		}
		fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
		if err != nil {
			r.Close()
			return nil, false, err
		}
		tbl, err := fr.ReadTable(ctx)
		r.Close()
		if err != nil {
			return nil, false, err
		}
		err = func() error {
			defer tbl.Release()
			rdr := array.NewTableReader(tbl, 1<<16)
			defer rdr.Release()
			for rdr.Next() {
				rec := rdr.RecordBatch()
				col := func(name string) arrow.Array {
					if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
						return rec.Column(idx[0])
					}
					return nil
				}
				sym, _ := col("symbol").(*array.String)
				ex, _ := col("exchange").(*array.String)
				count, _ := col("trade_count").(*array.Int64)
				vol, _ := col("volume").(*array.Decimal128)
				if sym == nil || ex == nil || count == nil || vol == nil || vol.DataType().(*arrow.Decimal128Type).Scale != 8 {
					return errNoFastPath
				}
				for i := range int(rec.NumRows()) {
					if !who.holds(sym.Value(i), ex.Value(i), 0) {
						continue
					}
					a := Aggregate{Bar: md.Bar{Symbol: sym.Value(i), Exchange: ex.Value(i), Interval: q.Interval, TradeCount: count.Value(i),
						Volume: md.WideDecimal{Units: vol.Value(i).BigInt()}}}
					var err error
					if a.WindowStart, err = timeAt(col("window_start"), i); err != nil {
						return err
					}
					if a.WindowEnd, err = timeAt(col("window_end"), i); err != nil {
						return err
					}
					if a.WindowEnd <= from || to != 0 && a.WindowStart >= to {
						continue
					}
					if a.WindowStart < from || to != 0 && a.WindowEnd > to {
						partial = true
						return nil
					}
					for _, d := range []struct {
						name string
						to   *md.Decimal
					}{{"open", &a.Open}, {"high", &a.High}, {"low", &a.Low}, {"close", &a.Close}, {"vwap", &a.VWAP}} {
						if *d.to, err = decimalAt(col(d.name), i); err != nil {
							return err
						}
					}
					bars = append(bars, a)
				}
			}
			return rdr.Err()
		}()
		if err != nil || partial {
			return nil, partial, err
		}
	}
	return bars, false, nil
}
