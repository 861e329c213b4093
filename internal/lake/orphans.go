package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
)

// OrphanOptions choose which unreferenced files to delete.
type OrphanOptions struct {
	// OlderThan protects files of commits still in flight (default 24h).
	OlderThan time.Duration
	DryRun    bool
	// MetadataOnly looks only under the table's metadata/ (a listing of a
	// hundred files, where data/ may hold thousands).
	MetadataOnly bool
}

// OrphanResult lists the orphaned files found (and deleted).
type OrphanResult struct {
	Table   string   `json:"table"`
	Files   []string `json:"files"`
	Bytes   int64    `json:"bytes"`
	Deleted int      `json:"deleted"`
	MinAge  string   `json:"min_age"` // files younger than this were left alone
	DryRun  bool     `json:"dry_run"`
}

// RemoveOrphans deletes files under the table's location that no snapshot
// references, such as those of a writer killed mid-commit.
func (l *Lake) RemoveOrphans(ctx context.Context, name string, opts OrphanOptions) (OrphanResult, error) {
	config.Or(&opts.OlderThan, config.Default().Maintain.OrphanMinAge)
	def, tbl, err := l.table(ctx, name)
	res := OrphanResult{Table: def.FullName(), DryRun: opts.DryRun, MinAge: opts.OlderThan.String()}
	if err != nil {
		return res, err
	}
	o := []table.OrphanCleanupOption{table.WithFilesOlderThan(opts.OlderThan), table.WithDryRun(opts.DryRun)}
	if opts.MetadataOnly {
		o = append(o, table.WithLocation(tbl.Location()+"/metadata"))
	}
	r, err := tbl.DeleteOrphanFiles(ctx, o...)
	// A commit beside us may delete a metadata file the listing just saw
	// (iceberg-go then fails the whole scan): list again.
	for try := 0; errors.Is(err, fs.ErrNotExist) && try < 3; try++ {
		r, err = tbl.DeleteOrphanFiles(ctx, o...)
	}
	if err != nil {
		return res, fmt.Errorf("remove orphans of %s: %w", def.FullName(), err)
	}
	res.Files, res.Bytes, res.Deleted = r.OrphanFileLocations, r.TotalSizeBytes, len(r.DeletedFiles)
	if !opts.DryRun && res.Deleted > 0 {
		l.log.Info("orphan files removed", "table", def.FullName(), "files", res.Deleted, "bytes", res.Bytes)
	}
	return res, nil
}
