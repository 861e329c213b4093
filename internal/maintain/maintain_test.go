package maintain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/maintain"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

const topic = "market.crypto.trades.binance"

// trades are n trades of two symbols from id on, one per ms.
func trades(from, n int) []md.Trade {
	out := make([]md.Trade, n)
	for i := range out {
		id := from + i
		sym := []string{"BTCUSDT", "ETHUSDT"}[id%2]
		tid := fmt.Sprintf("BINANCE-%010d", id)
		out[i] = md.Trade{
			MessageID: md.MessageID("trade", sym, tid), TradeID: tid, Symbol: sym, Exchange: "BINANCE",
			AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(id)*1000),
			Price: md.DecimalFromUnits(6183763000000 + int64(id%997)), Quantity: md.MustDecimal("0.02"),
			Currency: "USDT", Side: md.Sell, TradeConditions: []string{}, SourceSequence: md.SomeInt64(int64(id)),
			IngestionTimestamp: 1723161256000000,
		}
	}
	return out
}

// write commits batches as a sink does, each with its offset carried forward.
func write(t *testing.T, l *lake.Lake, batches, size int) {
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Error(err)
		return
	}
	for b := range batches {
		off := int64(b+1) * int64(size)
		carry := lake.WithSummary(func(base *table.Table) (map[string]string, error) {
			o := lake.TableOffsets(base)
			o.Set(topic, 0, off)
			return o.Props(), nil
		})
		if _, err := w.Commit(context.Background(), trades(b*size, size), nil, carry); err != nil {
			t.Errorf("batch %d: %v", b, err)
			return
		}
		time.Sleep(50 * time.Millisecond) // twenty commits a second: far busier than a sink
	}
}

func options(reg *ops.Registry, owner string) maintain.Options {
	m := config.Default().Maintain
	m.Every, m.CompactFanIn, m.MaxManifests = 20*time.Millisecond, 4, 4
	m.RetainLast, m.RetainDenseFor = 3, 50*time.Millisecond
	return maintain.Options{Maintain: m, Tables: []string{"trades"}, Owner: owner, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// answers are what a reader sees: every trade and some bars, as JSON.
func answers(t *testing.T, e *query.Engine) string {
	t.Helper()
	ctx := context.Background()
	var out []any
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
		tr, err := e.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: sym}, Limit: query.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		iv, _ := md.ParseInterval("1m")
		bars, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: sym}, Interval: iv})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr, bars)
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// Maintenance running beside a writer keeps the table to few files and a
// short history, loses none of the writer's commits or offsets, stores
// every row once, and changes no answer.
func TestMaintenanceBesideAWriter(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	reg := ops.NewRegistry()
	m := maintain.New(l, options(reg, "test"))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	const batches, size = 80, 50
	write(t, l, batches, size)
	// 80 commits of two partitions made 160 files; maintenance, paced to a
	// share of a core, catches up within a few cycles of the writer
	// stopping: a few files per partition, a history of a few snapshots,
	// and the snapshot gauge saying so.
	var st lake.TableStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if st, err = l.Status(context.Background(), "trades", 0); err != nil {
			t.Fatal(err)
		}
		gauge := ops.Sum(reg, "k2_iceberg_table_snapshots", "table", "trades")
		if st.DataFiles <= 2*4 && st.Snapshots <= 20 && st.Manifests <= 4 && gauge == float64(st.Snapshots) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the writer stopped: %d files, %d snapshots (gauge %v), %d manifests", st.DataFiles, st.Snapshots, gauge, st.Manifests)
		}
	}
	cancel()
	wg.Wait()

	e, err := query.New(l, query.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before := answers(t, e)
	var n int
	for _, sym := range []string{"BTCUSDT", "ETHUSDT"} {
		tr, _ := e.Trades(context.Background(), query.RecordQuery{Filter: query.Filter{Symbol: sym}, Limit: query.MaxLimit})
		seen := map[string]bool{}
		for _, x := range tr {
			if seen[x.TradeID] {
				t.Fatalf("%s stored twice", x.TradeID)
			}
			seen[x.TradeID] = true
		}
		n += len(tr)
	}
	if n != batches*size {
		t.Fatalf("%d trades stored, want %d", n, batches*size)
	}
	tbl, _ := l.Load(context.Background(), "trades")
	if off, _ := lake.TableOffsets(tbl).Get(topic, 0); off != batches*size {
		t.Fatalf("the table resumes at offset %d, want %d", off, batches*size)
	}
	if got := ops.Sum(reg, "k2_maintenance_files_compacted_total", "table", "trades"); got < 100 {
		t.Errorf("k2_maintenance_files_compacted_total %v", got)
	}
	if got := ops.Sum(reg, "k2_maintenance_runs_total", "task", "compact", "result", "success"); got == 0 {
		t.Error("no successful compaction counted")
	}
	if got := ops.Sum(reg, "k2_maintenance_runs_total", "result", "failed"); got != 0 {
		t.Errorf("%v failed maintenance tasks", got)
	}
	if st, _ = l.Status(context.Background(), "trades", 0); st.Maintenance.LastRun.IsZero() || st.Maintenance.Owner != "test" {
		t.Errorf("the last run is not on record: %+v", st.Maintenance)
	}

	// A final cycle with everything quiet: one file per partition, and
	// every answer byte for byte as before.
	o := options(ops.NewRegistry(), "test")
	o.CompactQuietAfter, o.MetadataMinAge = time.Nanosecond, time.Nanosecond
	if _, err := maintain.New(l, o).Cycle(context.Background(), "trades"); err != nil {
		t.Fatal(err)
	}
	// Of the ~100 metadata files the commits wrote, the table keeps its
	// current one and the log's 25; no other is left behind.
	tbl, _ = l.Load(context.Background(), "trades")
	versions, _ := filepath.Glob(filepath.Join(lake.LocalPath(tbl.Location()), "metadata", "*.metadata.json"))
	if len(versions) > 26 {
		t.Fatalf("%d metadata files after maintenance, want at most 26", len(versions))
	}
	if st, _ := l.Status(context.Background(), "trades", 0); st.DataFiles != 2 {
		t.Fatalf("%d files after a quiet cycle, want one per partition", st.DataFiles)
	}
	if after := answers(t, e); after != before {
		t.Fatal("maintenance changed the answer to the same queries")
	}
}

// Two maintainers share the tables: a table held by one is skipped by the other.
func TestSecondMaintainerSkipsALeasedTable(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	write(t, l, 5, 10)
	if ok, err := l.AcquireLease(context.Background(), "trades", "first", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	reg := ops.NewRegistry()
	rep, err := maintain.New(l, options(reg, "second")).Cycle(context.Background(), "trades")
	if err != nil || rep.Skipped == "" || rep.Compact.Groups != 0 {
		t.Fatalf("%+v %v; want the table skipped", rep, err)
	}
	if got := ops.Sum(reg, "k2_maintenance_runs_total", "task", "compact", "result", "leased_elsewhere"); got != 1 {
		t.Errorf("leased_elsewhere counted %v times", got)
	}
}
