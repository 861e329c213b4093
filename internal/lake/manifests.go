package lake

import (
	"context"
	"fmt"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
)

// ManifestResult reports a manifest rewrite.
type ManifestResult struct {
	Table  string `json:"table"`
	Before int    `json:"manifests_before"`
	After  int    `json:"manifests_after"`
	Limit  int    `json:"max_manifests"` // more than this are rewritten
	DryRun bool   `json:"dry_run"`
}

// RewriteManifests merges the current snapshot's manifests into few when
// there are more than maxManifests (0: config's). Every append adds a
// manifest and the manifest list names them all, so without this planning
// a query reads one manifest per commit since the last rewrite.
func (l *Lake) RewriteManifests(ctx context.Context, name string, maxManifests int, dryRun bool) (ManifestResult, error) {
	config.Or(&maxManifests, config.Default().Maintain.MaxManifests)
	def, tbl, err := l.table(ctx, name)
	res := ManifestResult{Table: def.FullName(), Limit: maxManifests, DryRun: dryRun}
	if err != nil || tbl.CurrentSnapshot() == nil {
		return res, err
	}
	if res.Before, err = manifestCount(ctx, tbl); err != nil {
		return res, err
	}
	res.After = res.Before
	if res.Before <= maxManifests || dryRun {
		return res, nil
	}
	// A rewrite adds no rows and records no offsets (readers find them in
	// the snapshot before), so on a commit that lands meanwhile it is
	// simply done again on the table as it now stands.
	var newTbl *table.Table
	_, err = l.onFreshTable(ctx, name, tbl, func(tbl *table.Table) error {
		tx := tbl.NewTransaction()
		r, err := tx.RewriteManifests(ctx)
		if err != nil || r.IsNoOp() {
			return err
		}
		newTbl, err = tx.Commit(ctx)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("rewrite manifests of %s: %w", def.FullName(), err)
	}
	if newTbl == nil {
		return res, nil // nothing to merge
	}
	if res.After, err = manifestCount(ctx, newTbl); err != nil {
		return res, err
	}
	l.log.Info("manifests rewritten", "table", def.FullName(), "before", res.Before, "after", res.After)
	return res, nil
}

func manifestCount(ctx context.Context, tbl *table.Table) (int, error) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return 0, err
	}
	m, err := tbl.CurrentSnapshot().Manifests(fs)
	if err != nil {
		return 0, fmt.Errorf("read manifest list: %w", err)
	}
	return len(m), nil
}
