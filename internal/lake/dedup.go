package lake

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// keyRange is what a batch holds for one symbol.
type keyRange struct {
	symbol         string
	minT, maxT     md.Timestamp
	minKey, maxKey string
	rising         bool   // each key above the one before
	last           string // the last key
}

// dropDuplicates returns rows without those whose (symbol, key) repeats an
// earlier row of the batch or a stored row; parts holds the batch's key
// ranges. Stored keys are read only from files whose symbol, time and key
// bounds overlap the batch, so appending new data (later times, higher
// ids) reads nothing.
func (w *Writer[T]) dropDuplicates(ctx context.Context, tbl *table.Table, rows []T, parts partitioned) ([]T, error) {
	c := w.codec
	// A symbol whose keys only rise through the batch (a stream, in the
	// exchange's order) repeats none: only the symbols whose keys do not
	// are checked against a set of the keys seen, which costs a hash and
	// an insert a row.
	ranges, unordered := parts.ranges, parts.unordered
	var dups []int // indices of rows repeated earlier in the batch
	if unordered {
		seen := map[rowKey]struct{}{}
		for i := range rows {
			r := &rows[i]
			k := rowKey{c.Symbol(r), c.Key(r)}
			if ranges[k.symbol].rising {
				continue
			}
			if _, dup := seen[k]; dup {
				dups = append(dups, i)
				continue
			}
			seen[k] = struct{}{}
		}
	}
	var stored map[rowKey]struct{}
	if tbl.CurrentSnapshot() != nil {
		var err error
		if stored, err = w.storedKeys(ctx, tbl, ranges); err != nil {
			return nil, err
		}
	}
	if len(dups) == 0 && len(stored) == 0 {
		return rows, nil // the common case: nothing to drop, nothing copied
	}
	out := make([]T, 0, len(rows)-len(dups))
	next := 0
	for i := range rows {
		if next < len(dups) && dups[next] == i {
			next++
			continue
		}
		r := &rows[i]
		if _, dup := stored[rowKey{c.Symbol(r), c.Key(r)}]; !dup {
			out = append(out, *r)
		}
	}
	return out, nil
}

// rowKey identifies a record: exchanges number trades per symbol.
type rowKey struct{ symbol, key string }

// storedKeys reads the (symbol, key) pairs of the files that may hold rows
// in ranges.
func (w *Writer[T]) storedKeys(ctx context.Context, tbl *table.Table, ranges map[string]*keyRange) (map[rowKey]struct{}, error) {
	sc := w.def.Schema
	symField, _ := sc.FindFieldByName(w.def.Symbol)
	keyField, _ := sc.FindFieldByName(w.def.Key)
	symbols := make([]string, 0, len(ranges))
	var lo, hi md.Timestamp
	first := true
	for s, r := range ranges {
		symbols = append(symbols, s)
		if first || r.minT < lo {
			lo = r.minT
		}
		if first || r.maxT > hi {
			hi = r.maxT
		}
		first = false
	}
	var filter iceberg.BooleanExpression = iceberg.IsIn(iceberg.Reference(w.def.Symbol), symbols...)
	var timeField iceberg.NestedField
	if w.def.Time != "" {
		timeField, _ = sc.FindFieldByName(w.def.Time)
		filter = iceberg.NewAnd(filter,
			iceberg.GreaterThanEqual(iceberg.Reference(w.def.Time), iceberg.Timestamp(lo)),
			iceberg.LessThanEqual(iceberg.Reference(w.def.Time), iceberg.Timestamp(hi)))
	}
	tasks, err := tbl.Scan(table.WithRowFilter(filter), table.WithSelectedFields(w.def.Symbol, w.def.Key)).PlanFiles(ctx)
	if err != nil {
		return nil, err
	}
	var fs iceio.IO
	stored := map[rowKey]struct{}{}
	for _, task := range tasks {
		f := task.File
		if !mayHold(f, ranges, symField.ID, keyField.ID, timeField.ID) {
			continue
		}
		if fs == nil {
			if fs, err = tbl.FS(ctx); err != nil {
				return nil, err
			}
		}
		if err := readKeys(ctx, fs, f.FilePath(), w.def.Symbol, w.def.Key, ranges, stored); err != nil {
			return nil, fmt.Errorf("%s: %w", f.FilePath(), err)
		}
	}
	return stored, nil
}

// mayHold checks a data file's column bounds against every symbol's ranges.
// Missing bounds mean "may hold". String bounds may be truncated, but
// truncation keeps lower ≤ true minimum and upper ≥ true maximum.
func mayHold(f iceberg.DataFile, ranges map[string]*keyRange, symID, keyID, timeID int) bool {
	lower, upper := f.LowerBoundValues(), f.UpperBoundValues()
	symLo, okLo := lower[symID]
	symHi, okHi := upper[symID]
	keyLo, keyHasLo := lower[keyID]
	keyHi, keyHasHi := upper[keyID]
	tLo, tHasLo := lower[timeID]
	tHi, tHasHi := upper[timeID]
	for sym, r := range ranges {
		if okLo && sym < string(symLo) || okHi && sym > string(symHi) {
			continue
		}
		if timeID != 0 {
			if tHasLo && len(tLo) == 8 && int64(binary.LittleEndian.Uint64(tLo)) > int64(r.maxT) {
				continue
			}
			if tHasHi && len(tHi) == 8 && int64(binary.LittleEndian.Uint64(tHi)) < int64(r.minT) {
				continue
			}
		}
		if keyHasLo && string(keyLo) > r.maxKey || keyHasHi && string(keyHi) < r.minKey {
			continue
		}
		return true
	}
	return false
}

// readKeys adds the file's (symbol, key) pairs for symbols in ranges to out.
func readKeys(ctx context.Context, fs iceio.IO, path, symbolColumn, keyColumn string, ranges map[string]*keyRange, out map[rowKey]struct{}) error {
	f, err := fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	schema := pf.MetaData().Schema
	symIdx, keyIdx := schema.ColumnIndexByName(symbolColumn), schema.ColumnIndexByName(keyColumn)
	if symIdx < 0 || keyIdx < 0 {
		return fmt.Errorf("columns symbol and %s not found", keyColumn)
	}
	rr, err := fr.GetRecordReader(ctx, []int{symIdx, keyIdx}, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		syms, ok1 := rec.Column(0).(*array.String)
		keys, ok2 := rec.Column(1).(*array.String)
		if !ok1 || !ok2 {
			return fmt.Errorf("symbol and %s must be strings", keyColumn)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			// Arrow's strings alias the batch's buffers, which are reused
			// after Release: the key is copied, the symbol taken from ranges.
			if kr, want := ranges[syms.Value(i)]; want {
				out[rowKey{kr.symbol, strings.Clone(keys.Value(i))}] = struct{}{}
			}
		}
	}
	return rr.Err()
}
