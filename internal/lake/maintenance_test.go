package lake_test

import (
	"context"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// streamCommit commits trades as a sink does, recording offset next of the
// stream topic.
func streamCommit(t *testing.T, l *lake.Lake, rows []md.Trade, next int64) {
	t.Helper()
	laketest.StreamCommit(t, l, topic, rows, next)
}

const topic = "market.crypto.trades.binance"

// trades are n trades of BTCUSDT from id on.
func trades(from, n int) []md.Trade { return testTrades("BTCUSDT", from, n) }

// noisy gives trades random prices and sizes: a file that compresses as
// real trades do, large enough for a higher size tier.
func noisy(rows []md.Trade) []md.Trade {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rows {
		rows[i].Price = md.DecimalFromUnits(rng.Int64N(1e14))
		rows[i].Quantity = md.DecimalFromUnits(rng.Int64N(1e10))
	}
	return rows
}

// tableOffset is where the table says a sink resumes.
func tableOffset(t *testing.T, l *lake.Lake) int64 {
	t.Helper()
	tbl, err := l.Load(context.Background(), "trades")
	if err != nil {
		t.Fatal(err)
	}
	off, _ := lake.TableOffsets(tbl).Get(topic, 0)
	return off
}

func fileCount(t *testing.T, l *lake.Lake) int {
	t.Helper()
	st, err := l.Status(context.Background(), "trades", 0)
	if err != nil {
		t.Fatal(err)
	}
	return st.DataFiles
}

// While a partition is written, compaction merges files of one size and
// leaves the rest; once the partition is quiet it merges them all. Rows
// and answers stay as they were.
func TestDueCompactionMergesTiersWhileHotAndAllWhenQuiet(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	// A large file first (a higher size tier), then small commits (tier 0).
	streamCommit(t, l, noisy(trades(0, 20_000)), 1)
	for b := range 6 {
		streamCommit(t, l, trades(100_000+b*10, 10), int64(b+2))
	}
	want := scanTrades(t, l)
	hot := lake.CompactOptions{Due: true, FanIn: 4, QuietAfter: time.Hour}
	res, err := l.Compact(ctx, "trades", hot)
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesBefore != 6 || res.FilesAfter != 1 || fileCount(t, l) != 2 {
		t.Fatalf("hot partition: %+v, %d files now; want the six small files merged, the large one left", res, fileCount(t, l))
	}
	// Two more small files: with the merged one, fewer than the fan-in of their tier.
	for b := range 2 {
		streamCommit(t, l, trades(200_000+b*10, 10), int64(b+10))
	}
	if res, err := l.Compact(ctx, "trades", hot); err != nil || res.Groups != 0 {
		t.Fatalf("hot partition with 3 small files of a tier and a large one: %+v %v; want nothing merged", res, err)
	}
	quiet := hot
	quiet.Now = time.Now().Add(2 * time.Hour)
	if res, err = l.Compact(ctx, "trades", quiet); err != nil || fileCount(t, l) != 1 {
		t.Fatalf("quiet partition: %+v %v, %d files; want one", res, err, fileCount(t, l))
	}
	got := scanTrades(t, l)
	if len(got) != len(want)+20 {
		t.Fatalf("%d rows after compaction, want %d", len(got), len(want)+20)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %q after compaction, %q before", k, got[k], v)
		}
	}
	if off := tableOffset(t, l); off != 11 {
		t.Fatalf("offset %d after compaction, want 11: compaction must carry the stream's offsets", off)
	}
}

// A compaction that loses the race to a sink's commit is based again on
// the table the commit made: the sink's rows and offsets survive it.
func TestCompactionRacingASinkKeepsItsCommitAndOffsets(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	for b := range 4 {
		streamCommit(t, l, trades(b*100, 100), int64(b+1)*100)
	}
	err := l.CompactRacing(ctx, "trades", func() { streamCommit(t, l, trades(400, 100), 500) })
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := l.Load(ctx, "trades")
	if op := tbl.CurrentSnapshot().Summary.Properties["k2.operation"]; op != "compact" {
		t.Fatalf("the newest snapshot is %q, want the compaction", op)
	}
	if off := tableOffset(t, l); off != 500 {
		t.Fatalf("offset %d in the compaction's snapshot, want the sink's 500", off)
	}
	if got := scanTrades(t, l); len(got) != 500 {
		t.Fatalf("%d rows, want 500", len(got))
	}
	if n := fileCount(t, l); n != 2 {
		t.Fatalf("%d files, want the compacted one and the sink's newest", n)
	}
}

// Expiry deletes what only expired snapshots referenced: the files a
// compaction replaced leave the disk, the rows stay.
func TestExpiryDeletesReplacedFiles(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	for b := range 5 {
		streamCommit(t, l, trades(b*10, 10), int64(b+1))
	}
	if _, err := l.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(dataFiles(t, l)); n != 6 {
		t.Fatalf("%d parquet files on disk before expiry, want 5 replaced + 1", n)
	}
	res, err := l.ExpireSnapshots(ctx, "trades", lake.ExpireOptions{OlderThan: time.Nanosecond, RetainLast: 1})
	if err != nil || len(res.Expired) != 5 {
		t.Fatalf("expire: %+v %v", res, err)
	}
	if n := len(dataFiles(t, l)); n != 1 {
		t.Fatalf("%d parquet files on disk after expiry, want 1", n)
	}
	if got := scanTrades(t, l); len(got) != 50 {
		t.Fatalf("%d rows after expiry, want 50", len(got))
	}
	if off := tableOffset(t, l); off != 5 {
		t.Fatalf("offset %d after expiry, want 5", off)
	}
}

// Manifests pile up one per commit until a rewrite merges them.
func TestRewriteManifestsMergesThem(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	for b := range 6 {
		streamCommit(t, l, trades(b*10, 10), int64(b+1))
	}
	res, err := l.RewriteManifests(ctx, "trades", 4, false)
	if err != nil || res.Before != 6 || res.After != 1 {
		t.Fatalf("rewrite: %+v %v; want 6 manifests into 1", res, err)
	}
	if res, _ := l.RewriteManifests(ctx, "trades", 4, false); res.Before != 1 || res.After != 1 {
		t.Fatalf("second rewrite: %+v", res)
	}
	if got := scanTrades(t, l); len(got) != 60 {
		t.Fatalf("%d rows, want 60", len(got))
	}
}

// One maintainer at a time holds a table, in SQLite and PostgreSQL alike;
// a lease that ran out is free again, and the last run is on record.
func TestMaintenanceLease(t *testing.T) {
	t.Parallel()
	for name, catalog := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "catalog.db") },
		"postgres": func(t *testing.T) string { return testsvc.FreshPostgresDB(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(), Catalog: catalog(t), Warehouse: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			if ok, err := l.AcquireLease(ctx, "trades", "a", time.Minute); !ok || err != nil {
				t.Fatalf("a: %v %v", ok, err)
			}
			if ok, err := l.AcquireLease(ctx, "trades", "b", time.Minute); ok || err != nil {
				t.Fatalf("b took a's lease: %v %v", ok, err)
			}
			if ok, _ := l.AcquireLease(ctx, "quotes", "b", time.Minute); !ok {
				t.Fatal("b could not take another table")
			}
			if ok, _ := l.AcquireLease(ctx, "trades", "a", time.Minute); !ok {
				t.Fatal("a could not renew its lease")
			}
			if err := l.ReleaseLease(ctx, "trades", "a", "compacted 6 files into 1"); err != nil {
				t.Fatal(err)
			}
			st, err := l.Maintenance(ctx, "trades")
			if err != nil || st.Owner != "a" || st.LastResult != "compacted 6 files into 1" || time.Since(st.LastRun) > time.Minute {
				t.Fatalf("state %+v %v", st, err)
			}
			if ok, _ := l.AcquireLease(ctx, "trades", "b", time.Millisecond); !ok {
				t.Fatal("b could not take a released lease")
			}
			time.Sleep(5 * time.Millisecond)
			if ok, _ := l.AcquireLease(ctx, "trades", "c", time.Minute); !ok {
				t.Fatal("c could not take an expired lease")
			}
		})
	}
}

// Status names the table's fragmentation, history and metadata.
func TestStatusDescribesTheTable(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	for b := range 3 {
		streamCommit(t, l, trades(b*10, 10), int64(b+1))
	}
	st, err := l.Status(context.Background(), "trades", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 30 || st.DataFiles != 3 || st.Partitions != 1 || st.SmallFiles != 3 || st.SmallFileDebt != 2 ||
		st.Snapshots != 3 || st.Manifests != 3 || st.MetadataBytes == 0 || st.MaxFilesPerPartition != 3 ||
		st.BusiestPartition != "timestamp_day=2024-08-08/symbol=BTCUSDT" || st.OldestSnapshot.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if fi, err := os.Stat(filepath.Join(lake.LocalPath(l.Warehouse()), "market_data", "trades", "metadata")); err != nil || !fi.IsDir() {
		t.Fatal(err)
	}
}

// Files an earlier K2 wrote under escaped partition paths
// (symbol=%C3%89THUSDT), which engines that read locations literally
// cannot find, are rewritten by the next maintenance cycle, even a single
// large file; a partition with plain paths is left as it is.
func TestCompactionRewritesEscapedPaths(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	lake.WriteLegacyPaths(true)
	streamCommit(t, l, append(testTrades("ÉTHUSDT", 0, 50), testTrades("BTCUSDT", 0, 50)...), 100)
	lake.WriteLegacyPaths(false)
	before := scanTrades(t, l)
	// The recorded locations (the files lie under the unescaped path).
	escaped := func() (n int) {
		tbl, _ := l.Load(ctx, "trades")
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if strings.Contains(task.File.FilePath(), "symbol=%") {
				n++
			}
		}
		return n
	}
	if escaped() != 1 {
		t.Fatal("the legacy writer recorded no escaped location")
	}
	res, err := l.Compact(ctx, "trades", lake.CompactOptions{Due: true, QuietAfter: time.Hour, SmallFileBytes: 1})
	if err != nil || res.FilesBefore != 1 || res.FilesAfter != 1 {
		t.Fatalf("compact %+v %v; want the one escaped file rewritten", res, err)
	}
	if _, err := l.ExpireSnapshots(ctx, "trades", lake.ExpireOptions{OlderThan: time.Nanosecond, RetainLast: 1}); err != nil {
		t.Fatal(err)
	}
	if n := escaped(); n != 0 {
		t.Fatalf("%d files still at an escaped location", n)
	}
	if after := scanTrades(t, l); !maps.Equal(after, before) {
		t.Fatal("the rewrite changed the rows")
	}
	// Nothing left to do: the next cycle rewrites nothing.
	if res, err := l.Compact(ctx, "trades", lake.CompactOptions{Due: true, QuietAfter: time.Hour, SmallFileBytes: 1}); err != nil || res.FilesBefore != 0 {
		t.Fatalf("second cycle %+v %v", res, err)
	}
}

// A writer of transient files (the sink's) writes them snappy with INT64
// decimals; compaction rewrites them with the table's zstd and
// dictionary-encoded fixed-length decimals, rows and values unchanged.
func TestTransientFilesUntilCompaction(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	w, err := record.Trade.Writer(l, lake.WithTransientFiles())
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		if _, err := w.Commit(ctx, trades(b*100, 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	planned := func() (*table.Table, []table.FileScanTask) {
		t.Helper()
		tbl, err := l.Load(ctx, "trades")
		if err != nil {
			t.Fatal(err)
		}
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tbl, tasks
	}
	codecs := func() map[string]int {
		t.Helper()
		_, tasks := planned()
		out := map[string]int{}
		for _, task := range tasks {
			f, err := file.OpenParquetFile(strings.TrimPrefix(task.File.FilePath(), "file://"), false)
			if err != nil {
				t.Fatal(err)
			}
			for g := range f.NumRowGroups() {
				out["row groups"]++
				for c := range f.MetaData().Schema.NumColumns() {
					cc, err := f.MetaData().RowGroup(g).ColumnChunk(c)
					if err != nil {
						t.Fatal(err)
					}
					out[cc.Compression().String()]++
					if ok, _ := cc.StatsSet(); !ok {
						out["no statistics "+f.MetaData().Schema.Column(c).Path()]++
					}
					if col := f.MetaData().Schema.Column(c); col.Name() == "price" || col.Name() == "quantity" {
						out["decimal "+col.PhysicalType().String()]++
					}
				}
			}
			f.Close()
		}
		return out
	}
	// Transient files keep the statistics the key check and query
	// planning read (trade_id, symbol, exchange), and those of numbers.
	unstated := []string{"asset_class", "currency", "side", "trade_conditions.list.element", "vendor_data.key_value.key", "vendor_data.key_value.value"}
	got := codecs()
	groups := got["row groups"]
	for _, c := range unstated {
		if n := got["no statistics "+c]; n != groups {
			t.Errorf("column %s before compaction: statistics in %d of %d row groups, want none", c, groups-n, groups)
		}
		delete(got, "no statistics "+c)
	}
	delete(got, "row groups")
	if len(got) != 2 || got["SNAPPY"] == 0 || got["decimal INT64"] != 6 {
		t.Fatalf("column chunks before compaction: %v, want all SNAPPY, decimals INT64, statistics but for %v", got, unstated)
	}
	tbl, tasks := planned()
	for _, task := range tasks {
		for _, name := range []string{"trade_id", "symbol", "exchange", "timestamp"} {
			f, _ := tbl.Schema().FindFieldByName(name)
			if task.File.LowerBoundValues()[f.ID] == nil || task.File.UpperBoundValues()[f.ID] == nil {
				t.Errorf("%s: no bounds of %s in the manifest", task.File.FilePath(), name)
			}
		}
	}
	want := scanTrades(t, l)
	quiet := lake.CompactOptions{Due: true, FanIn: 2, QuietAfter: time.Hour, Now: time.Now().Add(2 * time.Hour)}
	if _, err := l.Compact(ctx, "trades", quiet); err != nil || fileCount(t, l) != 1 {
		t.Fatalf("compaction: %v, %d files; want one", err, fileCount(t, l))
	}
	got = codecs()
	delete(got, "row groups")
	if len(got) != 2 || got["ZSTD"] == 0 || got["decimal FIXED_LEN_BYTE_ARRAY"] != 2 {
		t.Fatalf("column chunks by codec after compaction: %v, want all ZSTD (the table's), decimals fixed-length", got)
	}
	if got := scanTrades(t, l); !maps.Equal(got, want) {
		t.Fatalf("%d rows after compaction, %d before, or values changed", len(got), len(want))
	}
}
