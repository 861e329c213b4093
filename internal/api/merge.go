package api

import (
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// merger interleaves a read's two sources in the read's order: pages of
// the lake up to its snapshot's Kafka offsets, and the stream's records
// after exactly those offsets, held by the tail. Neither overlaps the
// other, so nothing is dropped as a duplicate and nothing is missed.
type merger struct {
	def  *lake.TableDef
	desc bool

	lake    arrow.RecordBatch
	li      int
	queued  []arrow.RecordBatch // the page's further records, after lake
	lakeEnd bool                // no page follows the current one

	tail    arrow.RecordBatch
	tailPos []query.Position
	ti      int
	// incomplete: the tail no longer holds every record after the
	// snapshot (the sink is stalled past the tail's bounds).
	incomplete bool
}

func (m *merger) setLake(p *query.Page, more ...arrow.RecordBatch) {
	if m.lake != nil {
		m.lake.Release()
	}
	m.lake, m.li, m.queued = p.Rows, 0, more
	m.advance()
}

// advance moves to the page's next record once the current one is spent.
func (m *merger) advance() {
	for len(m.queued) > 0 && (m.lake == nil || m.li >= int(m.lake.NumRows())) {
		if m.lake != nil {
			m.lake.Release()
		}
		m.lake, m.li, m.queued = m.queued[0], 0, m.queued[1:]
	}
}

// setTail takes the stream's records after the snapshot, in any order.
func (m *merger) setTail(k record.Any, rows []record.Row, complete bool) {
	m.incomplete = !complete
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b record.Row) int {
		c := comparePositions(positionOfRow(&a), positionOfRow(&b), m.desc)
		if m.desc {
			return -c
		}
		return c
	})
	m.tail = k.Arrow(rows)
	m.tailPos = make([]query.Position, len(rows))
	for i := range rows {
		m.tailPos[i] = positionOfRow(&rows[i])
	}
}

func (m *merger) lakeDone() bool { return m.lake == nil || m.li >= int(m.lake.NumRows()) }
func (m *merger) tailDone() bool { return m.tail == nil || m.ti >= len(m.tailPos) }

// first reports whether a lake row at position a goes before the tail's
// next row.
func (m *merger) lakeFirst(a query.Position) bool {
	return m.tailDone() || !after(a, m.tailPos[m.ti], m.desc)
}

// next returns the next run of at most max rows from one source, and the
// position of its last row. The caller refills the lake first whenever
// its page is spent and another follows.
func (m *merger) next(max int) (arrow.RecordBatch, query.Position, bool) {
	switch {
	case !m.lakeDone():
		defer m.advance()
		start, n := m.li, int(m.lake.NumRows())
		if m.tailDone() { // no position to compare with
			m.li = min(n, start+max)
		}
		for m.li < n && m.li-start < max && m.lakeFirst(query.PositionOf(m.def, m.lake, m.li)) {
			m.li++
		}
		switch {
		case start == 0 && m.li == n: // whole: no slice to make
			m.lake.Retain()
			return m.lake, query.PositionOf(m.def, m.lake, n-1), true
		case m.li > start:
			return m.lake.NewSlice(int64(start), int64(m.li)), query.PositionOf(m.def, m.lake, m.li-1), true
		}
	case !m.lakeEnd:
		return nil, query.Position{}, false // the caller reads the next page first
	}
	if m.tailDone() {
		return nil, query.Position{}, false
	}
	start := m.ti
	for m.ti < len(m.tailPos) && m.ti-start < max &&
		(m.lakeDone() || after(query.PositionOf(m.def, m.lake, m.li), m.tailPos[m.ti], m.desc)) {
		m.ti++
	}
	return m.tail.NewSlice(int64(start), int64(m.ti)), m.tailPos[m.ti-1], true
}

func (m *merger) release() {
	if m.lake != nil {
		m.lake.Release()
	}
	for _, r := range m.queued {
		r.Release()
	}
	if m.tail != nil {
		m.tail.Release()
	}
}

// reversed is the rows of recs (in order) in reverse order, as one record.
func reversed(recs []arrow.RecordBatch) arrow.RecordBatch {
	var rows []arrow.RecordBatch
	for i := len(recs) - 1; i >= 0; i-- {
		for j := recs[i].NumRows() - 1; j >= 0; j-- {
			rows = append(rows, recs[i].NewSlice(j, j+1))
		}
		defer recs[i].Release()
	}
	if len(rows) == 0 {
		return nil
	}
	return concat(rows[0].Schema(), rows)
}

// concat is recs (of schema sc) as one record; it releases them.
func concat(sc *arrow.Schema, recs []arrow.RecordBatch) arrow.RecordBatch {
	cols := make([]arrow.Array, sc.NumFields())
	parts := make([]arrow.Array, len(recs))
	n := int64(0)
	for _, r := range recs {
		n += r.NumRows()
	}
	for c := range cols {
		for i, r := range recs {
			parts[i] = r.Column(c)
		}
		if len(recs) == 0 {
			cols[c] = array.MakeArrayOfNull(memory.DefaultAllocator, sc.Field(c).Type, 0)
			continue
		}
		var err error
		if cols[c], err = array.Concatenate(parts, memory.DefaultAllocator); err != nil {
			panic(err) // slices of one schema always concatenate
		}
	}
	out := array.NewRecordBatch(sc, cols, n)
	for _, r := range recs {
		r.Release()
	}
	for _, c := range cols {
		c.Release()
	}
	return out
}
