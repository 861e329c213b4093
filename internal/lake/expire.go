package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
)

// ExpireOptions is the snapshot retention policy (zero values take
// config.Default's): every snapshot of the last DenseFor stays, then one
// per SparseEvery until OlderThan, after which snapshots expire; the
// newest RetainLast always stay. Time travel to a moment in the sparse
// range reads the snapshot that stood then: the newest at or before it.
type ExpireOptions struct {
	OlderThan   time.Duration
	RetainLast  int
	DenseFor    time.Duration
	SparseEvery time.Duration
	DryRun      bool
	// Now is the time ages count from (default time.Now).
	Now time.Time
}

// ExpireResult reports the expired snapshots, and the rule applied.
type ExpireResult struct {
	Table       string    `json:"table"`
	Expired     []int64   `json:"expired_snapshot_ids"`
	Remaining   int       `json:"remaining_snapshots"`
	OlderThan   string    `json:"older_than"`   // the age applied, e.g. 168h0m0s
	Cutoff      time.Time `json:"cutoff"`       // snapshots committed before this expire
	RetainLast  int       `json:"retain_last"`  // … but the newest this many stay
	DenseFor    string    `json:"dense_for"`    // every snapshot younger than this stays
	SparseEvery string    `json:"sparse_every"` // one per this much time stays between
	DryRun      bool      `json:"dry_run"`
}

func (o *ExpireOptions) fill() {
	d := config.Default().Maintain
	config.Or(&o.OlderThan, d.ExpireOlderThan)
	config.Or(&o.RetainLast, d.RetainLast)
	config.Or(&o.DenseFor, d.RetainDenseFor)
	config.Or(&o.SparseEvery, d.RetainSparseEvery)
	// An explicit short --expire-older-than shortens the dense window too.
	o.DenseFor = min(o.DenseFor, o.OlderThan)
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
}

// ExpireSnapshots drops the snapshots the retention policy does not keep
// from the table's history, and then the files only they referenced.
// Time travel to an expired snapshot is no longer possible. The current
// snapshot, any other branch or tag, and the newest snapshot recording
// stream offsets always stay.
func (l *Lake) ExpireSnapshots(ctx context.Context, name string, opts ExpireOptions) (ExpireResult, error) {
	opts.fill()
	def, tbl, err := l.table(ctx, name)
	res := ExpireResult{Table: def.FullName(), DryRun: opts.DryRun, OlderThan: opts.OlderThan.String(),
		Cutoff: opts.Now.Add(-opts.OlderThan).UTC().Truncate(time.Second), RetainLast: opts.RetainLast,
		DenseFor: opts.DenseFor.String(), SparseEvery: opts.SparseEvery.String()}
	if err != nil {
		return res, err
	}
	var upd table.Update
	tbl, err = l.onFreshTable(ctx, name, tbl, func(tbl *table.Table) error {
		md := tbl.Metadata()
		res.Expired = snapshotsToExpire(md, opts)
		res.Remaining = len(md.Snapshots()) - len(res.Expired)
		upd = nil
		if opts.DryRun || len(res.Expired) == 0 {
			return nil
		}
		// The removal is pinned to the head it was computed on: on a
		// commit that lands meanwhile it is computed again.
		var head *int64
		if s := tbl.CurrentSnapshot(); s != nil {
			head = &s.SnapshotID
		}
		upd = table.NewRemoveSnapshotsUpdate(res.Expired, true)
		_, _, err := l.cat.CommitTable(ctx, tbl.Identifier(),
			[]table.Requirement{table.AssertTableUUID(md.TableUUID()), table.AssertRefSnapshotID(table.MainBranch, head)},
			[]table.Update{upd})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("expire snapshots of %s: %w", def.FullName(), err)
	}
	if upd == nil {
		return res, nil
	}
	// Delete the manifests and data files that only expired snapshots
	// referenced, judged against the table as it now stands.
	after, err := l.Load(ctx, name)
	if err == nil {
		err = withoutMissing(upd.PostCommit(ctx, tbl, after))
	}
	if err != nil {
		l.log.Warn("snapshots expired, but not all of their files were deleted; remove-orphans will", "table", def.FullName(), "error", err)
	} else {
		l.m.observe(name, after)
	}
	l.log.Info("snapshots expired", "table", def.FullName(), "expired", len(res.Expired), "remaining", res.Remaining)
	return res, nil
}

// snapshotsToExpire applies the retention policy to a table's snapshots.
func snapshotsToExpire(md table.Metadata, o ExpireOptions) []int64 {
	refs := map[int64]bool{}
	for _, ref := range md.Refs() {
		refs[ref.SnapshotID] = true
	}
	snaps := make([]snapshotInfo, 0, len(md.Snapshots()))
	for _, s := range md.Snapshots() {
		offsets := s.Summary != nil && len(offsetsOf(s.Summary.Properties)) > 0
		snaps = append(snaps, snapshotInfo{id: s.SnapshotID, ms: s.TimestampMs, offsets: offsets, ref: refs[s.SnapshotID]})
	}
	return retention(snaps, o)
}

// snapshotInfo is what the retention policy looks at in a snapshot.
type snapshotInfo struct {
	id, ms  int64 // id, commit time in Unix ms
	offsets bool  // records stream offsets
	ref     bool  // a branch or tag points at it
}

// retention returns the ids of the snapshots the policy does not keep.
func retention(snaps []snapshotInfo, o ExpireOptions) []int64 {
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b snapshotInfo) int { return cmpInt(b.ms, a.ms) }) // newest first
	keep := map[int64]bool{}
	offsetsKept := false
	buckets := map[int64]bool{}
	every := o.SparseEvery.Milliseconds()
	for i, s := range snaps {
		age := o.Now.Sub(time.UnixMilli(s.ms))
		if s.offsets && !offsetsKept {
			// A sink resumes from the newest offsets the table records.
			offsetsKept, keep[s.id] = true, true
		}
		switch {
		case s.ref || i < o.RetainLast || age < o.DenseFor:
			keep[s.id] = true
		case age >= o.OlderThan:
		case every > 0:
			// The newest snapshot of each SparseEvery period stays.
			if b := s.ms / every; !buckets[b] {
				buckets[b], keep[s.id] = true, true
			}
		}
	}
	var out []int64
	for _, s := range snaps {
		if !keep[s.id] {
			out = append(out, s.id)
		}
	}
	return out
}

// withoutMissing drops from err the files that were already gone: a
// deletion wants them gone, and a warning listing them says nothing.
func withoutMissing(err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var kept []error
		for _, e := range j.Unwrap() {
			if e = withoutMissing(e); e != nil {
				kept = append(kept, e)
			}
		}
		return errors.Join(kept...)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
