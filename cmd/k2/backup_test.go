package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/backup"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// k2JSON runs a k2 command that prints JSON and decodes it into v.
func k2JSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("k2 %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("k2 %s: %v in %q", strings.Join(args, " "), err, out)
	}
}

// tradesAt is the trades table's stats as of a snapshot (0: current).
func tradesAt(t *testing.T, lakeArgs []string, snapshot int64) query.TableStats {
	t.Helper()
	args := append([]string{"query", "stats", "--format", "json"}, lakeArgs...)
	if snapshot != 0 {
		args = append(args, "--as-of-snapshot", strconv.FormatInt(snapshot, 10))
	}
	var stats []query.TableStats
	k2JSON(t, &stats, args...)
	for _, s := range stats {
		if s.Table == "market_data.trades" {
			return s
		}
	}
	t.Fatalf("no trades in %v", stats)
	return query.TableStats{}
}

// bhpTradesAt counts the BHP trades read from the data files of a snapshot.
func bhpTradesAt(t *testing.T, lakeArgs []string, snapshot int64) int {
	t.Helper()
	var rows []map[string]any
	k2JSON(t, &rows, append([]string{"query", "trades", "--symbol", "BHP", "--exchange", "ASX", "--limit", "100000",
		"--format", "json", "--as-of-snapshot", strconv.FormatInt(snapshot, 10)}, lakeArgs...)...)
	return len(rows)
}

// corruptOne flips a byte in the middle of the first data file of a backup.
func corruptOne(t *testing.T, dir string) string {
	t.Helper()
	var victim string
	filepath.WalkDir(filepath.Join(dir, backup.FilesDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && victim == "" && strings.HasSuffix(p, ".parquet") {
			victim = p
		}
		return nil
	})
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return victim
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// A backup taken while a sink writes and a compaction rewrites holds the
// tables as they stood: after the lake is wiped and restored, the counts
// are exactly the backup's, a snapshot from before the compaction reads
// its own files, and a sink started afterwards continues from the offsets
// the backup recorded and ends with every record exactly once. A second
// backup into the same place copies only what is new; a corrupted backup
// is found by verify and refused by restore, which then registers nothing.
func TestBackupRestoreWhileSinkWrites(t *testing.T) {
	s := embeddedStack(t)
	data := loadBHP(t)
	ctx := context.Background()
	lakeArgs := []string{"--data-dir", s.dataDir}
	work := t.TempDir()
	first, second, damaged := filepath.Join(work, "first"), filepath.Join(work, "second"), filepath.Join(work, "damaged")

	sink := s.sink(t, 0)
	produced := make(chan error, 1)
	go func() { produced <- data.produce(ctx, s.producer(t), 1_000, 25*time.Millisecond) }()
	deadline := time.Now().Add(time.Minute)
	for s.storedRows(ctx, t) < int64(len(data.trades))/3 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing stored; logs in %s", s.dataDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A compaction replaces the files the older snapshots read.
	before := tradesAt(t, lakeArgs, 0)
	if _, errOut, code := run(t, append([]string{"lake", "compact", "--table", "trades"}, lakeArgs...)...); code != 0 {
		t.Fatalf("compact: %s", errOut)
	}
	var res backup.Result
	k2JSON(t, &res, append([]string{"backup", "--to", first, "--json"}, lakeArgs...)...)
	var backed backup.Table
	for _, tb := range res.Tables {
		if tb.Name == "trades" {
			backed = tb
		}
	}
	t.Logf("backup while the sink wrote: %d trades rows, %d snapshots, %d files, %d bytes in %s",
		backed.Rows, backed.Snapshots, res.Files, res.Bytes, res.Duration)
	if backed.Rows < before.Rows || backed.Rows >= int64(len(data.trades)) || res.Copied != res.Files {
		t.Fatalf("backup mid-stream: %+v (rows before it %d)", res, before.Rows)
	}

	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	s.waitCaughtUp(t, sink)
	copyTree(t, first, second)
	var again backup.Result
	k2JSON(t, &again, append([]string{"backup", "--to", second, "--json"}, lakeArgs...)...)
	if again.Files <= res.Files || again.Copied >= again.Files || again.Copied == 0 {
		t.Errorf("a second backup into the same place: %d files, %d copied (the first had %d)", again.Files, again.Copied, res.Files)
	}
	t.Logf("incremental backup: %d of %d files copied (%d of %d bytes) in %s", again.Copied, again.Files, again.CopiedBytes, again.Bytes, again.Duration)

	// Wipe the catalog and the warehouse.
	s.lake.Close()
	for _, p := range []string{"catalog.db", "catalog.db-wal", "catalog.db-shm", "warehouse"} {
		os.RemoveAll(filepath.Join(s.dataDir, p))
	}
	if out, errOut, code := run(t, "backup", "verify", "--from", first); code != 0 || !strings.Contains(out, "all intact") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	var restored backup.RestoreResult
	k2JSON(t, &restored, append([]string{"restore", "--from", first, "--json"}, lakeArgs...)...)
	t.Logf("restore: %d files, %d bytes, %d tables in %s", restored.Files, restored.Bytes, len(restored.Tables), restored.Duration)
	var err error
	s.lake, err = lake.Open(ctx, lake.Options{Tables: record.Tables(),
		Catalog: filepath.Join(s.dataDir, "catalog.db"), Warehouse: filepath.Join(s.dataDir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.lake.Close() })

	now := tradesAt(t, lakeArgs, 0)
	if now.Rows != backed.Rows || now.SnapshotID != backed.SnapshotID || now.Snapshots != backed.Snapshots {
		t.Fatalf("restored trades: %+v, backed up %+v", now, backed)
	}
	keys := laketest.Keys(t, s.lake, "trades", "trade_id")
	if int64(len(keys)) != backed.Rows || len(laketest.Repeated(keys)) > 0 {
		t.Fatalf("restored trades hold %d distinct ids (%d repeated), backed up %d rows", len(keys), len(laketest.Repeated(keys)), backed.Rows)
	}
	if got := bhpTradesAt(t, lakeArgs, before.SnapshotID); int64(got) != before.Rows {
		t.Errorf("time travel to snapshot %d, before the compaction: %d trades, it held %d", before.SnapshotID, got, before.Rows)
	}
	if _, errOut, code := run(t, append([]string{"restore", "--from", first}, lakeArgs...)...); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("a restore over tables that hold data: exit %d %q", code, errOut)
	}
	if _, errOut, code := run(t, append([]string{"restore", "--from", second, "--force"}, lakeArgs...)...); code != 0 {
		t.Errorf("restore --force: %s", errOut)
	}
	if _, errOut, code := run(t, append([]string{"restore", "--from", first, "--force"}, lakeArgs...)...); code != 0 {
		t.Errorf("restore --force: %s", errOut)
	}

	// A maintainer compacting before any sink runs keeps the restored
	// offsets standing over the consumer group's later ones.
	out, errOut, code := run(t, append([]string{"lake", "compact", "--table", "trades,quotes"}, lakeArgs...)...)
	if code != 0 || !strings.Contains(out, "compacted") {
		t.Fatalf("compact after restore: %d %q %q", code, out, errOut)
	}
	// A sink started now continues from the backup's offsets.
	s.waitCaughtUp(t, s.sink(t, 1))
	s.verify(t, data)

	copyTree(t, first, damaged)
	victim := corruptOne(t, damaged)
	_, errOut, code = run(t, "backup", "verify", "--from", damaged)
	rel, _ := filepath.Rel(damaged, victim)
	if code == 0 || !strings.Contains(errOut, "corrupt") || !strings.Contains(errOut, rel) {
		t.Errorf("verify of a corrupted backup: exit %d %q (corrupted %s)", code, errOut, rel)
	}
	// Into a new catalog over the same warehouse: refused before a file
	// is written, so the warehouse's copy of the damaged file stays whole.
	freshDir := t.TempDir()
	fresh := []string{"--data-dir", freshDir, "--catalog", filepath.Join(freshDir, "catalog.db"), "--warehouse", filepath.Join(s.dataDir, "warehouse")}
	_, errOut, code = run(t, append([]string{"restore", "--from", damaged}, fresh...)...)
	if code == 0 || !strings.Contains(errOut, "corrupt") || !strings.Contains(errOut, rel) || !strings.Contains(errOut, "nothing written or registered") {
		t.Errorf("restore of a corrupted backup: exit %d %q", code, errOut)
	}
	if st := tradesAt(t, fresh, 0); st.Rows != 0 || st.Snapshots != 0 {
		t.Errorf("a refused restore left the trades table at %+v", st)
	}
	if keys := laketest.Keys(t, s.lake, "trades", "trade_id"); len(keys) != len(data.trades) {
		t.Errorf("after a refused restore the lake reads %d trades, want %d", len(keys), len(data.trades))
	}
}
