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

// Replace writes recs as data files, each record one partition's rows in
// the table's sort order, and commits them in place of old in one
// snapshot of base with extra in its summary. It is how a derived table
// (the bar tables) swaps what it computed again for what it held: a
// reader sees the old rows or the new, never a mixture. Nothing is
// committed, and no snapshot made, when there is nothing to replace.
func (l *Lake) Replace(ctx context.Context, name string, base *table.Table, old []iceberg.DataFile, recs []arrow.RecordBatch, extra iceberg.Properties) (*table.Table, error) {
	def, err := l.Def(name)
	if err != nil {
		return nil, err
	}
	if len(old) == 0 && len(recs) == 0 {
		return base, nil
	}
	prefix := "replace-" + uuid.NewString()
	var written []iceberg.DataFile
	if len(recs) > 0 {
		fw, err := l.newFileWriter(ctx, def, base, recs[0].Schema(), prefix)
		if err != nil {
			return nil, err
		}
		for i, rec := range recs {
			f, err := fw.write(ctx, rec, i+1)
			if err != nil {
				l.removeFiles(name, written)
				return nil, fmt.Errorf("%s: %w", def.FullName(), err)
			}
			written = append(written, f)
		}
	}
	newTbl, err := l.commitOnce(ctx, name, base, old, written, extra)
	if err != nil {
		l.removeFiles(name, written)
		return nil, fmt.Errorf("%s: %w", def.FullName(), err)
	}
	l.m.observe(name, newTbl)
	return newTbl, nil
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
