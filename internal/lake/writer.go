package lake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/ops"
)

// CommitIDProperty is the snapshot-summary key holding the writer's id for
// a commit, so a commit whose outcome is unknown (the catalog timed out)
// can be found, or proved absent, by reloading the table.
const CommitIDProperty = "k2.commit-id"

// StartedProperty is the snapshot-summary key holding when the writer
// began the commit (Unix milliseconds): the snapshot's own timestamp less
// it is how long the transaction took to its snapshot (keys read, files
// written), which the transaction log of the API's commits shows.
const StartedProperty = "k2.started-ms"

// Writer appends batches of one record type to one table. Each Commit is
// one Iceberg transaction: the batch's rows become visible together or not
// at all, and a failed commit leaves no files behind.
//
// One Writer per table per process: iceberg-go replays a conflicting
// commit against the new head itself (bounded by the table's
// commit.retry.* properties); two writers are safe but pay those retries.
type Writer[T any] struct {
	lake      *Lake
	def       TableDef
	codec     *Codec[T]
	schema    *arrow.Schema
	dedup     bool
	workers   int
	transient bool // files written for speed (WithTransientFiles)
	log       *slog.Logger
	// splitBatches: each (day, symbol) group of rows is a partition of
	// its own (identity symbol); with bucket[N] groups are gathered by
	// partition.
	splitBatches bool
}

// WriterOption configures a Writer.
type WriterOption func(*writerConfig)

type writerConfig struct {
	dedup     bool
	workers   int
	transient bool
}

// WithDedup drops rows whose (symbol, key) is already in the table or
// earlier in the batch. Loaders use it so loading the same input twice
// adds nothing; it costs a read of the keys of the files whose symbol,
// time and key ranges overlap the batch.
func WithDedup(on bool) WriterOption { return func(c *writerConfig) { c.dedup = on } }

// WithWorkers bounds the goroutines encoding Parquet (default: GOMAXPROCS).
func WithWorkers(n int) WriterOption { return func(c *writerConfig) { c.workers = n } }

// WithTransientFiles writes data files for speed rather than size, as the
// sink's are: small files that compaction rewrites with the table's own
// settings. They are snappy rather than the table's codec (zstd was 7-9%
// of a draining sink's CPU, snappy 2-3%), and hold decimals of up to 18
// digits as Parquet INT64 with delta encoding rather than as fixed-length
// bytes with a dictionary (a draining sink 8-12% less CPU a trade). The
// table keeps the dictionary, which real prices and sizes, repeating,
// compress better with (docs/lake.md). They keep no statistics of the
// text columns whose bounds K2 does not read (boundsRead).
func WithTransientFiles() WriterOption {
	return func(c *writerConfig) { c.transient = true }
}

// NewWriter writes the named table with records encoded by c (a record
// kind's Writer opens one: record.Trade.Writer).
func NewWriter[T any](l *Lake, name string, c *Codec[T], opts ...WriterOption) (*Writer[T], error) {
	def, err := l.Def(name)
	if err != nil {
		return nil, err
	}
	cfg := writerConfig{workers: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&cfg)
	}
	split := true
	for _, f := range def.Spec.Fields() {
		switch f.Transform.(type) {
		case iceberg.IdentityTransform, iceberg.DayTransform:
		default:
			split = false
		}
	}
	return &Writer[T]{
		lake: l, def: def, codec: c, schema: ArrowSchema(def.Schema),
		dedup: cfg.dedup, workers: cfg.workers, transient: cfg.transient, splitBatches: split,
		log: l.log.With("table", def.FullName()),
	}, nil
}

// Table is the full name of the table written.
func (w *Writer[T]) Table() string { return w.def.FullName() }

// CommitResult describes one transaction, as the transaction log records it.
type CommitResult struct {
	Table          string
	Rows           int // rows committed
	Duplicates     int // rows dropped as already stored or repeated
	SnapshotBefore int64
	SnapshotAfter  int64
	SequenceBefore int64
	SequenceAfter  int64
	FilesAdded     int
	BytesAdded     int64
	TotalRecords   int64
	TotalFiles     int64
	Duration       time.Duration
}

// CommitOption adjusts one Commit.
type CommitOption func(*commitConfig)

type commitConfig struct {
	summary func(base *table.Table) (map[string]string, error)
}

// WithSummary computes snapshot-summary properties from the table the
// commit is based on: called before the data files are written and again
// whenever a conflict makes the commit rebase on a newer table (such a
// commit is not replayed by iceberg-go, whose replay would keep the old
// summary). An error aborts the commit (nothing is written); a stream
// writer uses it to carry offsets forward and to refuse records another
// writer already stored.
func WithSummary(fn func(base *table.Table) (map[string]string, error)) CommitOption {
	return func(c *commitConfig) { c.summary = fn }
}

// Commit writes rows (in any order) as one transaction and returns what it
// did. props are added to the snapshot summary. A batch that is empty, or
// only duplicates, commits nothing and returns Rows == 0.
func (w *Writer[T]) Commit(ctx context.Context, rows []T, props map[string]string, opts ...CommitOption) (CommitResult, error) {
	start := time.Now()
	res := CommitResult{Table: w.def.FullName()}
	var cc commitConfig
	for _, o := range opts {
		o(&cc)
	}
	if len(rows) > 0 {
		w.lake.m.batchSize.WithLabelValues(w.def.Name).Observe(float64(len(rows)))
	}
	tbl, err := w.lake.Load(ctx, w.def.Name)
	if err != nil {
		return res, w.fail(res, start, "catalog", len(rows), err)
	}
	summary := iceberg.Properties{}
	maps.Copy(summary, props)
	if cc.summary != nil {
		extra, err := cc.summary(tbl)
		if err != nil {
			return res, err
		}
		maps.Copy(summary, extra)
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		res.SnapshotBefore, res.SequenceBefore = s.SnapshotID, s.SequenceNumber
	}
	parts := w.codec.partition(rows, w.dedup)
	if w.dedup {
		kept, err := w.dropDuplicates(ctx, tbl, rows, parts)
		if err != nil {
			return res, w.fail(res, start, "storage", len(rows), fmt.Errorf("read existing keys: %w", err))
		}
		if res.Duplicates = len(rows) - len(kept); res.Duplicates > 0 {
			rows, parts = kept, w.codec.partition(kept, false)
		}
		w.lake.m.duplicates.WithLabelValues(w.def.Name).Add(float64(res.Duplicates))
	}
	if len(rows) == 0 {
		res.SnapshotAfter, res.SequenceAfter = res.SnapshotBefore, res.SequenceBefore
		res.Duration = time.Since(start)
		if res.Duplicates > 0 {
			w.log.Log(ctx, ops.LevelRoutine, "Iceberg transaction skipped: every row already stored", "duplicates", res.Duplicates)
		}
		return res, nil
	}

	files, err := w.writeFiles(ctx, tbl, rows, parts)
	if err != nil {
		w.lake.removeFiles(w.def.Name, files)
		return res, w.fail(res, start, "storage", len(rows), fmt.Errorf("write data files: %w", err))
	}
	summary[CommitIDProperty] = uuid.NewString()
	summary[StartedProperty] = strconv.FormatInt(start.UnixMilli(), 10)
	newTbl, err := w.commitFiles(ctx, tbl, files, summary, cc.summary)
	if err != nil {
		w.lake.removeFiles(w.def.Name, files)
		kind := "catalog"
		if isConflict(err) {
			kind = "commit_conflict"
		}
		return res, w.fail(res, start, kind, len(rows), fmt.Errorf("commit: %w", err))
	}

	res.Rows = len(rows)
	res.FilesAdded = len(files)
	for _, f := range files {
		res.BytesAdded += f.FileSizeBytes()
	}
	w.lake.m.observe(w.def.Name, newTbl)
	if s := newTbl.CurrentSnapshot(); s != nil {
		res.SnapshotAfter, res.SequenceAfter = s.SnapshotID, s.SequenceNumber
		if s.Summary != nil {
			res.TotalRecords, _ = strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
			res.TotalFiles, _ = strconv.ParseInt(s.Summary.Properties["total-data-files"], 10, 64)
		}
	}
	res.Duration = time.Since(start)
	w.lake.m.transactions.WithLabelValues("success", w.def.Name).Inc()
	w.lake.m.transactionRows.WithLabelValues(w.def.Name).Observe(float64(res.Rows))
	w.lake.m.rowsWritten.WithLabelValues(w.def.Name).Add(float64(res.Rows))
	w.lake.m.writeDuration.WithLabelValues(w.def.Name).Observe(res.Duration.Seconds())
	w.lake.m.filesWritten.WithLabelValues(w.def.Name).Add(float64(res.FilesAdded))
	w.lake.m.bytesWritten.WithLabelValues(w.def.Name).Add(float64(res.BytesAdded))
	// One line per commit: the transaction log, routine where logs are
	// collected; a terminal shows a status line instead.
	w.log.Log(ctx, ops.LevelRoutine, "Iceberg transaction committed",
		"record_count", res.Rows,
		"duplicates_dropped", res.Duplicates,
		"snapshot_id_before", res.SnapshotBefore,
		"snapshot_id_after", res.SnapshotAfter,
		"sequence_number_before", res.SequenceBefore,
		"sequence_number_after", res.SequenceAfter,
		"transaction_duration_ms", float64(res.Duration.Microseconds())/1000,
		"added_records", res.Rows,
		"added_data_files", res.FilesAdded,
		"added_files_size_bytes", res.BytesAdded,
		"total_records", res.TotalRecords,
		"total_data_files", res.TotalFiles,
		"commit_id", summary[CommitIDProperty],
	)
	return res, nil
}

// writeFiles encodes the rows and writes them as data files, one per
// partition, sorted by the table's sort order; partitions are encoded and
// written in parallel. It returns the files written, also on error, so
// that a failed commit can remove them.
func (w *Writer[T]) writeFiles(ctx context.Context, tbl *table.Table, rows []T, parts partitioned) ([]iceberg.DataFile, error) {
	fw, err := w.lake.newFileWriter(ctx, w.def, tbl, w.schema, uuid.NewString(), w.transient)
	if err != nil {
		return nil, err
	}
	groups, err := w.partitions(tbl, rows, parts)
	if err != nil {
		return nil, err
	}
	files := make([]iceberg.DataFile, len(groups))
	errs := make([]error, len(groups))
	sem := make(chan struct{}, w.workers)
	var wg sync.WaitGroup
	for i, part := range groups {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			rec := w.codec.Record(w.schema, rows, part)
			defer rec.Release()
			files[i], errs[i] = fw.write(ctx, rec, i+1)
		})
	}
	wg.Wait()
	written := slices.DeleteFunc(files, func(f iceberg.DataFile) bool { return f == nil })
	return written, errors.Join(errs...)
}

// partitions returns each partition's rows, in sort order. With
// identity(symbol) each (day, symbol) is a partition; with bucket[N] the
// symbols of a bucket share one, in symbol order, so the file stays sorted.
func (w *Writer[T]) partitions(tbl *table.Table, rows []T, parts partitioned) ([][]int, error) {
	var groups [][]int
	lo := 0
	for _, hi := range parts.ends {
		groups = append(groups, parts.order[lo:hi])
		lo = hi
	}
	if w.splitBatches {
		return groups, nil
	}
	var keys []string
	byKey := map[string][]int{}
	for _, g := range groups {
		first := w.codec.Record(w.schema, rows, g[:1])
		values, err := partitionValues(tbl.Spec(), tbl.Schema(), first)
		first.Release()
		if err != nil {
			return nil, err
		}
		k := partitionPath(tbl.Spec(), tbl.Schema(), values)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], g...)
	}
	out := make([][]int, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out, nil
}

// maxCommitAttempts bounds K2's own reload-and-retry around iceberg-go's:
// the library replays a conflicting append against the new head, but gives
// up on conflicts it cannot replay (two first commits to an empty table),
// and the SQL catalog reports the commonest conflict, another commit
// landing while this one wrote its manifests, as a failed requirement,
// which the library does not retry at all. Four writers on one table,
// slowed by the race detector, used up five attempts now and then.
const maxCommitAttempts = 10

// commitBackoff is the wait before attempt (2, 3, …): growing, at most a
// second, and jittered, so that writers that collided do not retry in
// step and collide again.
func commitBackoff(attempt int) time.Duration {
	d := min(time.Duration(attempt*attempt)*20*time.Millisecond, time.Second)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}

// commitFiles adds already written files to the table in one snapshot. On a
// conflict it reloads the table and tries again with the same files; a
// commit whose outcome is unknown is looked up by its commit id before
// anything is retried or deleted.
func (w *Writer[T]) commitFiles(ctx context.Context, tbl *table.Table, files []iceberg.DataFile, summary iceberg.Properties, rebase func(*table.Table) (map[string]string, error)) (*table.Table, error) {
	commitID := summary[CommitIDProperty]
	for attempt := 1; ; attempt++ {
		if rebase != nil && attempt > 1 {
			extra, err := rebase(tbl)
			if err != nil {
				return nil, err
			}
			maps.Copy(summary, extra)
		}
		tx := tbl.NewTransaction()
		if rebase != nil {
			// iceberg-go would replay a conflicting commit on the new head
			// with the summary computed for the old one; pinning the head
			// makes the conflict ours, so the summary is computed again.
			if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
				return nil, fmt.Errorf("stage commit: %w", err)
			}
		}
		err := tx.AddDataFiles(ctx, files, summary, table.WithoutDuplicateCheck())
		if err != nil {
			return nil, fmt.Errorf("stage commit: %w", err)
		}
		newTbl, err := tx.Commit(ctx)
		if err == nil {
			return newTbl, nil
		}
		if landed := w.lake.findCommit(context.WithoutCancel(ctx), w.def.Name, commitID); landed != nil {
			return landed, nil
		}
		reason := "catalog"
		if isConflict(err) {
			reason = "conflict"
		}
		w.lake.m.commitFailures.WithLabelValues(w.def.Name, reason).Inc()
		if !isConflict(err) || attempt == maxCommitAttempts || ctx.Err() != nil {
			return nil, err
		}
		w.log.Warn("Iceberg commit conflict, reloading and retrying", "attempt", attempt, "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(commitBackoff(attempt)):
		}
		if tbl, err = w.lake.Load(ctx, w.def.Name); err != nil {
			return nil, err
		}
	}
}

// isConflict reports whether a commit failed because another writer moved
// the table: the catalog's ErrCommitFailed, or a failed requirement.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || strings.Contains(err.Error(), "requirement failed")
}

// findCommit reloads the table and returns it if a snapshot carries commitID.
func (l *Lake) findCommit(ctx context.Context, name, commitID string) *table.Table {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tbl, err := l.Load(ctx, name)
	if err != nil {
		return nil
	}
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Properties[CommitIDProperty] == commitID {
			return tbl
		}
	}
	return nil
}

// removeFiles deletes data files a failed commit wrote, so nothing
// half-written stays in the warehouse.
func (l *Lake) removeFiles(tableName string, files []iceberg.DataFile) {
	if len(files) == 0 {
		return
	}
	log := l.log.With("table", Namespace+"."+tableName)
	fs, err := l.FS(context.Background())
	if err != nil {
		log.Warn("cannot open storage to remove files of a failed commit; run k2 lake remove-orphans", "files", len(files), "error", err)
		return
	}
	wfs, ok := fs.(iceio.WriteFileIO)
	if !ok {
		return
	}
	removed := 0
	for _, f := range files {
		if err := wfs.Remove(f.FilePath()); err != nil {
			log.Warn("cannot remove file of a failed commit; run k2 lake remove-orphans", "file", f.FilePath(), "error", err)
			continue
		}
		removed++
	}
	l.m.orphansRemoved.WithLabelValues(tableName).Add(float64(removed))
}

func (w *Writer[T]) fail(res CommitResult, start time.Time, kind string, rows int, err error) error {
	w.lake.m.transactions.WithLabelValues("failed", w.def.Name).Inc()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		kind = "canceled"
	}
	w.lake.m.writeErrors.WithLabelValues(w.def.Name, kind).Inc()
	w.log.Error("Iceberg transaction failed",
		"record_count", rows,
		"snapshot_id_before", res.SnapshotBefore,
		"sequence_number_before", res.SequenceBefore,
		"transaction_duration_ms", float64(time.Since(start).Microseconds())/1000,
		"error_type", kind,
		"error", err.Error(),
	)
	return fmt.Errorf("%s: %w", w.def.FullName(), err)
}
