package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/tail"
)

// latestRows is how many of a series' newest records the latest cache
// keeps: the recent route's default limit.
const latestRows = 1000

// latest keeps each series' (a symbol's, or a symbol's on one exchange)
// newest records, as the lake's head snapshot and the stream after it
// hold them, so the most asked question, a symbol's latest trades, is
// answered from memory as kdb+'s real-time database answers it, never
// waiting for DuckDB nor decoding the stream again. A series is read from
// the lake once; after that each read takes from the tail only what
// arrived since the previous one. That stays exact while every commit to
// the table is the stream's (Head.Extends): the lake then only gains what
// the series already took from the tail. Anything else, a load or a tail
// that lost records the series has not taken, reads the lake again.
type latest struct {
	engine   *query.Engine
	tail     *tail.Tail
	maxBytes int64

	mu     sync.Mutex
	series map[latestKey]*latestSeries
	bytes  int64
	// reads count how each read found its series: read from the lake,
	// or kept up from the stream.
	reads *prometheus.CounterVec
}

type latestKey struct{ table, symbol, exchange string }

type latestSeries struct {
	mu sync.Mutex // one reader at a time brings it up to date
	// ref is the lake snapshot the series was read at or has since been
	// carried to; pos is where in the stream its records end.
	ref *query.SnapshotRef
	pos lake.Offsets
	// recent and rows are the newest records, newest first: the ones that
	// arrived lately (at most foldRows, nil when none) before the rest;
	// all says they are every record of the series.
	recent arrow.RecordBatch
	rows   arrow.RecordBatch
	all    bool
	size   int64
	used   atomic.Int64 // unix nanoseconds of the last read, for eviction
}

func newLatest(e *query.Engine, t *tail.Tail, maxBytes int64, reg prometheus.Registerer) *latest {
	reads := ops.NewMetrics(reg).CounterVec("k2_api_latest_reads_total",
		"Reads of a symbol's latest records from memory, by where the records came from: lake (the series was read "+
			"from the lake), stream (kept up from the stream since).", "source")
	reads.WithLabelValues("lake")
	reads.WithLabelValues("stream")
	return &latest{engine: e, tail: t, maxBytes: maxBytes, series: map[latestKey]*latestSeries{}, reads: reads}
}

// serves reports whether a read is the latest n records of one series,
// as the lake stands now and the stream after it: the reads the cache
// answers.
func (l *latest) serves(def *lake.TableDef, req *recordRequest, n int) bool {
	q := &req.q
	return l != nil && def.Time != "" && req.fresh && q.Desc && n <= latestRows && req.batch == 0 &&
		q.Symbol != "" && len(q.Symbols) == 0 && len(q.Exchanges) == 0 && q.To == 0 &&
		len(q.Bounds) == 0 && len(q.ExcludeConditions) == 0 && q.After == nil && q.AsOf == (query.AsOf{})
}

// latestPage is a read answered from memory: the lake's records at
// Snapshot and the stream's after it, merged.
type latestPage struct {
	*query.Page
	rest       []arrow.RecordBatch // the page's further rows, after Rows
	incomplete bool                // the tail lost records the lake does not have yet
}

// page answers the first n rows of such a read (newest first, from q.From
// on); nil when the cache cannot say (the table is empty, or more than
// the cache holds would be needed).
func (l *latest) page(ctx context.Context, k record.Any, q query.RecordQuery, n int) (*latestPage, error) {
	def := &k.Describe().Table
	head, err := l.engine.Head(ctx, def.Name)
	if err != nil || head.SnapshotRef == nil {
		return nil, err
	}
	key := latestKey{def.Name, q.Symbol, q.Exchange}
	ser := l.get(key)
	ser.mu.Lock()
	incomplete, err := l.update(ctx, k, key, ser, head)
	if err != nil {
		ser.mu.Unlock()
		return nil, err
	}
	all, ref := ser.all, ser.ref
	if ref == nil { // read from the lake at head, the tail short of it
		ref = head.SnapshotRef
	}
	var held []arrow.RecordBatch
	for _, r := range []arrow.RecordBatch{ser.recent, ser.rows} {
		if r != nil && r.NumRows() > 0 {
			r.Retain()
			held = append(held, r)
		}
	}
	ser.mu.Unlock()
	ser.used.Store(time.Now().UnixNano())

	// The rows from q.From on lead (newest first); past them the cache
	// answers only when it shows where they end.
	var parts []arrow.RecordBatch
	got, ended := 0, false
	for _, r := range held {
		m := 0
		if got < n && !ended {
			m = int(r.NumRows())
			if q.From != 0 {
				times := r.Column(r.Schema().FieldIndices(def.Time)[0]).(*array.Timestamp)
				for i := range m {
					if md.Timestamp(times.Value(i)) < q.From {
						m, ended = i, true
						break
					}
				}
			}
			m = min(m, n-got)
		}
		switch {
		case m == 0:
			r.Release()
		case m == int(r.NumRows()):
			parts = append(parts, r) // whole: no slice to make
		default:
			parts = append(parts, r.NewSlice(0, int64(m)))
			r.Release()
		}
		got += m
	}
	if got < n && !ended && !all {
		for _, p := range parts {
			p.Release()
		}
		return nil, nil
	}
	if len(parts) == 0 {
		parts = append(parts, concat(columnsOf(k).schema, nil))
	}
	return &latestPage{Page: &query.Page{Rows: parts[0], Snapshot: ref, Full: got == n}, rest: parts[1:],
		incomplete: incomplete}, nil
}

// get returns a series' entry, made empty when new.
func (l *latest) get(key latestKey) *latestSeries {
	l.mu.Lock()
	defer l.mu.Unlock()
	ser := l.series[key]
	if ser == nil {
		ser = &latestSeries{}
		l.series[key] = ser
	}
	return ser
}

// update brings ser up to the stream's newest records: from where it
// ended when head extends the snapshot it was read at and the tail holds
// everything since, else from the lake at head and the stream after it.
// It reports whether the tail lost records the lake does not have. The
// caller holds ser.mu.
func (l *latest) update(ctx context.Context, k record.Any, key latestKey, ser *latestSeries, head *query.Head) (bool, error) {
	def := &k.Describe().Table
	tq := tail.Query{Symbols: []string{key.symbol}, Desc: true, Limit: latestRows,
		Keep: keep(def, query.RecordQuery{Filter: query.Filter{Symbol: key.symbol, Exchange: key.exchange}, Desc: true})}
	if key.exchange != "" {
		tq.Exchanges = []string{key.exchange}
	}
	if ser.ref != nil && head.Extends(ser.ref.ID) {
		if rows, complete := l.tail.SinceTo(ctx, k, ser.pos, tq, ser.pos); complete {
			l.reads.WithLabelValues("stream").Inc()
			if reached(ser.pos, head.Offsets) {
				// Else the tail is behind the sink: the rows stay those of
				// the older snapshot and the stream after it.
				ser.ref = head.SnapshotRef
			}
			if len(rows) > 0 {
				l.add(key, ser, k, rows)
			}
			return false, nil
		}
	}
	page, err := l.engine.Records(ctx, def.Name, query.RecordQuery{
		Filter: query.Filter{Symbol: key.symbol, Exchange: key.exchange}, Desc: true, Limit: latestRows,
		AsOf: query.AsOf{SnapshotID: head.ID}})
	if err != nil {
		return false, err
	}
	l.reads.WithLabelValues("lake").Inc()
	to := lake.Offsets{}
	rows, complete := l.tail.SinceTo(ctx, k, head.Offsets, tq, to)
	held := columnsOf(k).all(page.Rows) // message ids derived once
	page.Release()
	for _, r := range []arrow.RecordBatch{ser.recent, ser.rows} {
		if r != nil {
			r.Release()
		}
	}
	ser.ref, ser.pos, ser.recent, ser.rows, ser.all = head.SnapshotRef, to, nil, held, !page.Full
	l.add(key, ser, k, rows)
	if !complete {
		// The rows lack records the tail lost and the lake does not have
		// yet: the next read goes to the lake again rather than carry
		// the gap forward.
		ser.ref = nil
	}
	return !complete, nil
}

// reached reports whether the stream positions to are at or past every
// offset of off.
func reached(to, off lake.Offsets) bool {
	for t, ps := range off {
		for p, o := range ps {
			if got, ok := to.Get(t, p); !ok || got < o {
				return false
			}
		}
	}
	return true
}

// foldRows bounds a series' recent records: new records go in front of
// the rest in a small record of their own, folded into the rest when it
// outgrows this, so keeping up costs a copy of the series per this many
// records, not per read.
const foldRows = 128

// add puts the stream's rows into ser, keeping at least the newest
// latestRows: in front when they all follow the newest held, as a stream
// mostly arrives, else merged in their places. The caller holds ser.mu.
func (l *latest) add(key latestKey, ser *latestSeries, k record.Any, rows []record.Row) {
	if len(rows) == 0 {
		l.account(key, ser)
		return
	}
	def := &k.Describe().Table
	cols := columnsOf(k)
	m := &merger{def: def, desc: true, lakeEnd: true}
	defer m.release()
	m.setTail(k, rows, true)
	fresh := cols.all(m.tail) // message ids derived once
	m.tail.Release()
	m.tail = fresh
	before := ser.count()
	newest := ser.recent
	if newest == nil || newest.NumRows() == 0 {
		newest = ser.rows
	}
	if newest.NumRows() == 0 || after(query.PositionOf(def, newest, 0), m.tailPos[len(m.tailPos)-1], true) {
		fresh.Retain()
		parts := []arrow.RecordBatch{fresh}
		if ser.recent != nil {
			parts = append(parts, ser.recent)
		}
		ser.recent = concat(cols.schema, parts)
		if ser.recent.NumRows() > foldRows {
			ser.fold(cols.schema)
		}
	} else {
		ser.fold(cols.schema)
		m.setLake(&query.Page{Rows: ser.rows})
		var parts []arrow.RecordBatch
		for total := 0; total < latestRows; {
			rec, _, ok := m.next(latestRows - total)
			if !ok {
				break
			}
			parts = append(parts, rec)
			total += int(rec.NumRows())
		}
		ser.rows = concat(cols.schema, parts)
	}
	// Nothing was cut: every row held and every new one (the tail's
	// limit not reached) kept.
	ser.all = ser.all && before+len(rows) == ser.count() && len(rows) < latestRows
	l.account(key, ser)
}

// count is how many records ser holds.
func (ser *latestSeries) count() int {
	n := int(ser.rows.NumRows())
	if ser.recent != nil {
		n += int(ser.recent.NumRows())
	}
	return n
}

// fold puts the recent records in front of the rest, keeping the newest
// latestRows.
func (ser *latestSeries) fold(sc *arrow.Schema) {
	if ser.recent == nil {
		return
	}
	parts := []arrow.RecordBatch{ser.recent}
	if keep := min(ser.rows.NumRows(), int64(latestRows)-ser.recent.NumRows()); keep > 0 {
		parts = append(parts, ser.rows.NewSlice(0, keep))
	}
	ser.rows.Release()
	ser.rows, ser.recent = concat(sc, parts), nil
}

// account keeps the cache within its bytes: the series read longest ago
// go first.
func (l *latest) account(key latestKey, ser *latestSeries) {
	// An entry costs something even empty: symbols nobody trades, asked
	// for one after another, are bounded too.
	size := recordBytes(ser.rows) + int64(len(key.table)+len(key.symbol)+len(key.exchange)) + 512
	if ser.recent != nil {
		size += recordBytes(ser.recent)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.series[key] != ser {
		return // evicted while it was read: dropped with its last reader
	}
	l.bytes += size - ser.size
	ser.size = size
	for l.bytes > l.maxBytes && len(l.series) > 1 {
		var oldKey latestKey
		var old *latestSeries
		for key, s := range l.series {
			if s != ser && (old == nil || s.used.Load() < old.used.Load()) {
				oldKey, old = key, s
			}
		}
		// A reader of the evicted entry holds its own references to the
		// rows; the entry itself is dropped whole.
		delete(l.series, oldKey)
		l.bytes -= old.size
	}
}

// recordBytes is the memory rec's buffers take.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var add func(d arrow.ArrayData)
	add = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			add(c)
		}
	}
	for _, c := range rec.Columns() {
		add(c.Data())
	}
	return n
}
