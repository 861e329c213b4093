package lake

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// DroppedFile is a data file taken out of its table by DropDataFile: what
// it held, from the manifest's statistics, so that its rows can be stored
// again from their source.
type DroppedFile struct {
	Path    string // its location in the warehouse
	Records int64
	// The bounds of its rows: symbols and event times (zero for a table
	// without a time).
	MinSymbol, MaxSymbol string
	MinTime, MaxTime     md.Timestamp
	// Offsets are the table's recorded Kafka offsets when it was dropped:
	// every record the file held was consumed before them.
	Offsets Offsets
}

// Holds reports whether a row of symbol at t lies within the file's
// bounds: the rows to store again are among those.
func (f DroppedFile) Holds(symbol string, t md.Timestamp) bool {
	if symbol < f.MinSymbol || symbol > f.MaxSymbol {
		return false
	}
	return f.MaxTime == 0 || (t >= f.MinTime && t <= f.MaxTime)
}

// ErrNoDataFile is DropDataFile's error when the table's current snapshot
// has no such file.
var ErrNoDataFile = errors.New("no such data file in the current snapshot")

// DropDataFile removes a damaged data file from the table's current
// snapshot in one rewrite commit (k2.operation drop-damaged-file) that
// carries the table's offsets forward; the file itself stays where it is
// for a post-mortem. path is the file as an error names it: its path or
// its URI.
func (l *Lake) DropDataFile(ctx context.Context, name, path string) (DroppedFile, error) {
	def, tbl, err := l.table(ctx, name)
	if err != nil {
		return DroppedFile{}, err
	}
	parts, err := liveFiles(ctx, tbl)
	if err != nil {
		return DroppedFile{}, fmt.Errorf("%s: %w", def.FullName(), err)
	}
	var found iceberg.DataFile
	for _, p := range parts {
		for _, f := range p.Files {
			if sameFile(f.FilePath(), path) {
				found = f.DataFile
			}
		}
	}
	if found == nil {
		return DroppedFile{}, fmt.Errorf("%s: %s: %w", def.FullName(), path, ErrNoDataFile)
	}
	out := DroppedFile{Path: found.FilePath(), Records: found.Count(), Offsets: TableOffsets(tbl)}
	sc := tbl.Schema()
	if f, ok := sc.FindFieldByName(def.Symbol); ok {
		out.MinSymbol, out.MaxSymbol = string(found.LowerBoundValues()[f.ID]), string(found.UpperBoundValues()[f.ID])
	}
	if def.Time != "" {
		if f, ok := sc.FindFieldByName(def.Time); ok {
			out.MinTime, out.MaxTime = boundTime(found.LowerBoundValues()[f.ID]), boundTime(found.UpperBoundValues()[f.ID])
		}
	}
	if out.MaxSymbol == "" || (def.Time != "" && out.MaxTime == 0) {
		return DroppedFile{}, fmt.Errorf("%s: %s: the manifest has no bounds of %s and %s, so its rows cannot be told apart", def.FullName(), path, def.Symbol, def.Time)
	}
	b, err := json.Marshal(droppedSummary{out.Path, out.Records, out.MinSymbol, out.MaxSymbol, out.MinTime, out.MaxTime})
	if err != nil {
		return DroppedFile{}, err
	}
	if _, err := l.commitRewrite(ctx, name, dropOperation, iceberg.Properties{droppedProperty: string(b)}, tbl, []iceberg.DataFile{found}, nil); err != nil {
		return DroppedFile{}, fmt.Errorf("%s: drop %s: %w", def.FullName(), path, err)
	}
	l.log.Warn("damaged data file dropped from the table", "table", def.FullName(), "file", out.Path, "records", out.Records)
	return out, nil
}

// The drop's snapshot records what it dropped, so that the rows can be
// stored again (DroppedDataFile) after a refill that failed part-way.
const (
	dropOperation   = "drop-damaged-file"
	droppedProperty = "k2.dropped-file"
)

type droppedSummary struct {
	Path      string       `json:"path"`
	Records   int64        `json:"records"`
	MinSymbol string       `json:"min_symbol"`
	MaxSymbol string       `json:"max_symbol"`
	MinTime   md.Timestamp `json:"min_time"`
	MaxTime   md.Timestamp `json:"max_time"`
}

// DroppedDataFile finds a file DropDataFile dropped from the table, in the
// snapshots the table still has, with the offsets recorded at the drop.
func (l *Lake) DroppedDataFile(ctx context.Context, name, path string) (DroppedFile, error) {
	def, tbl, err := l.table(ctx, name)
	if err != nil {
		return DroppedFile{}, err
	}
	snaps := tbl.Metadata().Snapshots()
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if s.Summary == nil || s.Summary.Properties[droppedProperty] == "" {
			continue
		}
		var d droppedSummary
		if err := json.Unmarshal([]byte(s.Summary.Properties[droppedProperty]), &d); err != nil {
			return DroppedFile{}, fmt.Errorf("%s: snapshot %d: %s: %w", def.FullName(), s.SnapshotID, droppedProperty, err)
		}
		if sameFile(d.Path, path) {
			return DroppedFile{Path: d.Path, Records: d.Records, MinSymbol: d.MinSymbol, MaxSymbol: d.MaxSymbol,
				MinTime: d.MinTime, MaxTime: d.MaxTime, Offsets: offsetsOf(s.Summary.Properties)}, nil
		}
	}
	return DroppedFile{}, fmt.Errorf("%s: %s: %w", def.FullName(), path, ErrNoDataFile)
}

// sameFile reports whether a data file's location is the path an
// operator gave: the same URI, or the same local path.
func sameFile(location, path string) bool {
	return location == path || strings.TrimPrefix(location, "file://") == path
}

func boundTime(b []byte) md.Timestamp {
	if len(b) != 8 {
		return 0
	}
	return md.Timestamp(binary.LittleEndian.Uint64(b))
}
