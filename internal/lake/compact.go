package lake

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
)

// CompactOptions tune compaction (zero values take config.Default's).
type CompactOptions struct {
	DryRun bool
	// MaxRows bounds the rows rewritten into one output group, which is
	// held in memory while it is sorted.
	MaxRows int64
	// SmallFileBytes: files at least this large are left alone.
	SmallFileBytes int64
	// Due compacts only what is due, as maintenance running beside a sink
	// does: in a partition that received a file within QuietAfter (a hot
	// one), FanIn or more files of one size tier are merged; a quiet
	// partition has all its small files merged. Without Due every
	// partition's small files are merged (k2 lake compact).
	Due        bool
	QuietAfter time.Duration
	FanIn      int
	// Now is the time QuietAfter counts from (default time.Now).
	Now time.Time
	// Share, between 0 and 1, bounds the share of one core compaction
	// takes: after each group it rests in proportion to the time the
	// group took. 0 (k2 lake compact) rests never.
	Share float64
}

// rest waits after a group that took busy, so that compaction keeps to
// its share of a core.
func (o *CompactOptions) rest(ctx context.Context, busy time.Duration) error {
	return ops.Rest(ctx, busy, o.Share)
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

// ErrCompactionStale refuses a compaction whose input files another
// writer replaced meanwhile (a second maintainer); its output is removed.
var ErrCompactionStale = errors.New("the files compacted were replaced meanwhile")

// tierBase is the largest file of size tier 0. A file of tier t is under
// tierBase·FanIn^t bytes, so merging FanIn files of a tier makes about one
// of the next: a row is rewritten once per tier it climbs, a handful of
// times on its way to a large file, rather than at every compaction of a
// partition that keeps growing.
const tierBase = 64 << 10

func tier(size int64, fanIn int) int {
	t := 0
	for limit := int64(tierBase); size >= limit; limit *= int64(fanIn) {
		t++
	}
	return t
}

// Compact rewrites small files into few large ones, sorted by the table's
// sort order, in one rewrite commit: readers see the same rows before and
// after, never a mix. It is safe beside a running sink: the commit is
// based on the table it lands on, carries that table's stream offsets
// forward, and is retried on a concurrent commit.
func (l *Lake) Compact(ctx context.Context, name string, opts CompactOptions) (CompactResult, error) {
	d := config.Default().Maintain
	config.Or(&opts.MaxRows, d.CompactMaxRows)
	config.Or(&opts.SmallFileBytes, d.CompactSmallFileBytes)
	config.Or(&opts.QuietAfter, d.CompactQuietAfter)
	config.Or(&opts.FanIn, d.CompactFanIn)
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	def, tbl, err := l.table(ctx, name)
	res := CompactResult{Table: def.FullName(), DryRun: opts.DryRun}
	if err != nil || tbl.CurrentSnapshot() == nil {
		return res, err
	}
	parts, err := liveFiles(ctx, tbl)
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", def.FullName(), err)
	}
	var groups [][]liveFile
	for _, p := range parts {
		groups = append(groups, compactionGroups(p, def, opts)...)
	}
	for _, g := range groups {
		res.Groups++
		res.FilesBefore += len(g)
		for _, f := range g {
			res.Rows += f.Count()
			res.BytesBefore += f.FileSizeBytes()
		}
	}
	if opts.DryRun || len(groups) == 0 {
		return res, nil
	}
	start := time.Now()
	var oldFiles, newFiles []iceberg.DataFile
	fail := func(err error) (CompactResult, error) {
		l.removeFiles(name, newFiles)
		return res, fmt.Errorf("compact %s: %w", def.FullName(), err)
	}
	prefix := "compact-" + uuid.NewString()
	for i, g := range groups {
		begun := time.Now()
		written, err := l.rewriteGroup(ctx, def, tbl, g, prefix, i+1)
		if err != nil {
			return fail(err)
		}
		if i < len(groups)-1 { // after the last, commit at once
			if err := opts.rest(ctx, time.Since(begun)); err != nil {
				newFiles = append(newFiles, written)
				return fail(err)
			}
		}
		newFiles = append(newFiles, written)
		res.BytesAfter += written.FileSizeBytes()
		for _, f := range g {
			oldFiles = append(oldFiles, f.DataFile)
		}
	}
	newTbl, err := l.commitRewrite(ctx, name, "compact", nil, tbl, oldFiles, newFiles)
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

// compactionGroups picks a partition's files to merge: runs (in time
// order) of at least two small files and at most MaxRows rows each; with
// Due, only the runs due as CompactOptions says.
func compactionGroups(p partitionFiles, def TableDef, opts CompactOptions) [][]liveFile {
	var small []liveFile
	escaped := false
	for _, f := range p.Files {
		if f.FileSizeBytes() < opts.SmallFileBytes {
			small = append(small, f)
		}
		escaped = escaped || escapedPath(f.FilePath())
	}
	if len(small) < 2 && !escaped {
		return nil
	}
	timeID := 0
	if f, ok := def.Schema.FindFieldByName(def.Time); ok && def.Time != "" {
		timeID = f.ID
	}
	byTime := func(files []liveFile) []liveFile {
		slices.SortStableFunc(files, func(a, b liveFile) int {
			return cmpInt(lowerTime(a.DataFile, timeID), lowerTime(b.DataFile, timeID))
		})
		return files
	}
	if escaped {
		// Files written before K2 chose its partition paths, under an
		// escaped location some engines take literally: every file of the
		// partition is rewritten, whatever its size, once.
		return splitRows(byTime(slices.Clone(p.Files)), opts.MaxRows, 1)
	}
	if !opts.Due || opts.Now.Sub(p.newest()) >= opts.QuietAfter {
		return splitRows(byTime(small), opts.MaxRows, 2)
	}
	tiers := map[int][]liveFile{}
	for _, f := range small {
		t := tier(f.FileSizeBytes(), opts.FanIn)
		tiers[t] = append(tiers[t], f)
	}
	var groups [][]liveFile
	for _, t := range slices.Sorted(maps.Keys(tiers)) {
		if files := tiers[t]; len(files) >= opts.FanIn {
			groups = append(groups, splitRows(byTime(files), opts.MaxRows, 2)...)
		}
	}
	return groups
}

// splitRows cuts files into runs of at most maxRows rows, keeping runs of
// minFiles or more.
func splitRows(files []liveFile, maxRows int64, minFiles int) [][]liveFile {
	var groups [][]liveFile
	var cur []liveFile
	var rows int64
	flush := func() {
		if len(cur) >= minFiles {
			groups = append(groups, cur)
		}
		cur, rows = nil, 0
	}
	for _, f := range files {
		if rows+f.Count() > maxRows {
			flush()
		}
		cur = append(cur, f)
		rows += f.Count()
	}
	flush()
	return groups
}

// escapedPath says whether a data file's partition directories hold an
// escape (symbol=%C3%89THUSDT): iceberg-go wrote such paths before K2
// wrote its own (pathValue).
// Partition directories are "field=value", never "data", so the last
// /data/ is the table's.
func escapedPath(location string) bool {
	i := strings.LastIndex(location, "/data/")
	return i >= 0 && strings.Contains(path.Dir(location[i+len("/data/"):]), "%")
}

func lowerTime(f iceberg.DataFile, id int) int64 {
	if b := f.LowerBoundValues()[id]; len(b) == 8 {
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// rewriteGroup reads a group's rows (files of one partition) and writes
// them again, sorted by the table's sort order, as one file.
func (l *Lake) rewriteGroup(ctx context.Context, def TableDef, tbl *table.Table, g []liveFile, prefix string, n int) (iceberg.DataFile, error) {
	rec, err := readGroup(ctx, tbl, g)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	keys, err := sortKeys(tbl, rec)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		sorted, err := compute.SortRecordBatch(ctx, rec, keys)
		if err != nil {
			return nil, fmt.Errorf("sort: %w", err)
		}
		defer sorted.Release()
		rec = sorted
	}
	fw, err := l.newFileWriter(ctx, def, tbl, rec.Schema(), prefix, false)
	if err != nil {
		return nil, err
	}
	return fw.write(ctx, rec, n)
}

// maxRewriteAttempts bounds the retries of a rewrite commit that lost a
// race with a sink's commit. Each retry follows the reload at once (with
// a little jitter): the sink has just committed, so the moment after is
// the one least likely to see its next commit.
const maxRewriteAttempts = 20

// onFreshTable calls try on tbl and, each time try's commit loses to one
// that landed meanwhile, again on the table reloaded, at most
// maxRewriteAttempts times in all. It returns the table of the last try.
// For maintenance that neither adds rows nor records offsets, and so is
// simply done again on the table as it stands (a rewrite of files is not:
// commitRewrite).
func (l *Lake) onFreshTable(ctx context.Context, name string, tbl *table.Table, try func(*table.Table) error) (*table.Table, error) {
	for attempt := 1; ; attempt++ {
		err := try(tbl)
		if err == nil || !isConflict(err) || attempt == maxRewriteAttempts || ctx.Err() != nil {
			return tbl, err
		}
		if tbl, err = l.Load(ctx, name); err != nil {
			return tbl, err
		}
	}
}

// commitRewrite replaces oldFiles by newFiles in one rewrite snapshot
// (k2.operation op and extra in its summary). It
// is pinned to the table it is based on: on a concurrent commit it reloads
// the table, carries the new table's offsets forward and tries again
// (iceberg-go's own replay would keep the offsets of the older table, and
// a sink resuming from them would store records twice).
func (l *Lake) commitRewrite(ctx context.Context, name, op string, extra iceberg.Properties, tbl *table.Table, oldFiles, newFiles []iceberg.DataFile) (*table.Table, error) {
	commitID := op + "-" + uuid.NewString()
	for attempt := 1; ; attempt++ {
		props := iceberg.Properties{"k2.operation": op, CommitIDProperty: commitID}
		maps.Copy(props, extra)
		offsets, byHand := CurrentOffsets(tbl)
		maps.Copy(props, offsets.Props())
		if byHand {
			props[SetByHandProperty] = "true"
		}
		tx := tbl.NewTransaction()
		if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
			return nil, err
		}
		rw := tx.NewRewrite(props)
		for _, f := range oldFiles {
			rw.DeleteFile(f)
		}
		for _, f := range newFiles {
			rw.AddDataFile(f)
		}
		if err := rw.Commit(ctx); err != nil {
			if attempt > 1 {
				// Based on a newer table the old files are gone: another
				// maintainer compacted them first.
				return nil, fmt.Errorf("%w: %v", ErrCompactionStale, err)
			}
			return nil, err
		}
		newTbl, err := tx.Commit(ctx)
		if err == nil {
			return newTbl, nil
		}
		if landed := l.findCommit(context.WithoutCancel(ctx), name, commitID); landed != nil {
			return landed, nil
		}
		if !isConflict(err) || attempt == maxRewriteAttempts || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(rand.N(25 * time.Millisecond)):
		}
		if tbl, err = l.Load(ctx, name); err != nil {
			return nil, err
		}
	}
}

// readGroup reads a group's files into one record batch.
func readGroup(ctx context.Context, tbl *table.Table, g []liveFile) (arrow.RecordBatch, error) {
	tasks := make([]table.FileScanTask, len(g))
	for i, f := range g {
		tasks[i] = table.FileScanTask{File: f.DataFile, Length: f.FileSizeBytes()}
	}
	_, batches, err := tbl.Scan(table.WithMaxConcurrency(1)).ReadTasks(ctx, tasks)
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
