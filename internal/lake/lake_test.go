package lake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
	dto "github.com/prometheus/client_model/go"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// testTrades makes n trades of sym starting at the given id, one per ms.
func testTrades(sym string, from, n int) []md.Trade {
	out := make([]md.Trade, n)
	for i := range out {
		id := from + i
		tid := fmt.Sprintf("BINANCE-%010d", id)
		out[i] = md.Trade{
			MessageID: md.MessageID("trade", sym, tid), TradeID: tid, Symbol: sym, Exchange: "BINANCE",
			AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(id)*1000),
			Price:    md.DecimalFromUnits(6183763000000 + int64(id)), // 61837.63 + id·10⁻⁸
			Quantity: md.MustDecimal("0.02"), Currency: "USDT", Side: md.Sell,
			TradeConditions: []string{}, SourceSequence: md.SomeInt64(int64(id)),
			IngestionTimestamp: 1723161256000000, VendorData: map[string]string{"is_best_match": "true"},
		}
	}
	return out
}

// scanTrades reads "symbol/trade_id" → price of the current snapshot.
func scanTrades(t *testing.T, l *lake.Lake) map[string]string {
	t.Helper()
	tbl, err := l.Load(context.Background(), "trades")
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan(table.WithSelectedFields("symbol", "trade_id", "price")).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	out := map[string]string{}
	rdr := array.NewTableReader(at, 1<<16)
	defer rdr.Release()
	for rdr.Next() {
		rec := rdr.RecordBatch()
		col := func(name string) any { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
		syms, ids, prices := col("symbol").(*array.String), col("trade_id").(*array.String), col("price").(*array.Decimal128)
		for i := 0; i < int(rec.NumRows()); i++ {
			out[syms.Value(i)+"/"+ids.Value(i)] = md.DecimalFromUnits(int64(prices.Value(i).LowBits())).String()
		}
	}
	return out
}

func dataFiles(t *testing.T, l *lake.Lake) []string {
	t.Helper()
	var files []string
	root := lake.LocalPath(l.Warehouse())
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestCommitIsExactAndLogged(t *testing.T) {
	l := laketest.Open(t)
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	rows := append(testTrades("BTCUSDT", 1, 500), testTrades("ETHUSDT", 1, 300)...)
	res, err := w.Commit(context.Background(), rows, map[string]string{"k2.source": "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 800 || res.TotalRecords != 800 || res.SnapshotAfter == 0 || res.SnapshotBefore != 0 || res.SequenceAfter != 1 {
		t.Fatalf("unexpected result %+v", res)
	}
	got := scanTrades(t, l)
	if len(got) != 800 {
		t.Fatalf("read %d rows, want 800", len(got))
	}
	if p := got["BTCUSDT/BINANCE-0000000001"]; p != "61837.63000001" {
		t.Fatalf("price not exact: %q (%d rows)", p, len(got))
	}
	tbl, _ := l.Load(context.Background(), "trades")
	if s := tbl.CurrentSnapshot(); s.Summary.Properties["k2.source"] != "test" || s.Summary.Properties[lake.CommitIDProperty] == "" {
		t.Fatalf("snapshot summary lacks commit properties: %v", s.Summary.Properties)
	}
	// Two symbols on one day: one file per (day, symbol) partition.
	if res.FilesAdded != 2 {
		t.Fatalf("files added = %d, want 2", res.FilesAdded)
	}
}

func TestDedupAddsNothingTwice(t *testing.T) {
	l := laketest.Open(t)
	w, _ := record.Trade.Writer(l, lake.WithDedup(true))
	ctx := context.Background()
	batch := testTrades("BTCUSDT", 1, 1000)
	if res, err := w.Commit(ctx, batch, nil); err != nil || res.Rows != 1000 {
		t.Fatalf("first load: %+v %v", res, err)
	}
	res, err := w.Commit(ctx, batch, nil)
	if err != nil || res.Rows != 0 || res.Duplicates != 1000 || res.SnapshotAfter != res.SnapshotBefore {
		t.Fatalf("second load of the same rows: %+v %v", res, err)
	}
	// Overlap: 500 stored, 500 new, and one row repeated inside the batch.
	overlap := append(testTrades("BTCUSDT", 501, 1000), testTrades("BTCUSDT", 1200, 1)...)
	res, err = w.Commit(ctx, overlap, nil)
	if err != nil || res.Rows != 500 || res.Duplicates != 501 {
		t.Fatalf("overlapping load: %+v %v", res, err)
	}
	// The same ids under another symbol are different trades.
	res, err = w.Commit(ctx, testTrades("ETHUSDT", 1, 10), nil)
	if err != nil || res.Rows != 10 {
		t.Fatalf("other symbol: %+v %v", res, err)
	}
	if got := scanTrades(t, l); len(got) != 1510 {
		t.Fatalf("table holds %d distinct trades, want 1510", len(got))
	}
}

// A batch's own repeats are dropped whatever their order: rising keys (a
// stream) skip the set of seen keys, any other order is checked by it; a
// symbol's keys may rise while another's repeat.
func TestDedupInBatchMatchesASet(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	total := 0
	for round := range 30 {
		w, _ := record.Trade.Writer(l, lake.WithDedup(true))
		var batch []md.Trade
		want := map[string]bool{}
		for _, sym := range []string{fmt.Sprintf("R%dA", round), fmt.Sprintf("R%dB", round), fmt.Sprintf("R%dC", round)} {
			n := 1 + rng.IntN(200)
			rows := testTrades(sym, 1, n)
			switch rng.IntN(4) {
			case 0: // rising: no repeat
			case 1: // a repeat of the last key, right after it
				rows = append(rows, rows[n-1])
			case 2: // shuffled, with repeats
				for range 1 + rng.IntN(10) {
					rows = append(rows, rows[rng.IntN(n)])
				}
				rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			case 3: // out of order without repeats
				rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			}
			for _, r := range rows {
				want[r.Symbol+"/"+r.TradeID] = true
			}
			batch = append(batch, rows...)
		}
		total += len(want)
		// The symbols interleaved.
		rng.Shuffle(len(batch), func(i, j int) {
			if batch[i].Symbol != batch[j].Symbol {
				batch[i], batch[j] = batch[j], batch[i]
			}
		})
		res, err := w.Commit(ctx, batch, nil)
		if err != nil || res.Rows != len(want) || res.Duplicates != len(batch)-len(want) {
			t.Fatalf("round %d: %d rows, %d distinct: %+v %v", round, len(batch), len(want), res, err)
		}
	}
	if got := scanTrades(t, l); len(got) != total {
		t.Fatalf("the table holds %d distinct trades, want %d", len(got), total)
	}
}

func TestFailedCommitLeavesNoFiles(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	w, _ := record.Trade.Writer(l)
	if _, err := w.Commit(ctx, testTrades("BTCUSDT", 1, 10), nil); err != nil {
		t.Fatal(err)
	}
	before := dataFiles(t, l)
	// Forbid retries, then let a competing commit land between our load and
	// our commit: the catalog must refuse ours as a conflict.
	tbl, _ := l.Load(ctx, "trades")
	tx := tbl.NewTransaction()
	tx.SetProperties(map[string]string{table.CommitNumRetriesKey: "0"})
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stale, _ := l.Load(ctx, "trades")
	other, _ := record.Trade.Writer(l)
	if _, err := other.Commit(ctx, testTrades("BTCUSDT", 100, 10), nil); err != nil {
		t.Fatal(err)
	}
	files, err := w.WriteFiles(ctx, stale, testTrades("BTCUSDT", 200, 10))
	if err != nil {
		t.Fatal(err)
	}
	if len(dataFiles(t, l)) != len(before)+2 {
		t.Fatalf("expected the competing file and ours on disk")
	}
	tx = stale.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, nil, table.WithoutDuplicateCheck()); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err == nil {
		t.Fatal("stale commit accepted")
	}
	l.RemoveFiles("trades", files)
	if n := len(dataFiles(t, l)); n != len(before)+1 {
		t.Fatalf("%d data files on disk, want %d: the failed commit's file stayed", n, len(before)+1)
	}
	if got := scanTrades(t, l); len(got) != 20 {
		t.Fatalf("table holds %d rows, want 20", len(got))
	}
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w, _ := record.Trade.Writer(l)
			for b := 0; b < 5; b++ {
				if _, err := w.Commit(ctx, testTrades("BTCUSDT", g*10000+b*100, 100), nil); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := scanTrades(t, l); len(got) != 2000 {
		t.Fatalf("table holds %d rows after 20 concurrent commits of 100, want 2000", len(got))
	}
}

func TestOpenReportsUnreachableCatalog(t *testing.T) {
	_, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog:   "postgres://k2:k2@127.0.0.1:1/k2?sslmode=disable&connect_timeout=2",
		Warehouse: t.TempDir(),
	})
	if err == nil || !strings.Contains(err.Error(), "catalog postgres://k2:xxxxx@127.0.0.1:1/k2") || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error does not say what and where: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans lines: %q", err)
	}
}

func TestCompactKeepsRowsAndSortsFiles(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	w, _ := record.Trade.Writer(l)
	// Ten commits of two symbols, the second symbol's batches arriving in
	// reverse: 20 small files, and rows out of time order across files.
	for b := 0; b < 10; b++ {
		rows := append(testTrades("BTCUSDT", b*100, 100), testTrades("ETHUSDT", (9-b)*100, 100)...)
		if _, err := w.Commit(ctx, rows, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := scanTrades(t, l)
	dry, err := l.Compact(ctx, "trades", lake.CompactOptions{DryRun: true})
	if err != nil || dry.FilesBefore != 20 || dry.Groups != 2 || dry.Rows != 2000 {
		t.Fatalf("dry run %+v %v", dry, err)
	}
	if got := scanTrades(t, l); len(got) != len(before) {
		t.Fatal("dry run changed the table")
	}
	res, err := l.Compact(ctx, "trades", lake.CompactOptions{})
	if err != nil || res.FilesAfter != 2 {
		t.Fatalf("compact %+v %v", res, err)
	}
	after := scanTrades(t, l)
	if len(after) != 2000 {
		t.Fatalf("%d rows after compaction, want 2000", len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("row %s changed: %s → %s", k, v, after[k])
		}
	}
	// Each remaining file is one sorted run of its symbol.
	tbl, _ := l.Load(ctx, "trades")
	tasks, _ := tbl.Scan().PlanFiles(ctx)
	if len(tasks) != 2 {
		t.Fatalf("%d files planned after compaction", len(tasks))
	}
	for _, task := range tasks {
		_, batches, err := tbl.Scan(table.WithSelectedFields("timestamp")).ReadTasks(ctx, []table.FileScanTask{task})
		if err != nil {
			t.Fatal(err)
		}
		var last int64
		for rec, err := range batches {
			if err != nil {
				t.Fatal(err)
			}
			ts := rec.Column(0).(*array.Timestamp)
			for i := 0; i < ts.Len(); i++ {
				if v := int64(ts.Value(i)); v < last {
					t.Fatalf("%s not sorted by time", task.File.FilePath())
				} else {
					last = v
				}
			}
		}
	}
	if again, _ := l.Compact(ctx, "trades", lake.CompactOptions{}); again.Groups != 0 {
		t.Fatalf("compacting a compacted table rewrote %d groups", again.Groups)
	}
}

func TestExpireSnapshotsAndRemoveOrphans(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	w, _ := record.Trade.Writer(l)
	for b := 0; b < 5; b++ {
		if _, err := w.Commit(ctx, testTrades("BTCUSDT", b*10, 10), nil); err != nil {
			t.Fatal(err)
		}
	}
	dry, err := l.ExpireSnapshots(ctx, "trades", lake.ExpireOptions{OlderThan: time.Nanosecond, RetainLast: 2, DryRun: true})
	if err != nil || len(dry.Expired) != 3 || dry.Remaining != 2 {
		t.Fatalf("dry run %+v %v", dry, err)
	}
	res, err := l.ExpireSnapshots(ctx, "trades", lake.ExpireOptions{OlderThan: time.Nanosecond, RetainLast: 2})
	if err != nil || len(res.Expired) != 3 {
		t.Fatalf("expire %+v %v", res, err)
	}
	tbl, _ := l.Load(ctx, "trades")
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Fatalf("%d snapshots left, want 2", n)
	}
	if got := scanTrades(t, l); len(got) != 50 {
		t.Fatalf("expiring snapshots lost rows: %d", len(got))
	}

	// A file no snapshot references, as a killed writer leaves behind.
	stray := filepath.Join(lake.LocalPath(tbl.Location()), "data", "stray-00000.parquet")
	os.MkdirAll(filepath.Dir(stray), 0o755)
	os.WriteFile(stray, []byte("PAR1"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stray, old, old)
	found, err := l.RemoveOrphans(ctx, "trades", lake.OrphanOptions{OlderThan: time.Hour, DryRun: true})
	if err != nil || len(found.Files) != 1 || !strings.HasSuffix(found.Files[0], "stray-00000.parquet") {
		t.Fatalf("dry run found %+v %v", found, err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatal("dry run deleted the file")
	}
	if _, err := l.RemoveOrphans(ctx, "trades", lake.OrphanOptions{OlderThan: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatal("orphan still there")
	}
	if got := scanTrades(t, l); len(got) != 50 {
		t.Fatalf("orphan removal lost rows: %d", len(got))
	}
}

func TestS3PermissionErrorSaysWhatAndWhere(t *testing.T) {
	s3 := testsvc.S3(t)
	warehouse := testsvc.NewS3Prefix(t)
	_, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog:   filepath.Join(t.TempDir(), "catalog.db"),
		Warehouse: warehouse,
		S3:        lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: "wrong-secret"},
	})
	if err == nil {
		t.Fatal("a wrong S3 secret was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "warehouse "+warehouse) || !strings.Contains(msg, "cannot write") || strings.Contains(msg, "\n") {
		t.Fatalf("error does not say what and where on one line: %q", msg)
	}
	t.Log(msg)
}

// Every commit leaves one structured log line with the state before and
// after, and counts in the writer metrics; a failed commit logs the state
// it failed from and the error.
func TestTransactionLogAndMetrics(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	reg := ops.NewRegistry()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse"),
		Logger: ops.NewLogger(&buf, ops.LogOptions{Format: "json", Level: "info"}), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if missing, err := reg.Missing(); err != nil || len(missing) > 0 {
		t.Fatalf("metric families without series before the first commit: %v %v", missing, err)
	}
	metric := func(family string, labels ...string) float64 { return ops.Sum(reg, family, labels...) }
	w, _ := record.Trade.Writer(l)
	first, err := w.Commit(context.Background(), testTrades("BTCUSDT", 1, 50), nil)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	second, err := w.Commit(context.Background(), testTrades("BTCUSDT", 100, 25), nil)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON log line: %q", buf.String())
	}
	want := map[string]any{
		"msg": "Iceberg transaction committed", "table": "market_data.trades", "record_count": 25.0,
		"snapshot_id_before": float64(first.SnapshotAfter), "snapshot_id_after": float64(second.SnapshotAfter),
		"sequence_number_before": 1.0, "sequence_number_after": 2.0, "added_data_files": 1.0,
		"total_records": 75.0, "total_data_files": 2.0,
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log field %s = %v, want %v", k, line[k], v)
		}
	}
	if _, has := line["transaction_duration_ms"]; !has || line["added_files_size_bytes"].(float64) <= 0 {
		t.Errorf("log line lacks duration or bytes: %v", line)
	}
	if d := metric("k2_iceberg_transactions_total", "status", "success", "table", "trades"); d != 2 {
		t.Errorf("success transactions counted %v, want 2", d)
	}
	if d := metric("k2_iceberg_rows_written_total", "table", "trades"); d != 75 {
		t.Errorf("rows written counted %v, want 75", d)
	}

	// A commit that cannot reach the catalog.
	l.CloseCatalog()
	buf.Reset()
	if _, err := w.Commit(context.Background(), testTrades("BTCUSDT", 200, 5), nil); err == nil {
		t.Fatal("commit without a catalog succeeded")
	}
	if d := metric("k2_iceberg_transactions_total", "status", "failed", "table", "trades"); d != 1 {
		t.Errorf("failed transactions counted %v, want 1", d)
	}
	if !strings.Contains(buf.String(), `"msg":"Iceberg transaction failed"`) || !strings.Contains(buf.String(), `"error_type":"catalog"`) {
		t.Errorf("failure log line: %s", buf.String())
	}
}

// Rows arriving in any order end up sorted by symbol, time and sequence in
// every data file, with either symbol partitioning.
func TestWrittenFilesAreSorted(t *testing.T) {
	for _, part := range []lake.SymbolPartition{{}, {Buckets: 2}} {
		t.Run(part.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
				Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w"), SymbolPartition: part,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var rows []md.Trade
			for _, sym := range []string{"ETHUSDT", "BTCUSDT", "SOLUSDT", "XRPUSDT"} {
				batch := testTrades(sym, 0, 90_000) // ~25 hours: two days
				for i := range batch {
					batch[i].Timestamp += md.Timestamp(i%7) * 1000 // some rows share a time
				}
				rows = append(rows, batch...)
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			w, _ := record.Trade.Writer(l)
			if _, err := w.Commit(context.Background(), rows, nil); err != nil {
				t.Fatal(err)
			}
			tbl, _ := l.Load(context.Background(), "trades")
			tasks, _ := tbl.Scan().PlanFiles(context.Background())
			for _, task := range tasks {
				_, batches, err := tbl.Scan(table.WithSelectedFields("symbol", "timestamp", "source_sequence")).ReadTasks(context.Background(), []table.FileScanTask{task})
				if err != nil {
					t.Fatal(err)
				}
				var prev struct {
					sym     string
					ts, seq int64
				}
				first := true
				for rec, err := range batches {
					if err != nil {
						t.Fatal(err)
					}
					col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
					syms, ts, seqs := col("symbol").(*array.String), col("timestamp").(*array.Timestamp), col("source_sequence").(*array.Int64)
					for i := 0; i < int(rec.NumRows()); i++ {
						cur := prev
						cur.sym, cur.ts, cur.seq = syms.Value(i), int64(ts.Value(i)), seqs.Value(i)
						if !first && (cur.sym < prev.sym || cur.sym == prev.sym && (cur.ts < prev.ts || cur.ts == prev.ts && cur.seq < prev.seq)) {
							t.Fatalf("%s: row %v after %v", task.File.FilePath(), cur, prev)
						}
						prev, first = cur, false
					}
				}
			}
		})
	}
}

// Concurrent stream writers each carry every partition's offsets forward:
// the newest snapshot holds them all, whatever order the commits landed in.
func TestConcurrentWritersCarryOffsetsForward(t *testing.T) {
	l := laketest.Open(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w, _ := record.Trade.Writer(l)
			for b := 1; b <= 5; b++ {
				mine := lake.Offsets{}
				mine.Set("topic", int32(g), int64(b*100))
				carry := lake.WithSummary(func(base *table.Table) (map[string]string, error) {
					o := lake.TableOffsets(base)
					o.Merge(mine)
					return o.Props(), nil
				})
				if _, err := w.Commit(ctx, testTrades("BTCUSDT", g*10000+b*100, 100), nil, carry); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tbl, err := l.Load(ctx, "trades")
	if err != nil {
		t.Fatal(err)
	}
	got := lake.TableOffsets(tbl)
	for g := int32(0); g < 4; g++ {
		if off, _ := got.Get("topic", g); off != 500 {
			t.Errorf("partition %d at %d in the newest snapshot, want 500 (all: %v)", g, off, got)
		}
	}
}

// Offset 0 is an offset like any other: a partition's first batch records
// where it began, so a failed first commit is read again from its start.
func TestOffsetsRecordOffsetZero(t *testing.T) {
	t.Parallel()
	o := lake.Offsets{}
	o.Set("t", 0, 0)
	if got, ok := o.Get("t", 0); !ok || got != 0 {
		t.Fatalf("offset 0: %d %v", got, ok)
	}
	o.Set("t", 0, 5)
	o.Set("t", 0, 3)
	if got, _ := o.Get("t", 0); got != 5 {
		t.Fatalf("offsets move forward only: %d", got)
	}
}

// A commit that loses a race to another writer counts one commit failure
// (a conflict) and is retried; only the batch handed to it, not the
// duplicates dropped, is its batch size.
func TestCommitConflictAndBatchSizeAreCounted(t *testing.T) {
	dir := t.TempDir()
	reg := ops.NewRegistry()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse"), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	metric := func(family string, labels ...string) float64 { return ops.Sum(reg, family, labels...) }
	a, _ := record.Trade.Writer(l)
	b, _ := record.Trade.Writer(l)
	if _, err := a.Commit(ctx, testTrades("BTCUSDT", 0, 10), nil); err != nil {
		t.Fatal(err)
	}
	// a's next commit is pinned to the head it loaded; b commits on that
	// head first, from a's summary callback, so a's first attempt conflicts.
	raced := false
	race := lake.WithSummary(func(*table.Table) (map[string]string, error) {
		if !raced {
			raced = true
			if _, err := b.Commit(ctx, testTrades("BTCUSDT", 1000, 30), nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if _, err := a.Commit(ctx, testTrades("BTCUSDT", 100, 20), nil, race); err != nil {
		t.Fatal(err)
	}
	if got := metric("k2_iceberg_commit_failures_total", "table", "trades", "reason", "conflict"); got != 1 {
		t.Errorf("commit conflicts counted %v, want 1", got)
	}
	if got := metric("k2_iceberg_write_errors_total", "table", "trades"); got != 0 {
		t.Errorf("a retried conflict counted as %v write errors", got)
	}
	if got := scanTrades(t, l); len(got) != 60 {
		t.Errorf("%d rows stored, want 60", len(got))
	}
	// 15 rows handed over, 5 of them already stored: the batch is 15, the
	// transaction 10.
	if _, err := a.Commit(ctx, testTrades("BTCUSDT", 5, 15), nil); err != nil {
		t.Fatal(err)
	}
	if n, sum := metric("k2_iceberg_batch_size", "table", "trades"), batchSum(t, reg); n != 4 || sum != 10+20+30+15 {
		t.Errorf("batch sizes: %v batches of %v rows, want 4 of 75", n, sum)
	}
}

// batchSum is the sum of the trades table's k2_iceberg_batch_size.
func batchSum(t *testing.T, g interface {
	Gather() ([]*dto.MetricFamily, error)
}) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "k2_iceberg_batch_size" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "table" && lp.GetValue() == "trades" {
					return m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return -1
}
