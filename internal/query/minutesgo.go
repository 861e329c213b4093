package query

import (
	"context"
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"runtime"
	"slices"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"golang.org/x/sync/errgroup"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// A data file's minute aggregates (the cache's: without non-market
// prints) computed in Go straight from its columns: minuteSQL's answer
// without DuckDB's fixed cost per query, which a cold bar query paid once
// per file. Sums are exact (128-bit, then big.Int); a file this reader
// cannot take exactly (other types, nulls, a sum past 128 bits) returns
// errNoFastPath and DuckDB computes it.

// int128 is a signed 128-bit sum.
type int128 struct {
	hi int64
	lo uint64
}

// add adds a signed product or value; ok is false on overflow.
func (a *int128) add(b int128) bool {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	hi := a.hi + b.hi + int64(carry)
	// Overflow when both operands have the sign the result lacks.
	if (a.hi >= 0) == (b.hi >= 0) && (hi >= 0) != (a.hi >= 0) {
		return false
	}
	a.hi, a.lo = hi, lo
	return true
}

func int128Of(v int64) int128 { return int128{hi: v >> 63, lo: uint64(v)} }

// mul128 is the exact signed product of two int64s.
func mul128(a, b int64) int128 {
	neg := (a < 0) != (b < 0)
	ua, ub := uint64(a), uint64(b)
	if a < 0 {
		ua = uint64(-a)
	}
	if b < 0 {
		ub = uint64(-b)
	}
	hi, lo := bits.Mul64(ua, ub)
	r := int128{hi: int64(hi), lo: lo}
	if neg { // two's complement
		lo, borrow := bits.Sub64(0, r.lo, 0)
		r.hi, r.lo = -r.hi-int64(borrow), lo
	}
	return r
}

// plusBig adds v, which the caller has checked fits.
func (a int128) plusBig(v *big.Int) int128 {
	lo := new(big.Int).And(v, new(big.Int).SetUint64(math.MaxUint64))
	hi := new(big.Int).Rsh(v, 64) // floors, as two's complement wants
	b := int128{hi: hi.Int64(), lo: lo.Uint64()}
	a.add(b)
	return a
}

func (a int128) big() *big.Int {
	v := new(big.Int).SetInt64(a.hi)
	v.Lsh(v, 64)
	return v.Add(v, new(big.Int).SetUint64(a.lo))
}

type minuteAcc struct {
	minute
	vol, notion int128
}

// minutesInGo aggregates the trades of the local data file at path per
// (exchange, symbol, minute), leaving out trades carrying any of exclude.
// A file whose manifest bounds give one symbol and one exchange is not
// read for them.
func (e *Engine) minutesInGo(ctx context.Context, df dataFile, path string, exclude []string) ([]minute, error) {
	r, err := e.openParquet(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	col := func(name string) int { return leafIndex(r, name) }
	c := struct{ sym, ex, ts, seq, price, qty, conds int }{col("symbol"), col("exchange"), col("timestamp"),
		col("source_sequence"), col("price"), col("quantity"), col("trade_conditions.list.element")}
	if min(c.sym, c.ex, c.ts, c.seq, c.price, c.qty, c.conds) < 0 {
		return nil, errNoFastPath
	}
	sc := r.MetaData().Schema
	for _, i := range []int{c.price, c.qty} {
		if !isDecimal8(sc.Column(i)) {
			return nil, errNoFastPath
		}
	}
	if ts, ok := sc.Column(c.ts).LogicalType().(schema.TimestampLogicalType); !ok || ts.TimeUnit() != schema.TimeUnitMicros {
		return nil, errNoFastPath
	}
	cols := minuteCols{c.sym, c.ex, c.ts, c.seq, c.price, c.qty, c.conds}
	// Row groups are aggregated apart, one per core, and merged.
	states := make([]*minuteState, r.NumRowGroups())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for rg := range states {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			st := &minuteState{index: map[minuteAt]*minuteAcc{}}
			states[rg] = st
			return rowGroupMinutes(r.RowGroup(rg), cols, df, exclude, st)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var accs []*minuteAcc
	index := map[minuteAt]*minuteAcc{}
	for _, st := range states {
		for _, a := range st.accs {
			k := minuteAt{a.exchange, a.symbol, a.m}
			if into := index[k]; into == nil {
				index[k] = a
				accs = append(accs, a)
			} else if !into.merge(a) {
				return nil, errNoFastPath
			}
		}
	}
	out := make([]minute, len(accs))
	for i, a := range accs {
		a.volume, a.notional = a.vol, a.notion
		out[i] = a.minute
	}
	return out, nil
}

type minuteCols struct{ sym, ex, ts, seq, price, qty, conds int }

// minuteState is the minutes of the rows aggregated so far.
type minuteState struct {
	accs  []*minuteAcc
	index map[minuteAt]*minuteAcc
}

// rowGroupMinutes aggregates row group rgr into st.
func rowGroupMinutes(rgr *file.RowGroupReader, c minuteCols, df dataFile, exclude []string, st *minuteState) error {
	n := int(rgr.NumRows())
	syms, symNull, err := constOrColumn(rgr, c.sym, n, df.hasSym, df.symLo, df.symHi)
	if err != nil {
		return err
	}
	exs, exNull, err := constOrColumn(rgr, c.ex, n, df.hasEx, df.exLo, df.exHi)
	if err != nil {
		return err
	}
	ts, tsNull, err := int64Column(rgr, c.ts, n)
	if err != nil {
		return err
	}
	seq, seqNull, err := int64Column(rgr, c.seq, n)
	if err != nil {
		return err
	}
	price, err := decimalColumn(rgr, c.price, n)
	if err != nil {
		return err
	}
	qty, err := decimalColumn(rgr, c.qty, n)
	if err != nil {
		return err
	}
	excluded, err := conditionsMatch(rgr, c.conds, n, exclude)
	if err != nil {
		return err
	}
	if symNull != nil || exNull != nil || tsNull != nil {
		return errNoFastPath
	}
	sym, ex := []byte(df.symLo), []byte(df.exLo) // where the bounds give them
	var cur *minuteAcc
	for i := range n {
		if excluded[i] {
			continue
		}
		t := ts[i]
		m := t / microsPerMinute
		if syms != nil {
			sym = syms[i]
		}
		if exs != nil {
			ex = exs[i]
		}
		if cur == nil || cur.m != m || cur.symbol != string(sym) || cur.exchange != string(ex) {
			k := minuteAt{string(ex), string(sym), m}
			cur = st.index[k]
			if cur == nil {
				cur = &minuteAcc{minute: minute{exchange: k.exchange, symbol: k.symbol, m: m}}
				st.index[k] = cur
				st.accs = append(st.accs, cur)
			}
		}
		// minuteSQL's order key: the time, then the sequence plus one,
		// 0 without one.
		k := tradeKey{t, -1}
		if seqNull == nil || !seqNull[i] {
			k.seq = seq[i]
		}
		p, q := md.Decimal(price[i]), qty[i]
		if cur.count == 0 {
			cur.openKey, cur.open, cur.closeKey, cur.close, cur.high, cur.low = k, p, k, p, p, p
		} else {
			if k.less(cur.openKey) {
				cur.openKey, cur.open = k, p
			}
			if cur.closeKey.less(k) {
				cur.closeKey, cur.close = k, p
			}
			cur.high, cur.low = max(cur.high, p), min(cur.low, p)
		}
		cur.count++
		if !cur.vol.add(int128Of(q)) || !cur.notion.add(mul128(price[i], q)) {
			return errNoFastPath // past DECIMAL(38)
		}
	}
	putInt64s(ts)
	putInt64s(seq)
	putInt64s(price)
	putInt64s(qty)
	return nil
}

// merge adds b's trades to a; false when a sum passes 128 bits.
func (a *minuteAcc) merge(b *minuteAcc) bool {
	a.absorb(&b.minute)
	return a.vol.add(b.vol) && a.notion.add(b.notion)
}

type minuteAt struct {
	exchange, symbol string
	m                int64
}

// isDecimal8 reports whether a column holds decimals of K2's scale in 8
// bytes or an INT64.
func isDecimal8(c *schema.Column) bool {
	d, ok := c.LogicalType().(schema.DecimalLogicalType)
	if !ok || d.Scale() != md.DecimalScale || c.MaxRepetitionLevel() != 0 || c.MaxDefinitionLevel() != 0 {
		return false
	}
	return c.PhysicalType() == parquet.Types.Int64 || c.PhysicalType() == parquet.Types.FixedLenByteArray && c.TypeLength() == 8
}

// decimalColumn reads a required decimal column (isDecimal8) as units.
func decimalColumn(rg *file.RowGroupReader, col int, rows int) ([]int64, error) {
	cr, err := rg.Column(col)
	if err != nil {
		return nil, err
	}
	if _, ok := cr.(*file.Int64ColumnChunkReader); ok {
		v, _, err := int64Column(rg, col, rows)
		return v, err
	}
	r, ok := cr.(*file.FixedLenByteArrayColumnChunkReader)
	if !ok {
		return nil, errNoFastPath
	}
	if out, ok, err := plainFixed8(rg, col, rows); ok || err != nil {
		return out, err
	}
	var buf [1024]parquet.FixedLenByteArray
	out := getInt64s(rows)
	read := 0
	for read < rows && r.HasNext() {
		_, n, err := r.ReadBatch(int64(min(len(buf), rows-read)), buf[:], nil, nil)
		if err != nil {
			return nil, err
		}
		for i, v := range buf[:n] {
			out[read+i] = int64(binary.BigEndian.Uint64(v)) // big-endian two's complement
		}
		read += n
	}
	if read != rows {
		return nil, errNoFastPath
	}
	return out, nil
}

// conditionsMatch reports, per row, whether the trade_conditions list
// holds any of want (DuckDB's list_has_any). The list must be required,
// as K2 writes it: a null list would drop the row from DuckDB's answer.
func conditionsMatch(rg *file.RowGroupReader, col int, rows int, want []string) ([]bool, error) {
	cr, err := rg.Column(col)
	if err != nil {
		return nil, err
	}
	r, ok := cr.(*file.ByteArrayColumnChunkReader)
	d := cr.Descriptor()
	// Definition 0 is an empty list; the largest, an element; between, a
	// null element (never a null list, which would need one more level).
	if !ok || d.MaxRepetitionLevel() != 1 || d.MaxDefinitionLevel() < 1 || d.MaxDefinitionLevel() > 2 ||
		d.SchemaNode().Parent() == nil || d.SchemaNode().Parent().Parent() == nil ||
		d.SchemaNode().Parent().Parent().RepetitionType() != parquet.Repetitions.Required {
		return nil, errNoFastPath
	}
	maxDef := d.MaxDefinitionLevel()
	out := make([]bool, rows)
	const batch = 4096
	vals := make([]parquet.ByteArray, batch)
	def, rep := make([]int16, batch), make([]int16, batch)
	row := -1
	for r.HasNext() {
		total, n, err := r.ReadBatch(batch, vals, def, rep)
		if err != nil {
			return nil, err
		}
		v := 0
		for i := range int(total) {
			if rep[i] == 0 {
				row++
			}
			if def[i] == maxDef {
				if row < rows && slices.Contains(want, string(vals[v])) {
					out[row] = true
				}
				v++
			}
		}
		_ = n
	}
	if row != rows-1 {
		return nil, errNoFastPath
	}
	return out, nil
}

// constOrColumn is byteArrayColumn, or nil when bounds lo = hi say every
// row has that value.
func constOrColumn(rg *file.RowGroupReader, col int, rows int, bounded bool, lo, hi string) ([]parquet.ByteArray, []bool, error) {
	if !bounded || lo != hi {
		return byteArrayColumn(rg, col, rows)
	}
	return nil, nil, nil
}

// plainFixed8 reads a required 8-byte FIXED_LEN_BYTE_ARRAY column whose
// pages are all PLAIN straight from the pages: the decoder would make a
// slice per value. ok is false when a page is encoded otherwise.
func plainFixed8(rg *file.RowGroupReader, col int, rows int) (out []int64, ok bool, err error) {
	pr, err := rg.GetColumnPageReader(col)
	if err != nil {
		return nil, false, err
	}
	defer pr.Close()
	out = getInt64s(rows)
	n := 0
	for pr.Next() {
		var data []byte
		var count int
		switch p := pr.Page().(type) {
		case *file.DataPageV1:
			data, count = p.Data(), int(p.NumValues())
		case *file.DataPageV2:
			data, count = p.Data()[p.DefinitionLevelByteLen()+p.RepetitionLevelByteLen():], int(p.NumValues())
		default: // a dictionary
			putInt64s(out)
			return nil, false, nil
		}
		if int64(pr.Page().Encoding()) != int64(parquet.Encodings.Plain) || len(data) < 8*count || n+count > rows {
			putInt64s(out)
			return nil, false, nil
		}
		for i := range count {
			out[n+i] = int64(binary.BigEndian.Uint64(data[8*i:]))
		}
		n += count
	}
	if err := pr.Err(); err != nil {
		putInt64s(out)
		return nil, false, err
	}
	if n != rows {
		putInt64s(out)
		return nil, false, nil
	}
	return out, true, nil
}
