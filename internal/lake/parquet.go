package lake

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// K2 writes its data files itself rather than through iceberg-go, which
// offers one encoding for every column: market data compresses several
// times better with an encoding per column (docs/lake.md has the bytes):
//
//   - event and ingestion times and sequence numbers rise within a sorted
//     file: DELTA_BINARY_PACKED stores the small differences;
//   - the key (trade_id, quote_id) is a prefix and a counter:
//     DELTA_BYTE_ARRAY stores what differs from the value before;
//   - the symbol and the text that is the same for all of a symbol's
//     rows (TableDef.PerSymbol) come in runs in a file sorted by symbol:
//     DELTA_BYTE_ARRAY stores a repeat as an empty suffix, as small as a
//     dictionary's run and without hashing every value (a 200k-trade
//     commit took 15% less time, its files as large);
//   - prices, sizes and the short codes repeat: a dictionary, which falls
//     back to plain pages when a column has too many distinct values.
//
// The files are plain Parquet with Iceberg field ids, as any engine reads
// them, and iceberg-go describes them for the manifests
// (table.DataFileFromMetadata) exactly as it would its own.

// fileWriter writes one table's data files.
type fileWriter struct {
	def    TableDef
	tbl    *table.Table
	schema *arrow.Schema
	props  *parquet.WriterProperties
	fs     iceio.WriteFileIO
	// prefix names the files of one commit: <prefix>-<n>.parquet.
	prefix string
}

// transient files are written for speed (WithTransientFiles).
func (l *Lake) newFileWriter(ctx context.Context, def TableDef, tbl *table.Table, schema *arrow.Schema, prefix string, transient bool) (*fileWriter, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("warehouse %s is read-only", l.warehouse)
	}
	props, err := writerProperties(def, schema, tbl.Properties(), transient)
	if err != nil {
		return nil, err
	}
	return &fileWriter{def: def, tbl: tbl, schema: schema, props: props, fs: wfs, prefix: prefix}, nil
}

// writerProperties chooses each column's encoding (see above); the
// compression and row groups are the table's properties. Transient files
// are snappy, hold decimals as INT64 and keep statistics only where
// boundsRead (WithTransientFiles).
func writerProperties(def TableDef, schema *arrow.Schema, tp iceberg.Properties, transient bool) (*parquet.WriterProperties, error) {
	codec := compress.Codecs.Zstd
	compression := tp.Get(table.ParquetCompressionKey, "zstd")
	if transient {
		compression = "snappy"
	}
	switch compression {
	case "zstd":
	case "snappy":
		codec = compress.Codecs.Snappy
	case "gzip":
		codec = compress.Codecs.Gzip
	case "uncompressed":
		codec = compress.Codecs.Uncompressed
	default:
		return nil, fmt.Errorf("table %s: compression %q is not one K2 writes (zstd, snappy, gzip, uncompressed)", def.FullName(), compression)
	}
	props := []parquet.WriterProperty{
		parquet.WithCompression(codec),
		parquet.WithCompressionLevel(tp.GetInt(table.ParquetCompressionLevelKey, 3)),
		parquet.WithMaxRowGroupLength(int64(tp.GetInt(table.ParquetRowGroupLimitKey, 32768))),
		parquet.WithDictionaryDefault(true),
		// Decimals of up to 18 digits become INT64 columns, and so
		// DELTA_BINARY_PACKED below.
		parquet.WithStoreDecimalAsInteger(transient),
		parquet.WithCreatedBy("K2"),
	}
	ps, err := pqarrow.ToParquet(schema, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	for i := range ps.NumColumns() {
		col := ps.Column(i)
		path := col.Path()
		top, _, _ := strings.Cut(path, ".")
		if transient && col.PhysicalType() == parquet.Types.ByteArray && !boundsRead(def, top) {
			props = append(props, parquet.WithStatsFor(path, false))
		}
		switch {
		case col.PhysicalType() == parquet.Types.ByteArray && (top == def.Key || runs(def, top)):
			props = append(props, parquet.WithDictionaryFor(path, false), parquet.WithEncodingFor(path, parquet.Encodings.DeltaByteArray))
		case col.PhysicalType() == parquet.Types.Int64:
			props = append(props, parquet.WithDictionaryFor(path, false), parquet.WithEncodingFor(path, parquet.Encodings.DeltaBinaryPacked))
		default:
			props = append(props, parquet.WithDictionaryCostFallbackFor(path, true))
		}
	}
	return parquet.NewWriterProperties(props...), nil
}

// ExchangeColumn is the column query planning prunes files by, besides
// the symbol and time.
const ExchangeColumn = "exchange"

// boundsRead reports whether K2 reads column top's bounds from the
// manifests: the key's (the duplicate check), the symbol's and the
// exchange's (query planning; the Go read paths take a file's one symbol
// and exchange from them). Transient files keep no statistics of other
// text: comparing every value to the running minimum and maximum was a
// tenth of a sink commit's CPU, and compaction writes them all.
func boundsRead(def TableDef, top string) bool {
	return top == def.Key || top == def.Symbol || top == ExchangeColumn
}

// runs reports whether column top's values come in runs in a data file:
// the symbol's and those the same for every row of a symbol, in a table
// whose files are sorted by symbol.
func runs(def TableDef, top string) bool {
	return def.Time != "" && (top == def.Symbol || slices.Contains(def.PerSymbol, top))
}

// partitionValues are the partition of rows that all share one: the
// spec's transforms of the first row's source values.
func partitionValues(spec iceberg.PartitionSpec, sc *iceberg.Schema, rec arrow.RecordBatch) (map[int]any, error) {
	out := map[int]any{}
	if rec.NumRows() == 0 {
		return out, nil
	}
	for _, pf := range spec.Fields() {
		src, ok := sc.FindFieldByID(pf.SourceID())
		if !ok {
			return nil, fmt.Errorf("partition field %s: no source column %d", pf.Name, pf.SourceID())
		}
		idx := rec.Schema().FieldIndices(src.Name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("partition field %s: no column %s in the batch", pf.Name, src.Name)
		}
		lit, err := literalAt(rec.Column(idx[0]), 0)
		if err != nil {
			return nil, fmt.Errorf("partition field %s: %w", pf.Name, err)
		}
		v := pf.Transform.Apply(iceberg.Optional[iceberg.Literal]{Valid: lit != nil, Val: lit})
		if v.Valid {
			out[pf.FieldID] = v.Val.Any()
		}
	}
	return out, nil
}

// literalAt is the value of a partition source column at row i.
func literalAt(col arrow.Array, i int) (iceberg.Literal, error) {
	if col.IsNull(i) {
		return nil, nil
	}
	switch c := col.(type) {
	case interface{ Value(int) string }:
		return iceberg.NewLiteral(c.Value(i)), nil
	case interface{ Value(int) arrow.Timestamp }:
		return iceberg.NewLiteral(iceberg.Timestamp(c.Value(i))), nil
	case interface{ Value(int) int64 }:
		return iceberg.NewLiteral(c.Value(i)), nil
	}
	return nil, fmt.Errorf("cannot partition by a %s column", col.DataType())
}

// partitionPath is the partition's directory under data/:
// timestamp_day=2024-08-08/symbol=BTCUSDT. Iceberg keeps a file's partition
// values in its manifest, not its path, so the path only has to be unique,
// legible and the same to every engine: see pathValue.
func partitionPath(spec iceberg.PartitionSpec, sc *iceberg.Schema, values map[int]any) string {
	var parts []string
	for _, pf := range spec.Fields() {
		src, _ := sc.FindFieldByID(pf.SourceID())
		v := pf.Transform.ToHumanStrType(pf.Transform.ResultType(src.Type), values[pf.FieldID])
		parts = append(parts, pf.EscapedName()+"="+writePathValue(v))
	}
	return strings.Join(parts, "/")
}

// writePathValue is pathValue; a test writes as an earlier K2 did.
var writePathValue = pathValue

// maxPathValue bounds a partition value in a path: a file name may be 255
// bytes, and a long non-ASCII symbol escaped takes three bytes a byte.
const maxPathValue = 64

// pathValue writes a partition value with only the characters a URI leaves
// as they are (letters, digits, '-', '.', '_'), so a location means the
// same path to every reader whether or not it unescapes it: iceberg-go
// records an escaped location (symbol=%C3%89THUSDT) and some readers
// (PyIceberg, DuckDB given the text) take it literally. Any other byte is
// '_' and its two hex digits ('_' itself too, so distinct values stay
// distinct); a value longer than maxPathValue keeps its first bytes and a
// hash of the whole. A value is never a path of its own: a "/" is escaped,
// and ".." stays inside the segment that starts with the field's name.
func pathValue(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(v) {
		c := v[i]
		// A dot ends no value: S3 clients escape the slash of "../".
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' && i < len(v)-1 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	s := b.String()
	if len(s) <= maxPathValue {
		return s
	}
	sum := sha256.Sum256([]byte(v))
	return s[:maxPathValue-17] + "-" + fmt.Sprintf("%x", sum[:8])
}

// write writes rec, whose rows share one partition and are in the
// table's sort order, as the commit's data file number n. It may be
// called from several goroutines at once.
func (w *fileWriter) write(ctx context.Context, rec arrow.RecordBatch, n int) (iceberg.DataFile, error) {
	spec, sc := w.tbl.Spec(), w.tbl.Schema()
	values, err := partitionValues(spec, sc, rec)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%05d.parquet", w.prefix, n)
	loc := w.tbl.Location() + "/data/"
	if p := partitionPath(spec, sc, values); p != "" {
		loc += p + "/"
	}
	loc += name
	f, err := w.fs.Create(loc)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", loc, err)
	}
	cw := &countingWriter{w: f}
	pw, err := pqarrow.NewFileWriter(w.schema, cw, w.props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := pw.Write(rec); err != nil {
		pw.Close()
		return nil, fmt.Errorf("write %s: %w", loc, err)
	}
	if err := pw.Close(); err != nil { // closes f too
		return nil, fmt.Errorf("write %s: %w", loc, err)
	}
	meta, err := pw.FileMetadata()
	if err != nil {
		return nil, err
	}
	return table.DataFileFromMetadata(table.DataFileArgs{
		Schema: sc, Spec: spec, Format: iceberg.ParquetFile, Metadata: meta,
		FilePath: loc, FileSize: cw.n, Content: iceberg.EntryContentData,
		PartitionValues: values, SortOrderID: w.tbl.SortOrder().OrderID(),
		Properties: w.tbl.Properties(), FormatVersion: w.tbl.Metadata().Version(),
	})
}

type countingWriter struct {
	w io.WriteCloser
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Close() error { return c.w.Close() }

// sortKeys are the table's sort order as keys over rec's columns.
func sortKeys(tbl *table.Table, rec arrow.RecordBatch) ([]compute.SortKey, error) {
	var keys []compute.SortKey
	for _, f := range tbl.SortOrder().Fields() {
		src, ok := tbl.Schema().FindFieldByID(f.SourceIDs[0])
		if !ok {
			return nil, fmt.Errorf("sort field %d: no such column", f.SourceIDs[0])
		}
		idx := rec.Schema().FieldIndices(src.Name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("sort column %s is not in the batch", src.Name)
		}
		k := compute.SortKey{ColumnIndex: idx[0], Order: compute.SortOrderAscending, NullPlacement: compute.SortNullsAtEnd}
		if f.Direction == table.SortDESC {
			k.Order = compute.SortOrderDescending
		}
		if f.NullOrder == table.NullsFirst {
			k.NullPlacement = compute.SortNullsAtStart
		}
		keys = append(keys, k)
	}
	return keys, nil
}
