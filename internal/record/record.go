// Package record describes each kind of record K2 keeps — trades, quotes,
// reference data, funding rates — once. A kind's descriptor holds everything the other
// packages need to move it: its Avro schema and the hand-written codec, the
// data type that names its topics and schema subjects, its Iceberg table
// and Arrow columns, its validation and identity. The producer, the sink
// and the loader iterate over All; none of them names a kind.
//
// A new kind is its Go type in marketdata, its schema and fast codec in
// codec, and one file here (funding.go was the fourth); see
// docs/architecture.md.
package record

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// DataType is the kind's name in topic and subject names:
// market.{asset_class}.{data_type}.{exchange}.
type DataType string

// Spec is what every kind declares, whatever its Go type.
type Spec struct {
	// Name is the record's name in messages ("trade"); it is also the
	// first part of the name a message id is derived from.
	Name     string
	DataType DataType
	// Avro is the schema K2 writes and registers.
	Avro *codec.Schema
	// Table declares the Iceberg table the kind is stored in.
	Table lake.TableDef
	// Sequenced kinds carry exchange sequence numbers that run
	// contiguously per symbol; the sink reports their gaps.
	Sequenced bool
	// Compacted kinds are small and keyed by identity rather than time:
	// their topics have one partition and keep the newest record per key.
	Compacted bool
	// Derived are the Avro fields the table does not store because they
	// follow from the row: readers derive them (message_id from the name,
	// the symbol and the key, md.MessageID).
	Derived []string

	index int // position in All
}

// Describe returns the spec: it makes a *Kind of any type an Any.
func (s *Spec) Describe() *Spec { return s }

// Kind describes records of type T.
type Kind[T any] struct {
	Spec
	// Encode appends a wire-format message (the hand-written fast path).
	// Invalid enum values are an error, never a panic.
	Encode func(dst []byte, schemaID uint32, r *T) ([]byte, error)
	// Decode reads a wire-format message of any compatible writer schema
	// into dst (zero on failure), its strings held in a (nil: allocated per
	// record), and returns the writer schema id.
	Decode func(d *codec.Decoder, ctx context.Context, msg []byte, dst *T, a *codec.Arena) (uint32, error)
	// Rows are the table's identity and Arrow columns.
	Rows lake.Codec[T]
	// Validate checks the rules every stored record obeys.
	Validate func(*T) error
	// Key is the Kafka record key: it orders a symbol's records in one
	// partition, and compaction keeps the last record per key.
	Key func(*T) string
	// Exchange and Asset route a record to its topic.
	Exchange func(*T) string
	Asset    func(*T) md.AssetClass
	// Sequence is the exchange sequence number of a Sequenced kind.
	Sequence func(*T) md.NullInt64
}

// Any is a kind of any record type, for code that handles every kind.
type Any interface {
	Describe() *Spec
	// NewBatch opens a batch that commits to the kind's table in l.
	NewBatch(l *lake.Lake, opts ...lake.WriterOption) (Batch, error)
	DecodeRow(d *codec.Decoder, ctx context.Context, msg []byte) (Row, error)
	Arrow(rows []Row) arrow.RecordBatch
	columns() int
}

func (k *Kind[T]) columns() int { return len(k.Rows.Columns) }

// Writer opens a writer of the kind's table in l.
func (k *Kind[T]) Writer(l *lake.Lake, opts ...lake.WriterOption) (*lake.Writer[T], error) {
	return lake.NewWriter(l, k.Table.Name, &k.Rows, opts...)
}

// The kinds, in the order their tables are created and listed.
var (
	All       = []Any{Trade, Quote, Reference, Funding}
	byType    = map[DataType]Any{}
	byTable   = map[string]Any{}
	dataTypes []string
)

func init() {
	for i, k := range All {
		s := k.Describe()
		s.index = i
		byType[s.DataType] = k
		byTable[s.Table.Name] = k
		dataTypes = append(dataTypes, string(s.DataType))
	}
}

// Index is the kind's position in All, for slices indexed by kind.
func (s *Spec) Index() int { return s.index }

// ByDataType finds a kind by its data type.
func ByDataType(dt DataType) (Any, error) {
	if k, ok := byType[dt]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown data type %q (known: %s)", dt, strings.Join(dataTypes, ", "))
}

// ByTable finds a kind by its table name.
func ByTable(name string) (Any, error) {
	if k, ok := byTable[name]; ok {
		return k, nil
	}
	names := make([]string, len(All))
	for i, k := range All {
		names[i] = k.Describe().Table.Name
	}
	return nil, fmt.Errorf("unknown table %q (tables: %s)", name, strings.Join(names, ", "))
}

// DataTypes lists every kind's data type, in the order of All.
func DataTypes() []string { return dataTypes }

// Tables declares every kind's table, for lake.Options.Tables.
func Tables() []lake.TableDef {
	out := make([]lake.TableDef, len(All))
	for i, k := range All {
		out[i] = k.Describe().Table
	}
	return out
}

// TableNames lists every kind's table name, in the order of All.
func TableNames() []string {
	out := make([]string, len(All))
	for i, k := range All {
		out[i] = k.Describe().Table.Name
	}
	return out
}
