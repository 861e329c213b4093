// Package query answers questions of the lake with DuckDB. The data files
// a question needs come from the snapshot's manifests, read through
// iceberg-go once each, pruned by partition values and then column bounds,
// for the current snapshot or any earlier one; DuckDB reads just those
// Parquet files. DuckDB's iceberg and httpfs extensions are never
// used: files on S3 are read through a local cache of immutable data files.
//
// Every query borrows a connection from a bounded pool, runs under a
// deadline that really interrupts DuckDB, and inside a memory limit; the
// DuckDB database may only read the lake's own directories.
package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
)

// queryTypes are the query_type values of the query metrics.
var queryTypes = []string{"trades", "quotes", "bars", "symbols", "sql"}

// metrics are one engine's query and pool metrics (the seed report's names).
type metrics struct {
	queries  *prometheus.CounterVec   // query_type, status
	duration *prometheus.HistogramVec // query_type
	files    *prometheus.HistogramVec
	rows     *prometheus.HistogramVec
	pool     *poolMetrics
	// The caches' lookups by tier: data_files (local copies of
	// object-store files) and bar_minutes (per-file minute aggregates).
	cacheHits, cacheMisses *prometheus.CounterVec
	barHits, barMisses     prometheus.Counter     // resolved once: a bar query looks up every file
	barsFrom               *prometheus.CounterVec // source: table or trades
}

// cacheTiers are the cache_tier values of the cache metrics.
var cacheTiers = []string{"data_files", "bar_minutes"}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := ops.NewMetrics(reg)
	m := &metrics{
		queries:  f.CounterVec("k2_query_executions_total", "Queries by type and outcome (success, error, timeout).", "query_type", "status"),
		duration: f.HistogramVec("k2_query_duration_seconds", "Query time including planning and the pool wait.", ops.LatencyBuckets, "query_type"),
		files:    f.HistogramVec("k2_query_files_scanned", "Data files a query read after pruning.", prometheus.ExponentialBuckets(1, 4, 8), "query_type"),
		rows:     f.HistogramVec("k2_query_rows_returned", "Rows a query returned.", ops.RowBuckets, "query_type"),
		pool:     newPoolMetrics(f),
		cacheHits: f.CounterVec("k2_query_cache_hits_total",
			"Query cache lookups answered from the cache, by tier (data_files: object-store files copied locally; bar_minutes: minute aggregates of a data file).", "cache_tier"),
		cacheMisses: f.CounterVec("k2_query_cache_misses_total",
			"Query cache lookups that had to read the data file, by tier; bar_minutes filled ahead by warming is not counted.", "cache_tier"),
	}
	for _, c := range cacheTiers {
		m.cacheHits.WithLabelValues(c)
		m.cacheMisses.WithLabelValues(c)
	}
	m.barHits, m.barMisses = m.cacheHits.WithLabelValues("bar_minutes"), m.cacheMisses.WithLabelValues("bar_minutes")
	m.barsFrom = f.CounterVec("k2_query_bars_source_total",
		"Bar queries asked of the engine, by where they were answered from: table (a bar table kept by the rollup, the edges of a split query apart) or trades (computed from the trades).", "source")
	m.barsFrom.WithLabelValues("table")
	m.barsFrom.WithLabelValues("trades")
	for _, q := range queryTypes {
		for _, st := range []string{"success", "error", "timeout"} {
			m.queries.WithLabelValues(q, st)
		}
		m.duration.WithLabelValues(q)
		m.files.WithLabelValues(q)
		m.rows.WithLabelValues(q)
	}
	return m
}

// ErrTimeout is returned when a query ran past its deadline and was interrupted.
var ErrTimeout = errors.New("query timed out")

// Options tune the engine: the settings (config.Query: pool, timeouts,
// memory, cache; zero values take config.Default's) and the rest.
type Options struct {
	config.Query
	Threads int // DuckDB threads (default GOMAXPROCS)
	// WorkDir holds DuckDB's spill files and the cache of object-store
	// data files (required; the CLI uses <data-dir>/query).
	WorkDir string
	Logger  *slog.Logger
	// Registerer takes the query and pool metrics (nil: kept to itself).
	Registerer prometheus.Registerer
}

// Engine runs queries against one lake.
type Engine struct {
	lake  *lake.Lake
	opts  Options
	conn  *duckdb.Connector
	db    *sql.DB
	pool  *Pool
	cache *fileCache // nil when the warehouse is local
	log   *slog.Logger
	m     *metrics
	// warmed is the trades snapshot WarmBars last warmed.
	warmed atomic.Int64
	// background are Head's metadata refreshes in flight; loads, the
	// metadata reads under way.
	background sync.WaitGroup
	loads      singleflight.Group

	mu     sync.Mutex
	tables map[string]*tableState
	index  fileIndex
	// minuteCache holds per-minute trade aggregates of data files.
	minuteCache minuteCache
	// footers are the parsed footers of the files read in Go;
	// servedInGo counts the reads answered there (topNInGo).
	footers    footerCache
	spans      spanCache
	servedInGo atomic.Int64
	// duckOnly turns topNInGo off: tests compare the two.
	duckOnly bool
	closed   atomic.Bool
	// sqlSlots bounds the SQL queries running at once (sqlAtOnce).
	sqlSlots chan struct{}
}

// tableState caches a table's metadata until its metadata file changes.
type tableState struct {
	location string
	tbl      *table.Table

	mu    sync.Mutex
	files map[int64][]dataFile // by snapshot id

	headOnce sync.Once
	head     *Head
	// checked is when the catalog last named this metadata file (unix
	// nanoseconds); refreshing, that Head is asking it again.
	checked    atomic.Int64
	refreshing atomic.Bool
}

// New opens an in-process DuckDB database confined to the lake.
func New(l *lake.Lake, opts Options) (*Engine, error) {
	d := config.Default().Query
	config.Or(&opts.PoolSize, d.PoolSize)
	config.Or(&opts.AcquireTimeout, d.AcquireTimeout)
	config.Or(&opts.Timeout, d.Timeout)
	config.Or(&opts.MemoryLimit, d.MemoryLimit)
	if opts.Threads <= 0 {
		opts.Threads = runtime.GOMAXPROCS(0)
	}
	config.Or(&opts.CacheBytes, d.CacheBytes)
	config.Or(&opts.WarmShare, d.WarmShare)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.WorkDir == "" {
		return nil, errors.New("query: WorkDir not set")
	}
	e := &Engine{lake: l, opts: opts, log: opts.Logger, tables: map[string]*tableState{}, sqlSlots: make(chan struct{}, sqlAtOnce)}
	tmp := filepath.Join(opts.WorkDir, "spill")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("query work dir: %w", err)
	}
	allowed := []string{tmp}
	if local := lake.LocalPath(l.Warehouse()); local != "" {
		allowed = append(allowed, local)
	} else {
		dir := filepath.Join(opts.WorkDir, "files")
		c, err := newFileCache(dir, opts.CacheBytes, l.FS)
		if err != nil {
			return nil, err
		}
		e.cache = c
		allowed = append(allowed, dir)
	}
	settings := []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET TimeZone = 'UTC'",
		// Data files never change once committed, so their footers can be cached.
		"SET parquet_metadata_cache = true",
		fmt.Sprintf("SET memory_limit = %s", sqlString(opts.MemoryLimit)),
		fmt.Sprintf("SET threads = %d", opts.Threads),
		fmt.Sprintf("SET temp_directory = %s", sqlString(tmp)),
		fmt.Sprintf("SET allowed_directories = [%s]", sqlList(withSlash(allowed))),
		"SET enable_external_access = false",
		// Nothing a query sends may undo the settings above.
		"SET lock_configuration = true",
	}
	var once sync.Once
	var initErr error
	conn, err := duckdb.NewConnector("", func(ex driver.ExecerContext) error {
		// The settings are database-wide: the first connection applies
		// them (and locks them), later ones inherit them.
		once.Do(func() {
			for _, s := range settings {
				if _, err := ex.ExecContext(context.Background(), s, nil); err != nil {
					initErr = fmt.Errorf("configure DuckDB (%s): %w", s, err)
					return
				}
			}
		})
		return initErr
	})
	if err != nil {
		return nil, fmt.Errorf("open DuckDB: %w", err)
	}
	e.conn = conn
	e.db = sql.OpenDB(conn)
	e.db.SetMaxIdleConns(opts.PoolSize)
	e.m = newMetrics(opts.Registerer)
	if e.cache != nil {
		e.cache.hits, e.cache.misses = e.m.cacheHits.WithLabelValues("data_files"), e.m.cacheMisses.WithLabelValues("data_files")
	}
	e.pool = newPool(e.db, opts.PoolSize, opts.AcquireTimeout, e.m.pool)
	// Open one connection now so a bad setting fails here, not in a query.
	c, err := e.pool.Acquire(context.Background())
	if err != nil {
		e.Close()
		return nil, err
	}
	c.Release()
	return e, nil
}

// Close releases DuckDB.
func (e *Engine) Close() error {
	e.closed.Store(true)
	e.background.Wait()
	e.pool.close()
	e.db.Close()
	return e.conn.Close()
}

// PoolStats reports the connection pool.
func (e *Engine) PoolStats() PoolStats { return e.pool.Stats() }

// AsOf selects the table state a query reads: the current snapshot, a
// snapshot id, or the snapshot that was current at an instant.
type AsOf struct {
	SnapshotID int64
	Time       md.Timestamp
}

func (a AsOf) String() string {
	switch {
	case a.SnapshotID != 0:
		return fmt.Sprintf("snapshot %d", a.SnapshotID)
	case a.Time != 0:
		return "time " + a.Time.String()
	}
	return "current"
}

// load returns the table with its current metadata, reading the metadata
// file only when the catalog points at a new one.
func (e *Engine) load(ctx context.Context, name string) (*tableState, error) {
	loc, err := e.lake.MetadataLocation(ctx, name)
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	e.mu.Lock()
	st := e.tables[name]
	e.mu.Unlock()
	if st != nil && st.location == loc {
		st.checked.Store(now)
		return st, nil
	}
	// Reads arriving together after a commit read its metadata once.
	v, err, _ := e.loads.Do(name+"\x00"+loc, func() (any, error) {
		tbl, err := e.lake.Load(ctx, name)
		if err != nil {
			return nil, err
		}
		st := &tableState{location: tbl.MetadataLocation(), tbl: tbl, files: map[int64][]dataFile{}}
		st.checked.Store(now)
		e.mu.Lock()
		e.tables[name] = st
		e.mu.Unlock()
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tableState), nil
}

// loadFor returns the table as a read as of asOf needs it: a read of a
// snapshot the engine already holds needs no catalog lookup, since a
// snapshot never changes.
func (e *Engine) loadFor(ctx context.Context, name string, asOf AsOf) (*tableState, error) {
	if asOf.SnapshotID != 0 {
		e.mu.Lock()
		st := e.tables[name]
		e.mu.Unlock()
		if st != nil && st.tbl.SnapshotByID(asOf.SnapshotID) != nil {
			return st, nil
		}
	}
	return e.load(ctx, name)
}

// snapshot resolves asOf against the table. A nil snapshot means the table
// was empty at that point.
// SnapshotAt is the id of the snapshot of a table that a read as of asOf
// reads (the current one for a zero asOf); 0 where the table was empty.
func (e *Engine) SnapshotAt(ctx context.Context, name string, asOf AsOf) (int64, error) {
	st, err := e.loadFor(ctx, name, asOf)
	if err != nil {
		return 0, err
	}
	snap, err := e.snapshot(st, name, asOf)
	if snap == nil {
		return 0, err
	}
	return snap.SnapshotID, nil
}

func (e *Engine) snapshot(st *tableState, name string, asOf AsOf) (*table.Snapshot, error) {
	tbl := st.tbl
	switch {
	case asOf.SnapshotID != 0:
		s := tbl.SnapshotByID(asOf.SnapshotID)
		if s == nil {
			return nil, &RequestError{msg: fmt.Sprintf("%s.%s has no snapshot %d (list them with k2 query snapshots)", lake.Namespace, name, asOf.SnapshotID), NotFound: true}
		}
		return s, nil
	case asOf.Time != 0:
		s := tbl.SnapshotAsOf(asOf.Time.Time().UnixMilli(), true)
		if s == nil {
			first := "it has no snapshots"
			if snaps := tbl.Metadata().Snapshots(); len(snaps) > 0 {
				first = "its first snapshot is at " + md.Timestamp(snaps[0].TimestampMs*1000).String()
			}
			return nil, requestError("%s.%s has no snapshot at or before %s: %s", lake.Namespace, name, asOf.Time, first)
		}
		return s, nil
	}
	return tbl.CurrentSnapshot(), nil
}

// Filter narrows a query. Zero values mean "any".
type Filter struct {
	Symbol   string
	Exchange string
	// Symbols and Exchanges match any of several (with Symbol and
	// Exchange, all must hold).
	Symbols, Exchanges []string
	From, To           md.Timestamp // [From, To)
	// Bounds limit decimal columns (price, quantity) to a range.
	Bounds []Bound
	// ExcludeConditions leaves out trades carrying any of these condition codes.
	ExcludeConditions []string
}

// Bound keeps rows whose decimal Column is within [Min, Max]; a nil end
// is open. The column must be one of the table's decimal columns.
type Bound struct {
	Column   string
	Min, Max *md.Decimal
}

// paths returns the local paths DuckDB reads for files, fetching
// object-store files into the cache.
func (e *Engine) paths(ctx context.Context, files []dataFile) ([]string, error) {
	out := make([]string, len(files))
	for i, f := range files {
		if p := lake.LocalPath(f.location); p != "" {
			out[i] = p
			continue
		}
		if e.cache == nil {
			return nil, fmt.Errorf("data file %s is not local and no cache is configured", f.location)
		}
		p, err := e.cache.local(ctx, f.location)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// run executes a query on a pooled connection under the query deadline and
// hands the rows to scan.
func (e *Engine) run(ctx context.Context, sqlText string, args []any, scan func(*sql.Rows) error) error {
	return e.withSlot(ctx, func(ctx context.Context, c *Conn) error {
		rows, err := c.QueryContext(ctx, sqlText, args...)
		if err == nil {
			err = scan(rows)
			if cerr := rows.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = rows.Err()
			}
		}
		return err
	})
}

// withSlot runs fn on a pooled connection under the query deadline.
func (e *Engine) withSlot(ctx context.Context, fn func(context.Context, *Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	c, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	err = fn(ctx, c)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s (raise --query-timeout or narrow the query)", ErrTimeout, e.opts.Timeout)
	}
	return err
}

// runInGo runs a read done in Go (no DuckDB) as run runs a query: it
// holds a pool slot, so the pool still bounds the reads at once and a
// saturated pool sheds them, under the same deadline.
func (e *Engine) runInGo(ctx context.Context, fn func(context.Context) error) error {
	if e.closed.Load() {
		return errors.New("query engine closed")
	}
	return e.withSlot(ctx, func(ctx context.Context, _ *Conn) error { return fn(ctx) })
}

// observe records a query's metrics.
func (e *Engine) observe(kind string, start time.Time, files, rows int, err error) {
	status := "success"
	switch {
	case errors.Is(err, ErrTimeout):
		status = "timeout"
	case err != nil:
		status = "error"
	}
	e.m.queries.WithLabelValues(kind, status).Inc()
	e.m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err == nil {
		e.m.files.WithLabelValues(kind).Observe(float64(files))
		e.m.rows.WithLabelValues(kind).Observe(float64(rows))
	}
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = sqlString(s)
	}
	return strings.Join(q, ", ")
}

func withSlash(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = strings.TrimSuffix(d, "/") + "/"
	}
	return out
}

// readParquet is the FROM clause over the given files.
func readParquet(paths []string) string {
	return "read_parquet([" + sqlList(paths) + "], hive_partitioning = false)"
}

// sortFiles orders files for a top-N read: newest data first for desc,
// oldest first for asc.
func sortFiles(files []dataFile, desc bool) {
	sort.SliceStable(files, func(i, j int) bool {
		if desc {
			return files[i].maxT > files[j].maxT
		}
		return files[i].minT < files[j].minT
	})
}

// RequestError is a request the engine refuses as asked (an unknown
// snapshot, an empty range, a limit out of bounds), as opposed to a
// failure to answer it: the API answers it 400, not 500.
type RequestError struct {
	msg string
	// NotFound: the request names something the table does not have (a
	// snapshot id).
	NotFound bool
}

func (e *RequestError) Error() string { return e.msg }

func requestError(format string, args ...any) error {
	return &RequestError{msg: fmt.Sprintf(format, args...)}
}
