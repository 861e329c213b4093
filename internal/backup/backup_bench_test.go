package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/backup"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// The disaster-recovery figures: a full backup, a second one with nothing
// new, a verify, and a restore into a wiped catalog and warehouse, of a
// trades table of K2_BENCH_ROWS rows (default 1M) in commits of 50,000
// over 20 symbols, as a sink makes them. Run with -benchtime=1x:
//
//	go test ./internal/backup -run XXX -bench . -benchtime=1x
//
// The S3 variant needs the test services (PostgreSQL catalog, S3
// warehouse and backup).
func BenchmarkBackupRestoreLocal(b *testing.B) {
	dir := b.TempDir()
	benchCycle(b, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")},
		filepath.Join(dir, "backup"), func(o lake.Options) lake.Options {
			os.RemoveAll(filepath.Join(dir, "warehouse"))
			for _, f := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm"} {
				os.Remove(filepath.Join(dir, f))
			}
			return o
		})
}

func BenchmarkBackupRestorePostgresS3(b *testing.B) {
	s3 := testsvc.S3(b)
	opts := lake.Options{Tables: record.Tables(), Catalog: testsvc.FreshPostgresDB(b), Warehouse: testsvc.NewS3Prefix(b),
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey}}
	b.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	b.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	to := testsvc.NewS3Prefix(b)
	benchCycle(b, opts, to, func(o lake.Options) lake.Options {
		// A new database is the catalog lost; the warehouse's files stay
		// (restore writes every one again either way).
		o.Catalog = testsvc.FreshPostgresDB(b)
		return o
	})
}

// benchCycle builds the table, then each round backs it up to a place of
// its own, loses it (wipe) and restores it.
func benchCycle(b *testing.B, opts lake.Options, backups string, wipe func(lake.Options) lake.Options) {
	ctx := context.Background()
	rows := 1_000_000
	if v := os.Getenv("K2_BENCH_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	l, err := lake.Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	w, err := record.Trade.Writer(l)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 50_000
	for from := 0; from < rows; from += batch {
		next := int64(from + batch)
		carry := lake.WithSummary(func(base *table.Table) (map[string]string, error) {
			o := lake.TableOffsets(base)
			o.Set("market.crypto.trades.binance", 0, next)
			return o.Props(), nil
		})
		if _, err := w.Commit(ctx, trades(from, min(batch, rows-from)), nil, carry); err != nil {
			b.Fatal(err)
		}
	}
	tables := record.TableNames()
	b.ResetTimer()
	for i := range b.N {
		to := fmt.Sprintf("%s/%d", backups, i)
		start := time.Now()
		res, err := backup.Backup(ctx, l, tables, backup.Options{Location: to, S3: opts.S3})
		if err != nil {
			b.Fatal(err)
		}
		full := time.Since(start)
		start = time.Now()
		again, err := backup.Backup(ctx, l, tables, backup.Options{Location: to, S3: opts.S3})
		if err != nil || again.Copied != 0 {
			b.Fatalf("second backup: %v, %d copied", err, again.Copied)
		}
		incr := time.Since(start)
		start = time.Now()
		if _, err := backup.Verify(ctx, backup.Options{Location: to, S3: opts.S3}); err != nil {
			b.Fatal(err)
		}
		verify := time.Since(start)
		l.Close()
		opts = wipe(opts)
		start = time.Now()
		if l, err = lake.Open(ctx, opts); err != nil {
			b.Fatal(err)
		}
		r, err := backup.Restore(ctx, l, false, backup.Options{Location: to, S3: opts.S3})
		if err != nil {
			b.Fatal(err)
		}
		restore := time.Since(start)
		tbl, _ := l.Load(ctx, "trades")
		if got := tbl.CurrentSnapshot().Summary.Properties["total-records"]; got != strconv.Itoa(rows) {
			b.Fatalf("restored %s rows, want %d", got, rows)
		}
		b.ReportMetric(float64(rows), "rows")
		b.ReportMetric(float64(res.Files), "files")
		b.ReportMetric(float64(res.Bytes)/1e6, "MB")
		b.ReportMetric(full.Seconds(), "backup_s")
		b.ReportMetric(incr.Seconds(), "incremental_s")
		b.ReportMetric(verify.Seconds(), "verify_s")
		b.ReportMetric(restore.Seconds(), "restore_s")
		fmt.Fprintf(os.Stderr, "%d rows, %d files, %.1f MB: backup %s, nothing new %s, verify %s, restore %s (%d files)\n",
			rows, res.Files, float64(res.Bytes)/1e6, full.Round(time.Millisecond), incr.Round(time.Millisecond),
			verify.Round(time.Millisecond), restore.Round(time.Millisecond), r.Files)
	}
	l.Close()
}

// trades are n trades of 20 symbols from id on, a millisecond apart.
func trades(from, n int) []md.Trade {
	out := make([]md.Trade, n)
	for i := range out {
		id := from + i
		sym := fmt.Sprintf("SYM%02dUSDT", id%20)
		tid := fmt.Sprintf("BINANCE-%010d", id)
		out[i] = md.Trade{
			MessageID: md.MessageID("trade", sym, tid), TradeID: tid, Symbol: sym, Exchange: "BINANCE",
			AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(id)*1000),
			Price:    md.DecimalFromUnits(6183763000000 + int64(id%997)*1000),
			Quantity: md.MustDecimal("0.02"), Currency: "USDT", Side: md.Sell,
			TradeConditions: []string{}, SourceSequence: md.SomeInt64(int64(id)),
			IngestionTimestamp: 1723161256000000,
		}
	}
	return out
}
