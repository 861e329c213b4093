package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// OverrideProperty is the table property holding offsets an operator set
// by hand (k2 lake offsets set), for a topic deleted and created again
// (its offsets start at 0 while the table records where the old one
// ended) or truncated. An Iceberg commit needs a file change to make a
// snapshot, so the offsets cannot go into a snapshot summary; a property
// change makes no snapshot. The override names the snapshot it follows and
// stands only while that snapshot is current: the next stream commit
// records the offsets it continued from in its own summary, and the
// override is spent.
const OverrideProperty = "k2.kafka-offsets.override"

// Override is offsets set by hand on a table.
type Override struct {
	// SnapshotID is the table's current snapshot when the offsets were
	// set (0: the table had none).
	SnapshotID int64     `json:"snapshot-id"`
	Offsets    Offsets   `json:"offsets"`
	SetAt      time.Time `json:"set-at"`
}

// OverrideOf returns the override stored on the table, whether or not it
// still stands.
func OverrideOf(tbl *table.Table) (Override, bool) {
	v, ok := tbl.Properties()[OverrideProperty]
	if !ok || v == "" {
		return Override{}, false
	}
	var ov Override
	if err := json.Unmarshal([]byte(v), &ov); err != nil || ov.Offsets == nil {
		return Override{}, false
	}
	return ov, true
}

// ActiveOverride returns the table's override if no commit has followed it.
func ActiveOverride(tbl *table.Table) (Override, bool) {
	ov, ok := OverrideOf(tbl)
	if !ok {
		return ov, false
	}
	var cur int64
	if s := tbl.CurrentSnapshot(); s != nil {
		cur = s.SnapshotID
	}
	return ov, ov.SnapshotID == cur
}

// ErrTableMoved says a table gained a snapshot while its offsets were
// being set: a sink (or a maintainer) is writing it.
var ErrTableMoved = errors.New("the table gained a snapshot meanwhile: stop the sinks and maintainers of this table and try again")

// SetOffsetsResult is what SetOffsets changed.
type SetOffsetsResult struct {
	Table      string  `json:"table"`
	SnapshotID int64   `json:"snapshot_id"` // the snapshot the offsets follow
	Before     Offsets `json:"before"`
	After      Offsets `json:"after"`
	DryRun     bool    `json:"dry_run"`
}

// SetOffsets moves the offsets a stream resumes from on a table: each
// partition in changes takes its offset exactly (back as well as
// forward); the other partitions keep theirs. The change is a property
// commit pinned to the current snapshot, so it fails with ErrTableMoved
// rather than land beside a sink's commit. Sinks must be stopped: a sink
// running reads the table's offsets only when its partitions are assigned.
func (l *Lake) SetOffsets(ctx context.Context, name string, changes Offsets, dryRun bool) (SetOffsetsResult, error) {
	def, tbl, err := l.table(ctx, name)
	if err != nil {
		return SetOffsetsResult{Table: def.FullName()}, err
	}
	return l.setOffsets(ctx, def, tbl, changes, dryRun)
}

// setOffsets sets offsets on tbl as it was loaded.
func (l *Lake) setOffsets(ctx context.Context, def TableDef, tbl *table.Table, changes Offsets, dryRun bool) (SetOffsetsResult, error) {
	res := SetOffsetsResult{Table: def.FullName(), DryRun: dryRun}
	res.Before = TableOffsets(tbl)
	res.After = res.Before.Clone()
	for t, ps := range changes {
		if res.After[t] == nil {
			res.After[t] = map[int32]int64{}
		}
		for p, off := range ps {
			if off < 0 {
				return res, fmt.Errorf("%s[%d]: offset %d is negative", t, p, off)
			}
			res.After[t][p] = off
		}
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
	}
	if dryRun {
		return res, nil
	}
	ov, err := json.Marshal(Override{SnapshotID: res.SnapshotID, Offsets: res.After, SetAt: time.Now().UTC()})
	if err != nil {
		return res, err
	}
	tx := tbl.NewTransaction()
	if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
		return res, fmt.Errorf("set offsets of %s: %w", def.FullName(), err)
	}
	if err := tx.SetProperties(iceberg.Properties{OverrideProperty: string(ov)}); err != nil {
		return res, fmt.Errorf("set offsets of %s: %w", def.FullName(), err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		if isConflict(err) {
			return res, fmt.Errorf("set offsets of %s: %w", def.FullName(), ErrTableMoved)
		}
		return res, fmt.Errorf("set offsets of %s: %w", def.FullName(), err)
	}
	l.log.Warn("Kafka offsets set by hand; a sink started now resumes from them", "table", def.FullName(),
		"snapshot_id", res.SnapshotID, "before", res.Before, "after", res.After)
	return res, nil
}
