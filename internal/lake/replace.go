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
	var newTbl *table.Table
	if len(old) > 0 {
		newTbl, err = l.commitRewrite(ctx, name, "replace", extra, base, old, written)
	} else {
		newTbl, err = l.commitAdd(ctx, name, base, written, extra)
	}
	if err != nil {
		l.removeFiles(name, written)
		return nil, fmt.Errorf("%s: %w", def.FullName(), err)
	}
	l.m.observe(name, newTbl)
	return newTbl, nil
}

// commitAdd adds files to a table that had none to replace, failing (for
// the next try to compute again) if the table moved on from base.
func (l *Lake) commitAdd(ctx context.Context, name string, base *table.Table, files []iceberg.DataFile, extra iceberg.Properties) (*table.Table, error) {
	commitID := "replace-" + uuid.NewString()
	props := iceberg.Properties{"k2.operation": "replace", CommitIDProperty: commitID}
	maps.Copy(props, extra)
	tx := base.NewTransaction()
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return nil, err
	}
	if err := tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck()); err != nil {
		return nil, err
	}
	newTbl, err := tx.Commit(ctx)
	if err != nil {
		if landed := l.findCommit(context.WithoutCancel(ctx), name, commitID); landed != nil {
			return landed, nil
		}
	}
	return newTbl, err
}
