package query

import (
	"database/sql"
	"fmt"
	"math/big"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// rowBuilder scans DuckDB rows of a table into Arrow columns of the
// table's own schema, whatever the kind: a kind's read routes need no
// code of their own.
type rowBuilder struct {
	b    *array.RecordBuilder
	vals []any
	ptrs []any
}

func newRowBuilder(sc *arrow.Schema) *rowBuilder {
	n := sc.NumFields()
	rb := &rowBuilder{b: array.NewRecordBuilder(memory.DefaultAllocator, sc), vals: make([]any, n), ptrs: make([]any, n)}
	for i := range rb.vals {
		rb.ptrs[i] = &rb.vals[i]
	}
	return rb
}

// scan appends the current row; it returns the row's time and sequence
// (the values at timeCol and seqCol, -1 for none) for the caller's
// pagination.
func (rb *rowBuilder) scan(rows *sql.Rows) error {
	if err := rows.Scan(rb.ptrs...); err != nil {
		return err
	}
	for i, v := range rb.vals {
		if err := appendValue(rb.b.Field(i), v); err != nil {
			return fmt.Errorf("column %s: %w", rb.b.Schema().Field(i).Name, err)
		}
	}
	return nil
}

func (rb *rowBuilder) record() arrow.RecordBatch { return rb.b.NewRecordBatch() }

func (rb *rowBuilder) release() { rb.b.Release() }

// appendValue appends one scanned DuckDB value to a builder of the
// column's Arrow type.
func appendValue(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch b := b.(type) {
	case *array.StringBuilder:
		switch s := v.(type) {
		case string:
			b.Append(s)
		case []byte: // a UUID
			b.Append(string(s))
		default:
			return fmt.Errorf("expected text, got %T", v)
		}
	case *array.Int64Builder:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("expected BIGINT, got %T", v)
		}
		b.Append(n)
	case *array.Int32Builder:
		n, ok := v.(int32)
		if !ok {
			return fmt.Errorf("expected INTEGER, got %T", v)
		}
		b.Append(n)
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return fmt.Errorf("expected BOOLEAN, got %T", v)
		}
		b.Append(x)
	case *array.TimestampBuilder:
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("expected TIMESTAMP, got %T", v)
		}
		b.Append(arrow.Timestamp(t.UnixMicro()))
	case *array.Decimal128Builder:
		d, ok := v.(duckdb.Decimal)
		if !ok {
			return fmt.Errorf("expected DECIMAL, got %T", v)
		}
		want := b.Type().(*arrow.Decimal128Type).Scale
		n := new(big.Int).Set(d.Value)
		if diff := int(want) - int(d.Scale); diff > 0 {
			n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(diff)), nil))
		} else if diff < 0 {
			return fmt.Errorf("DECIMAL of scale %d does not fit scale %d", d.Scale, want)
		}
		b.Append(decimal128.FromBigInt(n))
	case *array.ListBuilder:
		items, ok := v.([]any)
		if !ok {
			return fmt.Errorf("expected LIST, got %T", v)
		}
		b.Append(true)
		for _, it := range items {
			if err := appendValue(b.ValueBuilder(), it); err != nil {
				return err
			}
		}
	case *array.MapBuilder:
		var keys, values []any
		switch m := v.(type) {
		case duckdb.OrderedMap:
			keys, values = m.Keys(), m.Values()
		case duckdb.Map:
			for k, val := range m {
				keys, values = append(keys, k), append(values, val)
			}
		default:
			return fmt.Errorf("expected MAP, got %T", v)
		}
		b.Append(true)
		for i := range keys {
			if err := appendValue(b.KeyBuilder(), keys[i]); err != nil {
				return err
			}
			if err := appendValue(b.ItemBuilder(), values[i]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("no reader for Arrow type %s", b.Type())
	}
	return nil
}
