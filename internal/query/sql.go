package query

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/record"
)

// The SQL route's bounds.
const (
	// DefaultSQLRows is the rows a SQL query returns when it asks for no
	// other limit (--api-sql-rows).
	DefaultSQLRows = 10_000
	// MaxSQLBytes bounds the SQL text.
	MaxSQLBytes = 100 << 10
	// DefaultSQLMemory is a sandbox's DuckDB memory limit (--api-sql-memory).
	DefaultSQLMemory = "1GB"
	// sqlAtOnce bounds the SQL queries running at once: each has a DuckDB
	// database, and so a memory limit, of its own.
	sqlAtOnce = 2
)

// SQLQuery is a caller's SQL over views of the tables.
type SQLQuery struct {
	// Text is one query: SELECT, WITH … SELECT, VALUES, TABLE t, FROM t …,
	// DESCRIBE t or SUMMARIZE t. A trailing semicolon is allowed.
	Text string
	// AsOf selects the tables' state. A snapshot id belongs to one table;
	// the others are shown as they stood when it was committed, as Stats
	// does, so the views are one consistent picture of the lake.
	AsOf AsOf
	// Limit is the rows returned at most, 1 … MaxLimit (0: DefaultSQLRows).
	Limit int
	// Timeout bounds the whole query, the set-up of its sandbox included
	// (0: the engine's query timeout); MemoryLimit is the sandbox's DuckDB
	// memory limit ("": DefaultSQLMemory).
	Timeout     time.Duration
	MemoryLimit string
}

// SQLColumn is a result column with its DuckDB type.
type SQLColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// SQLResult is the answer to a SQLQuery. Values are ready for JSON:
// DECIMAL, HUGEINT and other exact numbers beyond float64 as strings of
// their exact value, timestamps as RFC 3339 UTC with microseconds, lists
// and structs as JSON arrays and objects, maps as objects (or, with keys
// that are not text, as [{"key","value"}] lists), BLOBs as base64.
type SQLResult struct {
	Columns []SQLColumn `json:"columns"`
	Rows    [][]any     `json:"rows"`
	// Truncated: the query had more rows than Limit.
	Truncated bool `json:"-"`
	// Snapshots is the snapshot each view read, by table (0: the table
	// was empty then).
	Snapshots map[string]int64 `json:"-"`
	// Files is the data files the views cover.
	Files int `json:"-"`
}

// SQLError is DuckDB's refusal of the SQL itself: it does not parse or
// bind, is not one query, asks for something the sandbox forbids, or
// needs more memory than the limit. It is a RequestError.
type SQLError struct{ RequestError }

func (e *SQLError) Unwrap() error { return &e.RequestError }

func sqlError(format string, args ...any) error {
	return &SQLError{RequestError{msg: fmt.Sprintf(format, args...)}}
}

// SQL runs q in a DuckDB database of its own: views named after the
// tables over exactly the data files of the chosen snapshots, then the
// database is sealed (it may read those files and nothing else, write
// none, load no extension, and no setting can change) before the caller's
// text, checked by DuckDB's parser to be one query, runs under the row,
// time and memory limits.
//
// A database per query costs about 10 ms to open and seal (TestSQL logs
// it; more on a loaded machine) and keeps queries apart: none shares
// another's memory limit, and what a query may still change inside its
// own database (table functions such as enable_logging or
// disable_peg_parser act despite the lock) dies with it. A change of
// snapshot needs no invalidation either.
func (e *Engine) SQL(ctx context.Context, q SQLQuery) (res *SQLResult, err error) {
	start := time.Now()
	files, n := 0, 0
	defer func() { e.observe("sql", start, files, n, err) }()
	if err := q.validate(e.opts.Timeout); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, q.Timeout)
	defer cancel()
	timedOut := func(err error) error {
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w after %s (the SQL route's limit, --api-sql-timeout; narrow the query)", ErrTimeout, q.Timeout)
		}
		return err
	}
	select {
	case e.sqlSlots <- struct{}{}:
		defer func() { <-e.sqlSlots }()
	case <-ctx.Done():
		return nil, timedOut(ctx.Err())
	}
	views, err := e.sqlViews(ctx, q.AsOf)
	if err != nil {
		return nil, timedOut(err)
	}
	planned := time.Now()
	sb, err := e.openSandbox(ctx, views, q.MemoryLimit)
	if err != nil {
		return nil, timedOut(err)
	}
	defer sb.close()
	sealed := time.Now()
	res, err = sb.query(ctx, q.Text, q.Limit, q.MemoryLimit)
	e.log.Debug("SQL query", "plan_ms", planned.Sub(start).Milliseconds(), "sandbox_ms", sealed.Sub(planned).Milliseconds(),
		"run_ms", time.Since(sealed).Milliseconds(), "error", err)
	if err != nil {
		return nil, timedOut(err)
	}
	res.Snapshots = map[string]int64{}
	for _, v := range views {
		res.Snapshots[v.name] = v.snapshot
		res.Files += len(v.paths)
	}
	files, n = res.Files, len(res.Rows)
	return res, nil
}

func (q *SQLQuery) validate(timeout time.Duration) error {
	switch {
	case strings.TrimSpace(q.Text) == "":
		return sqlError("no SQL given")
	case len(q.Text) > MaxSQLBytes:
		return sqlError("the SQL is %d bytes, more than the %d allowed", len(q.Text), MaxSQLBytes)
	case !utf8.ValidString(q.Text):
		return sqlError("the SQL is not UTF-8")
	case strings.ContainsRune(q.Text, 0):
		return sqlError("the SQL holds a NUL character")
	}
	if q.Limit == 0 {
		q.Limit = DefaultSQLRows
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return requestError("limit %d is outside 1 … %d", q.Limit, MaxLimit)
	}
	if q.Timeout <= 0 {
		q.Timeout = timeout
	}
	if q.MemoryLimit == "" {
		q.MemoryLimit = DefaultSQLMemory
	}
	if _, err := config.ParseBytes(q.MemoryLimit); err != nil {
		return fmt.Errorf("SQL memory limit: %w", err)
	}
	return nil
}

// sqlView is one table's view: its CREATE VIEW and the files it reads.
type sqlView struct {
	name     string
	create   string
	paths    []string
	snapshot int64
}

// sqlViews builds a view of every table as of asOf over exactly the data
// files of its snapshot. Every name and path in the text is K2's own,
// quoted by sqlString and sqlIdent.
func (e *Engine) sqlViews(ctx context.Context, asOf AsOf) ([]sqlView, error) {
	names, states, snaps, err := e.tablesAt(ctx, asOf)
	if err != nil {
		return nil, err
	}
	out := make([]sqlView, len(names))
	for i, name := range names {
		def, err := e.lake.Def(name)
		if err != nil {
			return nil, err
		}
		st, snap := states[i], snaps[i]
		sc := schemaOf(st.tbl, snap)
		v := sqlView{name: name}
		var files []dataFile
		if snap != nil {
			v.snapshot = snap.SnapshotID
			if files, err = e.plan(ctx, st, snap, def.Time, Filter{}); err != nil {
				return nil, err
			}
		}
		if v.paths, err = e.paths(ctx, files); err != nil {
			return nil, err
		}
		cols := make([]string, 0, sc.NumFields())
		for _, f := range sc.Fields() {
			if len(v.paths) > 0 {
				cols = append(cols, sqlIdent(f.Name))
				continue
			}
			// No file to read the columns from: the same columns, no row.
			t, err := duckType(f.Type)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", name, f.Name, err)
			}
			cols = append(cols, "CAST(NULL AS "+t+") AS "+sqlIdent(f.Name))
		}
		from := " WHERE false"
		if len(v.paths) > 0 {
			from = " FROM " + readParquet(v.paths)
		}
		v.create = "CREATE VIEW " + sqlIdent(name) + " AS SELECT " + strings.Join(cols, ", ") + from
		out[i] = v
	}
	return out, nil
}

// schemaOf is the schema snap was written with (the table's current one
// when snap is nil or names none).
func schemaOf(tbl *table.Table, snap *table.Snapshot) *iceberg.Schema {
	if snap != nil && snap.SchemaID != nil {
		for _, s := range tbl.Metadata().Schemas() {
			if s.ID == *snap.SchemaID {
				return s
			}
		}
	}
	return tbl.Schema()
}

// duckType is the DuckDB type DuckDB reads an Iceberg column's Parquet as.
func duckType(t iceberg.Type) (string, error) {
	switch t := t.(type) {
	case iceberg.BooleanType:
		return "BOOLEAN", nil
	case iceberg.Int32Type:
		return "INTEGER", nil
	case iceberg.Int64Type:
		return "BIGINT", nil
	case iceberg.Float32Type:
		return "FLOAT", nil
	case iceberg.Float64Type:
		return "DOUBLE", nil
	case iceberg.DecimalType:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision(), t.Scale()), nil
	case iceberg.DateType:
		return "DATE", nil
	case iceberg.TimeType:
		return "TIME", nil
	case iceberg.TimestampType:
		return "TIMESTAMP", nil
	case iceberg.TimestampTzType:
		return "TIMESTAMPTZ", nil
	case iceberg.StringType:
		return "VARCHAR", nil
	case iceberg.UUIDType:
		return "UUID", nil
	case iceberg.BinaryType, iceberg.FixedType:
		return "BLOB", nil
	case *iceberg.ListType:
		el, err := duckType(t.Element)
		return el + "[]", err
	case *iceberg.MapType:
		k, err := duckType(t.KeyType)
		if err != nil {
			return "", err
		}
		v, err := duckType(t.ValueType)
		return "MAP(" + k + ", " + v + ")", err
	case *iceberg.StructType:
		fields := make([]string, len(t.FieldList))
		for i, f := range t.FieldList {
			ft, err := duckType(f.Type)
			if err != nil {
				return "", err
			}
			fields[i] = sqlIdent(f.Name) + " " + ft
		}
		return "STRUCT(" + strings.Join(fields, ", ") + ")", nil
	}
	return "", fmt.Errorf("no DuckDB type for Iceberg type %s", t)
}

func sqlIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// sandbox is a DuckDB database holding the views and nothing else, sealed.
type sandbox struct {
	connector *duckdb.Connector
	conn      *duckdb.Conn
}

// openSandbox opens an in-memory DuckDB database, creates the views and
// seals it. The order matters: DuckDB refuses to change the temporary
// directory once external access is off, and nothing at all once the
// configuration is locked.
func (e *Engine) openSandbox(ctx context.Context, views []sqlView, memoryLimit string) (_ *sandbox, err error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open the SQL sandbox: %w", err)
	}
	sb := &sandbox{connector: connector}
	defer func() {
		if err != nil {
			sb.close()
		}
	}()
	dc, err := connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the SQL sandbox: %w", err)
	}
	sb.conn = dc.(*duckdb.Conn)
	var paths []string
	for _, v := range views {
		paths = append(paths, v.paths...)
	}
	allowed := "[]"
	if len(paths) > 0 {
		allowed = "[" + sqlList(paths) + "]"
	}
	steps := []string{
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET TimeZone = 'UTC'",
		fmt.Sprintf("SET threads = %d", e.opts.Threads),
		// Nothing spills: past the memory limit a query fails.
		"SET temp_directory = ''",
		// The query is bound twice (see query): read each footer once.
		"SET parquet_metadata_cache = true",
	}
	for _, v := range views {
		steps = append(steps, v.create)
	}
	steps = append(steps,
		// Exactly the views' files may be read, nothing written.
		"SET allowed_paths = "+allowed,
		"SET allowed_directories = []",
		"SET enable_external_access = false",
		"SET memory_limit = "+sqlString(memoryLimit),
		// Nothing the caller sends may undo the settings above.
		"SET lock_configuration = true",
	)
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := sb.conn.ExecContext(ctx, s, nil); err != nil {
			return nil, fmt.Errorf("set up the SQL sandbox (%.80s): %w", s, err)
		}
	}
	return sb, nil
}

func (sb *sandbox) close() {
	if sb.conn != nil {
		sb.conn.Close()
	}
	sb.connector.Close()
}

// check has DuckDB's parser read text: it must be exactly one statement,
// and one a query (DuckDB serializes only SELECT statements to JSON).
// Nothing is bound or run.
func (sb *sandbox) check(ctx context.Context, text string) error {
	rows, err := sb.conn.QueryContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", []driver.NamedValue{{Ordinal: 1, Value: text}})
	if err != nil {
		return err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		return err
	}
	s, _ := v[0].(string)
	var parsed struct {
		Error        bool              `json:"error"`
		ErrorType    string            `json:"error_type"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(s), &parsed); err != nil {
		return fmt.Errorf("read DuckDB's parse of the SQL: %w", err)
	}
	switch {
	case parsed.Error && parsed.ErrorType == "not implemented":
		return sqlError("only a query may run (SELECT, WITH … SELECT, VALUES, TABLE, FROM …, DESCRIBE, SUMMARIZE): %s", parsed.ErrorMessage)
	case parsed.Error:
		return sqlError("the SQL does not parse: %s", parsed.ErrorMessage)
	case len(parsed.Statements) != 1:
		return sqlError("one statement at a time: the SQL holds %d", len(parsed.Statements))
	}
	return nil
}

// query checks text and runs it under the row limit. DuckDB materializes
// a result, so the limit is a LIMIT around the query rather than a stop
// in the middle of reading it.
func (sb *sandbox) query(ctx context.Context, text string, limit int, memoryLimit string) (*SQLResult, error) {
	if err := sb.check(ctx, text); err != nil {
		return nil, userError(err, memoryLimit)
	}
	// Bound as written first, so that DuckDB's errors point into the
	// caller's text. Prepare, unlike PrepareContext, refuses more than one
	// statement rather than running all but the last; nothing runs here.
	if err := sb.prepare(text, func(stmt *duckdb.Stmt) error {
		if stmt.NumInput() > 0 {
			return sqlError("the SQL has parameters (?, $1, $name), which this route has no values for: write the values in")
		}
		return nil
	}); err != nil {
		return nil, userError(err, memoryLimit)
	}
	// One query alone is one as a subquery; the newline ends a trailing
	// line comment.
	wrapped := "SELECT * FROM (\n" + strings.TrimRight(text, " \t\r\n\f;") + "\n) LIMIT ?"
	var res *SQLResult
	err := sb.prepare(wrapped, func(stmt *duckdb.Stmt) error {
		var err error
		res, err = sb.run(ctx, stmt, limit)
		return err
	})
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypeParser {
		return nil, sqlError("the query parses alone but not as a subquery (a semicolon before a trailing comment?): %s", de.Msg)
	}
	if err != nil {
		return nil, userError(err, memoryLimit)
	}
	return res, nil
}

// prepare prepares one statement, checks it is a query and hands it to use.
func (sb *sandbox) prepare(text string, use func(*duckdb.Stmt) error) error {
	ds, err := sb.conn.Prepare(text)
	if err != nil {
		return err
	}
	stmt := ds.(*duckdb.Stmt)
	defer stmt.Close()
	if t, err := stmt.StatementType(); err != nil || t != duckdb.STATEMENT_TYPE_SELECT {
		return sqlError("only a query may run")
	}
	return use(stmt)
}

// run executes a prepared query, reading at most limit rows.
func (sb *sandbox) run(ctx context.Context, stmt *duckdb.Stmt, limit int) (*SQLResult, error) {
	dr, err := stmt.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: int64(limit) + 1}})
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	names := dr.Columns()
	res := &SQLResult{Columns: make([]SQLColumn, len(names)), Rows: [][]any{}}
	typed, _ := dr.(driver.RowsColumnTypeDatabaseTypeName)
	for i, n := range names {
		res.Columns[i].Name = n
		if typed != nil {
			res.Columns[i].Type = typed.ColumnTypeDatabaseTypeName(i)
		}
	}
	vals := make([]driver.Value, len(names))
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := dr.Next(vals)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(res.Rows) == limit {
			res.Truncated = true
			break
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = jsonValue(v, res.Columns[i].Type)
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// userError tells DuckDB's refusals of the caller's SQL (a SQLError, 400
// in the API) from its failures (DuckDB's internal and fatal errors).
func userError(err error, memoryLimit string) error {
	var se *SQLError
	if errors.As(err, &se) {
		return err
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		if strings.Contains(err.Error(), "unsupported data type") {
			return sqlError("a column is of a type the SQL route cannot return (cast it to VARCHAR): %v", err)
		}
		return err
	}
	switch de.Type {
	case duckdb.ErrorTypeInternal, duckdb.ErrorTypeFatal, duckdb.ErrorTypeInterrupt:
		return err
	case duckdb.ErrorTypeOutOfMemory:
		return sqlError("the query needs more memory than the SQL route allows (%s, --api-sql-memory; nothing spills to disk): narrow it or aggregate more: %s", memoryLimit, de.Msg)
	case duckdb.ErrorTypePermission:
		return sqlError("not allowed: the SQL route reads only the views %s: %s", strings.Join(record.TableNames(), ", "), de.Msg)
	}
	return sqlError("%s", de.Msg)
}

// jsonValue turns a value of DuckDB's driver into one encoding/json
// writes exactly.
func jsonValue(v any, typ string) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return x
	case float32:
		return jsonFloat(float64(x), 32)
	case float64:
		return jsonFloat(x, 64)
	case duckdb.Decimal:
		return x.String()
	case *big.Int:
		return x.String()
	case time.Time:
		return timeText(x, typ)
	case []byte:
		if typ == "UUID" && len(x) == 16 {
			var u duckdb.UUID
			copy(u[:], x)
			return u.String()
		}
		return x // base64
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case duckdb.Interval:
		return map[string]any{"months": x.Months, "days": x.Days, "micros": x.Micros}
	case duckdb.Bit:
		return x.String()
	case duckdb.Union:
		return map[string]any{"tag": x.Tag, "value": jsonValue(x.Value, "")}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e, elemType(typ))
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e, "")
		}
		return out
	case duckdb.OrderedMap:
		keys, values := x.Keys(), x.Values()
		textKeys := true
		for _, k := range keys {
			if _, ok := k.(string); !ok {
				textKeys = false
			}
		}
		if textKeys {
			out := make(map[string]any, len(keys))
			for i, k := range keys {
				out[k.(string)] = jsonValue(values[i], "")
			}
			return out
		}
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = map[string]any{"key": jsonValue(k, ""), "value": jsonValue(values[i], "")}
		}
		return out
	}
	return fmt.Sprint(v)
}

// jsonFloat is a float as JSON has it; NaN and the infinities, which JSON
// lacks, as DuckDB spells them.
func jsonFloat(f float64, bits int) any {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if bits == 32 {
		return float32(f)
	}
	return f
}

// timeText writes a date as YYYY-MM-DD, a time of day as HH:MM:SS.ffffff
// and an instant as RFC 3339 in UTC with microseconds (nanoseconds for
// TIMESTAMP_NS).
func timeText(t time.Time, typ string) string {
	switch typ {
	case "DATE":
		return t.Format(time.DateOnly)
	case "TIME":
		return t.Format("15:04:05.000000")
	case "TIMETZ", "TIME WITH TIME ZONE":
		return t.Format("15:04:05.000000Z07:00")
	case "TIMESTAMP_NS":
		return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// elemType is the element type of a list type name ("DATE[]" → "DATE").
func elemType(typ string) string {
	if t, ok := strings.CutSuffix(typ, "[]"); ok {
		return t
	}
	return ""
}
