package lake

import (
	"slices"
	"testing"
	"time"
)

// A day of snapshots every 30 s: all of the last hour stay, then one per
// hour, the newest of each; the newest recording offsets and the branch
// head stay whatever their age; nothing older than the window survives.
func TestRetentionKeepsRecentDenseAndOlderSparse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 10, 0, time.UTC)
	var snaps []snapshotInfo
	for i := range 2 * 60 * 24 * 3 { // three days, newest first
		ms := now.Add(-time.Duration(i) * 30 * time.Second).UnixMilli()
		snaps = append(snaps, snapshotInfo{id: int64(i + 1), ms: ms})
	}
	// Only an old snapshot records offsets (the sink has been idle), and a
	// tag points at one from the first day.
	snaps[500].offsets = true
	tagged := len(snaps) - 10
	snaps[tagged].ref = true
	o := ExpireOptions{OlderThan: 48 * time.Hour, RetainLast: 10, DenseFor: time.Hour, SparseEvery: time.Hour, Now: now}
	expired := map[int64]bool{}
	for _, id := range retention(snaps, o) {
		expired[id] = true
	}
	perHour := map[int64]int{}
	for _, s := range snaps {
		age := now.Sub(time.UnixMilli(s.ms))
		kept := !expired[s.id]
		switch {
		case s.id == snaps[500].id || s.ref:
			if !kept {
				t.Errorf("snapshot %d (offsets %v, tagged %v) expired", s.id, s.offsets, s.ref)
			}
		case age < time.Hour:
			if !kept {
				t.Errorf("snapshot %d, %s old, expired inside the dense hour", s.id, age)
			}
		case age >= 48*time.Hour:
			if kept {
				t.Errorf("snapshot %d, %s old, kept past the window", s.id, age)
			}
		case kept:
			perHour[s.ms/time.Hour.Milliseconds()]++
		}
	}
	// 47 whole hours between the dense hour and the window (the hour that
	// straddles the dense boundary keeps its newest sparse one too).
	if len(perHour) < 47 || len(perHour) > 48 {
		t.Errorf("%d hours keep a snapshot, want 47–48", len(perHour))
	}
	for h, n := range perHour {
		if n != 1 {
			t.Errorf("hour %d keeps %d snapshots, want 1", h, n)
		}
	}
	kept := len(snaps) - len(expired)
	if kept > 120+48+2 {
		t.Errorf("%d snapshots kept of %d", kept, len(snaps))
	}
	// The newest of each sparse hour is the one kept.
	for _, s := range snaps {
		age := now.Sub(time.UnixMilli(s.ms))
		if expired[s.id] || age < time.Hour || age >= 48*time.Hour || s.offsets || s.ref {
			continue
		}
		if i := slices.IndexFunc(snaps, func(o snapshotInfo) bool {
			return o.ms > s.ms && o.ms/time.Hour.Milliseconds() == s.ms/time.Hour.Milliseconds()
		}); i >= 0 && now.Sub(time.UnixMilli(snaps[i].ms)) >= time.Hour {
			t.Errorf("snapshot %d kept although %d is newer in its hour", s.id, snaps[i].id)
		}
	}
}

// RetainLast keeps the newest snapshots of a table that stopped being
// written long ago, however old they are.
func TestRetentionKeepsTheNewestOfAnIdleTable(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var snaps []snapshotInfo
	for i := range 30 {
		snaps = append(snaps, snapshotInfo{id: int64(i + 1), ms: now.Add(-30*24*time.Hour - time.Duration(i)*time.Minute).UnixMilli()})
	}
	got := retention(snaps, ExpireOptions{OlderThan: 7 * 24 * time.Hour, RetainLast: 10, DenseFor: time.Hour, SparseEvery: time.Hour, Now: now})
	if len(got) != 20 || slices.Contains(got, 1) || slices.Contains(got, 10) || !slices.Contains(got, 11) {
		t.Fatalf("expired %v; want all but the newest 10", got)
	}
}
