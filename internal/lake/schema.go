package lake

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Namespace holds K2's tables.
const Namespace = "market_data"

// TableDef is everything declared about one table. Each record kind
// declares its own (internal/record); the lake creates the tables it is
// given and derives their layout from the declaration. When the lake opens
// a table it takes the table's own schema: the catalog numbers a new
// table's field ids itself, and a table migrated from an earlier format
// keeps the ids it had, so files are always written with the table's ids.
type TableDef struct {
	Name string
	Doc  string
	// Schema is the Iceberg schema with documented columns.
	Schema *iceberg.Schema
	// Key is the column whose value identifies a record within its symbol
	// (trade_id, quote_id, message_id): a row whose key is already stored
	// is not written again.
	Key string
	// Symbol is the instrument column.
	Symbol string
	// Time is the event-time column, "" for tables without one. A table
	// with a time is partitioned by day(Time) and the lake's symbol
	// partition, and its files are sorted by Symbol, Time and Sequence.
	Time     string
	Sequence string
	// TimeTransform partitions by Time (nil: day); Symbols overrides the
	// lake's symbol partition (nil: the lake's). Bar tables use month and
	// identity: their rows are few.
	TimeTransform iceberg.Transform
	Symbols       *SymbolPartition
	// PerSymbol are the text columns that hold one value throughout a
	// symbol's rows (its exchange, asset class, currency).
	PerSymbol []string
	// Spec and SortOrder are the table's layout, set by the lake when it
	// opens the table: an existing table keeps the partitioning it was
	// created with.
	Spec      iceberg.PartitionSpec
	SortOrder table.SortOrder
	// Migrations bring a table written by an earlier K2 to FormatVersion,
	// in version order.
	Migrations []Migration
}

// Identifier returns the catalog identifier market_data.<name>.
func (d *TableDef) Identifier() table.Identifier { return table.Identifier{Namespace, d.Name} }

// FullName returns "market_data.<name>".
func (d *TableDef) FullName() string { return Namespace + "." + d.Name }

// field returns a column of the schema; declarations are checked when the
// lake opens, so a missing name is a bug in the declaration.
func (d *TableDef) field(name string) (iceberg.NestedField, error) {
	f, ok := d.Schema.FindFieldByName(name)
	if !ok {
		return f, fmt.Errorf("table %s declares column %q but has no such field", d.Name, name)
	}
	return f, nil
}

// layout derives the partition spec and sort order a new table is created
// with.
func (d *TableDef) layout(p SymbolPartition) error {
	for _, c := range append([]string{d.Key, d.Symbol}, d.PerSymbol...) {
		if _, err := d.field(c); err != nil {
			return err
		}
	}
	if d.Time == "" {
		d.Spec, d.SortOrder = *iceberg.UnpartitionedSpec, table.UnsortedSortOrder
		return nil
	}
	sym, err := d.field(d.Symbol)
	if err != nil {
		return err
	}
	ts, err := d.field(d.Time)
	if err != nil {
		return err
	}
	var tt iceberg.Transform = iceberg.DayTransform{}
	if d.TimeTransform != nil {
		tt = d.TimeTransform
	}
	if d.Symbols != nil {
		p = *d.Symbols
	}
	d.Spec = iceberg.NewPartitionSpec(
		iceberg.PartitionField{SourceIDs: []int{ts.ID}, FieldID: 1000, Name: d.Time + "_" + tt.String(), Transform: tt},
		p.field(sym.ID),
	)
	order := []table.SortField{
		{SourceIDs: []int{sym.ID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{ts.ID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	}
	if d.Sequence != "" { // a kind without exchange sequences sorts by time alone
		seq, err := d.field(d.Sequence)
		if err != nil {
			return err
		}
		order = append(order, table.SortField{SourceIDs: []int{seq.ID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst})
	}
	d.SortOrder, err = table.NewSortOrder(1, order)
	return err
}

// SymbolPartition chooses the partition transform on symbol. Identity keeps
// one symbol per file, which makes symbol reads touch nothing else;
// bucket[N] bounds the files a commit writes when thousands of symbols
// trade. The choice and the measurements behind it are in docs/lake.md.
type SymbolPartition struct {
	Buckets int // 0 = identity(symbol)
}

// ParseSymbolPartition reads "identity" or "bucket[16]".
func ParseSymbolPartition(s string) (SymbolPartition, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" || s == "identity" {
		return SymbolPartition{}, nil
	}
	if n, ok := strings.CutPrefix(s, "bucket["); ok {
		if n, ok := strings.CutSuffix(n, "]"); ok {
			if b, err := strconv.Atoi(n); err == nil && b > 0 && b <= 1024 {
				return SymbolPartition{Buckets: b}, nil
			}
		}
	}
	return SymbolPartition{}, fmt.Errorf("symbol partition %q is not identity or bucket[N] with 1 ≤ N ≤ 1024", s)
}

func (p SymbolPartition) String() string {
	if p.Buckets == 0 {
		return "identity"
	}
	return fmt.Sprintf("bucket[%d]", p.Buckets)
}

func (p SymbolPartition) field(sourceID int) iceberg.PartitionField {
	if p.Buckets == 0 {
		return iceberg.PartitionField{SourceIDs: []int{sourceID}, FieldID: 1001, Name: "symbol", Transform: iceberg.IdentityTransform{}}
	}
	return iceberg.PartitionField{SourceIDs: []int{sourceID}, FieldID: 1001, Name: "symbol_bucket", Transform: iceberg.BucketTransform{NumBuckets: p.Buckets}}
}

// Column types and field constructors for table declarations.
var (
	String    = iceberg.PrimitiveTypes.String
	Long      = iceberg.PrimitiveTypes.Int64
	Timestamp = iceberg.PrimitiveTypes.TimestampTz // UTC microseconds
	Decimal   = iceberg.DecimalTypeOf(18, 8)       // exact prices and sizes
	// WideDecimal holds sums of sizes (a bar's volume), which outgrow 18 digits.
	WideDecimal = iceberg.DecimalTypeOf(38, 8)
	Bool        = iceberg.PrimitiveTypes.Bool
)

// StringList is a list of required strings.
func StringList(elementID int) *iceberg.ListType {
	return &iceberg.ListType{ElementID: elementID, Element: String, ElementRequired: true}
}

// StringMap is a map of strings to optional strings.
func StringMap(keyID, valueID int) *iceberg.MapType {
	return &iceberg.MapType{KeyID: keyID, KeyType: String, ValueID: valueID, ValueType: String, ValueRequired: false}
}

// Required declares a column that is never null.
func Required(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: true, Doc: doc}
}

// Optional declares a nullable column.
func Optional(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: false, Doc: doc}
}

// FormatVersion is the layout of the tables this K2 writes, recorded in
// each table's k2.format-version property (a table without one is of
// version 1). The lake brings a table of an earlier version up to it when
// it opens (TableDef.Migrations) and refuses one of a later version.
//
//	1  every column stored, zstd level 1, no dictionaries
//	2  message_id derived, not stored; an encoding per column (parquet.go), zstd level 3
const FormatVersion = 2

// FormatVersionProperty is the table property holding the format version.
const FormatVersionProperty = "k2.format-version"

// Migration brings a table to a format version.
type Migration struct {
	Version int
	// Drop are the columns the version no longer stores; readers derive
	// them. Their values stay in the files written before, unread.
	Drop []string
}

// baseProperties apply to every table, and are set again when a table is
// migrated. Compression is zstd level 3: with the per-column encodings a
// BHP trade takes under 4 bytes (level 1: about 4.5). Row groups hold
// 32,768 rows: their min/max statistics let DuckDB skip all but the newest
// row groups of a file for "latest trades", and a partition's row groups
// are scanned in parallel.
//
// The key column keeps full (untruncated) bounds, so de-duplication can
// skip every file whose key range misses a batch.
func baseProperties(doc, key string) iceberg.Properties {
	return iceberg.Properties{
		"comment":                                 doc,
		FormatVersionProperty:                     strconv.Itoa(FormatVersion),
		table.PropertyFormatVersion:               "2",
		table.ParquetCompressionKey:               "zstd",
		table.ParquetCompressionLevelKey:          "3",
		table.WriteTargetFileSizeBytesKey:         fmt.Sprint(256 << 20),
		table.ParquetRowGroupLimitKey:             "32768",
		table.CommitNumRetriesKey:                 "6",
		table.CommitMinRetryWaitMsKey:             "50",
		table.CommitMaxRetryWaitMsKey:             "2000",
		table.MetadataDeleteAfterCommitEnabledKey: "true",
		table.MetadataPreviousVersionsMaxKey:      "25",
		"write.metadata.metrics.default":          "truncate(16)",
		"write.metadata.metrics.column." + key:    "full",
	}
}

// retiredProperties were set by earlier versions and no longer hold.
var retiredProperties = []string{"parquet.enable.dictionary"}

// sameColumns reports whether two schemas have the same columns, nested
// types and nullability, whatever their field ids: the catalog numbers a
// new table's fields itself, and a migrated table keeps the ids it had.
func sameColumns(a, b []iceberg.NestedField) bool {
	return slices.EqualFunc(a, b, func(x, y iceberg.NestedField) bool {
		return x.Name == y.Name && x.Required == y.Required && sameType(x.Type, y.Type)
	})
}

func sameType(a, b iceberg.Type) bool {
	switch a := a.(type) {
	case *iceberg.ListType:
		b, ok := b.(*iceberg.ListType)
		return ok && a.ElementRequired == b.ElementRequired && sameType(a.Element, b.Element)
	case *iceberg.MapType:
		b, ok := b.(*iceberg.MapType)
		return ok && a.ValueRequired == b.ValueRequired && sameType(a.KeyType, b.KeyType) && sameType(a.ValueType, b.ValueType)
	case *iceberg.StructType:
		b, ok := b.(*iceberg.StructType)
		return ok && sameColumns(a.FieldList, b.FieldList)
	}
	return a.Equals(b)
}
