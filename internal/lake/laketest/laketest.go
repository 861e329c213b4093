// Package laketest opens lakes for tests and reads K2 tables back for
// tests that must count rows exactly: how many times each key is stored,
// not just how many rows.
package laketest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Open opens an embedded lake (SQLite catalog, local warehouse) with K2's
// tables in a directory of the test's own; it closes with the test.
func Open(t testing.TB) *lake.Lake {
	t.Helper()
	return OpenIn(t, t.TempDir())
}

// OpenIn is Open in dir, laid out as a k2 --data-dir (catalog.db and
// warehouse), so that k2 commands and other readers find the same lake.
func OpenIn(t testing.TB, dir string) *lake.Lake {
	t.Helper()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.AllTables(),
		Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Scan calls fn with each record batch of the table's current snapshot,
// holding the given columns (none when the table is empty).
func Scan(t testing.TB, l *lake.Lake, name string, columns []string, fn func(rec arrow.RecordBatch)) {
	t.Helper()
	ctx := context.Background()
	tbl, err := l.Load(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CurrentSnapshot() == nil {
		return
	}
	at, err := tbl.Scan(table.WithSelectedFields(columns...)).ToArrowTable(ctx)
	if err != nil {
		t.Fatalf("scan %s: %v", name, err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 1<<16)
	defer rdr.Release()
	for rdr.Next() {
		fn(rdr.RecordBatch())
	}
}

// Column is a record batch's column by name.
func Column(t testing.TB, rec arrow.RecordBatch, name string) arrow.Array {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		t.Fatalf("no column %s", name)
	}
	return rec.Column(idx[0])
}

// Keys scans a table and returns how many rows hold each value of the
// given string columns, joined by "/" (e.g. "symbol", "trade_id").
func Keys(t testing.TB, l *lake.Lake, name string, columns ...string) map[string]int {
	t.Helper()
	tbl, err := l.Load(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := lake.CountKeys(context.Background(), tbl, columns...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Repeated returns the keys stored more than once, for a failure message.
func Repeated(keys map[string]int) []string {
	var out []string
	for k, n := range keys {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return out
}

// Rows counts the table's rows by scanning it.
func Rows(t testing.TB, l *lake.Lake, name string) int64 {
	t.Helper()
	n := 0
	for _, c := range Keys(t, l, name, "symbol") {
		n += c
	}
	return int64(n)
}

// StreamCommit commits trades as a sink does: next as partition 0's
// offset of topic, on top of the offsets of the table the commit lands on.
func StreamCommit(t testing.TB, l *lake.Lake, topic string, rows []md.Trade, next int64) {
	t.Helper()
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	carry := lake.WithSummary(func(base *table.Table) (map[string]string, error) {
		o := lake.TableOffsets(base)
		o.Set(topic, 0, next)
		return o.Props(), nil
	})
	if _, err := w.Commit(context.Background(), rows, nil, carry); err != nil {
		t.Fatal(err)
	}
}
