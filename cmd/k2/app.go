package main

import (
	"context"
	"path/filepath"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// openLake opens the configured catalog and warehouse.
func (a *app) openLake(ctx context.Context) (*lake.Lake, error) {
	part, err := lake.ParseSymbolPartition(a.cfg.SymbolPartition)
	if err != nil {
		return nil, err
	}
	return lake.Open(ctx, lake.Options{Tables: record.Tables(),
		Catalog:   a.cfg.Catalog,
		Warehouse: a.cfg.Warehouse,
		S3: lake.S3Options{
			Endpoint:  a.cfg.S3Endpoint,
			Region:    a.cfg.S3Region,
			PathStyle: a.cfg.S3PathStyle,
		},
		SymbolPartition: part,
		Logger:          a.log,
	})
}

// openQuery opens the lake and a query engine over it.
func (a *app) openQuery(ctx context.Context) (*lake.Lake, *query.Engine, error) {
	l, err := a.openLake(ctx)
	if err != nil {
		return nil, nil, err
	}
	e, err := query.New(l, query.Options{
		PoolSize:       a.cfg.QueryPoolSize,
		AcquireTimeout: a.cfg.QueryAcquireTimeout,
		QueryTimeout:   a.cfg.QueryTimeout,
		MemoryLimit:    a.cfg.QueryMemoryLimit,
		WorkDir:        filepath.Join(a.cfg.DataDir, "query"),
		CacheMaxBytes:  a.cfg.QueryCacheBytes,
		Logger:         a.log,
	})
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, e, nil
}
