package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

func testEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	dir := t.TempDir()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		t.Fatal(err)
	}
	opts.WorkDir = filepath.Join(dir, "q")
	e, err := New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); l.Close() })
	return e
}

func TestPoolExhaustionIsAClearError(t *testing.T) {
	e := testEngine(t, Options{Query: config.Query{PoolSize: 1, AcquireTimeout: 150 * time.Millisecond}})
	held, err := e.pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = e.Stats(context.Background(), AsOf{})
	if err != nil {
		t.Fatalf("stats reads metadata only and needs no connection: %v", err)
	}
	_, err = e.Symbols(context.Background(), "", AsOf{})
	if err != nil { // an empty table needs no query either
		t.Fatal(err)
	}
	err = e.run(context.Background(), "SELECT 1", nil, func(*sql.Rows) error { return nil })
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "all 1 connections busy for 150ms") {
		t.Fatalf("want a pool-exhausted error naming size and wait, got %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %s for a 150ms acquire timeout", waited)
	}
	held.Release()
	if err := e.run(context.Background(), "SELECT 1", nil, func(*sql.Rows) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s := e.PoolStats()
	if s.PoolSize != 1 || s.ActiveConnections != 0 || s.AvailableConnections != 1 || s.AcquisitionTimeouts != 1 ||
		s.TotalAcquisitions < 3 || s.PeakUtilization != 1 || s.AverageWaitTimeSeconds <= 0 {
		t.Fatalf("pool stats %+v", s)
	}
}

func TestQueryTimeoutInterruptsDuckDB(t *testing.T) {
	e := testEngine(t, Options{Query: config.Query{Timeout: 200 * time.Millisecond}})
	start := time.Now()
	err := e.run(context.Background(), "SELECT count(*) FROM range(1000000000000) t(i) WHERE i % 7 = 3", nil,
		func(rows *sql.Rows) error {
			for rows.Next() {
			}
			return nil
		})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the query ran on for %s after its 200ms deadline", took)
	}
	// The connection is usable again.
	if err := e.run(context.Background(), "SELECT 1", nil, func(*sql.Rows) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestDuckDBIsConfinedToTheLake(t *testing.T) {
	e := testEngine(t, Options{Query: config.Query{MemoryLimit: "256MB"}})
	noop := func(rows *sql.Rows) error {
		for rows.Next() {
		}
		return nil
	}
	for _, q := range []string{
		"SELECT * FROM read_csv('/etc/passwd')",
		"SET enable_external_access = true",
		"SET memory_limit = '64GB'",
		"INSTALL httpfs",
	} {
		if err := e.run(context.Background(), q, nil, noop); err == nil {
			t.Errorf("%s: allowed", q)
		}
	}
	var limit string
	err := e.run(context.Background(), "SELECT current_setting('memory_limit')", nil, func(rows *sql.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&limit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !strings.HasPrefix(limit, "244") && !strings.HasPrefix(limit, "256") {
		t.Fatalf("memory limit %q, %v", limit, err)
	}
}

// A question reads only the files of its partitions.
func TestPlanPrunesByPartition(t *testing.T) {
	e := testEngine(t, Options{})
	ctx := context.Background()
	w, _ := record.Trade.Writer(e.lake)
	day := int64(86_400_000_000)
	base := md.Timestamp(1_735_689_600_000_000) // 2025-01-01
	var rows []md.Trade
	for _, sym := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
		for d := int64(0); d < 3; d++ {
			for i := int64(0); i < 10; i++ {
				id := fmt.Sprintf("BINANCE-%d", d*100+i)
				rows = append(rows, md.Trade{
					MessageID: md.MessageID("trade", sym, id), TradeID: id, Symbol: sym, Exchange: "BINANCE",
					AssetClass: md.Crypto, Timestamp: base + md.Timestamp(d*day+i*1_000_000), Price: md.MustDecimal("1"),
					Quantity: md.MustDecimal("1"), Currency: "USDT", Side: md.Buy, TradeConditions: []string{},
					SourceSequence: md.SomeInt64(d*100 + i), IngestionTimestamp: base + md.Timestamp(3*day),
				})
			}
		}
	}
	if _, err := w.Commit(ctx, rows, nil); err != nil {
		t.Fatal(err)
	}
	st, err := e.load(ctx, record.Trade.Table.Name)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		f    Filter
		want int
	}{
		{Filter{}, 9},
		{Filter{Symbol: "ETHUSDT"}, 3},
		{Filter{Symbol: "ETHUSDT", From: base + md.Timestamp(day), To: base + md.Timestamp(2*day)}, 1},
		{Filter{From: base + md.Timestamp(2*day)}, 3},
		{Filter{Symbol: "DOGEUSDT"}, 0},
	}
	for _, c := range cases {
		files, err := e.plan(ctx, st, st.tbl.CurrentSnapshot(), "timestamp", c.f)
		if err != nil || len(files) != c.want {
			t.Errorf("%+v: %d files, %v; want %d", c.f, len(files), err, c.want)
		}
	}
}

// WarmBars fills the minute cache with a new snapshot's files, once: bar
// queries after it are served from memory.
func TestWarmBarsWarmsEachSnapshotOnce(t *testing.T) {
	e := testEngine(t, Options{})
	ctx := context.Background()
	commit := func(from int64) { commitMinutes(t, e.lake, from) }
	cached := func() int {
		e.minuteCache.mu.Lock()
		defer e.minuteCache.mu.Unlock()
		return e.minuteCache.lru.Len()
	}
	commit(0)
	if err := e.WarmBars(ctx); err != nil || cached() != 1 {
		t.Fatalf("after the first snapshot: %d files cached, %v", cached(), err)
	}
	e.minuteCache = minuteCache{} // forget: a warm of the same snapshot must not redo it
	if err := e.WarmBars(ctx); err != nil || cached() != 0 {
		t.Fatalf("the same snapshot was warmed again: %d files, %v", cached(), err)
	}
	commit(100)
	if err := e.WarmBars(ctx); err != nil || cached() != 2 {
		t.Fatalf("after a new snapshot: %d files cached, %v", cached(), err)
	}
}
