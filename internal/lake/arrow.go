package lake

import (
	"maps"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// arrowSchema converts an Iceberg schema to Arrow with field ids, the form
// iceberg-go writes without name mapping.
func arrowSchema(sc *iceberg.Schema) *arrow.Schema {
	as, err := table.SchemaToArrowSchema(sc, nil, true, false)
	if err != nil {
		panic(err) // the schemas are constants of this package
	}
	return as
}

const microsPerDay = 86_400_000_000

// dayOf is the Iceberg day() transform of a timestamp: days since the epoch.
func dayOf(t md.Timestamp) int64 {
	d := int64(t) / microsPerDay
	if int64(t) < 0 && int64(t)%microsPerDay != 0 {
		d--
	}
	return d
}

// codec adapts one record type to the writer: its key, its place in the
// sort order, and its Arrow encoding.
type codec[T any] struct {
	key    func(*T) string
	symbol func(*T) string
	time   func(*T) md.Timestamp
	seq    func(*T) int64
	build  func(b *array.RecordBuilder, rows []T, order []int)
}

// sortOrder returns row indices ordered by day, symbol, time and sequence:
// the partition first (so iceberg-go finds each partition in one run instead
// of copying every partition out of every batch), then the table's sort
// order inside it.
func (c *codec[T]) sortOrder(rows []T) []int {
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	if c.time == nil {
		return order
	}
	sorted := true
	for i := 1; i < len(rows) && sorted; i++ {
		sorted = c.less(&rows[i-1], &rows[i]) <= 0
	}
	if sorted {
		return order
	}
	slices.SortStableFunc(order, func(a, b int) int { return c.less(&rows[a], &rows[b]) })
	return order
}

func (c *codec[T]) less(a, b *T) int {
	ta, tb := c.time(a), c.time(b)
	if da, db := dayOf(ta), dayOf(tb); da != db {
		if da < db {
			return -1
		}
		return 1
	}
	if s := strings.Compare(c.symbol(a), c.symbol(b)); s != 0 {
		return s
	}
	if ta != tb {
		if ta < tb {
			return -1
		}
		return 1
	}
	sa, sb := c.seq(a), c.seq(b)
	switch {
	case sa < sb:
		return -1
	case sa > sb:
		return 1
	}
	return 0
}

func seqOf(n md.NullInt64) int64 {
	if n.Valid {
		return n.Int64
	}
	return -1 << 63
}

var tradeCodec = codec[md.Trade]{
	key:    func(t *md.Trade) string { return t.TradeID },
	symbol: func(t *md.Trade) string { return t.Symbol },
	time:   func(t *md.Trade) md.Timestamp { return t.Timestamp },
	seq:    func(t *md.Trade) int64 { return seqOf(t.SourceSequence) },
	build:  buildTrades,
}

var quoteCodec = codec[md.Quote]{
	key:    func(q *md.Quote) string { return q.QuoteID },
	symbol: func(q *md.Quote) string { return q.Symbol },
	time:   func(q *md.Quote) md.Timestamp { return q.Timestamp },
	seq:    func(q *md.Quote) int64 { return seqOf(q.SourceSequence) },
	build:  buildQuotes,
}

var referenceCodec = codec[md.ReferenceData]{
	key:    func(r *md.ReferenceData) string { return r.MessageID },
	symbol: func(r *md.ReferenceData) string { return r.Symbol },
	build:  buildReference,
}

// columns gives typed access to a RecordBuilder's fields.
type columns struct{ b *array.RecordBuilder }

func (c columns) str(i int) *array.StringBuilder { return c.b.Field(i).(*array.StringBuilder) }
func (c columns) dec(i int) *array.Decimal128Builder {
	return c.b.Field(i).(*array.Decimal128Builder)
}
func (c columns) ts(i int) *array.TimestampBuilder { return c.b.Field(i).(*array.TimestampBuilder) }
func (c columns) i64(i int) *array.Int64Builder    { return c.b.Field(i).(*array.Int64Builder) }

func appendDec(b *array.Decimal128Builder, d md.Decimal) { b.Append(decimal128.FromI64(d.Units())) }

func appendNullDec(b *array.Decimal128Builder, d md.NullDecimal) {
	if d.Valid {
		appendDec(b, d.Decimal)
	} else {
		b.AppendNull()
	}
}

func appendNullInt(b *array.Int64Builder, n md.NullInt64) {
	if n.Valid {
		b.Append(n.Int64)
	} else {
		b.AppendNull()
	}
}

func appendNullTS(b *array.TimestampBuilder, n md.NullTimestamp) {
	if n.Valid {
		b.Append(arrow.Timestamp(n.Timestamp))
	} else {
		b.AppendNull()
	}
}

func appendOptString(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
	} else {
		b.Append(s)
	}
}

// appendMap writes a string map in key order, so equal maps encode equally.
func appendMap(b *array.MapBuilder, m map[string]string) {
	if m == nil {
		b.AppendNull()
		return
	}
	b.Append(true)
	kb, vb := b.KeyBuilder().(*array.StringBuilder), b.ItemBuilder().(*array.StringBuilder)
	if len(m) == 1 {
		for k, v := range m {
			kb.Append(k)
			vb.Append(v)
		}
		return
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kb.Append(k)
		vb.Append(m[k])
	}
}

func appendList(b *array.ListBuilder, items []string) {
	b.Append(true)
	vb := b.ValueBuilder().(*array.StringBuilder)
	for _, s := range items {
		vb.Append(s)
	}
}

func buildTrades(b *array.RecordBuilder, rows []md.Trade, order []int) {
	c := columns{b}
	b.Reserve(len(rows))
	conds := b.Field(10).(*array.ListBuilder)
	vendor := b.Field(14).(*array.MapBuilder)
	for _, i := range order {
		t := &rows[i]
		c.str(0).Append(t.MessageID)
		c.str(1).Append(t.TradeID)
		c.str(2).Append(t.Symbol)
		c.str(3).Append(t.Exchange)
		c.str(4).Append(string(t.AssetClass))
		c.ts(5).Append(arrow.Timestamp(t.Timestamp))
		appendDec(c.dec(6), t.Price)
		appendDec(c.dec(7), t.Quantity)
		c.str(8).Append(t.Currency)
		c.str(9).Append(string(t.Side))
		appendList(conds, t.TradeConditions)
		appendNullInt(c.i64(11), t.SourceSequence)
		c.ts(12).Append(arrow.Timestamp(t.IngestionTimestamp))
		appendNullInt(c.i64(13), t.PlatformSequence)
		appendMap(vendor, t.VendorData)
	}
}

func buildQuotes(b *array.RecordBuilder, rows []md.Quote, order []int) {
	c := columns{b}
	b.Reserve(len(rows))
	vendor := b.Field(14).(*array.MapBuilder)
	for _, i := range order {
		q := &rows[i]
		c.str(0).Append(q.MessageID)
		c.str(1).Append(q.QuoteID)
		c.str(2).Append(q.Symbol)
		c.str(3).Append(q.Exchange)
		c.str(4).Append(string(q.AssetClass))
		c.ts(5).Append(arrow.Timestamp(q.Timestamp))
		appendNullDec(c.dec(6), q.BidPrice)
		appendNullDec(c.dec(7), q.BidQuantity)
		appendNullDec(c.dec(8), q.AskPrice)
		appendNullDec(c.dec(9), q.AskQuantity)
		c.str(10).Append(q.Currency)
		appendNullInt(c.i64(11), q.SourceSequence)
		c.ts(12).Append(arrow.Timestamp(q.IngestionTimestamp))
		appendNullInt(c.i64(13), q.PlatformSequence)
		appendMap(vendor, q.VendorData)
	}
}

func buildReference(b *array.RecordBuilder, rows []md.ReferenceData, order []int) {
	c := columns{b}
	b.Reserve(len(rows))
	vendor := b.Field(12).(*array.MapBuilder)
	for _, i := range order {
		r := &rows[i]
		c.str(0).Append(r.MessageID)
		c.str(1).Append(r.CompanyID)
		c.str(2).Append(r.Symbol)
		c.str(3).Append(r.Exchange)
		c.str(4).Append(string(r.AssetClass))
		c.str(5).Append(r.CompanyName)
		appendOptString(c.str(6), r.ISIN)
		appendOptString(c.str(7), r.Currency)
		appendNullTS(c.ts(8), r.ListingDate)
		appendNullTS(c.ts(9), r.DelistingDate)
		b.Field(10).(*array.BooleanBuilder).Append(r.IsActive)
		c.ts(11).Append(arrow.Timestamp(r.IngestionTimestamp))
		appendMap(vendor, r.VendorData)
	}
}

// record encodes rows, in order, as one Arrow record batch.
func (c *codec[T]) record(mem memory.Allocator, sc *arrow.Schema, rows []T, order []int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	c.build(b, rows, order)
	return b.NewRecordBatch()
}
