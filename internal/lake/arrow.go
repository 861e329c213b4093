package lake

import (
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

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
	// columns encode the table's fields, in schema order.
	columns []encoder[T]
	// encode, when set, builds all columns in one pass instead.
	encode func(sc *arrow.Schema, rows []T, order []int) []arrow.Array
}

// partitions groups rows by partition, (day, symbol), and orders each
// group by time then sequence: the table's sort order. It returns row
// indices in that order and the end offset of each group. Grouping is a
// counting sort, linear in the rows; a group is sorted only when its rows
// arrived out of time order, which live data rarely does.
func (c *codec[T]) partitions(rows []T) (order []int, ends []int) {
	order = make([]int, len(rows))
	if c.time == nil {
		for i := range order {
			order[i] = i
		}
		return order, []int{len(rows)}
	}
	type key struct {
		day int64
		sym string
	}
	ids := make([]int32, len(rows))
	index := map[key]int32{}
	var keys []key
	var counts []int
	for i := range rows {
		k := key{dayOf(c.time(&rows[i])), c.symbol(&rows[i])}
		id, ok := index[k]
		if !ok {
			id = int32(len(keys))
			index[k] = id
			keys = append(keys, k)
			counts = append(counts, 0)
		}
		ids[i] = id
		counts[id]++
	}
	rank := make([]int32, len(keys))
	for i := range rank {
		rank[i] = int32(i)
	}
	slices.SortFunc(rank, func(a, b int32) int {
		if keys[a].day != keys[b].day {
			return cmpInt(keys[a].day, keys[b].day)
		}
		return strings.Compare(keys[a].sym, keys[b].sym)
	})
	start := make([]int, len(keys))
	ends = make([]int, 0, len(keys))
	off := 0
	for _, g := range rank {
		start[g] = off
		off += counts[g]
		ends = append(ends, off)
	}
	next := slices.Clone(start)
	for i, id := range ids {
		order[next[id]] = i
		next[id]++
	}
	lo := 0
	for _, hi := range ends {
		run := order[lo:hi]
		for j := 1; j < len(run); j++ {
			if c.cmpTimeSeq(&rows[run[j-1]], &rows[run[j]]) > 0 {
				slices.SortStableFunc(run, func(a, b int) int { return c.cmpTimeSeq(&rows[a], &rows[b]) })
				break
			}
		}
		lo = hi
	}
	return order, ends
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *codec[T]) cmpTimeSeq(a, b *T) int {
	if r := cmpInt(int64(c.time(a)), int64(c.time(b))); r != 0 {
		return r
	}
	return cmpInt(c.seq(a), c.seq(b))
}

func seqOf(n md.NullInt64) int64 {
	if n.Valid {
		return n.Int64
	}
	return -1 << 63
}

// encoder builds one Arrow column from rows taken in order.
type encoder[T any] func(dt arrow.DataType, rows []T, order []int) arrow.Array

var tradeCodec = codec[md.Trade]{
	key:    func(t *md.Trade) string { return t.TradeID },
	symbol: func(t *md.Trade) string { return t.Symbol },
	time:   func(t *md.Trade) md.Timestamp { return t.Timestamp },
	seq:    func(t *md.Trade) int64 { return seqOf(t.SourceSequence) },
	encode: encodeTrades,
	columns: []encoder[md.Trade]{
		uuidColumn(func(t *md.Trade) uuid.UUID { return t.MessageID }),
		textColumn(func(t *md.Trade) string { return t.TradeID }),
		textColumn(func(t *md.Trade) string { return t.Symbol }),
		textColumn(func(t *md.Trade) string { return t.Exchange }),
		textColumn(func(t *md.Trade) string { return string(t.AssetClass) }),
		timestampColumn(func(t *md.Trade) md.NullTimestamp { return md.NullTimestamp{Timestamp: t.Timestamp, Valid: true} }),
		decimalColumn(func(t *md.Trade) md.NullDecimal { return md.SomeDecimal(t.Price) }),
		decimalColumn(func(t *md.Trade) md.NullDecimal { return md.SomeDecimal(t.Quantity) }),
		textColumn(func(t *md.Trade) string { return t.Currency }),
		textColumn(func(t *md.Trade) string { return string(t.Side) }),
		listColumn(func(t *md.Trade) []string { return t.TradeConditions }),
		int64Column(func(t *md.Trade) md.NullInt64 { return t.SourceSequence }),
		timestampColumn(func(t *md.Trade) md.NullTimestamp {
			return md.NullTimestamp{Timestamp: t.IngestionTimestamp, Valid: true}
		}),
		int64Column(func(t *md.Trade) md.NullInt64 { return t.PlatformSequence }),
		mapColumn(func(t *md.Trade) map[string]string { return t.VendorData }),
	},
}

var quoteCodec = codec[md.Quote]{
	key:    func(q *md.Quote) string { return q.QuoteID },
	symbol: func(q *md.Quote) string { return q.Symbol },
	time:   func(q *md.Quote) md.Timestamp { return q.Timestamp },
	seq:    func(q *md.Quote) int64 { return seqOf(q.SourceSequence) },
	columns: []encoder[md.Quote]{
		uuidColumn(func(q *md.Quote) uuid.UUID { return q.MessageID }),
		textColumn(func(q *md.Quote) string { return q.QuoteID }),
		textColumn(func(q *md.Quote) string { return q.Symbol }),
		textColumn(func(q *md.Quote) string { return q.Exchange }),
		textColumn(func(q *md.Quote) string { return string(q.AssetClass) }),
		timestampColumn(func(q *md.Quote) md.NullTimestamp { return md.NullTimestamp{Timestamp: q.Timestamp, Valid: true} }),
		decimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidPrice }),
		decimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidQuantity }),
		decimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskPrice }),
		decimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskQuantity }),
		textColumn(func(q *md.Quote) string { return q.Currency }),
		int64Column(func(q *md.Quote) md.NullInt64 { return q.SourceSequence }),
		timestampColumn(func(q *md.Quote) md.NullTimestamp {
			return md.NullTimestamp{Timestamp: q.IngestionTimestamp, Valid: true}
		}),
		int64Column(func(q *md.Quote) md.NullInt64 { return q.PlatformSequence }),
		mapColumn(func(q *md.Quote) map[string]string { return q.VendorData }),
	},
}

var referenceCodec = codec[md.ReferenceData]{
	key:    func(r *md.ReferenceData) string { return r.MessageID.String() },
	symbol: func(r *md.ReferenceData) string { return r.Symbol },
	columns: []encoder[md.ReferenceData]{
		uuidColumn(func(r *md.ReferenceData) uuid.UUID { return r.MessageID }),
		textColumn(func(r *md.ReferenceData) string { return r.CompanyID }),
		textColumn(func(r *md.ReferenceData) string { return r.Symbol }),
		textColumn(func(r *md.ReferenceData) string { return r.Exchange }),
		textColumn(func(r *md.ReferenceData) string { return string(r.AssetClass) }),
		textColumn(func(r *md.ReferenceData) string { return r.CompanyName }),
		optTextColumn(func(r *md.ReferenceData) string { return r.ISIN }),
		optTextColumn(func(r *md.ReferenceData) string { return r.Currency }),
		timestampColumn(func(r *md.ReferenceData) md.NullTimestamp { return r.ListingDate }),
		timestampColumn(func(r *md.ReferenceData) md.NullTimestamp { return r.DelistingDate }),
		boolColumn(func(r *md.ReferenceData) bool { return r.IsActive }),
		timestampColumn(func(r *md.ReferenceData) md.NullTimestamp {
			return md.NullTimestamp{Timestamp: r.IngestionTimestamp, Valid: true}
		}),
		mapColumn(func(r *md.ReferenceData) map[string]string { return r.VendorData }),
	},
}

// The encoders below fill Arrow buffers directly from Go slices: one pass,
// no per-value allocation, which keeps encoding far below the cost of
// compressing the same data.

// validity returns a validity bitmap and the null count, or nil when every
// value is present.
func validity[T any](rows []T, order []int, present func(*T) bool) (*memory.Buffer, int) {
	nulls := 0
	for _, i := range order {
		if !present(&rows[i]) {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	bits := make([]byte, bitutil.BytesForBits(int64(len(order))))
	for j, i := range order {
		if present(&rows[i]) {
			bitutil.SetBit(bits, j)
		}
	}
	return memory.NewBufferBytes(bits), nulls
}

func textColumn[T any](get func(*T) string) encoder[T] {
	return textColumnIf(get, nil)
}

// optTextColumn encodes "" as null.
func optTextColumn[T any](get func(*T) string) encoder[T] {
	return textColumnIf(get, func(r *T) bool { return get(r) != "" })
}

func textColumnIf[T any](get func(*T) string, present func(*T) bool) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		total := 0
		for _, i := range order {
			total += len(get(&rows[i]))
		}
		offsets := make([]int32, len(order)+1)
		data := make([]byte, total)
		off := 0
		for j, i := range order {
			off += copy(data[off:], get(&rows[i]))
			offsets[j+1] = int32(off)
		}
		var valid *memory.Buffer
		nulls := 0
		if present != nil {
			valid, nulls = validity(rows, order, present)
		}
		return array.MakeFromData(array.NewData(dt, len(order),
			[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)), memory.NewBufferBytes(data)}, nil, nulls, 0))
	}
}

func timestampColumn[T any](get func(*T) md.NullTimestamp) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		vals := make([]arrow.Timestamp, len(order))
		for j, i := range order {
			vals[j] = arrow.Timestamp(get(&rows[i]).Timestamp)
		}
		valid, nulls := validity(rows, order, func(r *T) bool { return get(r).Valid })
		return array.MakeFromData(array.NewData(dt, len(order),
			[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.TimestampTraits.CastToBytes(vals))}, nil, nulls, 0))
	}
}

func int64Column[T any](get func(*T) md.NullInt64) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		vals := make([]int64, len(order))
		for j, i := range order {
			vals[j] = get(&rows[i]).Int64
		}
		valid, nulls := validity(rows, order, func(r *T) bool { return get(r).Valid })
		return array.MakeFromData(array.NewData(dt, len(order),
			[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, nulls, 0))
	}
}

func decimalColumn[T any](get func(*T) md.NullDecimal) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		vals := make([]decimal128.Num, len(order))
		for j, i := range order {
			vals[j] = decimal128.FromI64(get(&rows[i]).Decimal.Units())
		}
		valid, nulls := validity(rows, order, func(r *T) bool { return get(r).Valid })
		return array.MakeFromData(array.NewData(dt, len(order),
			[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.Decimal128Traits.CastToBytes(vals))}, nil, nulls, 0))
	}
}

func boolColumn[T any](get func(*T) bool) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := array.NewBooleanBuilder(memory.DefaultAllocator)
		defer b.Release()
		for _, i := range order {
			b.Append(get(&rows[i]))
		}
		return b.NewArray()
	}
}

func listColumn[T any](get func(*T) []string) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := array.NewBuilder(memory.DefaultAllocator, dt).(*array.ListBuilder)
		defer b.Release()
		b.Reserve(len(order))
		vb := b.ValueBuilder().(*array.StringBuilder)
		for _, i := range order {
			b.Append(true)
			for _, s := range get(&rows[i]) {
				vb.Append(s)
			}
		}
		return b.NewArray()
	}
}

// mapColumn writes string maps in key order, so equal maps encode equally.
func mapColumn[T any](get func(*T) map[string]string) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := array.NewBuilder(memory.DefaultAllocator, dt).(*array.MapBuilder)
		defer b.Release()
		kb, vb := b.KeyBuilder().(*array.StringBuilder), b.ItemBuilder().(*array.StringBuilder)
		for _, i := range order {
			m := get(&rows[i])
			if m == nil {
				b.AppendNull()
				continue
			}
			b.Append(true)
			for _, k := range slices.Sorted(maps.Keys(m)) {
				kb.Append(k)
				vb.Append(m[k])
			}
		}
		return b.NewArray()
	}
}

// record encodes rows, in order, as one Arrow record batch.
func (c *codec[T]) record(sc *arrow.Schema, rows []T, order []int) arrow.RecordBatch {
	var cols []arrow.Array
	if c.encode != nil {
		cols = c.encode(sc, rows, order)
	} else {
		cols = make([]arrow.Array, len(c.columns))
		for i, enc := range c.columns {
			cols[i] = enc(sc.Field(i).Type, rows, order)
		}
	}
	rec := array.NewRecordBatch(sc, cols, int64(len(order)))
	for _, col := range cols {
		col.Release()
	}
	return rec
}

// textBuf accumulates one string column's offsets and bytes.
type textBuf struct {
	offsets []int32
	data    []byte
}

func newTextBuf(n, bytes int) *textBuf {
	return &textBuf{offsets: make([]int32, 1, n+1), data: make([]byte, 0, bytes)}
}

func (b *textBuf) add(s string) {
	b.data = append(b.data, s...)
	b.offsets = append(b.offsets, int32(len(b.data)))
}

func (b *textBuf) array(dt arrow.DataType, valid *memory.Buffer, nulls int) arrow.Array {
	return array.MakeFromData(array.NewData(dt, len(b.offsets)-1,
		[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(b.offsets)), memory.NewBufferBytes(b.data)}, nil, nulls, 0))
}

// bitmap is a validity bitmap that starts all-valid.
type bitmap struct {
	bits  []byte
	nulls int
}

func (b *bitmap) set(j int, valid bool, n int) {
	if valid {
		return
	}
	if b.bits == nil {
		b.bits = make([]byte, bitutil.BytesForBits(int64(n)))
		for k := range b.bits {
			b.bits[k] = 0xff
		}
	}
	bitutil.ClearBit(b.bits, j)
	b.nulls++
}

func (b *bitmap) buffer() *memory.Buffer {
	if b.bits == nil {
		return nil
	}
	return memory.NewBufferBytes(b.bits)
}

// encodeTrades is the trades table's hot path: one pass over the rows
// fills every column, reading each row once. It produces exactly what the
// generic column encoders would.
func encodeTrades(sc *arrow.Schema, rows []md.Trade, order []int) []arrow.Array {
	n := len(order)
	var lens [8]int
	for _, i := range order {
		t := &rows[i]
		lens[1] += len(t.TradeID)
		lens[2] += len(t.Symbol)
		lens[3] += len(t.Exchange)
		lens[4] += len(t.AssetClass)
		lens[5] += len(t.Currency)
		lens[6] += len(t.Side)
		for _, c := range t.TradeConditions {
			lens[7] += len(c)
		}
	}
	lens[0] = n * uuidTextLen
	var text [8]*textBuf
	for k := range text {
		text[k] = newTextBuf(n, lens[k])
	}
	ts := make([]arrow.Timestamp, n)
	ingested := make([]arrow.Timestamp, n)
	price := make([]decimal128.Num, n)
	qty := make([]decimal128.Num, n)
	srcSeq, platSeq := make([]int64, n), make([]int64, n)
	var srcValid, platValid bitmap
	condOffsets := make([]int32, 1, n+1)
	vendor := array.NewBuilder(memory.DefaultAllocator, sc.Field(14).Type).(*array.MapBuilder)
	defer vendor.Release()
	kb, vb := vendor.KeyBuilder().(*array.StringBuilder), vendor.ItemBuilder().(*array.StringBuilder)
	anyVendor := false // live feeds rarely carry extras: build the all-null column at once
	for j, i := range order {
		t := &rows[i]
		text[0].addUUID(t.MessageID)
		text[1].add(t.TradeID)
		text[2].add(t.Symbol)
		text[3].add(t.Exchange)
		text[4].add(string(t.AssetClass))
		ts[j] = arrow.Timestamp(t.Timestamp)
		price[j] = decimal128.FromI64(t.Price.Units())
		qty[j] = decimal128.FromI64(t.Quantity.Units())
		text[5].add(t.Currency)
		text[6].add(string(t.Side))
		for _, c := range t.TradeConditions {
			text[7].add(c)
		}
		condOffsets = append(condOffsets, int32(len(text[7].offsets)-1))
		srcSeq[j] = t.SourceSequence.Int64
		srcValid.set(j, t.SourceSequence.Valid, n)
		ingested[j] = arrow.Timestamp(t.IngestionTimestamp)
		platSeq[j] = t.PlatformSequence.Int64
		platValid.set(j, t.PlatformSequence.Valid, n)
		if t.VendorData == nil {
			if anyVendor {
				vendor.AppendNull()
			}
			continue
		}
		if !anyVendor {
			// The first map: the rows before it had none.
			anyVendor = true
			vendor.AppendNulls(j)
		}
		vendor.Append(true)
		for _, k := range slices.Sorted(maps.Keys(t.VendorData)) {
			kb.Append(k)
			vb.Append(t.VendorData[k])
		}
	}
	fixed := func(k int, buf []byte, valid *bitmap) arrow.Array {
		var vbuf *memory.Buffer
		nulls := 0
		if valid != nil {
			vbuf, nulls = valid.buffer(), valid.nulls
		}
		return array.MakeFromData(array.NewData(sc.Field(k).Type, n, []*memory.Buffer{vbuf, memory.NewBufferBytes(buf)}, nil, nulls, 0))
	}
	listType := sc.Field(10).Type.(*arrow.ListType)
	condValues := text[7].array(listType.Elem(), nil, 0)
	defer condValues.Release()
	conds := array.MakeFromData(array.NewData(listType, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(condOffsets))},
		[]arrow.ArrayData{condValues.Data()}, 0, 0))
	return []arrow.Array{
		text[0].array(sc.Field(0).Type, nil, 0),
		text[1].array(sc.Field(1).Type, nil, 0),
		text[2].array(sc.Field(2).Type, nil, 0),
		text[3].array(sc.Field(3).Type, nil, 0),
		text[4].array(sc.Field(4).Type, nil, 0),
		fixed(5, arrow.TimestampTraits.CastToBytes(ts), nil),
		fixed(6, arrow.Decimal128Traits.CastToBytes(price), nil),
		fixed(7, arrow.Decimal128Traits.CastToBytes(qty), nil),
		text[5].array(sc.Field(8).Type, nil, 0),
		text[6].array(sc.Field(9).Type, nil, 0),
		conds,
		fixed(11, arrow.Int64Traits.CastToBytes(srcSeq), &srcValid),
		fixed(12, arrow.TimestampTraits.CastToBytes(ingested), nil),
		fixed(13, arrow.Int64Traits.CastToBytes(platSeq), &platValid),
		vendorArray(vendor, anyVendor, sc.Field(14).Type, n),
	}
}

func vendorArray(b *array.MapBuilder, any bool, dt arrow.DataType, n int) arrow.Array {
	if any {
		return b.NewArray()
	}
	return array.MakeArrayOfNull(memory.DefaultAllocator, dt, n)
}

const uuidTextLen = 36

// addUUID appends a UUID's canonical text without allocating.
func (b *textBuf) addUUID(u uuid.UUID) {
	var buf [uuidTextLen]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	b.data = append(b.data, buf[:]...)
	b.offsets = append(b.offsets, int32(len(b.data)))
}

func uuidColumn[T any](get func(*T) uuid.UUID) encoder[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := newTextBuf(len(order), len(order)*uuidTextLen)
		for _, i := range order {
			b.addUUID(get(&rows[i]))
		}
		return b.array(dt, nil, 0)
	}
}
