package lake

import (
	"context"
	"net/url"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Hooks for the external tests, which use the record kinds' tables.

func (w *Writer[T]) WriteFiles(ctx context.Context, tbl *table.Table, rows []T) ([]iceberg.DataFile, error) {
	return w.writeFiles(ctx, tbl, rows, w.codec.partition(rows, false))
}

func (l *Lake) RemoveFiles(name string, files []iceberg.DataFile) { l.removeFiles(name, files) }

// SetOffsetsOn sets offsets on the table as tbl saw it, as a SetOffsets
// that a commit overtook does.
func (l *Lake) SetOffsetsOn(ctx context.Context, name string, tbl *table.Table, changes Offsets) (SetOffsetsResult, error) {
	return l.setOffsets(ctx, l.defs[name], tbl, changes, false)
}

// CloseCatalog cuts the catalog connection under a live lake.
func (l *Lake) CloseCatalog() { l.db.Close() }

// CompactRacing rewrites every file of the table as it stands, runs
// between (another writer's commit), and then commits the rewrite based
// on the table as it stood before, as a compaction that lost a race does.
func (l *Lake) CompactRacing(ctx context.Context, name string, between func()) error {
	tbl, err := l.Load(ctx, name)
	if err != nil {
		return err
	}
	parts, err := liveFiles(ctx, tbl)
	if err != nil {
		return err
	}
	var files, old []iceberg.DataFile
	for i, p := range parts {
		f, err := l.rewriteGroup(ctx, l.defs[name], tbl, p.Files, "racing", i+1)
		if err != nil {
			return err
		}
		files = append(files, f)
		for _, f := range p.Files {
			old = append(old, f.DataFile)
		}
	}
	between()
	_, err = l.commitRewrite(ctx, name, "compact", nil, tbl, old, files)
	return err
}

// WriteLegacyPaths makes the writer put partition values into paths as K2
// did before format 3 (escaped by url.QueryEscape), until undone.
func WriteLegacyPaths(on bool) {
	writePathValue = pathValue
	if on {
		writePathValue = url.QueryEscape
	}
}
