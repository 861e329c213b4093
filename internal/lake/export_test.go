package lake

import (
	"context"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Hooks for the external tests, which use the record kinds' tables.

func (w *Writer[T]) WriteFiles(ctx context.Context, tbl *table.Table, rows []T) ([]iceberg.DataFile, error) {
	return w.writeFiles(ctx, tbl, rows)
}

func (l *Lake) RemoveFiles(name string, files []iceberg.DataFile) { l.removeFiles(name, files) }

// CloseCatalog cuts the catalog connection under a live lake.
func (l *Lake) CloseCatalog() { l.db.Close() }
