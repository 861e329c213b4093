package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// The same market's trades in QuestDB, the database a market-data user
// would pick instead, asked the same two questions: a reference measured
// beside K2 on the same machine. Its server jar (Maven Central,
// org.questdb:questdb) runs on the system JDK; prices and sizes are
// DOUBLEs there, as its users store them.

// questDB is a QuestDB server of the benchmark's own.
type questDB struct {
	cmd        *exec.Cmd
	http, pg   string // host:port
	version    string
	conn       *pgx.Conn
	httpClient *http.Client
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startQuestDB starts the jar's server in dir on free ports and waits
// until it answers.
func startQuestDB(ctx context.Context, jar, dir string) (*questDB, error) {
	if _, err := os.Stat(jar); err != nil {
		return nil, fmt.Errorf("--questdb %s: %w", jar, err)
	}
	q := &questDB{httpClient: &http.Client{Timeout: 2 * time.Minute},
		version: strings.TrimSuffix(strings.TrimPrefix(filepath.Base(jar), "questdb-"), ".jar")}
	var ports [4]string
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	q.http, q.pg = ports[0], ports[1]
	q.cmd = exec.Command("java", "-p", jar, "-m", "io.questdb/io.questdb.ServerMain", "-d", dir)
	q.cmd.Env = append(os.Environ(), "QDB_HTTP_BIND_TO="+ports[0], "QDB_PG_NET_BIND_TO="+ports[1],
		"QDB_LINE_TCP_NET_BIND_TO="+ports[2], "QDB_HTTP_MIN_NET_BIND_TO="+ports[3],
		"QDB_LINE_UDP_ENABLED=false", "QDB_TELEMETRY_ENABLED=false")
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	q.cmd.Stdout, q.cmd.Stderr = log, log
	if err := q.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start QuestDB (java -p %s): %w", jar, err)
	}
	log.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := q.exec(ctx, "SELECT 1"); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			q.stop()
			return nil, fmt.Errorf("QuestDB did not answer on %s within 90 s (see %s)", q.http, filepath.Join(dir, "server.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://admin:quest@%s/qdb?sslmode=disable", q.pg))
	if err != nil {
		q.stop()
		return nil, fmt.Errorf("QuestDB's PostgreSQL port %s: %w", q.pg, err)
	}
	q.conn = conn
	return q, nil
}

func (q *questDB) stop() {
	if q.conn != nil {
		q.conn.Close(context.Background())
	}
	if q.cmd != nil && q.cmd.Process != nil {
		q.cmd.Process.Kill()
		q.cmd.Wait()
	}
}

// exec runs one statement over HTTP, for DDL and readiness.
func (q *questDB) exec(ctx context.Context, sql string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+q.http+"/exec?query="+url.QueryEscape(sql), nil)
	if err != nil {
		return "", err
	}
	resp, err := q.httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("QuestDB %q: %s", sql, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// load writes rows trades of a generator like the lake's (same seed and
// market) through QuestDB's line protocol over HTTP.
func (q *questDB) load(ctx context.Context, gen *synth.Generator, rows, batchRows int) (time.Duration, error) {
	if _, err := q.exec(ctx, `CREATE TABLE trades (symbol SYMBOL, exchange SYMBOL, trade_id VARCHAR, price DOUBLE, quantity DOUBLE,
		side SYMBOL, timestamp TIMESTAMP) TIMESTAMP(timestamp) PARTITION BY DAY WAL`); err != nil {
		return 0, err
	}
	var took time.Duration
	buf := make([]md.Trade, 0, batchRows)
	var body bytes.Buffer
	for done := 0; done < rows; {
		n := min(batchRows, rows-done)
		buf = gen.Trades(buf[:0], n)
		start := time.Now()
		for lo := 0; lo < len(buf); lo += 100_000 {
			body.Reset()
			for _, t := range buf[lo:min(len(buf), lo+100_000)] {
				fmt.Fprintf(&body, "trades,symbol=%s,exchange=%s,side=%s trade_id=\"%s\",price=%s,quantity=%s %d\n",
					t.Symbol, t.Exchange, t.Side, t.TradeID, t.Price, t.Quantity, int64(t.Timestamp))
			}
			req, err := http.NewRequestWithContext(ctx, "POST", "http://"+q.http+"/write?precision=u", bytes.NewReader(body.Bytes()))
			if err != nil {
				return took, err
			}
			resp, err := q.httpClient.Do(req)
			if err != nil {
				return took, fmt.Errorf("QuestDB line protocol write: %w", err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return took, fmt.Errorf("QuestDB line protocol write: %s %s", resp.Status, strings.TrimSpace(string(msg)))
			}
		}
		took += time.Since(start)
		done += n
	}
	// The line protocol writes a write-ahead log: the rows are readable once
	// the count says so, and that wait is part of the load.
	applied := time.Now()
	deadline := applied.Add(2 * time.Minute)
	for {
		var count int64
		if err := q.conn.QueryRow(ctx, "SELECT count() FROM trades").Scan(&count); err != nil {
			return took, err
		}
		if count == int64(rows) {
			return took + time.Since(applied), nil
		}
		if time.Now().After(deadline) {
			return took, fmt.Errorf("QuestDB holds %d of %d trades after loading", count, rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// questDBResults loads the benchmark's trades into QuestDB and times the
// latest-100 and 1-minute-bar queries on the same symbols and days.
func questDBResults(ctx context.Context, o LakeOptions, rows int, syms []string, days []symDay) ([]Result, error) {
	dir, err := os.MkdirTemp(o.Dir, fmt.Sprintf("k2-bench-questdb-%d-", rows))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(o.Progress, "loading %d trades into QuestDB (%s)…\n", rows, o.QuestDB)
	q, err := startQuestDB(ctx, o.QuestDB, dir)
	if err != nil {
		return nil, err
	}
	defer q.stop()
	gen := synth.New(synth.Config{Seed: o.Seed, Symbols: marketSymbols(o.Symbols), Rate: o.Rate})
	took, err := q.load(ctx, gen, rows, o.BatchRows)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 43))
	latest, err := timeQuery(o.Queries, func() (int, error) {
		return q.count(ctx, `SELECT * FROM trades WHERE symbol = $1 ORDER BY timestamp DESC LIMIT 100`, syms[rng.IntN(len(syms))])
	})
	if err != nil {
		return nil, err
	}
	bars, err := timeQuery(o.Queries, func() (int, error) {
		d := days[rng.IntN(len(days))]
		return q.count(ctx, `SELECT timestamp, first(price), max(price), min(price), last(price), sum(quantity), count()
			FROM trades WHERE symbol = $1 AND timestamp >= $2 AND timestamp < $3 SAMPLE BY 1m`, d.sym, d.from.Time(), d.to.Time())
	})
	if err != nil {
		return nil, err
	}
	name := "QuestDB " + q.version
	return []Result{
		{Name: name + " load (line protocol over HTTP)", Rows: rows, Value: float64(rows) / took.Seconds(), Unit: "rows/s", Detail: "reference: the same trades, prices as DOUBLE"},
		{Name: name + " latest 100 trades of a symbol, p50", Rows: rows, Value: ms(latest.p50), Unit: "ms", Detail: "PostgreSQL protocol, ORDER BY timestamp DESC LIMIT 100"},
		{Name: name + " latest 100 trades of a symbol, p99", Rows: rows, Value: ms(latest.p99), Unit: "ms"},
		{Name: name + " 1m bars of a symbol-day, p50", Rows: rows, Value: ms(bars.p50), Unit: "ms", Detail: "SAMPLE BY 1m"},
		{Name: name + " 1m bars of a symbol-day, p99", Rows: rows, Value: ms(bars.p99), Unit: "ms"},
	}, nil
}

// count runs a query and counts its rows.
func (q *questDB) count(ctx context.Context, sql string, args ...any) (int, error) {
	rows, err := q.conn.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("QuestDB: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
