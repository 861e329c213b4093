package query

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// A top-N read ("the latest 100 trades of BHP") in Go, without DuckDB,
// whose fixed cost per query is several times the read itself. Row groups
// are read newest first (oldest first ascending), by the time bounds of
// the manifests and then of the row groups' statistics, and the read
// stops once N rows are found that come before everything unread. Only
// the order columns (time, sequence, and the filter's) are read whole;
// the answer's other columns are read for the rows around it. The answer
// is DuckDB's: the same filter, and the order time, sequence (nulls
// last), key.

// fastRow is row At of Rec.
type fastRow struct {
	Rec arrow.RecordBatch
	At  int
}

// servesInGo reports whether topNInGo answers q.
func servesInGo(def *lake.TableDef, q RecordQuery) bool {
	return def.Time != "" && len(q.Bounds) == 0 && len(q.ExcludeConditions) == 0
}

// rgUnit is a row group of an open file, with its time bounds.
type rgUnit struct {
	file   int // index in the read's open files
	rg     int
	lo, hi int64
}

// candidate is a matching row read so far.
type candidate struct {
	unit    int32
	row     int32
	t, seq  int64
	seqNull bool
	key     string // only when the read continues after a position
}

// order compares rows in a read's order: time, sequence (nulls last),
// then key when both have one.
type order struct{ desc bool }

func (o order) timeSeq(a, b *candidate) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return o.dir(c)
	}
	switch {
	case a.seqNull != b.seqNull: // nulls last in either direction
		if a.seqNull {
			return 1
		}
		return -1
	case !a.seqNull:
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return o.dir(c)
		}
	}
	return 0
}

func (o order) dir(c int) int {
	if o.desc {
		return -c
	}
	return c
}

// unitHeap holds the row groups not read yet, the one whose rows may
// come first on top.
type unitHeap struct {
	units []rgUnit
	desc  bool
}

func (h *unitHeap) Len() int { return len(h.units) }
func (h *unitHeap) Less(i, j int) bool {
	if h.desc {
		return h.units[i].hi > h.units[j].hi
	}
	return h.units[i].lo < h.units[j].lo
}
func (h *unitHeap) Swap(i, j int) { h.units[i], h.units[j] = h.units[j], h.units[i] }
func (h *unitHeap) Push(x any)    { h.units = append(h.units, x.(rgUnit)) }
func (h *unitHeap) Pop() any {
	u := h.units[len(h.units)-1]
	h.units = h.units[:len(h.units)-1]
	return u
}

// bound is where the rows of the top unit may start: its max time
// (descending) or min time.
func (h *unitHeap) bound() int64 {
	if h.desc {
		return h.units[0].hi
	}
	return h.units[0].lo
}

// topNInGo reads the first q.Limit rows of files (planned for q, in any
// order) in q's order. It returns errNoFastPath when a file cannot be
// read this way; release frees the rows.
func (e *Engine) topNInGo(ctx context.Context, def *lake.TableDef, files []dataFile, q RecordQuery) (rows []fastRow, release func(), err error) {
	files = slices.Clone(files)
	sortFiles(files, q.Desc)
	o := order{q.Desc}
	var open []*file.Reader
	var recs []arrow.RecordBatch
	cleanup := func() {
		for _, r := range recs {
			r.Release()
		}
		for _, r := range open {
			r.Close()
		}
	}
	defer func() {
		if err != nil {
			cleanup()
			release, rows = nil, nil
		}
	}()
	type openFile struct {
		df             dataFile
		path           string
		time, seq, key int
		sym, ex        int // -1: the file's bounds settle the filter
	}
	var opened []openFile
	pending := &unitHeap{desc: q.Desc}
	var cands []candidate
	var recsUnits []rgUnit // the row groups read, by candidate.unit
	limit := q.Limit
	nextFile := 0
	fileBound := func() int64 {
		if q.Desc {
			return int64(files[nextFile].maxT)
		}
		return int64(files[nextFile].minT)
	}
	// before: a's rows may come before b's (or tie with it).
	before := func(a, b int64) bool {
		if q.Desc {
			return a >= b
		}
		return a <= b
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		var next int64
		haveNext := false
		if nextFile < len(files) {
			next, haveNext = fileBound(), true
		}
		if pending.Len() > 0 && (!haveNext || !before(next, pending.bound())) {
			next, haveNext = pending.bound(), true
		}
		if !haveNext {
			break
		}
		// Done when the limit's last row comes strictly before every unread row.
		if len(cands) >= limit && !before(next, cands[limit-1].t) {
			break
		}
		if nextFile < len(files) && (pending.Len() == 0 || before(fileBound(), pending.bound())) {
			df := files[nextFile]
			nextFile++
			paths, err := e.paths(ctx, []dataFile{df})
			if err != nil {
				return nil, nil, err
			}
			r, err := e.openParquet(paths[0])
			if err != nil {
				return nil, nil, err
			}
			open = append(open, r)
			of := openFile{df: df, path: paths[0], time: leafIndex(r, def.Time), seq: -1, key: leafIndex(r, def.Key), sym: -1, ex: -1}
			if of.time < 0 || of.key < 0 {
				return nil, nil, errNoFastPath
			}
			if def.Sequence != "" {
				if of.seq = leafIndex(r, def.Sequence); of.seq < 0 {
					return nil, nil, errNoFastPath
				}
			}
			if needsColumn(q.Symbol, q.Symbols, df.hasPartSym, df.partSym, df.hasSym, df.symLo, df.symHi) {
				if of.sym = leafIndex(r, "symbol"); of.sym < 0 {
					return nil, nil, errNoFastPath
				}
			}
			if needsColumn(q.Exchange, q.Exchanges, false, "", df.hasEx, df.exLo, df.exHi) {
				if of.ex = leafIndex(r, "exchange"); of.ex < 0 {
					return nil, nil, errNoFastPath
				}
			}
			opened = append(opened, of)
			meta := r.MetaData()
			for rg := range meta.NumRowGroups() {
				rgm := meta.RowGroup(rg)
				if rgm.NumRows() == 0 {
					continue
				}
				u := rgUnit{file: len(opened) - 1, rg: rg, lo: int64(df.minT), hi: int64(df.maxT)}
				if !df.hasTime {
					u.lo, u.hi = math.MinInt64, math.MaxInt64
				}
				if cc, err := rgm.ColumnChunk(of.time); err == nil {
					if st, err := cc.Statistics(); err == nil && st != nil {
						if s, ok := st.(*metadata.Int64Statistics); ok && s.HasMinMax() {
							u.lo, u.hi = s.Min(), s.Max()
						}
					}
				}
				if q.From != 0 && u.hi < int64(q.From) || q.To != 0 && u.lo >= int64(q.To) {
					continue
				}
				heap.Push(pending, u)
			}
			continue
		}
		u := heap.Pop(pending).(rgUnit)
		of := opened[u.file]
		rgr := open[u.file].RowGroup(u.rg)
		n := int(rgr.NumRows())
		ts, tsNull, err := int64Column(rgr, of.time, n)
		if err != nil {
			return nil, nil, err
		}
		if tsNull != nil {
			return nil, nil, errNoFastPath // DuckDB places null times
		}
		var seq []int64
		var seqNull []bool
		if of.seq >= 0 {
			if seq, seqNull, err = int64Column(rgr, of.seq, n); err != nil {
				return nil, nil, err
			}
		}
		var syms, exs, keys []string
		var symNull, exNull []bool
		if of.sym >= 0 {
			if syms, symNull, err = stringColumn(rgr, of.sym, n); err != nil {
				return nil, nil, err
			}
		}
		if of.ex >= 0 {
			if exs, exNull, err = stringColumn(rgr, of.ex, n); err != nil {
				return nil, nil, err
			}
		}
		if q.After != nil {
			if keys, _, err = stringColumn(rgr, of.key, n); err != nil {
				return nil, nil, err
			}
		}
		unit := int32(len(recsUnits))
		recsUnits = append(recsUnits, u)
		var after *candidate
		if p := q.After; p != nil {
			after = &candidate{t: int64(p.Time), key: p.Key, seqNull: p.Seq == nil}
			if p.Seq != nil {
				after.seq = *p.Seq
			}
		}
		var cut *candidate
		if len(cands) >= limit {
			c := cands[limit-1]
			cut = &c
		}
		// Prune to the limit as rows come, so the cut rejects most rows
		// early; a sorted file's rows come best first this way round.
		prune := func() {
			slices.SortFunc(cands, func(a, b candidate) int { return o.timeSeq(&a, &b) })
			if len(cands) > limit {
				// Keep the rows tied with the last: the key decides among them.
				end := limit
				for end < len(cands) && o.timeSeq(&cands[end], &cands[limit-1]) == 0 {
					end++
				}
				cands = cands[:end]
			}
			if len(cands) >= limit {
				c := cands[limit-1]
				cut = &c
			}
		}
		for k := range n {
			i := k
			if q.Desc {
				i = n - 1 - k
			}
			if len(cands) >= 2*limit+64 {
				prune()
			}
			c := candidate{unit: unit, row: int32(i), t: ts[i]}
			if seq != nil {
				c.seq = seq[i]
				c.seqNull = seqNull != nil && seqNull[i]
			} else {
				c.seqNull = true
			}
			if cut != nil && o.timeSeq(&c, cut) > 0 {
				continue
			}
			if q.From != 0 && c.t < int64(q.From) || q.To != 0 && c.t >= int64(q.To) {
				continue
			}
			var sym, ex string
			if syms != nil {
				if symNull != nil && symNull[i] {
					continue // a null never equals the filter
				}
				sym = syms[i]
			}
			if exs != nil {
				if exNull != nil && exNull[i] {
					continue
				}
				ex = exs[i]
			}
			if syms != nil && !symbolHolds(q.Filter, sym) || exs != nil && !exchangeHolds(q.Filter, ex) {
				continue
			}
			if after != nil {
				c.key = keys[i]
				if cmpAfter(o, &c, after) <= 0 {
					continue
				}
			}
			cands = append(cands, c)
		}
		prune()
		putInt64s(ts)
		putInt64s(seq)
	}
	if len(cands) == 0 {
		return nil, cleanup, nil
	}
	// The answer's columns, for the span of rows each row group holds.
	names := make([]string, 0, len(def.Schema.Fields()))
	for _, f := range def.Schema.Fields() {
		names = append(names, f.Name)
	}
	spans := map[int32][2]int32{}
	for _, c := range cands {
		s, ok := spans[c.unit]
		if !ok {
			s = [2]int32{c.row, c.row}
		}
		spans[c.unit] = [2]int32{min(s[0], c.row), max(s[1], c.row)}
	}
	unitRec := map[int32]arrow.RecordBatch{}
	for unit, s := range spans {
		u := recsUnits[unit]
		r := open[u.file]
		// Read to the row group's end (descending; from its start
		// ascending), where the next read of it will look too.
		first, last := int64(s[0]), int64(s[1])
		if q.Desc {
			last = r.MetaData().RowGroup(u.rg).NumRows() - 1
		} else {
			first = 0
		}
		rec, at, err := e.spans.read(ctx, r, opened[u.file].path, u.rg, names, first, last)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, rec)
		unitRec[unit] = rec
		spans[unit] = [2]int32{int32(at), s[1]}
	}
	keyOf := func(c *candidate) string {
		rec := unitRec[c.unit]
		col, ok := rec.Column(rec.Schema().FieldIndices(def.Key)[0]).(interface{ Value(int) string })
		if !ok {
			return ""
		}
		return col.Value(int(c.row - spans[c.unit][0]))
	}
	for i := range cands {
		if cands[i].key == "" {
			cands[i].key = keyOf(&cands[i])
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := o.timeSeq(&a, &b); c != 0 {
			return c
		}
		return o.dir(strings.Compare(a.key, b.key))
	})
	cands = cands[:min(limit, len(cands))]
	rows = make([]fastRow, len(cands))
	for i, c := range cands {
		rows[i] = fastRow{Rec: unitRec[c.unit], At: int(c.row - spans[c.unit][0])}
	}
	return rows, cleanup, nil
}

// cmpAfter compares a row with a position in the read's order.
func cmpAfter(o order, c, p *candidate) int {
	if v := o.timeSeq(c, p); v != 0 {
		return v
	}
	return o.dir(strings.Compare(c.key, p.key))
}

// needsColumn reports whether a symbol (or exchange) filter must read the
// column: it does unless the file's partition or bounds give the one value
// every row has, and that value passes the filter.
func needsColumn(one string, any []string, hasPart bool, part string, hasBounds bool, lo, hi string) bool {
	if one == "" && len(any) == 0 {
		return false
	}
	v, known := part, hasPart
	if !known && hasBounds && lo == hi {
		v, known = lo, true
	}
	return !known || !(one == "" || one == v) || !(len(any) == 0 || slices.Contains(any, v))
}

func symbolHolds(f Filter, s string) bool {
	return (f.Symbol == "" || s == f.Symbol) && (len(f.Symbols) == 0 || slices.Contains(f.Symbols, s))
}

func exchangeHolds(f Filter, s string) bool {
	return (f.Exchange == "" || s == f.Exchange) && (len(f.Exchanges) == 0 || slices.Contains(f.Exchanges, s))
}

// readSpan reads the named top-level columns of n rows of row group rg
// from row first on.
func readSpan(ctx context.Context, r *file.Reader, rg int, names []string, first, n int64) (arrow.RecordBatch, error) {
	leaves, ok := leavesOf(r, names)
	if !ok {
		return nil, errNoFastPath
	}
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: n}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	rr, err := fr.GetRecordReader(ctx, leaves, []int{rg})
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	if first > 0 {
		if err := rr.SeekToRow(first); err != nil {
			return nil, fmt.Errorf("seek to row %d of row group %d: %w", first, rg, err)
		}
	}
	if !rr.Next() {
		if err := rr.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("row group %d: no rows from %d", rg, first)
	}
	rec := rr.RecordBatch()
	if rec.NumRows() < n {
		return nil, fmt.Errorf("row group %d: %d rows from %d, wanted %d", rg, rec.NumRows(), first, n)
	}
	rec.Retain()
	return rec, nil
}

// tradeColumns finds a trade's columns in a record read from a data file.
type tradeCols struct {
	id, symbol, exchange, asset, ts, price, qty, currency, side, conds, srcSeq, ingested, platSeq, vendor int
}

func tradeColsOf(sc *arrow.Schema) (tradeCols, error) {
	idx := func(name string) int {
		if i := sc.FieldIndices(name); len(i) == 1 {
			return i[0]
		}
		return -1
	}
	c := tradeCols{idx("trade_id"), idx("symbol"), idx("exchange"), idx("asset_class"), idx("timestamp"), idx("price"), idx("quantity"),
		idx("currency"), idx("side"), idx("trade_conditions"), idx("source_sequence"), idx("ingestion_timestamp"), idx("platform_sequence"), idx("vendor_data")}
	for _, i := range []int{c.id, c.symbol, c.exchange, c.asset, c.ts, c.price, c.qty, c.currency, c.side, c.conds, c.srcSeq, c.ingested, c.platSeq, c.vendor} {
		if i < 0 {
			return c, errNoFastPath
		}
	}
	return c, nil
}

// tradesOf converts fast rows to trades as scanTrade reads DuckDB's.
func tradesOf(rows []fastRow) ([]md.Trade, error) {
	if len(rows) == 0 {
		return nil, nil // as DuckDB's path leaves it
	}
	out := make([]md.Trade, 0, len(rows))
	cols := map[arrow.RecordBatch]tradeCols{}
	for _, r := range rows {
		c, ok := cols[r.Rec]
		if !ok {
			var err error
			if c, err = tradeColsOf(r.Rec.Schema()); err != nil {
				return nil, err
			}
			cols[r.Rec] = c
		}
		t, err := tradeAt(r.Rec, c, r.At)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func tradeAt(rec arrow.RecordBatch, c tradeCols, i int) (md.Trade, error) {
	var t md.Trade
	var err error
	str := func(col int) (string, error) {
		a, ok := rec.Column(col).(*array.String)
		if !ok {
			return "", errNoFastPath
		}
		if a.IsNull(i) {
			return "", nil
		}
		return a.Value(i), nil
	}
	for _, f := range []struct {
		dst *string
		col int
	}{{&t.TradeID, c.id}, {&t.Symbol, c.symbol}, {&t.Exchange, c.exchange}, {&t.Currency, c.currency}} {
		if *f.dst, err = str(f.col); err != nil {
			return t, err
		}
	}
	asset, err := str(c.asset)
	if err != nil {
		return t, err
	}
	side, err := str(c.side)
	if err != nil {
		return t, err
	}
	t.AssetClass, t.Side = md.AssetClass(asset), md.Side(side)
	if t.Timestamp, err = timeAt(rec.Column(c.ts), i); err != nil {
		return t, err
	}
	if t.IngestionTimestamp, err = timeAt(rec.Column(c.ingested), i); err != nil {
		return t, err
	}
	if t.Price, err = decimalAt(rec.Column(c.price), i); err != nil {
		return t, err
	}
	if t.Quantity, err = decimalAt(rec.Column(c.qty), i); err != nil {
		return t, err
	}
	if t.SourceSequence, err = intAt(rec.Column(c.srcSeq), i); err != nil {
		return t, err
	}
	if t.PlatformSequence, err = intAt(rec.Column(c.platSeq), i); err != nil {
		return t, err
	}
	// As stringList and stringMap read DuckDB's: conditions never nil, a
	// null map nil.
	t.TradeConditions = []string{}
	if l, ok := rec.Column(c.conds).(*array.List); !ok {
		return t, errNoFastPath
	} else if l.IsValid(i) {
		vals, ok := l.ListValues().(*array.String)
		if !ok {
			return t, errNoFastPath
		}
		start, end := l.ValueOffsets(i)
		for k := start; k < end; k++ {
			if vals.IsValid(int(k)) {
				t.TradeConditions = append(t.TradeConditions, vals.Value(int(k)))
			}
		}
	}
	if m, ok := rec.Column(c.vendor).(*array.Map); !ok {
		return t, errNoFastPath
	} else if m.IsValid(i) {
		keys, ok1 := m.Keys().(*array.String)
		items, ok2 := m.Items().(*array.String)
		if !ok1 || !ok2 {
			return t, errNoFastPath
		}
		start, end := m.ValueOffsets(i)
		t.VendorData = make(map[string]string, end-start)
		for k := start; k < end; k++ {
			v := ""
			if items.IsValid(int(k)) {
				v = items.Value(int(k))
			}
			t.VendorData[keys.Value(int(k))] = v
		}
	}
	t.MessageID = md.MessageID(record.Trade.Name, t.Symbol, t.TradeID)
	return t, nil
}

func timeAt(a arrow.Array, i int) (md.Timestamp, error) {
	ts, ok := a.(*array.Timestamp)
	if !ok {
		return 0, errNoFastPath
	}
	if ts.IsNull(i) {
		return 0, errNoFastPath
	}
	unit := ts.DataType().(*arrow.TimestampType).Unit
	v := int64(ts.Value(i))
	switch unit {
	case arrow.Microsecond:
	case arrow.Millisecond:
		v *= 1000
	case arrow.Second:
		v *= 1_000_000
	default:
		return 0, errNoFastPath
	}
	return md.Timestamp(v), nil
}

func decimalAt(a arrow.Array, i int) (md.Decimal, error) {
	d, ok := a.(*array.Decimal128)
	if !ok || d.IsNull(i) {
		return 0, errNoFastPath
	}
	return md.DecimalFromScaled(d.Value(i).BigInt(), int(d.DataType().(*arrow.Decimal128Type).Scale))
}

func intAt(a arrow.Array, i int) (md.NullInt64, error) {
	n, ok := a.(*array.Int64)
	if !ok {
		return md.NullInt64{}, errNoFastPath
	}
	if n.IsNull(i) {
		return md.NullInt64{}, nil
	}
	return md.NullInt64{Int64: n.Value(i), Valid: true}, nil
}

// recordOf gathers fast rows into a record of the table's schema; a file
// whose columns are of other types returns errNoFastPath.
func recordOf(sc *arrow.Schema, rows []fastRow) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, 0, sc.NumFields())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	parts := make([]arrow.Array, len(rows))
	for _, f := range sc.Fields() {
		for i, r := range rows {
			idx := r.Rec.Schema().FieldIndices(f.Name)
			if len(idx) != 1 || !arrow.TypeEqual(r.Rec.Column(idx[0]).DataType(), f.Type) {
				releaseAll(parts[:i])
				return nil, errNoFastPath
			}
			parts[i] = array.NewSlice(r.Rec.Column(idx[0]), int64(r.At), int64(r.At+1))
		}
		var col arrow.Array
		if len(parts) == 0 {
			col = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, 0)
		} else {
			c, err := array.Concatenate(parts, memory.DefaultAllocator)
			releaseAll(parts)
			if err != nil {
				return nil, err
			}
			// The file's nested fields may be named otherwise: the
			// schema's type over the same buffers.
			col = array.MakeFromData(array.NewData(f.Type, c.Len(), c.Data().Buffers(), c.Data().Children(), c.NullN(), c.Data().Offset()))
			c.Release()
		}
		cols = append(cols, col)
	}
	return array.NewRecordBatch(sc, cols, int64(len(rows))), nil
}

func releaseAll(a []arrow.Array) {
	for _, x := range a {
		x.Release()
	}
}
