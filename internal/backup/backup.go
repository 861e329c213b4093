package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/ops"
)

// Options say where a backup goes and how.
type Options struct {
	// Location is a directory or s3://bucket/prefix (for a backup, where
	// it goes; for a restore or a check, where it is).
	Location string
	S3       lake.S3Options
	Workers  int // files copied at once (default config's)
	Logger   *slog.Logger
}

func (o *Options) defaults() {
	config.Or(&o.Workers, config.Default().Backup.Workers)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result is what a backup did.
type Result struct {
	Location    string        `json:"location"`
	Tables      []Table       `json:"tables"`
	Files       int           `json:"files"`
	Bytes       int64         `json:"bytes"`
	Copied      int           `json:"copied"` // files not already in the backup
	CopiedBytes int64         `json:"copied_bytes"`
	Duration    time.Duration `json:"duration_ns"`
}

// maxTableAttempts bounds the re-reads of a table whose files a
// maintainer deleted (snapshots expired) while they were being copied.
const maxTableAttempts = 3

// Backup copies the tables of l to opts.Location: each table's current
// metadata file and every manifest list, manifest and data file of each
// of its snapshots, so time travel works after a restore. A file already
// in the backup (same path and size; Iceberg never rewrites a file) is
// not copied again. The manifest is written last.
func Backup(ctx context.Context, l *lake.Lake, tables []string, opts Options) (Result, error) {
	opts.defaults()
	start := time.Now()
	res := Result{Location: opts.Location}
	st, err := openStore(ctx, opts.Location, opts.S3)
	if err != nil {
		return res, err
	}
	res.Location = st.root
	dst, err := st.writer()
	if err != nil {
		return res, err
	}
	have := map[string]File{}
	switch prev, err := st.manifest(); {
	case err == nil && prev.Warehouse != l.Warehouse():
		return res, fmt.Errorf("backup %s holds the warehouse %s, not %s: back up each lake to a location of its own", st.root, prev.Warehouse, l.Warehouse())
	case err == nil:
		for _, f := range prev.Files {
			have[f.Path] = f
		}
	case !errors.Is(err, fs.ErrNotExist):
		opts.Logger.Warn("the backup's manifest does not read; copying every file again", "error", err)
	}
	src, err := l.FS(ctx)
	if err != nil {
		return res, err
	}
	m := &Manifest{K2Version: ops.BuildInfo().Version, Created: time.Now().UTC(), Warehouse: l.Warehouse()}
	files := map[string]File{}
	var mu sync.Mutex
	for _, name := range tables {
		var t Table
		var err error
		for attempt := 1; ; attempt++ {
			t, err = backupTable(ctx, l, name, src, func(rel, loc string) error {
				if f, ok := have[rel]; ok {
					if n, err := size(st.fs, st.file(rel)); err == nil && n == f.Size {
						mu.Lock()
						files[rel] = f
						mu.Unlock()
						return nil
					}
				}
				n, sum, err := copyFile(src, loc, dst, st.file(rel), "")
				if err != nil {
					return err
				}
				mu.Lock()
				files[rel] = File{Path: rel, Size: n, SHA256: sum}
				res.Copied++
				res.CopiedBytes += n
				mu.Unlock()
				return nil
			}, opts.Workers)
			if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == maxTableAttempts {
				break
			}
			opts.Logger.Warn("a file of the table went while it was copied (snapshots expired meanwhile); reading the table again", "table", name, "error", err)
		}
		if err != nil {
			return res, fmt.Errorf("back up %s: %w", name, err)
		}
		m.Tables = append(m.Tables, t)
	}
	for _, f := range files {
		m.Files = append(m.Files, f)
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	if err := st.writeManifest(m); err != nil {
		return res, err
	}
	res.Tables, res.Files, res.Bytes, res.Duration = m.Tables, len(m.Files), m.Bytes(), time.Since(start)
	opts.Logger.Info("backup written", "location", st.root, "tables", len(m.Tables), "files", res.Files, "bytes", res.Bytes,
		"copied_files", res.Copied, "copied_bytes", res.CopiedBytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}

// backupTable copies every file the table's current metadata reaches (and
// the metadata files before it that are still there),
// with copy(rel, location) on up to workers files at once.
func backupTable(ctx context.Context, l *lake.Lake, name string, src iceio.IO, copy func(rel, loc string) error, workers int) (Table, error) {
	tbl, err := l.Load(ctx, name)
	if err != nil {
		return Table{}, err
	}
	t := Table{Name: name, MetadataLocation: tbl.MetadataLocation(), Snapshots: len(tbl.Metadata().Snapshots()), Offsets: lake.TableOffsets(tbl)}
	if s := tbl.CurrentSnapshot(); s != nil {
		t.SnapshotID = s.SnapshotID
		if s.Summary != nil {
			fmt.Sscan(s.Summary.Properties["total-records"], &t.Rows)
		}
	}
	locs, err := reachable(tbl, src)
	if err != nil {
		return t, err
	}
	type item struct {
		rel, loc string
		optional bool
	}
	items := make([]item, 0, len(locs))
	for _, loc := range locs {
		rel, ok := strings.CutPrefix(loc, l.Warehouse()+"/")
		if !ok {
			return t, fmt.Errorf("%s lies outside the warehouse %s", loc, l.Warehouse())
		}
		items = append(items, item{rel, loc, false})
	}
	// The metadata files before the current one: not needed to read the
	// table, but the next commit after a restore deletes the oldest of
	// them, and they let k2 lake register go back. One may have been
	// deleted meanwhile by a commit.
	for e := range tbl.Metadata().PreviousFiles() {
		if rel, ok := strings.CutPrefix(e.MetadataFile, l.Warehouse()+"/"); ok {
			items = append(items, item{rel, e.MetadataFile, true})
		}
	}
	errs := parallel(items, workers, func(it item) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := copy(it.rel, it.loc); err != nil && !(it.optional && errors.Is(err, fs.ErrNotExist)) {
			return err
		}
		return nil
	})
	return t, errors.Join(errs...)
}

// reachable lists the files a table's metadata reaches: itself, and each
// snapshot's manifest list, manifests and live data and delete files.
func reachable(tbl *table.Table, fsys iceio.IO) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(loc string) {
		if loc != "" && !seen[loc] {
			seen[loc] = true
			out = append(out, loc)
		}
	}
	add(tbl.MetadataLocation())
	for _, s := range tbl.Metadata().Snapshots() {
		add(s.ManifestList)
		manifests, err := s.Manifests(fsys)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: manifest list %s: %w", s.SnapshotID, s.ManifestList, err)
		}
		for _, mf := range manifests {
			if seen[mf.FilePath()] {
				continue
			}
			add(mf.FilePath())
			for e, err := range mf.Entries(fsys, true) {
				if err != nil {
					return nil, fmt.Errorf("manifest %s: %w", mf.FilePath(), err)
				}
				add(e.DataFile().FilePath())
			}
		}
	}
	return out, nil
}
