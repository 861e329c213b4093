package stack

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// OpenLake opens the configured catalog and warehouse with every record
// kind's table and the bar tables, counting its commits in reg (nil: nowhere).
func OpenLake(ctx context.Context, cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*lake.Lake, error) {
	part, err := lake.ParseSymbolPartition(cfg.Lake.SymbolPartition)
	if err != nil {
		return nil, err
	}
	return lake.Open(ctx, lake.Options{
		Tables:          record.AllTables(),
		Catalog:         cfg.Lake.Catalog,
		Warehouse:       cfg.Lake.Warehouse,
		S3:              S3Options(cfg),
		SymbolPartition: part,
		Logger:          log,
		Registerer:      reg,
	})
}

// S3Options are the configured object store's settings, for the warehouse
// and for backups.
func S3Options(cfg config.Config) lake.S3Options {
	return lake.S3Options{Endpoint: cfg.Lake.S3Endpoint, Region: cfg.Lake.S3Region, PathStyle: cfg.Lake.S3PathStyle}
}

// OpenQuery opens a query engine over l, its scratch space under the data
// directory.
func OpenQuery(l *lake.Lake, cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*query.Engine, error) {
	return query.New(l, query.Options{
		Query:      cfg.Query,
		WorkDir:    filepath.Join(cfg.DataDir, "query"),
		Logger:     log,
		Registerer: reg,
	})
}

func (st *Stack) openLake(ctx context.Context) error {
	l, err := OpenLake(ctx, st.cfg, st.metrics, st.log)
	if err != nil {
		return err
	}
	st.onClose(func() { l.Close() })
	st.lake = l
	st.health.Add("lake", func(ctx context.Context) error {
		_, err := l.MetadataLocation(ctx, record.Trade.Table.Name)
		return err
	})
	return nil
}
