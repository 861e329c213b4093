package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// errNoFastPath says a read served in Go cannot answer a query exactly
// (a column missing or of another type, null times): DuckDB answers it.
var errNoFastPath = errors.New("not served without DuckDB")

// footerCache keeps the parsed footers of data files, which never change
// once committed, so a read in Go opens a file without parsing it again.
type footerCache struct {
	mu sync.Mutex
	m  map[string]*metadata.FileMetaData
}

// maxFooters bounds the cache; past it, it starts afresh.
const maxFooters = 1024

// openParquet opens a local data file, its footer parsed once.
func (e *Engine) openParquet(path string) (*file.Reader, error) {
	c := &e.footers
	c.mu.Lock()
	meta := c.m[path]
	c.mu.Unlock()
	var opts []file.ReadOption
	if meta != nil {
		opts = append(opts, file.WithMetadata(meta))
	}
	r, err := file.OpenParquetFile(path, false, opts...)
	if err != nil {
		return nil, fmt.Errorf("open data file %s: %w", path, err)
	}
	if meta == nil {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxFooters {
			c.m = map[string]*metadata.FileMetaData{}
		}
		c.m[path] = r.MetaData()
		c.mu.Unlock()
	}
	return r, nil
}

// leafIndex is the index of the leaf column at dotted path, -1 if none.
func leafIndex(r *file.Reader, path string) int {
	return r.MetaData().Schema.ColumnIndexByName(path)
}

// leavesOf are the leaf column indices of the top-level fields named,
// in the file's order; ok is false when a field is missing.
func leavesOf(r *file.Reader, names []string) (idx []int, ok bool) {
	sc := r.MetaData().Schema
	want := map[string]bool{}
	for _, n := range names {
		want[n] = false
	}
	for i := range sc.NumColumns() {
		top, _, _ := strings.Cut(sc.Column(i).Path(), ".")
		if _, w := want[top]; w {
			idx = append(idx, i)
			want[top] = true
		}
	}
	for _, found := range want {
		if !found {
			return nil, false
		}
	}
	return idx, true
}

// int64Column reads a flat INT64 column of row group rg whole: values by
// row (0 where null), and which rows are null (nil when none are).
func int64Column(rg *file.RowGroupReader, col int, rows int) ([]int64, []bool, error) {
	cr, err := rg.Column(col)
	if err != nil {
		return nil, nil, err
	}
	r, ok := cr.(*file.Int64ColumnChunkReader)
	if !ok {
		return nil, nil, errNoFastPath
	}
	vals := getInt64s(rows)
	nulls, err := readFlat(r, cr.Descriptor(), vals)
	return vals, nulls, err
}

// batchReader is a typed column chunk reader.
type batchReader[T any] interface {
	HasNext() bool
	ReadBatch(batchSize int64, values []T, defLvls, repLvls []int16) (total int64, valuesRead int, err error)
}

// readFlat reads a flat column chunk whole into vals (one per row; the
// zero value where null) and returns which rows are null (nil when none
// are).
func readFlat[T any](r batchReader[T], d *schema.Column, vals []T) ([]bool, error) {
	rows := len(vals)
	if d.MaxRepetitionLevel() != 0 {
		return nil, errNoFastPath
	}
	maxDef := d.MaxDefinitionLevel()
	var def []int16
	if maxDef > 0 {
		def = make([]int16, rows)
	}
	levels, read := 0, 0
	for levels < rows && r.HasNext() {
		var lv []int16
		if def != nil {
			lv = def[levels:]
		}
		total, n, err := r.ReadBatch(int64(rows-levels), vals[read:], lv, nil)
		if err != nil {
			return nil, err
		}
		if maxDef == 0 {
			total = int64(n)
		}
		levels += int(total)
		read += n
	}
	if levels != rows {
		return nil, fmt.Errorf("column %s: read %d of %d rows", d.Path(), levels, rows)
	}
	if read == rows {
		return nil, nil
	}
	// Spread the packed values out to their rows, from the end.
	var zero T
	nulls := make([]bool, rows)
	v := read - 1
	for i := rows - 1; i >= 0; i-- {
		if def[i] < maxDef {
			nulls[i], vals[i] = true, zero
			continue
		}
		vals[i] = vals[v]
		v--
	}
	return nulls, nil
}

// int64s recycles int64Column's buffers: a row group's column is 256 KiB.
var int64s sync.Pool

func getInt64s(n int) []int64 {
	if b, ok := int64s.Get().(*[]int64); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]int64, n, max(n, 1<<15)) // a row group's, as K2 writes them
}

// putInt64s returns a buffer of getInt64s once nothing refers to it.
func putInt64s(b []int64) {
	if b != nil {
		int64s.Put(&b)
	}
}

// byteArrayColumn reads a flat BYTE_ARRAY column of row group rg whole:
// values by row (empty where null) and which rows are null (nil when none
// are). The values point into the column's pages.
func byteArrayColumn(rg *file.RowGroupReader, col int, rows int) ([]parquet.ByteArray, []bool, error) {
	cr, err := rg.Column(col)
	if err != nil {
		return nil, nil, err
	}
	r, ok := cr.(*file.ByteArrayColumnChunkReader)
	if !ok || !stableValues(rg, col) {
		return nil, nil, errNoFastPath
	}
	vals := make([]parquet.ByteArray, rows)
	nulls, err := readFlat(r, cr.Descriptor(), vals)
	return vals, nulls, err
}

// stableValues reports whether every data page of a BYTE_ARRAY column
// chunk is encoded so that its decoded values outlive the page: a
// dictionary's point into the dictionary page, DELTA_BYTE_ARRAY's into
// memory of their own; PLAIN values point into a page buffer the next
// page reuses.
func stableValues(rg *file.RowGroupReader, col int) bool {
	cc, err := rg.MetaData().ColumnChunk(col)
	if err != nil {
		return false
	}
	stats := cc.EncodingStats()
	for _, st := range stats {
		if int(st.PageType) == dictionaryPage {
			continue
		}
		switch st.Encoding {
		case parquet.Encodings.RLEDict, parquet.Encodings.PlainDict, parquet.Encodings.DeltaByteArray:
		default:
			return false
		}
	}
	return len(stats) > 0
}

// dictionaryPage is Parquet's PageType DICTIONARY_PAGE.
const dictionaryPage = 2

// stringColumn is byteArrayColumn as strings; a run of equal values
// shares one string.
func stringColumn(rg *file.RowGroupReader, col int, rows int) ([]string, []bool, error) {
	vals, nulls, err := byteArrayColumn(rg, col, rows)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, rows)
	for i, v := range vals {
		if i > 0 && string(v) == out[i-1] {
			out[i] = out[i-1]
			continue
		}
		out[i] = string(v)
	}
	return out, nulls, nil
}

// spanCache keeps the rows a top-N read decoded last from each row group
// (all columns, the newest or oldest rows of it): the same question asked
// again, or a smaller one, decodes nothing. Data files never change once
// committed.
type spanCache struct {
	mu      sync.Mutex
	entries map[spanKey]spanEntry
	rows    int64
}

type spanKey struct {
	path string
	rg   int
}

type spanEntry struct {
	first int64 // the row group's row that is the record's row 0
	rec   arrow.RecordBatch
}

// maxSpanRows bounds the rows the cache holds (about 100 bytes each, so
// some 25 MiB);
// spans longer than maxSpan are not kept.
const (
	maxSpanRows = 1 << 18
	maxSpan     = 1 << 16
)

// read returns rows first…last of row group rg (or a cached record
// holding them) and the row of the group that is the record's row 0; the
// caller releases the record.
func (c *spanCache) read(ctx context.Context, r *file.Reader, path string, rg int, names []string, first, last int64) (arrow.RecordBatch, int64, error) {
	k := spanKey{path, rg}
	c.mu.Lock()
	if en, ok := c.entries[k]; ok && en.first <= first && en.first+en.rec.NumRows() > last {
		en.rec.Retain()
		c.mu.Unlock()
		return en.rec, en.first, nil
	}
	c.mu.Unlock()
	rec, err := readSpan(ctx, r, rg, names, first, last-first+1)
	if err != nil {
		return nil, 0, err
	}
	if n := rec.NumRows(); n <= maxSpan {
		rec.Retain()
		c.mu.Lock()
		if c.entries == nil || c.rows+n > maxSpanRows {
			for _, en := range c.entries {
				en.rec.Release()
			}
			c.entries, c.rows = map[spanKey]spanEntry{}, 0
		}
		if old, ok := c.entries[k]; ok {
			old.rec.Release()
			c.rows -= old.rec.NumRows()
		}
		c.entries[k] = spanEntry{first, rec}
		c.rows += n
		c.mu.Unlock()
	}
	return rec, first, nil
}
