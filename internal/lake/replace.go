package lake

import (
	"context"
	"fmt"
	"maps"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

// DataFiles lists the data files of the table's current snapshot.
func DataFiles(ctx context.Context, tbl *table.Table) ([]iceberg.DataFile, error) {
	parts, err := liveFiles(ctx, tbl)
	if err != nil {
		return nil, err
	}
	var out []iceberg.DataFile
	for _, p := range parts {
		for _, f := range p.Files {
			out = append(out, f.DataFile)
		}
	}
	return out, nil
}

// Replacement swaps files of a derived table (the bar tables) for ones
// computed again: Write writes each partition's rows as a file at once,
// so only the files' descriptions wait in memory, and Commit puts them in
// place of the old files in one snapshot of the table it began from. A
// reader sees the old rows or the new, never a mixture.
type Replacement struct {
	lake    *Lake
	def     TableDef
	base    *table.Table
	fw      *fileWriter
	written []iceberg.DataFile
}

// NewReplacement begins a replacement of files of base.
func (l *Lake) NewReplacement(ctx context.Context, name string, base *table.Table) (*Replacement, error) {
	def, err := l.Def(name)
	if err != nil {
		return nil, err
	}
	fw, err := l.newFileWriter(ctx, def, base, ArrowSchema(base.Schema()), "replace-"+uuid.NewString(), false)
	if err != nil {
		return nil, err
	}
	return &Replacement{lake: l, def: def, base: base, fw: fw}, nil
}

// Write writes rec, one partition's rows in the table's sort order, as a
// data file of the replacement.
func (r *Replacement) Write(ctx context.Context, rec arrow.RecordBatch) error {
	f, err := r.fw.write(ctx, rec, len(r.written)+1)
	if err != nil {
		return fmt.Errorf("%s: %w", r.def.FullName(), err)
	}
	r.written = append(r.written, f)
	return nil
}

// Commit puts the written files in place of old, with extra in the
// snapshot's summary, and returns the table after. Nothing is committed,
// and no snapshot made, when there is nothing to replace. On failure the
// written files are removed.
func (r *Replacement) Commit(ctx context.Context, old []iceberg.DataFile, extra iceberg.Properties) (*table.Table, error) {
	if len(old) == 0 && len(r.written) == 0 {
		return r.base, nil
	}
	newTbl, err := r.lake.commitOnce(ctx, r.def.Name, r.base, old, r.written, extra)
	if err != nil {
		r.Abort()
		return nil, fmt.Errorf("%s: %w", r.def.FullName(), err)
	}
	r.lake.m.observe(r.def.Name, newTbl)
	return newTbl, nil
}

// Abort removes the files written so far (a process that dies first
// leaves them to orphan removal).
func (r *Replacement) Abort() {
	r.lake.removeFiles(r.def.Name, r.written)
	r.written = nil
}

// commitOnce replaces old by files in one snapshot of base, or fails if
// the table moved on from base: what was computed from base is then
// computed again, never replayed on a table it was not computed from.
func (l *Lake) commitOnce(ctx context.Context, name string, base *table.Table, old, files []iceberg.DataFile, extra iceberg.Properties) (*table.Table, error) {
	commitID := "replace-" + uuid.NewString()
	props := iceberg.Properties{"k2.operation": "replace", CommitIDProperty: commitID}
	maps.Copy(props, extra)
	tx := base.NewTransaction()
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return nil, err
	}
	if len(old) == 0 { // a rewrite must delete a file
		if err := tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck()); err != nil {
			return nil, err
		}
	} else {
		rw := tx.NewRewrite(props)
		for _, f := range old {
			rw.DeleteFile(f)
		}
		for _, f := range files {
			rw.AddDataFile(f)
		}
		if err := rw.Commit(ctx); err != nil {
			return nil, err
		}
	}
	newTbl, err := tx.Commit(ctx)
	if err != nil {
		if landed := l.findCommit(context.WithoutCancel(ctx), name, commitID); landed != nil {
			return landed, nil
		}
	}
	return newTbl, err
}
