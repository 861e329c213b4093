// Package rollup keeps the bar tables (record.BarTables) equal to the
// bars of the trades table, as trades commit. The original's gold layer
// merged each run's bars into the stored ones, adding volume and trade
// count, so overlapping runs counted trades twice. Here a bar is never
// added to: every partition (one symbol's day or month of bars) that a
// trades commit could have touched is computed again from the trades, as
// of one trades snapshot, and replaces the partition's old file in one
// commit that records that snapshot. Whatever order commits arrive in,
// however often a run repeats or dies half-way, the table holds the bars
// of the snapshot it names.
package rollup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// Roller brings the bar tables up to the trades table.
type Roller struct {
	lake   *lake.Lake
	engine *query.Engine
	log    *slog.Logger
	now    func() time.Time
	m      *metrics
}

// Options set up a Roller.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock retention is measured by (default time.Now).
	Now func() time.Time
}

// New returns a roller of l's bar tables, reading the trades through e.
func New(l *lake.Lake, e *query.Engine, o Options) *Roller {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Roller{lake: l, engine: e, log: o.Logger, now: o.Now, m: newMetrics(o.Registerer)}
}

// Report is what one roll did to one bar table.
type Report struct {
	Table string `json:"table"`
	// TradesSnapshot is the trades snapshot the table now matches.
	TradesSnapshot int64 `json:"trades_snapshot"`
	Rebuilt        bool  `json:"rebuilt,omitempty"` // computed from every trade, not from a difference
	Partitions     int   `json:"partitions"`        // computed again
	Bars           int   `json:"bars"`              // in the partitions computed again
	Dropped        int   `json:"dropped"`           // files past retention
	Unchanged      bool  `json:"unchanged,omitempty"`
}

// Run rolls every interval until ctx ends. A failed roll is logged and
// counted; the next one tries again.
func (r *Roller) Run(ctx context.Context, every time.Duration) error {
	r.log.Info("bar tables kept", "every", every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		reps, err := r.Roll(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("bar tables: roll failed; the next one tries again", "error", err)
		}
		for _, rep := range reps {
			if !rep.Unchanged {
				r.log.Log(ctx, ops.LevelRoutine, "bar table rolled", "table", rep.Table, "trades_snapshot", rep.TradesSnapshot,
					"partitions", rep.Partitions, "bars", rep.Bars, "dropped", rep.Dropped, "rebuilt", rep.Rebuilt)
			}
		}
	}
}

// Roll brings every bar table to the trades table's current snapshot.
func (r *Roller) Roll(ctx context.Context) ([]Report, error) {
	var reps []Report
	var errs []error
	tr := &tradesDiff{engine: r.engine, by: map[int64]tradesChange{}}
	for _, bt := range record.BarTables {
		start := time.Now()
		rep, err := r.rollTable(ctx, bt, tr)
		result := "success"
		if err != nil {
			result = "failed"
			errs = append(errs, fmt.Errorf("%s: %w", bt.Table.FullName(), err))
		} else {
			reps = append(reps, rep)
			r.m.bars.WithLabelValues(bt.Table.Name).Add(float64(rep.Bars))
			r.m.lastSuccess.WithLabelValues(bt.Table.Name).SetToCurrentTime()
		}
		r.m.runs.WithLabelValues(bt.Table.Name, result).Inc()
		r.m.duration.WithLabelValues(bt.Table.Name).Observe(time.Since(start).Seconds())
	}
	return reps, errors.Join(errs...)
}

// tradesDiff asks the engine what changed in the trades once per trades
// snapshot a bar table names (they usually all name the same), and holds
// one roll's tables to one current snapshot.
type tradesDiff struct {
	engine  *query.Engine
	current int64 // 0: not read yet
	by      map[int64]tradesChange
}

type tradesChange struct {
	changes []query.TradesChange
	all     bool
}

func (d *tradesDiff) since(ctx context.Context, marker int64) (current int64, changes []query.TradesChange, all bool, err error) {
	if c, ok := d.by[marker]; ok {
		return d.current, c.changes, c.all, nil
	}
	current, changes, all, err = d.engine.TradesChanged(ctx, marker, d.current)
	if err != nil {
		return 0, nil, false, err
	}
	d.current = current
	d.by[marker] = tradesChange{changes, all}
	return current, changes, all, nil
}

// part is one partition of a bar table: a symbol's UTC day or month.
type part struct {
	symbol string
	n      int64 // days or months since the epoch
}

func (r *Roller) rollTable(ctx context.Context, bt record.BarTable, tr *tradesDiff) (Report, error) {
	rep := Report{Table: bt.Table.Name}
	base, err := r.lake.Load(ctx, bt.Table.Name)
	if err != nil {
		return rep, err
	}
	marker, _ := query.MarkerOf(base)
	if base.CurrentSnapshot() != nil && marker == 0 {
		marker = -1 // bars of unknown origin: computed again from everything
	}
	current, changes, all, err := tr.since(ctx, max(marker, 0))
	if err != nil {
		return rep, err
	}
	rep.TradesSnapshot, rep.Rebuilt = current, all
	if current == marker {
		rep.Unchanged = true
		return rep, nil
	}
	span := spanOf(bt)
	cutoff := md.TimestampOf(r.now().Add(-bt.Retention))
	due := map[part]bool{}
	for _, c := range changes {
		from := c.From
		if bt.Interval == md.Interval1d {
			from -= 2 * microsPerDay // a trading date starts up to a day before its trades' UTC day
		}
		for n := span.of(max(from, cutoff)); n <= span.of(c.To); n++ {
			if span.end(n) <= cutoff {
				continue // past retention
			}
			for _, s := range c.Symbols {
				due[part{s, n}] = true
			}
		}
	}
	files, err := lake.DataFiles(ctx, base)
	if err != nil {
		return rep, err
	}
	var old []iceberg.DataFile
	for _, f := range files {
		p, ok := partOf(base, f)
		switch {
		case ok && span.end(p.n) <= cutoff:
			old = append(old, f)
			rep.Dropped++
		case !ok || all || due[p]:
			old = append(old, f) // computed again below, or gone with the trades
		}
	}
	keys := make([]part, 0, len(due))
	for p := range due {
		keys = append(keys, p)
	}
	slices.SortFunc(keys, func(a, b part) int {
		if a.symbol != b.symbol {
			return strings.Compare(a.symbol, b.symbol)
		}
		return cmp.Compare(a.n, b.n)
	})
	rp, err := r.lake.NewReplacement(ctx, bt.Table.Name, base)
	if err != nil {
		return rep, err
	}
	schema := lake.ArrowSchema(base.Schema())
	for _, p := range keys {
		bars, err := r.barsOf(ctx, bt, span, p, current)
		if err == nil && len(bars) > 0 {
			var rec arrow.RecordBatch
			if rec, err = barRecord(schema, bars); err == nil {
				err = rp.Write(ctx, rec)
				rec.Release()
			}
		}
		if err != nil {
			rp.Abort()
			return rep, err
		}
		rep.Partitions++
		rep.Bars += len(bars)
	}
	props := iceberg.Properties{record.TradesSnapshotProperty: strconv.FormatInt(current, 10),
		record.BarsFromProperty: strconv.FormatInt(span.start(span.of(cutoff)+1), 10)}
	if _, err := rp.Commit(ctx, old, props); err != nil {
		return rep, err
	}
	return rep, nil
}

// barsOf computes a partition's bars from the trades of snapshot snap.
func (r *Roller) barsOf(ctx context.Context, bt record.BarTable, span span, p part, snap int64) ([]md.Bar, error) {
	from, to := md.Timestamp(span.start(p.n)), md.Timestamp(span.end(p.n))
	q := query.BarQuery{
		Filter:     query.Filter{Symbol: p.symbol, From: from, To: to},
		Interval:   bt.Interval,
		AsOf:       query.AsOf{SnapshotID: snap},
		TradesOnly: true,
	}
	if bt.Interval == md.Interval1d {
		q.To += 2 * microsPerDay // the last dates of the month end after it
	}
	aggs, err := r.engine.Aggregates(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []md.Bar
	for _, a := range aggs {
		// A 1d window starting before the month belongs to the month before.
		if a.WindowStart >= from && a.WindowStart < to && !a.Partial {
			out = append(out, a.Bar)
		}
	}
	return out, nil
}

const microsPerDay = 86_400_000_000

// span is a bar table's time partition: UTC days or months.
type span struct{ months bool }

func spanOf(bt record.BarTable) span {
	_, months := bt.Table.TimeTransform.(iceberg.MonthTransform)
	return span{months: months}
}

// of is the partition holding t.
func (s span) of(t md.Timestamp) int64 {
	if !s.months {
		return floorDiv(int64(t), microsPerDay)
	}
	u := t.Time()
	return int64(u.Year()-1970)*12 + int64(u.Month()) - 1
}

func (s span) start(n int64) int64 {
	if !s.months {
		return n * microsPerDay
	}
	return time.Date(1970, time.Month(n+1), 1, 0, 0, 0, 0, time.UTC).UnixMicro()
}

func (s span) end(n int64) md.Timestamp { return md.Timestamp(s.start(n + 1)) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// partOf reads a bar file's partition from its partition values.
func partOf(tbl *table.Table, f iceberg.DataFile) (part, bool) {
	var p part
	var hasN, hasSym bool
	spec := tbl.Spec()
	for _, pf := range spec.Fields() {
		v, ok := f.Partition()[pf.FieldID]
		if !ok {
			continue
		}
		switch pf.Transform.(type) {
		case iceberg.DayTransform, iceberg.MonthTransform:
			switch n := v.(type) {
			case iceberg.Date:
				p.n, hasN = int64(n), true
			case int32:
				p.n, hasN = int64(n), true
			case int64:
				p.n, hasN = n, true
			}
		case iceberg.IdentityTransform:
			p.symbol, hasSym = v.(string)
		}
	}
	return p, hasN && hasSym
}

// barRecord is one partition's bars as a record batch in the table's sort
// order (window start, then exchange).
func barRecord(schema *arrow.Schema, bars []md.Bar) (arrow.RecordBatch, error) {
	slices.SortFunc(bars, func(a, b md.Bar) int {
		if a.WindowStart != b.WindowStart {
			return cmp.Compare(a.WindowStart, b.WindowStart)
		}
		return strings.Compare(a.Exchange, b.Exchange)
	})
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	text := func(i int, v string) { b.Field(i).(*array.StringBuilder).Append(v) }
	ts := func(i int, v md.Timestamp) { b.Field(i).(*array.TimestampBuilder).Append(arrow.Timestamp(v)) }
	dec := func(i int, v md.Decimal) { b.Field(i).(*array.Decimal128Builder).Append(decimal128.FromI64(v.Units())) }
	for _, bar := range bars {
		text(0, bar.Symbol)
		text(1, bar.Exchange)
		ts(2, bar.WindowStart)
		ts(3, bar.WindowEnd)
		dec(4, bar.Open)
		dec(5, bar.High)
		dec(6, bar.Low)
		dec(7, bar.Close)
		vol := bar.Volume.Units
		if vol == nil {
			vol = new(big.Int)
		}
		if vol.CmpAbs(maxVolume) > 0 {
			return nil, fmt.Errorf("%s %s at %s: volume %s does not fit decimal(38, 8)", bar.Exchange, bar.Symbol, bar.WindowStart, bar.Volume)
		}
		b.Field(8).(*array.Decimal128Builder).Append(decimal128.FromBigInt(vol))
		b.Field(9).(*array.Int64Builder).Append(bar.TradeCount)
		dec(10, bar.VWAP)
	}
	return b.NewRecordBatch(), nil
}

// maxVolume is the largest volume decimal(38, 8) holds, in units.
var maxVolume = new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil), big.NewInt(1))
