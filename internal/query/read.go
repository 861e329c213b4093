package query

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Page is one read of a table, in the table's own columns.
type Page struct {
	Rows arrow.RecordBatch // never nil; zero rows when nothing matched
	// Snapshot is the table state read (nil for an empty table).
	Snapshot *SnapshotRef
	// Full is whether the page holds Limit rows: more may follow the last.
	Full bool
}

// Release frees the page's rows.
func (p *Page) Release() { p.Rows.Release() }

// SnapshotRef names the snapshot a read saw and the stream position the
// table had reached there.
type SnapshotRef struct {
	ID          int64
	TimestampMs int64
	// Offsets are the Kafka offsets the table holds every record before:
	// a reader of the stream continues from exactly there.
	Offsets lake.Offsets
}

func refOf(st *tableState, snap *table.Snapshot) *SnapshotRef {
	if snap == nil {
		return nil
	}
	return &SnapshotRef{ID: snap.SnapshotID, TimestampMs: snap.TimestampMs, Offsets: lake.SnapshotOffsets(st.tbl, snap)}
}

// Schema is the Arrow schema of a table's rows as Records returns them.
func Schema(def *lake.TableDef) *arrow.Schema { return lake.ArrowSchema(def.Schema) }

// Records reads rows of any kind's table: in time order (newest first
// when Desc) for a table with a time column, in key order otherwise.
// Every kind's read routes use it, so a new kind needs no read code.
func (e *Engine) Records(ctx context.Context, tableName string, q RecordQuery) (*Page, error) {
	k, err := record.ByTable(tableName)
	if err != nil {
		return nil, requestError("%v", err)
	}
	def := &k.Describe().Table
	sc := Schema(def)
	cols := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		cols[i] = quoteIdent(f.Name)
	}
	rb := newRowBuilder(sc)
	defer rb.release()
	if def.Time == "" {
		return e.keyed(ctx, def, strings.Join(cols, ", "), q, rb)
	}
	ti := sc.FieldIndices(def.Time)[0]
	var fast arrow.RecordBatch // the page, when read in Go
	snap, err := e.topN(ctx, tableName, tableName, quoteIdent(def.Key), strings.Join(cols, ", "), q,
		func(rows *sql.Rows) (md.Timestamp, error) {
			if err := rb.scan(rows); err != nil {
				return 0, err
			}
			t, _ := rb.vals[ti].(time.Time)
			return md.TimestampOf(t), nil
		},
		func() { rb.record().Release() }, // a retry starts the page again
		func(rows []fastRow) error {
			rec, err := recordOf(sc, rows)
			if err == nil {
				fast = rec
			}
			return err
		})
	if err != nil {
		return nil, err
	}
	var at AsOf
	if snap != nil {
		at.SnapshotID = snap.SnapshotID
	}
	st, err := e.loadFor(ctx, tableName, at) // the snapshot just read: held
	if err != nil {
		return nil, err
	}
	rec := fast
	if rec == nil {
		rec = rb.record()
	}
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	return &Page{Rows: rec, Snapshot: refOf(st, snap), Full: int(rec.NumRows()) >= limit}, nil
}

// keyed reads a table without a time column (reference data) in key order.
func (e *Engine) keyed(ctx context.Context, def *lake.TableDef, cols string, q RecordQuery, rb *rowBuilder) (*Page, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	st, err := e.load(ctx, def.Name)
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(st, def.Name, q.AsOf)
	if err != nil {
		return nil, err
	}
	page := func() *Page { return &Page{Rows: rb.record(), Snapshot: refOf(st, snap)} }
	if snap == nil {
		return page(), nil
	}
	files, err := e.plan(ctx, st, snap, "", Filter{Symbol: q.Symbol, Exchange: q.Exchange})
	if err != nil || len(files) == 0 {
		return page(), err
	}
	paths, err := e.paths(ctx, files)
	if err != nil {
		return nil, err
	}
	w := filterWhere(Filter{Symbol: q.Symbol, Exchange: q.Exchange}, "")
	key, dir, cmp := quoteIdent(def.Key), "ASC", ">"
	if q.Desc {
		dir, cmp = "DESC", "<"
	}
	if q.After != nil {
		w.add(key+" "+cmp+" ?", q.After.Key)
	}
	n := 0
	err = e.run(ctx, fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s %s LIMIT %d", cols, readParquet(paths), w, key, dir, q.Limit),
		w.args, func(rows *sql.Rows) error {
			for rows.Next() {
				if err := rb.scan(rows); err != nil {
					return err
				}
				n++
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	p := page()
	p.Full = n >= q.Limit
	return p, nil
}

// PositionOf is row i's place in the table's order, for the page that
// follows it.
func PositionOf(def *lake.TableDef, rec arrow.RecordBatch, i int) Position {
	sc := rec.Schema()
	var p Position
	if def.Time != "" {
		p.Time = md.Timestamp(rec.Column(sc.FieldIndices(def.Time)[0]).(*array.Timestamp).Value(i))
	}
	if def.Sequence != "" {
		if c := rec.Column(sc.FieldIndices(def.Sequence)[0]).(*array.Int64); c.IsValid(i) {
			s := c.Value(i)
			p.Seq = &s
		}
	}
	p.Key = rec.Column(sc.FieldIndices(def.Key)[0]).(*array.String).Value(i)
	return p
}

func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
