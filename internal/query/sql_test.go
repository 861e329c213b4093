package query_test

import (
	"context"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/testutil"
)

// bhpTotals reads the raw ASX trade file: trades, and the exact sums of
// price and quantity.
func bhpTotals(t *testing.T) (n int, price, qty *big.Rat) {
	t.Helper()
	b, err := os.ReadFile(testutil.Data(t, "asx", "trades", "7078.csv"))
	if err != nil {
		t.Fatal(err)
	}
	price, qty = new(big.Rat), new(big.Rat)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(strings.TrimRight(line, "\r"), ",")
		p, ok1 := new(big.Rat).SetString(f[2])
		q, ok2 := new(big.Rat).SetString(f[3])
		if !ok1 || !ok2 {
			t.Fatalf("line %q", line)
		}
		price.Add(price, p)
		qty.Add(qty, q)
		n++
	}
	return n, price, qty
}

func sameRat(s any, r *big.Rat) bool {
	text, ok := s.(string)
	if !ok {
		return false
	}
	v, ok := new(big.Rat).SetString(text)
	return ok && v.Cmp(r) == 0
}

// The SQL route over a lake holding a Binance file (the first trades
// snapshot) and then the ASX sample.
func TestSQL(t *testing.T) {
	ctx := context.Background()
	tl := newTestLake(t, lake.Options{})
	vision := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv")
	tl.load(t, "binance-csv", func(ld *loader.Loader) error { return ld.Load(ctx, format(t, "binance-csv"), vision) })
	snaps, err := tl.engine.Snapshots(ctx, "trades")
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
	first := snaps[0].SnapshotID
	tl.load(t, "asx", func(ld *loader.Loader) error { return ld.Load(ctx, format(t, "asx"), testutil.Data(t, "asx")) })
	sqlq := func(text string) (*query.SQLResult, error) {
		return tl.engine.SQL(ctx, query.SQLQuery{Text: text})
	}

	t.Run("exact values", func(t *testing.T) {
		n, price, qty := bhpTotals(t)
		res, err := sqlq(`SELECT count(*) AS n, sum(price) AS price, sum(quantity) AS qty FROM trades WHERE symbol = 'BHP' AND exchange = 'ASX'`)
		if err != nil {
			t.Fatal(err)
		}
		row := res.Rows[0]
		if len(res.Rows) != 1 || row[0] != int64(n) || !sameRat(row[1], price) || !sameRat(row[2], qty) || res.Truncated {
			t.Fatalf("count, sums %v; from the file %d %s %s", row, n, price.FloatString(8), qty.FloatString(8))
		}
		if c := res.Columns; c[0].Name != "n" || c[0].Type != "BIGINT" || !strings.HasPrefix(c[1].Type, "DECIMAL(38,") {
			t.Errorf("columns %+v", c)
		}
		// 03/10/2014,07:57:14.754,36.667,20000,3,X, — Sydney is UTC+11 in March.
		res, err = sqlq(`SELECT "timestamp", price, quantity, trade_conditions, vendor_data, source_sequence
			FROM trades WHERE symbol = 'BHP' ORDER BY "timestamp", source_sequence LIMIT 1;`)
		if err != nil {
			t.Fatal(err)
		}
		row = res.Rows[0]
		if row[0] != "2014-03-09T20:57:14.754000Z" || row[1] != "36.667" || row[2] != "20000" || res.Columns[0].Type != "TIMESTAMPTZ" {
			t.Errorf("first BHP trade %v %+v", row, res.Columns)
		}
		if _, ok := row[3].([]any); !ok {
			t.Errorf("trade_conditions %T, want a list", row[3])
		}
		if _, ok := row[4].(map[string]any); row[4] != nil && !ok {
			t.Errorf("vendor_data %T, want an object", row[4])
		}
		// Every table has a view, the columns of its schema; message_id is
		// derived, not stored, for trades and quotes.
		res, err = sqlq(`SELECT string_agg(view_name, ',' ORDER BY view_name) FROM duckdb_views() WHERE NOT internal`)
		if err != nil || res.Rows[0][0] != "funding_rates,quotes,reference_data,trades" {
			t.Fatalf("views: %v %v", res, err)
		}
		res, err = sqlq(`SELECT column_name FROM (DESCRIBE trades)`)
		if err != nil || res.Rows[0][0] != "trade_id" {
			t.Fatalf("trades columns %v %v", res, err)
		}
		res, err = sqlq(`SELECT count(*) FROM reference_data`)
		if err != nil || res.Rows[0][0] != int64(4) {
			t.Fatalf("reference data %v %v", res, err)
		}
		if res.Snapshots["trades"] == 0 || res.Snapshots["funding_rates"] != 0 || res.Files == 0 {
			t.Errorf("snapshots %v, %d files", res.Snapshots, res.Files)
		}
	})

	t.Run("as of a snapshot", func(t *testing.T) {
		res, err := tl.engine.SQL(ctx, query.SQLQuery{AsOf: query.AsOf{SnapshotID: first},
			Text: `SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM trades WHERE exchange = 'ASX'), (SELECT count(*) FROM quotes)`})
		if err != nil {
			t.Fatal(err)
		}
		// The quotes table was empty then: its view has its columns and no row.
		if r := res.Rows[0]; r[0] != int64(19_904) || r[1] != int64(0) || r[2] != int64(0) || res.Snapshots["trades"] != first || res.Snapshots["quotes"] != 0 {
			t.Fatalf("as of the first snapshot: %v %v", r, res.Snapshots)
		}
		// A data file of a later snapshot is outside the sandbox.
		var later string
		filepath.WalkDir(filepath.Join(tl.dir, "warehouse"), func(p string, d os.DirEntry, err error) error {
			if strings.HasSuffix(p, ".parquet") && strings.Contains(p, "BHP") && later == "" {
				later = p
			}
			return nil
		})
		if later == "" {
			t.Fatal("no BHP data file in the warehouse")
		}
		_, err = tl.engine.SQL(ctx, query.SQLQuery{AsOf: query.AsOf{SnapshotID: first}, Text: "SELECT count(*) FROM read_parquet('" + later + "')"})
		if !isSQLError(err) || !strings.Contains(err.Error(), "Permission Error") {
			t.Fatalf("a file outside the snapshot: %v", err)
		}
		if _, err := tl.engine.SQL(ctx, query.SQLQuery{AsOf: query.AsOf{SnapshotID: 42}, Text: "SELECT 1"}); !isRequestError(err) {
			t.Fatalf("unknown snapshot: %v", err)
		}
	})

	t.Run("row limit", func(t *testing.T) {
		res, err := sqlq(`SELECT * FROM trades`)
		if err != nil || len(res.Rows) != query.DefaultSQLRows || !res.Truncated {
			t.Fatalf("default limit: %d rows, truncated %v, %v", len(res.Rows), res != nil && res.Truncated, err)
		}
		res, err = tl.engine.SQL(ctx, query.SQLQuery{Text: `SELECT price FROM trades WHERE symbol = 'BHP' ORDER BY price DESC`, Limit: 3})
		if err != nil || len(res.Rows) != 3 || !res.Truncated {
			t.Fatalf("limit 3: %v %v", res, err)
		}
		top, _ := sqlq(`SELECT max(price) FROM trades WHERE symbol = 'BHP'`)
		if res.Rows[0][0] != top.Rows[0][0] {
			t.Errorf("the limit kept the query's order: %v, max %v", res.Rows, top.Rows)
		}
		res, err = tl.engine.SQL(ctx, query.SQLQuery{Text: `VALUES (1), (2), (3)`, Limit: 3})
		if err != nil || len(res.Rows) != 3 || res.Truncated {
			t.Fatalf("exactly the limit: %v %v", res, err)
		}
		if _, err := tl.engine.SQL(ctx, query.SQLQuery{Text: "SELECT 1", Limit: query.MaxLimit + 1}); !isRequestError(err) {
			t.Fatalf("limit past the maximum: %v", err)
		}
	})

	t.Run("escapes", func(t *testing.T) {
		dir := t.TempDir()
		in := func(name string) string { return filepath.Join(dir, name) }
		for _, c := range []struct{ sql, why string }{
			{"SELECT * FROM read_csv('/etc/passwd')", "Permission"},
			{"SELECT * FROM read_csv_auto('/etc/passwd')", "Permission"},
			{"SELECT * FROM read_text('/etc/passwd')", "Permission"},
			{"SELECT * FROM read_blob('/etc/passwd')", "Permission"},
			{"SELECT * FROM glob('/etc/*')", "Permission"},
			{"SELECT * FROM read_duckdb('" + in("x.db") + "')", "Permission"},
			{"SELECT getenv('HOME')", "does not exist"},
			{"SELECT * FROM duckdb_secrets()", "Permission"},
			{"SELECT * FROM duckdb_extensions()", "Permission"},
			{"COPY trades TO '" + in("x.csv") + "'", "only a query"},
			{"COPY (SELECT 1) TO '" + in("y.csv") + "'", "only a query"},
			{"ATTACH '" + in("x.db") + "'", "only a query"},
			{"INSTALL httpfs", "only a query"},
			{"LOAD httpfs", "only a query"},
			{"SET memory_limit = '100GB'", "only a query"},
			{"SET enable_external_access = true", "only a query"},
			{"RESET lock_configuration", "only a query"},
			{"PRAGMA memory_limit = '100GB'", "only a query"},
			{"PRAGMA show_tables", "only a query"},
			{"CREATE TABLE x (a INT)", "only a query"},
			{"INSERT INTO trades (trade_id) VALUES ('x')", "only a query"},
			{"DROP VIEW trades", "only a query"},
			{"EXPORT DATABASE '" + in("exp") + "'", "only a query"},
			{"CALL checkpoint()", "only a query"},
			{"CALL enable_logging(storage = 'file', storage_path = '" + in("logs") + "')", "only a query"},
			{"SET VARIABLE x = 1", "only a query"},
			{"USE memory", "only a query"},
			{"EXPLAIN SELECT 1", "only a query"},
			{"SELECT 1; SELECT 2", "one statement"},
			{"SELECT 1; DROP VIEW trades", "only a query"},
			{"SELECT 1; -- a comment", "subquery"},
			{"SELEC 1", "does not parse"},
			{"SELECT ?", "parameters"},
			{"SELECT $1", "parameters"},
			{"SELECT 1) UNION ALL (SELECT 2", "does not parse"},
			{"SELECT * FROM query('COPY trades TO ''" + in("z.csv") + "''')", "SELECT"},
		} {
			_, err := sqlq(c.sql)
			if !isSQLError(err) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s: %v; want a refusal saying %q", c.sql, err, c.why)
			}
		}
		// Every table function DuckDB has that reads a file is refused any
		// file but the views'.
		res, err := sqlq(`SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'table'
			AND (function_name LIKE 'read%' OR function_name LIKE 'parquet%' OR function_name IN ('glob', 'sniff_csv')) ORDER BY 1`)
		if err != nil || len(res.Rows) < 15 {
			t.Fatalf("file functions: %v %v", res, err)
		}
		for _, r := range res.Rows {
			fn := r[0].(string)
			call := "SELECT * FROM " + fn + "('/etc/passwd')"
			if fn == "parquet_bloom_probe" {
				call = "SELECT * FROM parquet_bloom_probe('/etc/passwd', 'a', 1)"
			}
			if _, err := sqlq(call); !isSQLError(err) || !strings.Contains(err.Error(), "Permission Error") {
				t.Errorf("%s: %v", call, err)
			}
		}
		// Table functions that change DuckDB's own state run, within the
		// query's sandbox alone, and write nothing.
		for _, q := range []string{
			"SELECT * FROM enable_logging(level = 'trace', storage = 'file', storage_path = '" + in("logs") + "'), (SELECT write_log('x', level := 'info'))",
			"SELECT * FROM enable_profiling(), (SELECT count(*) FROM trades)",
		} {
			if _, err := sqlq(q); err != nil && !isSQLError(err) {
				t.Errorf("%s: %v", q, err)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("files were created: %v", ents)
		}
		// The sandbox is sealed as it should be, and the views still answer.
		res, err = sqlq(`SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),
			current_setting('temp_directory'), current_setting('autoload_known_extensions'),
			current_setting('autoinstall_known_extensions'), current_setting('memory_limit'), (SELECT count(*) > 0 FROM trades)`)
		if err != nil {
			t.Fatal(err)
		}
		if r := res.Rows[0]; r[0] != false || r[1] != true || r[2] != "" || r[3] != false || r[4] != false || r[5] != "953.6 MiB" || r[6] != true {
			t.Errorf("sandbox settings %v", r)
		}
	})

	t.Run("time limit", func(t *testing.T) {
		start := time.Now()
		_, err := tl.engine.SQL(ctx, query.SQLQuery{Text: "SELECT count(*) FROM range(1000000) a(i), range(1000000) b(j) WHERE (i + j) % 7 = 3", Timeout: 300 * time.Millisecond})
		if !errors.Is(err, query.ErrTimeout) {
			t.Fatalf("want ErrTimeout, got %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the query ran on for %s after its 300ms limit", took)
		}
	})

	t.Run("memory limit", func(t *testing.T) {
		_, err := tl.engine.SQL(ctx, query.SQLQuery{Text: "SELECT list(i) FROM range(50000000) t(i)", MemoryLimit: "64MB"})
		if !isSQLError(err) || !strings.Contains(err.Error(), "more memory than the SQL route allows (64MB") {
			t.Fatalf("want a clear out-of-memory refusal, got %v", err)
		}
	})

	t.Run("values as JSON", func(t *testing.T) {
		res, err := sqlq(`SELECT 1.50::DECIMAL(18,8) AS d, 123456789012345678901234567890::HUGEINT AS h, DATE '2024-08-09' AS day,
			TIMESTAMP '2024-08-09 01:02:03.456789' AS ts, [1, 2] AS l, MAP {'a': 1} AS m, {'x': 1.5::DECIMAL(4,2)} AS s,
			'nan'::DOUBLE AS f, NULL AS z, '00000000-0000-0000-0000-000000000001'::UUID AS u, [DATE '2024-01-02'] AS days`)
		if err != nil {
			t.Fatal(err)
		}
		r := res.Rows[0]
		m, _ := r[5].(map[string]any)
		s, _ := r[6].(map[string]any)
		days, _ := r[10].([]any)
		if r[0] != "1.5" || r[1] != "123456789012345678901234567890" || r[2] != "2024-08-09" || r[3] != "2024-08-09T01:02:03.456789Z" ||
			len(r[4].([]any)) != 2 || m["a"] != int32(1) || s["x"] != "1.5" || r[7] != "nan" || r[8] != nil ||
			r[9] != "00000000-0000-0000-0000-000000000001" || len(days) != 1 || days[0] != "2024-01-02" {
			t.Errorf("values %#v", r)
		}
	})

	t.Run("set-up cost", func(t *testing.T) {
		var lo, hi time.Duration
		for i := range 5 {
			start := time.Now()
			if _, err := sqlq("SELECT 1"); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if i == 0 || d < lo {
				lo = d
			}
			hi = max(hi, d)
		}
		t.Logf("SELECT 1 through a new sandbox over %d tables: %s – %s", 4, lo, hi)
	})
}

func isSQLError(err error) bool {
	var se *query.SQLError
	return errors.As(err, &se) && isRequestError(err)
}

func isRequestError(err error) bool {
	var re *query.RequestError
	return errors.As(err, &re)
}
