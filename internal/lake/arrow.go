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

// ArrowSchema converts an Iceberg schema to Arrow with field ids, the form
// iceberg-go writes without name mapping.
func ArrowSchema(sc *iceberg.Schema) *arrow.Schema {
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

// Codec adapts one record type to the writer: its identity, its place in
// the sort order, and its Arrow encoding. Each record kind declares its
// own (internal/record).
type Codec[T any] struct {
	Key    func(*T) string       // the TableDef's Key column
	Symbol func(*T) string       // the TableDef's Symbol column
	Time   func(*T) md.Timestamp // the Time column; nil for tables without one
	Seq    func(*T) int64        // the Sequence column (SeqOf)
	// Columns encode the table's fields, in schema order.
	Columns []Column[T]
	// Encode, when set, builds all columns in one pass instead: a hot
	// table's fast path, reading each row once.
	Encode func(sc *arrow.Schema, rows []T, order []int) []arrow.Array
}

// Partitions groups rows by partition, (day, symbol), and orders each
// group by time then sequence: the table's sort order. It returns row
// indices in that order and the end offset of each group.
func (c *Codec[T]) Partitions(rows []T) (order []int, ends []int) {
	p := c.partition(rows, false)
	return p.order, p.ends
}

// partitioned is a batch's rows by partition: order holds row indices,
// group after group, each group in the table's sort order, and ends each
// group's end. With keys, ranges hold each symbol's keys and times for
// the duplicate check, and unordered says that some symbol's keys do not
// rise through the batch.
type partitioned struct {
	order, ends []int
	ranges      map[string]*keyRange
	unordered   bool
}

// partition reads the rows once, in the order they are in memory: each
// further pass over a batch's rows (as the duplicate check and the sort
// check made) cost more in cache misses than in work. Grouping is a
// counting sort, linear in the rows; a group is sorted only when its rows
// arrived out of time order, which live data rarely does.
func (c *Codec[T]) partition(rows []T, keys bool) partitioned {
	p := partitioned{order: make([]int, len(rows))}
	if keys {
		p.ranges = map[string]*keyRange{}
	}
	if c.Time == nil {
		for i := range p.order {
			p.order[i] = i
			if keys {
				p.track(nil, c.Symbol(&rows[i]), c.Key(&rows[i]), 0)
			}
		}
		p.ends = []int{len(rows)}
		return p
	}
	type group struct {
		key      groupKey
		kr       *keyRange // the group's symbol's, with keys
		count    int
		lastT    md.Timestamp
		lastSeq  int64
		unsorted bool
	}
	ids := make([]int32, len(rows))
	index := map[groupKey]int32{}
	var groups []group
	for i := range rows {
		r := &rows[i]
		t := c.Time(r)
		var seq int64
		if c.Seq != nil {
			seq = c.Seq(r)
		}
		k := groupKey{dayOf(t), c.Symbol(r)}
		id, ok := index[k]
		if !ok {
			id = int32(len(groups))
			index[k] = id
			groups = append(groups, group{key: k, lastT: t, lastSeq: seq})
		}
		g := &groups[id]
		if t < g.lastT || t == g.lastT && seq < g.lastSeq {
			g.unsorted = true
		}
		g.lastT, g.lastSeq = t, seq
		g.count++
		ids[i] = id
		if keys {
			g.kr = p.track(g.kr, k.sym, c.Key(r), t)
		}
	}
	rank := make([]int32, len(groups))
	for i := range rank {
		rank[i] = int32(i)
	}
	slices.SortFunc(rank, func(a, b int32) int { return groups[a].key.cmp(groups[b].key) })
	start := make([]int, len(groups))
	p.ends = make([]int, 0, len(groups))
	off := 0
	for _, g := range rank {
		start[g] = off
		off += groups[g].count
		p.ends = append(p.ends, off)
	}
	next := slices.Clone(start)
	for i, id := range ids {
		p.order[next[id]] = i
		next[id]++
	}
	for j, g := range rank {
		if groups[g].unsorted {
			run := p.order[start[g]:p.ends[j]]
			slices.SortStableFunc(run, func(a, b int) int { return c.cmpTimeSeq(&rows[a], &rows[b]) })
		}
	}
	return p
}

// track adds a row's key and time to its symbol's range (kr, or looked up
// when nil) and returns the range.
func (p *partitioned) track(kr *keyRange, sym, key string, t md.Timestamp) *keyRange {
	if kr == nil {
		if kr = p.ranges[sym]; kr == nil {
			kr = &keyRange{symbol: sym, minT: t, maxT: t, minKey: key, maxKey: key, rising: true, last: key}
			p.ranges[sym] = kr
			return kr
		}
	}
	kr.minT, kr.maxT = min(kr.minT, t), max(kr.maxT, t)
	kr.minKey, kr.maxKey = min(kr.minKey, key), max(kr.maxKey, key)
	if kr.rising && key <= kr.last {
		kr.rising, p.unordered = false, true
	}
	kr.last = key
	return kr
}

// groupKey is a partition of a table with a time column: (day, symbol).
type groupKey struct {
	day int64
	sym string
}

func (a groupKey) cmp(b groupKey) int {
	if a.day != b.day {
		return cmpInt(a.day, b.day)
	}
	return strings.Compare(a.sym, b.sym)
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

func (c *Codec[T]) cmpTimeSeq(a, b *T) int {
	if r := cmpInt(int64(c.Time(a)), int64(c.Time(b))); r != 0 || c.Seq == nil {
		return r
	}
	return cmpInt(c.Seq(a), c.Seq(b))
}

// SeqOf orders a nullable sequence number: null first.
func SeqOf(n md.NullInt64) int64 {
	if n.Valid {
		return n.Int64
	}
	return -1 << 63
}

// Column builds one Arrow column from rows taken in order.
type Column[T any] func(dt arrow.DataType, rows []T, order []int) arrow.Array

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

// TextColumn encodes a required string.
func TextColumn[T any](get func(*T) string) Column[T] {
	return textColumnIf(get, nil)
}

// OptTextColumn encodes a string, "" as null.
func OptTextColumn[T any](get func(*T) string) Column[T] {
	return textColumnIf(get, func(r *T) bool { return get(r) != "" })
}

func textColumnIf[T any](get func(*T) string, present func(*T) bool) Column[T] {
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

// TimestampColumn encodes a timestamp (µs), null where not Valid.
func TimestampColumn[T any](get func(*T) md.NullTimestamp) Column[T] {
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

// Int64Column encodes a long, null where not Valid.
func Int64Column[T any](get func(*T) md.NullInt64) Column[T] {
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

// DecimalColumn encodes a decimal(18,8), null where not Valid.
func DecimalColumn[T any](get func(*T) md.NullDecimal) Column[T] {
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

// BoolColumn encodes a required boolean.
func BoolColumn[T any](get func(*T) bool) Column[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := array.NewBooleanBuilder(memory.DefaultAllocator)
		defer b.Release()
		for _, i := range order {
			b.Append(get(&rows[i]))
		}
		return b.NewArray()
	}
}

// ListColumn encodes a list of strings.
func ListColumn[T any](get func(*T) []string) Column[T] {
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

// MapColumn writes string maps in key order, so equal maps encode
// equally; a nil map is null.
func MapColumn[T any](get func(*T) map[string]string) Column[T] {
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

// Record encodes rows, in order, as one Arrow record batch.
func (c *Codec[T]) Record(sc *arrow.Schema, rows []T, order []int) arrow.RecordBatch {
	var cols []arrow.Array
	if c.Encode != nil {
		cols = c.Encode(sc, rows, order)
	} else {
		cols = make([]arrow.Array, len(c.Columns))
		for i, enc := range c.Columns {
			cols[i] = enc(sc.Field(i).Type, rows, order)
		}
	}
	rec := array.NewRecordBatch(sc, cols, int64(len(order)))
	for _, col := range cols {
		col.Release()
	}
	return rec
}

// The builders below are for a Codec's one-pass Encode: they fill Arrow
// buffers without a per-value allocation.

// TextBuffer accumulates one string column's offsets and bytes.
type TextBuffer struct {
	offsets []int32
	data    []byte
}

// NewTextBuffer sizes a buffer for n values of about bytes in all.
func NewTextBuffer(n, bytes int) *TextBuffer {
	return &TextBuffer{offsets: make([]int32, 1, n+1), data: make([]byte, 0, bytes)}
}

// Add appends a value.
func (b *TextBuffer) Add(s string) {
	b.data = append(b.data, s...)
	b.offsets = append(b.offsets, int32(len(b.data)))
}

// Len is the number of values added.
func (b *TextBuffer) Len() int { return len(b.offsets) - 1 }

// Array returns the column (valid may be nil: no nulls).
func (b *TextBuffer) Array(dt arrow.DataType, valid *memory.Buffer, nulls int) arrow.Array {
	return array.MakeFromData(array.NewData(dt, len(b.offsets)-1,
		[]*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(b.offsets)), memory.NewBufferBytes(b.data)}, nil, nulls, 0))
}

// FixedArray wraps a fixed-width column's values (valid may be nil).
func FixedArray(dt arrow.DataType, n int, values []byte, valid *Bitmap) arrow.Array {
	var vbuf *memory.Buffer
	nulls := 0
	if valid != nil {
		vbuf, nulls = valid.buffer(), valid.nulls
	}
	return array.MakeFromData(array.NewData(dt, n, []*memory.Buffer{vbuf, memory.NewBufferBytes(values)}, nil, nulls, 0))
}

// ListArray wraps offsets into values as a list column without nulls.
func ListArray(dt *arrow.ListType, offsets []int32, values *TextBuffer) arrow.Array {
	vals := values.Array(dt.Elem(), nil, 0)
	defer vals.Release()
	return array.MakeFromData(array.NewData(dt, len(offsets)-1,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets))},
		[]arrow.ArrayData{vals.Data()}, 0, 0))
}

// Bitmap is a validity bitmap that starts all-valid and is allocated only
// when a null arrives.
type Bitmap struct {
	bits  []byte
	nulls int
}

// Set records whether value j of n is present.
func (b *Bitmap) Set(j int, valid bool, n int) {
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

func (b *Bitmap) buffer() *memory.Buffer {
	if b.bits == nil {
		return nil
	}
	return memory.NewBufferBytes(b.bits)
}

// UUIDTextLen is the length of a UUID's canonical text.
const UUIDTextLen = 36

// AddUUID appends a UUID's canonical text without allocating.
func (b *TextBuffer) AddUUID(u uuid.UUID) {
	var buf [UUIDTextLen]byte
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

// UUIDColumn encodes a UUID as its canonical 36-character text.
func UUIDColumn[T any](get func(*T) uuid.UUID) Column[T] {
	return func(dt arrow.DataType, rows []T, order []int) arrow.Array {
		b := NewTextBuffer(len(order), len(order)*UUIDTextLen)
		for _, i := range order {
			b.AddUUID(get(&rows[i]))
		}
		return b.Array(dt, nil, 0)
	}
}
