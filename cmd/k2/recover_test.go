package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	iceio "github.com/apache/iceberg-go/io"

	"github.com/k2-market-data/k2/internal/backup"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

const streamTopic = "market.equities.trades.asx"

// commitTrades commits rows as a sink does, recording next as the
// stream's offset.
func commitTrades(t *testing.T, l *lake.Lake, rows []md.Trade, next int64) {
	t.Helper()
	laketest.StreamCommit(t, l, streamTopic, rows, next)
}

// The catalog lost, the warehouse whole: a new catalog and `k2 lake
// register` put every table back at its newest metadata file, with every
// row and the offsets a sink resumes from; --metadata-location goes back
// to an older one.
func TestLakeRegisterAfterCatalogLoss(t *testing.T) {
	data := loadBHP(t)
	dir := t.TempDir()
	lakeArgs := []string{"--data-dir", dir}
	open := func() *lake.Lake {
		l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
			Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open()
	var older string
	for i := range 4 {
		commitTrades(t, l, data.trades[i*10_000:(i+1)*10_000], int64((i+1)*10_000))
		if i == 1 {
			tbl, _ := l.Load(context.Background(), "trades")
			older = tbl.MetadataLocation()
		}
	}
	l.Close()
	for _, p := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm"} {
		if err := os.Remove(filepath.Join(dir, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if st := tradesAt(t, lakeArgs, 0); st.Rows != 0 {
		t.Fatalf("a new catalog already holds %d trades", st.Rows)
	}
	out, errOut, code := run(t, append([]string{"lake", "register", "--dry-run"}, lakeArgs...)...)
	if code != 0 || !strings.Contains(out, "market_data.trades: would register at") || tradesAt(t, lakeArgs, 0).Rows != 0 {
		t.Fatalf("dry run: %d %q %q", code, out, errOut)
	}
	out, errOut, code = run(t, append([]string{"lake", "register"}, lakeArgs...)...)
	if code != 0 {
		t.Fatalf("register: %d %q", code, errOut)
	}
	t.Logf("k2 lake register:\n%s", out)
	if st := tradesAt(t, lakeArgs, 0); st.Rows != 40_000 || st.Snapshots != 4 {
		t.Fatalf("after register: %+v, want 40000 rows in 4 snapshots", st)
	}
	l = open()
	defer l.Close()
	keys := laketest.Keys(t, l, "trades", "trade_id")
	tbl, _ := l.Load(context.Background(), "trades")
	if off, _ := lake.TableOffsets(tbl).Get(streamTopic, 0); len(keys) != 40_000 || off != 40_000 {
		t.Fatalf("after register: %d distinct trades, offset %d", len(keys), off)
	}
	if _, ok := lake.ActiveOverride(tbl); !ok {
		t.Error("registering did not make the metadata's offsets the table's")
	}

	out, errOut, code = run(t, append([]string{"lake", "register", "--table", "trades", "--metadata-location", older}, lakeArgs...)...)
	if code != 0 || tradesAt(t, lakeArgs, 0).Rows != 20_000 {
		t.Fatalf("register an older metadata file: %d %q %q", code, out, errOut)
	}
	if _, errOut, code := run(t, append([]string{"lake", "register", "--metadata-location", older}, lakeArgs...)...); code == 0 || !strings.Contains(errOut, "--table") {
		t.Errorf("--metadata-location without --table: %d %q", code, errOut)
	}
	if _, errOut, code := run(t, append([]string{"lake", "register", "--table", "quotes", "--metadata-location", older}, lakeArgs...)...); code == 0 || !strings.Contains(errOut, "not") {
		t.Errorf("a trades metadata file registered as quotes: %d %q", code, errOut)
	}
}

// The distributed lake: PostgreSQL catalog, S3 warehouse, backed up to
// another S3 prefix while a writer commits. The catalog database and the
// warehouse are lost; a restore into a new database brings back exactly
// the backed-up tables, time travel included, and a damaged backup is
// found and refused.
func TestBackupRestorePostgresS3(t *testing.T) {
	data := loadBHP(t)
	ctx := context.Background()
	s3 := testsvc.S3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	warehouse, to := testsvc.NewS3Prefix(t), testsvc.NewS3Prefix(t)
	s3Args := []string{"--warehouse", warehouse, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region, "--data-dir", t.TempDir()}
	lakeArgs := append([]string{"--catalog", testsvc.FreshPostgresDB(t)}, s3Args...)
	opts := lake.Options{Tables: record.Tables(), Catalog: lakeArgs[1], Warehouse: warehouse,
		S3: lake.S3Options{Endpoint: s3.Endpoint, Region: s3.Region}}
	l, err := lake.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		commitTrades(t, l, data.trades[i*10_000:(i+1)*10_000], int64((i+1)*10_000))
	}
	old := tradesAt(t, lakeArgs, 0)
	if _, errOut, code := run(t, append([]string{"lake", "compact", "--table", "trades"}, lakeArgs...)...); code != 0 {
		t.Fatal(errOut)
	}
	// A writer commits while the backup is taken.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 3; i < 6; i++ {
			commitTrades(t, l, data.trades[i*10_000:(i+1)*10_000], int64((i+1)*10_000))
		}
	})
	var res backup.Result
	k2JSON(t, &res, append([]string{"backup", "--to", to, "--json"}, lakeArgs...)...)
	wg.Wait()
	l.Close()
	var backed backup.Table
	for _, tb := range res.Tables {
		if tb.Name == "trades" {
			backed = tb
		}
	}
	t.Logf("backup to S3 while a writer committed: %d trades rows, %d snapshots, %d files, %d bytes in %s", backed.Rows, backed.Snapshots, res.Files, res.Bytes, res.Duration)
	if backed.Rows < 30_000 || backed.Rows%10_000 != 0 {
		t.Fatalf("backed up %d rows", backed.Rows)
	}

	// Both lost: a new database, and the warehouse emptied.
	removeAll(t, warehouse, opts.S3)
	lakeArgs = append([]string{"--catalog", testsvc.FreshPostgresDB(t)}, s3Args...)
	if out, errOut, code := run(t, "backup", "verify", "--from", to, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region); code != 0 || !strings.Contains(out, "all intact") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	start := time.Now()
	var restored backup.RestoreResult
	k2JSON(t, &restored, append([]string{"restore", "--from", to, "--json"}, lakeArgs...)...)
	t.Logf("restore from S3 into PostgreSQL and S3: %d files, %d bytes in %s (%s with the command's start)", restored.Files, restored.Bytes, restored.Duration, time.Since(start))
	now := tradesAt(t, lakeArgs, 0)
	if now.Rows != backed.Rows || now.SnapshotID != backed.SnapshotID {
		t.Fatalf("restored %+v, backed up %+v", now, backed)
	}
	if got := bhpTradesAt(t, lakeArgs, old.SnapshotID); int64(got) != old.Rows {
		t.Errorf("time travel to snapshot %d from before the compaction: %d trades, it held %d", old.SnapshotID, got, old.Rows)
	}

	// A damaged object in the backup.
	st, err := lake.OpenStorage(ctx, to, opts.S3)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	m := readBackupManifest(t, st, to)
	for _, f := range m.Files {
		if strings.HasSuffix(f.Path, ".parquet") {
			victim = f.Path
			break
		}
	}
	if err := st.(iceio.WriteFileIO).WriteFile(to+"/"+backup.FilesDir+"/"+victim, []byte("not parquet")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "backup", "verify", "--from", to, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region)
	if code == 0 || !strings.Contains(errOut, victim) {
		t.Errorf("verify of a damaged S3 backup: %d %q", code, errOut)
	}
	lakeArgs = append([]string{"--catalog", testsvc.FreshPostgresDB(t)}, s3Args...)
	if _, errOut, code := run(t, append([]string{"restore", "--from", to}, lakeArgs...)...); code == 0 || !strings.Contains(errOut, "corrupt") {
		t.Errorf("restore of a damaged S3 backup: %d %q", code, errOut)
	}
	if st := tradesAt(t, lakeArgs, 0); st.Rows != 0 {
		t.Errorf("a refused restore registered %d rows", st.Rows)
	}
}

func readBackupManifest(t *testing.T, st iceio.IO, to string) backup.Manifest {
	t.Helper()
	var m backup.Manifest
	b, err := st.(iceio.ReadFileIO).ReadFile(to + "/" + backup.ManifestName)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// removeAll deletes every object under an S3 prefix.
func removeAll(t *testing.T, prefix string, s3 lake.S3Options) {
	t.Helper()
	st, err := lake.OpenStorage(context.Background(), prefix, s3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	err = st.(iceio.ListableIO).WalkDir(prefix, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := st.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("removed %d objects under %s", len(names), prefix)
}
