package lake

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

func openTestLake(t *testing.T) *Lake {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(context.Background(), Options{
		Catalog:   filepath.Join(dir, "catalog.db"),
		Warehouse: filepath.Join(dir, "warehouse"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

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
func scanTrades(t *testing.T, l *Lake) map[string]string {
	t.Helper()
	tbl, err := l.Load(context.Background(), Trades)
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

func dataFiles(t *testing.T, l *Lake) []string {
	t.Helper()
	var files []string
	root := LocalPath(l.Warehouse())
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestCommitIsExactAndLogged(t *testing.T) {
	l := openTestLake(t)
	w, err := NewTradeWriter(l)
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
	tbl, _ := l.Load(context.Background(), Trades)
	if s := tbl.CurrentSnapshot(); s.Summary.Properties["k2.source"] != "test" || s.Summary.Properties[CommitIDProperty] == "" {
		t.Fatalf("snapshot summary lacks commit properties: %v", s.Summary.Properties)
	}
	// Two symbols on one day: one file per (day, symbol) partition.
	if res.FilesAdded != 2 {
		t.Fatalf("files added = %d, want 2", res.FilesAdded)
	}
}

func TestDedupAddsNothingTwice(t *testing.T) {
	l := openTestLake(t)
	w, _ := NewTradeWriter(l, WithDedup(true))
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

func TestFailedCommitLeavesNoFiles(t *testing.T) {
	l := openTestLake(t)
	ctx := context.Background()
	w, _ := NewTradeWriter(l)
	if _, err := w.Commit(ctx, testTrades("BTCUSDT", 1, 10), nil); err != nil {
		t.Fatal(err)
	}
	before := dataFiles(t, l)
	// Forbid retries, then let a competing commit land between our load and
	// our commit: the catalog must refuse ours as a conflict.
	tbl, _ := l.Load(ctx, Trades)
	tx := tbl.NewTransaction()
	tx.SetProperties(map[string]string{table.CommitNumRetriesKey: "0"})
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	stale, _ := l.Load(ctx, Trades)
	other, _ := NewTradeWriter(l)
	if _, err := other.Commit(ctx, testTrades("BTCUSDT", 100, 10), nil); err != nil {
		t.Fatal(err)
	}
	files, err := w.writeFiles(ctx, stale, testTrades("BTCUSDT", 200, 10))
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
	l.removeFiles(Trades, files)
	if n := len(dataFiles(t, l)); n != len(before)+1 {
		t.Fatalf("%d data files on disk, want %d: the failed commit's file stayed", n, len(before)+1)
	}
	if got := scanTrades(t, l); len(got) != 20 {
		t.Fatalf("table holds %d rows, want 20", len(got))
	}
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	l := openTestLake(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w, _ := NewTradeWriter(l)
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
	_, err := Open(context.Background(), Options{
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
