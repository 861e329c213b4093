package lake

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
)

// CompactOptions tune compaction.
type CompactOptions struct {
	DryRun bool
	// MaxRows bounds the rows rewritten into one output group, which is
	// held in memory while it is sorted (default 4,000,000).
	MaxRows int64
	// SmallFileBytes: files at least this large are left alone (default 64 MiB).
	SmallFileBytes int64
}

// CompactResult reports what compaction did (or would do, in a dry run).
type CompactResult struct {
	Table         string `json:"table"`
	Groups        int    `json:"groups"`
	FilesBefore   int    `json:"files_rewritten"`
	FilesAfter    int    `json:"files_written"`
	Rows          int64  `json:"rows_rewritten"`
	BytesBefore   int64  `json:"bytes_before"`
	BytesAfter    int64  `json:"bytes_after"`
	SnapshotAfter int64  `json:"snapshot_id_after,omitempty"`
	DryRun        bool   `json:"dry_run"`
}

// table is a table's declaration and current metadata.
func (l *Lake) table(ctx context.Context, name string) (TableDef, *table.Table, error) {
	def, err := l.Def(name)
	if err != nil {
		return def, nil, err
	}
	tbl, err := l.Load(ctx, name)
	return def, tbl, err
}

// Compact rewrites each partition's small files into few large ones,
// sorted by the table's sort order, in one replace commit: readers see the
// same rows before and after, never a mix. Streaming commits create a
// file per partition per commit; this keeps tables at few large files.
func (l *Lake) Compact(ctx context.Context, name string, opts CompactOptions) (CompactResult, error) {
	d := config.Default().Maintain
	config.Or(&opts.MaxRows, d.CompactMaxRows)
	config.Or(&opts.SmallFileBytes, d.CompactSmallFileBytes)
	def, tbl, err := l.table(ctx, name)
	res := CompactResult{Table: def.FullName(), DryRun: opts.DryRun}
	if err != nil || tbl.CurrentSnapshot() == nil {
		return res, err
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return res, fmt.Errorf("plan %s: %w", def.FullName(), err)
	}
	groups := compactionGroups(tasks, def, opts)
	for _, g := range groups {
		res.Groups++
		res.FilesBefore += len(g)
		for _, t := range g {
			res.Rows += t.File.Count()
			res.BytesBefore += t.File.FileSizeBytes()
		}
	}
	if opts.DryRun || len(groups) == 0 {
		return res, nil
	}
	start := time.Now()
	var oldFiles, newFiles []iceberg.DataFile
	fail := func(err error) (CompactResult, error) {
		if len(newFiles) > 0 {
			l.removeFiles(name, newFiles)
		}
		return res, fmt.Errorf("compact %s: %w", def.FullName(), err)
	}
	for _, g := range groups {
		rec, err := readGroup(ctx, tbl, g)
		if err != nil {
			return fail(err)
		}
		// One batch per group: iceberg-go sorts each batch by the table's
		// sort order, so every output file is sorted end to end.
		one := func(yield func(arrow.RecordBatch, error) bool) { yield(rec, nil) }
		for df, err := range table.WriteRecords(ctx, tbl, rec.Schema(), one, table.WithClusteredWrite()) {
			if err != nil {
				return fail(err)
			}
			newFiles = append(newFiles, df)
			res.BytesAfter += df.FileSizeBytes()
		}
		for _, t := range g {
			oldFiles = append(oldFiles, t.File)
		}
	}
	tx := tbl.NewTransaction()
	props := iceberg.Properties{"k2.operation": "compact", CommitIDProperty: fmt.Sprintf("compact-%d", time.Now().UnixNano())}
	// Carry the stream offsets forward, so that the newest snapshot still
	// says where consumption stands once older ones expire.
	maps.Copy(props, TableOffsets(tbl).Props())
	if err := tx.ReplaceDataFilesWithDataFiles(ctx, oldFiles, newFiles, props); err != nil {
		return fail(err)
	}
	newTbl, err := tx.Commit(ctx)
	if err != nil {
		return fail(err)
	}
	res.FilesAfter = len(newFiles)
	res.SnapshotAfter = newTbl.CurrentSnapshot().SnapshotID
	l.m.observe(name, newTbl)
	l.log.Info("table compacted", "table", def.FullName(), "groups", res.Groups,
		"files_before", res.FilesBefore, "files_after", res.FilesAfter, "rows", res.Rows,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter,
		"snapshot_id_after", res.SnapshotAfter, "duration_ms", time.Since(start).Milliseconds())
	return res, nil
}

// compactionGroups picks, per partition, runs of small files (in time
// order) worth merging: at least two files and at most MaxRows rows each.
func compactionGroups(tasks []table.FileScanTask, def TableDef, opts CompactOptions) [][]table.FileScanTask {
	timeID := 0
	if def.Time != "" {
		if f, ok := def.Schema.FindFieldByName(def.Time); ok {
			timeID = f.ID
		}
	}
	byPartition := map[string][]table.FileScanTask{}
	var keys []string
	for _, t := range tasks {
		if t.File.FileSizeBytes() >= opts.SmallFileBytes || len(t.DeleteFiles) > 0 {
			continue
		}
		k := partitionKey(t.File)
		if _, ok := byPartition[k]; !ok {
			keys = append(keys, k)
		}
		byPartition[k] = append(byPartition[k], t)
	}
	sort.Strings(keys)
	var groups [][]table.FileScanTask
	for _, k := range keys {
		files := byPartition[k]
		sort.SliceStable(files, func(i, j int) bool {
			return lowerTime(files[i].File, timeID) < lowerTime(files[j].File, timeID)
		})
		var cur []table.FileScanTask
		var rows int64
		flush := func() {
			if len(cur) >= 2 {
				groups = append(groups, cur)
			}
			cur, rows = nil, 0
		}
		for _, t := range files {
			if rows+t.File.Count() > opts.MaxRows {
				flush()
			}
			cur = append(cur, t)
			rows += t.File.Count()
		}
		flush()
	}
	return groups
}

func partitionKey(f iceberg.DataFile) string {
	p := f.Partition()
	ids := make([]int, 0, len(p))
	for id := range p {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	fmt.Fprintf(&b, "%d", f.SpecID())
	for _, id := range ids {
		fmt.Fprintf(&b, "|%d=%v", id, p[id])
	}
	return b.String()
}

func lowerTime(f iceberg.DataFile, id int) int64 {
	if b := f.LowerBoundValues()[id]; len(b) == 8 {
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// readGroup reads a group's files into one record batch.
func readGroup(ctx context.Context, tbl *table.Table, g []table.FileScanTask) (arrow.RecordBatch, error) {
	_, batches, err := tbl.Scan(table.WithMaxConcurrency(1)).ReadTasks(ctx, g)
	if err != nil {
		return nil, err
	}
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for rec, err := range batches {
		if err != nil {
			return nil, err
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("files of a compaction group are empty")
	}
	cols := make([]arrow.Array, recs[0].NumCols())
	var rows int64
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			return nil, err
		}
		defer c.Release()
		cols[i] = c
	}
	return array.NewRecordBatch(recs[0].Schema(), cols, rows), nil
}

// ExpireOptions choose which snapshots to expire.
type ExpireOptions struct {
	OlderThan  time.Duration // expire snapshots older than this (default 7 days)
	RetainLast int           // but always keep this many recent ones (default 100)
	DryRun     bool
}

// ExpireResult reports the expired snapshots, and the rule applied.
type ExpireResult struct {
	Table      string    `json:"table"`
	Expired    []int64   `json:"expired_snapshot_ids"`
	Remaining  int       `json:"remaining_snapshots"`
	OlderThan  string    `json:"older_than"`  // the age applied, e.g. 168h0m0s
	Cutoff     time.Time `json:"cutoff"`      // snapshots committed before this could expire
	RetainLast int       `json:"retain_last"` // … but the newest this many stay
	DryRun     bool      `json:"dry_run"`
}

// ExpireSnapshots drops old snapshots from the table's history (and the
// files only they referenced), keeping the current one and RetainLast.
// Time travel to an expired snapshot is no longer possible.
func (l *Lake) ExpireSnapshots(ctx context.Context, name string, opts ExpireOptions) (ExpireResult, error) {
	d := config.Default().Maintain
	config.Or(&opts.OlderThan, d.ExpireOlderThan)
	config.Or(&opts.RetainLast, d.RetainLast)
	def, tbl, err := l.table(ctx, name)
	res := ExpireResult{Table: def.FullName(), DryRun: opts.DryRun, OlderThan: opts.OlderThan.String(),
		Cutoff: time.Now().Add(-opts.OlderThan).UTC().Truncate(time.Second), RetainLast: opts.RetainLast}
	if err != nil {
		return res, err
	}
	before := tbl.Metadata().Snapshots()
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(opts.OlderThan), table.WithRetainLast(opts.RetainLast)); err != nil {
		return res, fmt.Errorf("expire snapshots of %s: %w", def.FullName(), err)
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return res, err
	}
	kept := map[int64]bool{}
	for _, s := range staged.Metadata().Snapshots() {
		kept[s.SnapshotID] = true
	}
	for _, s := range before {
		if !kept[s.SnapshotID] {
			res.Expired = append(res.Expired, s.SnapshotID)
		}
	}
	res.Remaining = len(kept)
	if opts.DryRun || len(res.Expired) == 0 {
		return res, nil
	}
	if _, err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("expire snapshots of %s: %w", def.FullName(), err)
	}
	l.log.Info("snapshots expired", "table", def.FullName(), "expired", len(res.Expired), "remaining", res.Remaining)
	return res, nil
}

// OrphanOptions choose which unreferenced files to delete.
type OrphanOptions struct {
	// OlderThan protects files of commits still in flight (default 24h).
	OlderThan time.Duration
	DryRun    bool
}

// OrphanResult lists the orphaned files found (and deleted).
type OrphanResult struct {
	Table   string   `json:"table"`
	Files   []string `json:"files"`
	Bytes   int64    `json:"bytes"`
	Deleted int      `json:"deleted"`
	MinAge  string   `json:"min_age"` // files younger than this were left alone
	DryRun  bool     `json:"dry_run"`
}

// RemoveOrphans deletes files under the table's location that no snapshot
// references, such as those of a writer killed mid-commit.
func (l *Lake) RemoveOrphans(ctx context.Context, name string, opts OrphanOptions) (OrphanResult, error) {
	config.Or(&opts.OlderThan, config.Default().Maintain.OrphanMinAge)
	def, tbl, err := l.table(ctx, name)
	res := OrphanResult{Table: def.FullName(), DryRun: opts.DryRun, MinAge: opts.OlderThan.String()}
	if err != nil {
		return res, err
	}
	r, err := tbl.DeleteOrphanFiles(ctx, table.WithFilesOlderThan(opts.OlderThan), table.WithDryRun(opts.DryRun))
	if err != nil {
		return res, fmt.Errorf("remove orphans of %s: %w", def.FullName(), err)
	}
	res.Files, res.Bytes, res.Deleted = r.OrphanFileLocations, r.TotalSizeBytes, len(r.DeletedFiles)
	if !opts.DryRun {
		l.log.Info("orphan files removed", "table", def.FullName(), "files", res.Deleted, "bytes", res.Bytes)
	}
	return res, nil
}
