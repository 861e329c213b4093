// Package lake keeps K2's market data in Apache Iceberg tables: it opens the
// catalog (SQLite embedded, PostgreSQL in production) and the warehouse
// (a local folder or S3), declares the tables, writes batches as single
// atomic commits with a transaction log, and maintains the tables
// (compaction, snapshot expiry, orphan removal).
//
// Data enters through Writer; everything else reads through iceberg-go's
// scan planning, so any Iceberg engine sees exactly what K2 sees.
package lake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers s3:// for the warehouse
	"github.com/apache/iceberg-go/table"
	"github.com/aws/smithy-go"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL catalog driver
	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // embedded SQLite catalog driver, no cgo
)

// CatalogName is the catalog_name column value K2 uses in the SQL catalog
// tables; PyIceberg, Spark and Trino must open the catalog under this name.
const CatalogName = "k2"

// S3Options locate an S3-compatible object store. Credentials come from the
// usual AWS variables and files unless set here.
type S3Options struct {
	Endpoint  string // e.g. http://127.0.0.1:9000; empty for AWS
	Region    string
	PathStyle bool // path-style addressing (MinIO, versitygw); implied by a custom endpoint
	AccessKey string
	SecretKey string
}

// Options say where the catalog and warehouse are.
type Options struct {
	// Catalog is a SQLite file path (or sqlite:///path), or a PostgreSQL URL
	// postgres://user:pass@host:port/db.
	Catalog string
	// Warehouse is a local directory or s3://bucket/prefix.
	Warehouse string
	S3        S3Options
	// Tables are the tables to open, created where missing (the record
	// kinds' declarations: record.Tables()).
	Tables []TableDef
	// SymbolPartition is used when a table is created; existing tables keep theirs.
	SymbolPartition SymbolPartition
	Logger          *slog.Logger
	// Registerer takes the lake's metrics (nil: kept to itself).
	Registerer prometheus.Registerer
}

// Lake is an open catalog and warehouse with K2's tables in it.
type Lake struct {
	opts      Options
	db        *sql.DB
	dialect   sqlcat.SupportedDialect
	cat       *sqlcat.Catalog
	props     iceberg.Properties
	warehouse string // URI form: file:///abs/dir or s3://bucket/prefix
	log       *slog.Logger
	m         *metrics

	mu   sync.Mutex
	defs map[string]TableDef
}

// Open connects to the catalog and warehouse and creates the namespace and
// tables that are missing. Errors say which part is unreachable.
func Open(ctx context.Context, opts Options) (*Lake, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Lake{opts: opts, log: opts.Logger, defs: map[string]TableDef{}, m: newMetrics(opts.Registerer, opts.Tables)}
	if err := l.openWarehouse(ctx); err != nil {
		return nil, err
	}
	if err := l.openCatalog(ctx); err != nil {
		return nil, err
	}
	if err := l.ensureTables(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lake) openWarehouse(ctx context.Context) error {
	w := l.opts.Warehouse
	if w == "" {
		return errors.New("warehouse: not set (a directory or s3://bucket/prefix)")
	}
	l.props = iceberg.Properties{}
	if strings.HasPrefix(w, "s3://") || strings.HasPrefix(w, "s3a://") {
		u, err := url.Parse(w)
		if err != nil || u.Host == "" {
			return fmt.Errorf("warehouse %q: want s3://bucket/prefix", w)
		}
		l.warehouse = "s3://" + u.Host + "/" + strings.Trim(u.Path, "/")
		l.warehouse = strings.TrimSuffix(l.warehouse, "/")
		l.props = s3Props(l.opts.S3)
		// Prove the bucket answers and we may write, now, with a clear
		// message, rather than on the first commit.
		if err := l.probeWarehouse(ctx); err != nil {
			return err
		}
	} else {
		dir := strings.TrimPrefix(w, "file://")
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("warehouse %q: %w", w, err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("warehouse %s: %w", abs, err)
		}
		// A URI, escaped as iceberg-go escapes every location it derives
		// from it. Engines that take a location literally (PyIceberg,
		// Java's HadoopFileIO) then look elsewhere, so say so.
		u := &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
		l.warehouse = u.String()
		if u.EscapedPath() != u.Path {
			l.log.Warn("the warehouse path has characters a URI escapes; K2 reads it, but PyIceberg and Java's Iceberg will not find its files: choose a path of plain ASCII letters, digits and -._/ if other engines read this lake",
				"warehouse", abs)
		}
	}
	l.props["warehouse"] = l.warehouse
	return nil
}

// s3Props are the storage properties of an S3 location.
func s3Props(s3 S3Options) iceberg.Properties {
	props := iceberg.Properties{}
	if s3.Endpoint != "" {
		props[iceio.S3EndpointURL] = s3.Endpoint
	}
	if s3.Region != "" {
		props[iceio.S3Region] = s3.Region
	} else if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		props[iceio.S3Region] = "us-east-1"
	}
	if s3.Endpoint == "" && s3.PathStyle {
		props[iceio.S3ForceVirtualAddressing] = "false"
	}
	if s3.AccessKey != "" {
		props[iceio.S3AccessKeyID] = s3.AccessKey
		props[iceio.S3SecretAccessKey] = s3.SecretKey
	}
	return props
}

// OpenStorage opens a location outside the lake (a backup): a directory,
// or s3://bucket/prefix reached with s3's settings.
func OpenStorage(ctx context.Context, location string, s3 S3Options) (iceio.IO, error) {
	if strings.HasPrefix(location, "s3://") || strings.HasPrefix(location, "s3a://") {
		props := s3Props(s3)
		fs, err := iceio.LoadFS(s3Context(ctx, props, slog.New(slog.DiscardHandler)), props, location)
		if err != nil {
			return nil, fmt.Errorf("%s: %s", location, storageError(err))
		}
		return fs, nil
	}
	return iceio.LocalFS{}, nil
}

// probeWarehouse writes and deletes a small object under the warehouse.
func (l *Lake) probeWarehouse(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	fs, err := iceio.LoadFS(s3Context(ctx, l.props, l.log), l.props, l.warehouse)
	if err != nil {
		return fmt.Errorf("warehouse %s: %w", l.warehouse, err)
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return fmt.Errorf("warehouse %s: storage is read-only", l.warehouse)
	}
	probe := l.warehouse + "/.k2-probe"
	if err := wfs.WriteFile(probe, []byte("k2")); err != nil {
		return fmt.Errorf("warehouse %s: cannot write (check the bucket, endpoint and credentials): %s", l.warehouse, storageError(err))
	}
	if err := wfs.Remove(probe); err != nil {
		return fmt.Errorf("warehouse %s: cannot delete: %s", l.warehouse, storageError(err))
	}
	return nil
}

func (l *Lake) openCatalog(ctx context.Context) error {
	c := l.opts.Catalog
	var dsn, driver, where string
	switch {
	case strings.HasPrefix(c, "postgres://") || strings.HasPrefix(c, "postgresql://"):
		driver, dsn, l.dialect = "pgx", c, sqlcat.Postgres
		where = redactURL(c)
	case c != "":
		path := strings.TrimPrefix(strings.TrimPrefix(c, "sqlite://"), "file:")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("catalog %s: %w", path, err)
		}
		// WAL and a busy timeout on every pooled connection, so a loader and
		// the API can share the file without "database is locked".
		driver, l.dialect, where = "sqlite", sqlcat.SQLite, path
		dsn = "file:" + path + "?_pragma=busy_timeout(15000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	default:
		return errors.New("catalog: not set (a SQLite file or postgres://...)")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return fmt.Errorf("catalog %s: %w", where, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return fmt.Errorf("catalog %s is unreachable: %s", where, oneLine(err))
	}
	cat, err := sqlcat.NewCatalog(CatalogName, db, l.dialect, l.props)
	if err != nil {
		db.Close()
		return fmt.Errorf("catalog %s: %s", where, oneLine(err))
	}
	l.db, l.cat = db, cat
	return nil
}

func (l *Lake) ensureTables(ctx context.Context) error {
	ns := table.Identifier{Namespace}
	if err := l.cat.CreateNamespace(ctx, ns, iceberg.Properties{"comment": "K2 market data"}); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}
	if len(l.opts.Tables) == 0 {
		return errors.New("lake: no tables to open")
	}
	for _, def := range l.opts.Tables {
		if err := def.layout(l.opts.SymbolPartition); err != nil {
			return err
		}
		loc := l.warehouse + "/" + Namespace + "/" + def.Name
		_, err := l.cat.CreateTable(ctx, def.Identifier(), def.Schema,
			catalog.WithLocation(loc),
			catalog.WithPartitionSpec(&def.Spec),
			catalog.WithSortOrder(def.SortOrder),
			catalog.WithProperties(baseProperties(def.Doc, def.Key)))
		switch {
		case err == nil:
			l.log.Info("table created", "table", def.FullName(), "location", loc, "partition", specString(def.Spec))
		case errors.Is(err, catalog.ErrTableAlreadyExists):
		default:
			return fmt.Errorf("create table %s: %w", def.FullName(), err)
		}
		tbl, err := l.cat.LoadTable(ctx, def.Identifier())
		if err != nil {
			return fmt.Errorf("load table %s: %w", def.FullName(), err)
		}
		if tbl, err = l.migrate(ctx, def, tbl); err != nil {
			return err
		}
		if !sameColumns(tbl.Schema().Fields(), def.Schema.Fields()) {
			return fmt.Errorf("table %s has a schema this version of K2 does not write:\n%s", def.FullName(), tbl.Schema())
		}
		l.m.observe(def.Name, tbl)
		// A table keeps the field ids and partitioning it was created with.
		def.Schema, def.Spec, def.SortOrder = tbl.Schema(), tbl.Spec(), tbl.SortOrder()
		l.defs[def.Name] = def
	}
	return nil
}

// Def returns a table's declaration.
func (l *Lake) Def(name string) (TableDef, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.defs[name]
	if !ok {
		return TableDef{}, fmt.Errorf("unknown table %q (tables: %s)", name, strings.Join(l.tableNames(), ", "))
	}
	return d, nil
}

// tableNames lists the open tables in declaration order.
func (l *Lake) tableNames() []string {
	names := make([]string, len(l.opts.Tables))
	for i, d := range l.opts.Tables {
		names[i] = d.Name
	}
	return names
}

// Load reads a table's current metadata from the catalog.
func (l *Lake) Load(ctx context.Context, name string) (*table.Table, error) {
	d, err := l.Def(name)
	if err != nil {
		return nil, err
	}
	t, err := l.cat.LoadTable(ctx, d.Identifier())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", d.FullName(), err)
	}
	return t, nil
}

// table is a table's declaration and current metadata.
func (l *Lake) table(ctx context.Context, name string) (TableDef, *table.Table, error) {
	def, err := l.Def(name)
	if err != nil {
		return def, nil, err
	}
	tbl, err := l.Load(ctx, name)
	return def, tbl, err
}

// MetadataLocation returns the table's current metadata file without
// reading it: one indexed row of the catalog, so readers can check for a
// new snapshot on every query for the price of a primary-key lookup.
func (l *Lake) MetadataLocation(ctx context.Context, name string) (string, error) {
	q := "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?"
	if l.dialect == sqlcat.Postgres {
		q = "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3"
	}
	var loc sql.NullString
	if err := l.db.QueryRowContext(ctx, q, CatalogName, Namespace, name).Scan(&loc); err != nil {
		return "", fmt.Errorf("catalog lookup %s.%s: %w", Namespace, name, err)
	}
	return loc.String, nil
}

// Warehouse returns the warehouse URI (file:///... or s3://...).
func (l *Lake) Warehouse() string { return l.warehouse }

// FS opens the warehouse storage.
func (l *Lake) FS(ctx context.Context) (iceio.IO, error) {
	return iceio.LoadFS(ctx, l.props, l.warehouse)
}

// Close releases the catalog connection.
func (l *Lake) Close() error {
	if l.cat != nil {
		l.cat.Close()
	}
	if l.db != nil {
		return l.db.Close()
	}
	return nil
}

// LocalPath returns the filesystem path of a file:// location, or "" for
// object-store locations. A location is a URI and the file is stored under
// the unescaped path, as iceberg-go writes and reads it (a warehouse path
// with a space; partition values in files written before K2 escaped them
// itself, symbol=%C3%89THUSDT).
func LocalPath(location string) string {
	if p, ok := strings.CutPrefix(location, "file://"); ok {
		if u, err := url.Parse(location); err == nil {
			return u.Path
		}
		return p
	}
	if strings.HasPrefix(location, "/") {
		return location
	}
	return ""
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<catalog url>"
	}
	return u.Redacted()
}

// storageError names an object-store failure by the store's own error code
// ("AccessDenied: Access Denied") rather than the SDK's request dump.
func storageError(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return oneLine(err)
}

// oneLine flattens multi-line driver and SDK errors so a CLI prints one line.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// specString prints a partition spec on one line: "day(timestamp), identity(symbol)".
func specString(spec iceberg.PartitionSpec) string {
	var parts []string
	for _, f := range spec.Fields() {
		parts = append(parts, f.Name+"="+f.Transform.String())
	}
	if len(parts) == 0 {
		return "unpartitioned"
	}
	return strings.Join(parts, ", ")
}
