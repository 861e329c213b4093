package query

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// dataFile is a data file of a snapshot with what pruning and ordering need.
type dataFile struct {
	location   string
	rows       int64
	minT, maxT md.Timestamp // bounds of the time column, when it has one
	hasTime    bool
	// Bounds of the symbol and exchange columns. They may be truncated
	// prefixes, which keeps lower ≤ true minimum and upper ≥ true maximum.
	symLo, symHi string
	exLo, exHi   string
	hasSym       bool
	hasEx        bool
	// Partition values, where the spec has them: the UTC day of the rows
	// and the symbol (identity partitioning).
	partDay    int64
	partSym    string
	hasPartDay bool
	hasPartSym bool
}

// mayHold reports whether the file can hold rows matching f: by its
// partition first, then by its column bounds.
func (d *dataFile) mayHold(f Filter) bool {
	if f.Symbol != "" && d.hasPartSym && f.Symbol != d.partSym {
		return false
	}
	if d.hasPartDay {
		start := md.Timestamp(d.partDay * 86_400_000_000)
		if f.From != 0 && start+86_400_000_000 <= f.From || f.To != 0 && start >= f.To {
			return false
		}
	}
	if f.Symbol != "" && d.hasSym && (f.Symbol < d.symLo || f.Symbol > d.symHi) {
		return false
	}
	if len(f.Symbols) > 0 && !slices.ContainsFunc(f.Symbols, func(s string) bool {
		return (!d.hasPartSym || s == d.partSym) && (!d.hasSym || s >= d.symLo && s <= d.symHi)
	}) {
		return false
	}
	if f.Exchange != "" && d.hasEx && (f.Exchange < d.exLo || f.Exchange > d.exHi) {
		return false
	}
	if d.hasTime {
		if f.From != 0 && d.maxT < f.From {
			return false
		}
		if f.To != 0 && d.minT >= f.To {
			return false
		}
	}
	return true
}

// fileIndex remembers the data files each manifest lists. Manifests are
// immutable, so after a commit only the manifests it added are read: the
// plan for a query is an in-memory pass over the snapshot's files rather
// than a read of every manifest.
type fileIndex struct {
	mu         sync.Mutex
	byManifest map[string][]dataFile
	files      int
}

// maxIndexedFiles bounds the index; past it, the index starts afresh.
const maxIndexedFiles = 1_000_000

// plan lists the data files of snap that may hold rows matching f. The
// manifests come from iceberg-go; files are pruned by their partition
// values (day, symbol) first, then by their column bounds.
func (e *Engine) plan(ctx context.Context, st *tableState, snap *table.Snapshot, timeCol string, f Filter) ([]dataFile, error) {
	if snap == nil {
		return nil, nil
	}
	all, err := e.snapshotFiles(ctx, st, snap, timeCol)
	if err != nil {
		return nil, err
	}
	out := make([]dataFile, 0, len(all))
	for i := range all {
		if all[i].mayHold(f) {
			out = append(out, all[i])
		}
	}
	return out, nil
}

func (e *Engine) snapshotFiles(ctx context.Context, st *tableState, snap *table.Snapshot, timeCol string) ([]dataFile, error) {
	st.mu.Lock()
	cached, ok := st.files[snap.SnapshotID]
	st.mu.Unlock()
	if ok {
		return cached, nil
	}
	// Reads arriving together after a commit list its files once: a
	// compaction's new manifests take tens of milliseconds to decode.
	v, err, _ := e.loads.Do(fmt.Sprintf("files\x00%s\x00%d\x00%s", st.location, snap.SnapshotID, timeCol), func() (any, error) {
		return e.listFiles(ctx, st, snap, timeCol)
	})
	if err != nil {
		return nil, err
	}
	return v.([]dataFile), nil
}

// listFiles reads a snapshot's data files from its manifests (each
// manifest's once, while the index holds it) and keeps them with st.
func (e *Engine) listFiles(ctx context.Context, st *tableState, snap *table.Snapshot, timeCol string) ([]dataFile, error) {
	tbl := st.tbl
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("read manifests of %s: %w", tbl.Identifier(), err)
	}
	sc := tbl.Schema()
	ids := struct{ sym, ex, time int }{}
	if f, ok := sc.FindFieldByName("symbol"); ok {
		ids.sym = f.ID
	}
	if f, ok := sc.FindFieldByName(lake.ExchangeColumn); ok {
		ids.ex = f.ID
	}
	if f, ok := sc.FindFieldByName(timeCol); ok && timeCol != "" {
		ids.time = f.ID
	}
	// The day and identity-symbol fields of the partition spec.
	var part struct{ day, sym int }
	spec := tbl.Spec()
	for _, pf := range spec.Fields() {
		switch pf.Transform.(type) {
		case iceberg.DayTransform:
			if len(pf.SourceIDs) == 1 && pf.SourceIDs[0] == ids.time {
				part.day = pf.FieldID
			}
		case iceberg.IdentityTransform:
			if len(pf.SourceIDs) == 1 && pf.SourceIDs[0] == ids.sym {
				part.sym = pf.FieldID
			}
		}
	}
	ix := &e.index
	var out []dataFile
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentData {
			return nil, fmt.Errorf("%s has delete files, which K2 does not write and its reader does not apply", tbl.Identifier())
		}
		ix.mu.Lock()
		files, ok := ix.byManifest[m.FilePath()]
		ix.mu.Unlock()
		if !ok {
			files = make([]dataFile, 0, m.AddedDataFiles()+m.ExistingDataFiles())
			for en, err := range m.Entries(fs, true) {
				if err != nil {
					return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
				}
				d := describe(en.DataFile(), ids.sym, ids.ex, ids.time)
				pv := en.DataFile().Partition()
				if v, ok := pv[part.day].(iceberg.Date); ok && part.day != 0 {
					d.partDay, d.hasPartDay = int64(v), true
				}
				if v, ok := pv[part.sym].(string); ok && part.sym != 0 {
					d.partSym, d.hasPartSym = v, true
				}
				files = append(files, d)
			}
			ix.mu.Lock()
			if ix.byManifest == nil || ix.files+len(files) > maxIndexedFiles {
				ix.byManifest, ix.files = map[string][]dataFile{}, 0
			}
			ix.byManifest[m.FilePath()] = files
			ix.files += len(files)
			ix.mu.Unlock()
		}
		out = append(out, files...)
	}
	st.mu.Lock()
	if len(st.files) > 64 { // time travel across many snapshots: start afresh
		clear(st.files)
	}
	st.files[snap.SnapshotID] = out
	st.mu.Unlock()
	return out, nil
}

func describe(df iceberg.DataFile, symID, exID, timeID int) dataFile {
	// Without time bounds a file may hold any time.
	d := dataFile{location: df.FilePath(), rows: df.Count(), minT: math.MinInt64, maxT: math.MaxInt64}
	lo, hi := df.LowerBoundValues(), df.UpperBoundValues()
	if timeID != 0 {
		a, okA := lo[timeID]
		b, okB := hi[timeID]
		if okA && okB && len(a) == 8 && len(b) == 8 {
			d.minT = md.Timestamp(int64(binary.LittleEndian.Uint64(a)))
			d.maxT = md.Timestamp(int64(binary.LittleEndian.Uint64(b)))
			d.hasTime = true
		}
	}
	if a, ok := lo[symID]; ok {
		if b, ok := hi[symID]; ok {
			d.symLo, d.symHi, d.hasSym = string(a), string(b), true
		}
	}
	if a, ok := lo[exID]; ok {
		if b, ok := hi[exID]; ok {
			d.exLo, d.exHi, d.hasEx = string(a), string(b), true
		}
	}
	return d
}
