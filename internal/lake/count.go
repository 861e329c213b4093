package lake

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
)

// CountKeys scans the table's current snapshot and returns how many rows
// hold each value of the given string columns, joined by "/" (e.g.
// "symbol", "trade_id"): what proves a record stored once, not merely a
// row count that a loss and a duplicate would cancel out in.
func CountKeys(ctx context.Context, tbl *table.Table, columns ...string) (map[string]int, error) {
	out := map[string]int{}
	if tbl.CurrentSnapshot() == nil {
		return out, nil
	}
	name := tbl.Identifier()
	at, err := tbl.Scan(table.WithSelectedFields(columns...)).ToArrowTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan %v: %w", name, err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 1<<16)
	defer rdr.Release()
	for rdr.Next() {
		rec := rdr.RecordBatch()
		cols := make([]*array.String, len(columns))
		for i, c := range columns {
			idx := rec.Schema().FieldIndices(c)
			if len(idx) == 0 {
				return nil, fmt.Errorf("scan %v: no column %s", name, c)
			}
			s, ok := rec.Column(idx[0]).(*array.String)
			if !ok {
				return nil, fmt.Errorf("scan %v: %s is %s, not a string", name, c, rec.Column(idx[0]).DataType())
			}
			cols[i] = s
		}
		for r := 0; r < int(rec.NumRows()); r++ {
			k := cols[0].Value(r)
			for _, c := range cols[1:] {
				k += "/" + c.Value(r)
			}
			out[k]++
		}
	}
	return out, rdr.Err()
}
