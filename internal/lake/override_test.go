package lake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
)

// A topic recreated starts at offset 0 again. Offsets set back by hand
// make no snapshot and stand until the next stream commit, through a
// compaction, which records them as set by hand; the stream commit
// records where the new topic stands.
func TestSetOffsetsBackStandsUntilTheNextCommit(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	streamCommit(t, l, trades(0, 100), 500_000)
	streamCommit(t, l, trades(100, 100), 1_000_000)
	tbl, _ := l.Load(ctx, "trades")
	snaps := len(tbl.Metadata().Snapshots())

	dry, err := l.SetOffsets(ctx, "trades", lake.Offsets{topic: {0: 0}}, true)
	if err != nil || tableOffset(t, l) != 1_000_000 {
		t.Fatalf("a dry run changed the offsets: %v %d", err, tableOffset(t, l))
	}
	if off, _ := dry.After.Get(topic, 0); off != 0 {
		t.Fatalf("dry run would set %d", off)
	}
	res, err := l.SetOffsets(ctx, "trades", lake.Offsets{topic: {0: 0, 1: 7}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := res.Before.Get(topic, 0); b != 1_000_000 {
		t.Errorf("before %v", res.Before)
	}
	tbl, _ = l.Load(ctx, "trades")
	if n := len(tbl.Metadata().Snapshots()); n != snaps {
		t.Errorf("setting offsets made a snapshot: %d → %d", snaps, n)
	}
	o, overridden := lake.CurrentOffsets(tbl)
	if p0, _ := o.Get(topic, 0); !overridden || p0 != 0 || o[topic][1] != 7 {
		t.Fatalf("offsets after set: %v overridden %v", o, overridden)
	}
	// The snapshot keeps what it recorded; the override stands beside it.
	if rec, _ := lake.RecordedOffsets(tbl, tbl.CurrentSnapshot()); rec[topic][0] != 1_000_000 {
		t.Errorf("the snapshot's own record changed: %v", rec)
	}

	if _, err := l.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	tbl, _ = l.Load(ctx, "trades")
	if len(tbl.Metadata().Snapshots()) != snaps+1 {
		t.Fatalf("compaction made no snapshot")
	}
	if o, overridden := lake.CurrentOffsets(tbl); !overridden || o[topic][0] != 0 || o[topic][1] != 7 {
		t.Fatalf("after a compaction: %v overridden %v, want the offsets set by hand", o, overridden)
	}

	streamCommit(t, l, trades(200, 50), 50)
	tbl, _ = l.Load(ctx, "trades")
	o, overridden = lake.CurrentOffsets(tbl)
	if overridden || o[topic][0] != 50 || o[topic][1] != 7 {
		t.Fatalf("after the next commit: %v overridden %v, want 50 and 7 from the commit", o, overridden)
	}
	if _, ok := lake.ActiveOverride(tbl); ok {
		t.Error("the override still stands after a commit")
	}
	// Where the offsets went back the table is not its parent plus a
	// stretch of the stream; from there on it is again.
	compaction := tbl.Metadata().SnapshotByID(*tbl.CurrentSnapshot().ParentSnapshotID)
	if lake.Streamed(tbl, compaction) || !lake.Streamed(tbl, tbl.CurrentSnapshot()) {
		t.Errorf("streamed: the compaction carrying offsets set back %v, the commit after it %v",
			lake.Streamed(tbl, compaction), lake.Streamed(tbl, tbl.CurrentSnapshot()))
	}
}

// Offsets set on a table that a writer moved meanwhile are refused, not
// left behind naming a snapshot that is no longer current.
func TestSetOffsetsRefusesWhenTheTableMoved(t *testing.T) {
	t.Parallel()
	l := laketest.Open(t)
	ctx := context.Background()
	streamCommit(t, l, trades(0, 10), 10)
	before, _ := l.Load(ctx, "trades")
	streamCommit(t, l, trades(10, 10), 20)
	if _, err := l.SetOffsetsOn(ctx, "trades", before, lake.Offsets{topic: {0: 0}}); !errors.Is(err, lake.ErrTableMoved) {
		t.Fatalf("set on a table a commit overtook: %v", err)
	}
	if off := tableOffset(t, l); off != 20 {
		t.Fatalf("offset %d after a refused set, want 20", off)
	}
	if _, err := l.SetOffsets(ctx, "trades", lake.Offsets{topic: {0: 0}}, false); err != nil || tableOffset(t, l) != 0 {
		t.Fatalf("on the current table: %v, offset %d", err, tableOffset(t, l))
	}
	if _, err := l.SetOffsets(ctx, "trades", lake.Offsets{topic: {0: -1}}, false); err == nil {
		t.Error("a negative offset was accepted")
	}
}
