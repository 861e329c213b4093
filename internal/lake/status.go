package lake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/k2-market-data/k2/internal/config"
)

// TableStatus is a table's health as maintenance sees it: how fragmented
// its data is, how long its history, how large its metadata.
type TableStatus struct {
	Table      string `json:"table"`
	Rows       int64  `json:"rows"`
	DataFiles  int    `json:"data_files"`
	DataBytes  int64  `json:"data_bytes"`
	Partitions int    `json:"partitions"`
	// MaxFilesPerPartition and BusiestPartition name the most fragmented partition.
	MaxFilesPerPartition int    `json:"max_files_per_partition"`
	BusiestPartition     string `json:"busiest_partition,omitempty"`
	// SmallFiles are files under the compaction threshold; SmallFileDebt
	// is how many of them compaction would remove (all but one per
	// partition).
	SmallFiles    int `json:"small_files"`
	SmallFileDebt int `json:"small_file_debt"`
	Snapshots     int `json:"snapshots"`
	// OldestSnapshot is as far back as time travel reaches.
	OldestSnapshot time.Time `json:"oldest_snapshot,omitzero"`
	Manifests      int       `json:"manifests"`
	// MetadataBytes is the size of the current metadata file, which every
	// commit rewrites and every reader loads.
	MetadataBytes int64            `json:"metadata_bytes"`
	Maintenance   MaintenanceState `json:"maintenance"`
	// Columns are the data bytes of each column (compressed, as the
	// manifests record them), largest first.
	Columns []ColumnBytes `json:"columns,omitempty"`
}

// ColumnBytes is one column's share of a table's data.
type ColumnBytes struct {
	Column string `json:"column"`
	Bytes  int64  `json:"bytes"`
}

// BytesPerRow is the table's data bytes per row (0 when empty).
func (s TableStatus) BytesPerRow() float64 {
	if s.Rows == 0 {
		return 0
	}
	return float64(s.DataBytes) / float64(s.Rows)
}

// Status reports a table's fragmentation, history and metadata size
// (files under smallFileBytes count as small; 0: config's).
func (l *Lake) Status(ctx context.Context, name string, smallFileBytes int64) (TableStatus, error) {
	config.Or(&smallFileBytes, config.Default().Maintain.CompactSmallFileBytes)
	def, tbl, err := l.table(ctx, name)
	st := TableStatus{Table: def.FullName()}
	if err != nil {
		return st, err
	}
	if st.Maintenance, err = l.Maintenance(ctx, name); err != nil {
		return st, err
	}
	md := tbl.Metadata()
	st.Snapshots = len(md.Snapshots())
	for _, s := range md.Snapshots() {
		if t := time.UnixMilli(s.TimestampMs).UTC(); st.OldestSnapshot.IsZero() || t.Before(st.OldestSnapshot) {
			st.OldestSnapshot = t
		}
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return st, err
	}
	if f, err := fs.Open(tbl.MetadataLocation()); err == nil {
		if fi, err := f.Stat(); err == nil {
			st.MetadataBytes = fi.Size()
		}
		f.Close()
	}
	if tbl.CurrentSnapshot() == nil {
		return st, nil
	}
	if st.Manifests, err = manifestCount(ctx, tbl); err != nil {
		return st, err
	}
	parts, err := liveFiles(ctx, tbl)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", def.FullName(), err)
	}
	st.Partitions = len(parts)
	byField := map[int]int64{}
	for _, p := range parts {
		small := 0
		for _, f := range p.Files {
			st.DataFiles++
			st.Rows += f.Count()
			st.DataBytes += f.FileSizeBytes()
			for id, n := range f.ColumnSizes() {
				byField[id] += n
			}
			if f.FileSizeBytes() < smallFileBytes {
				small++
			}
		}
		st.SmallFiles += small
		st.SmallFileDebt += max(0, small-1)
		if len(p.Files) > st.MaxFilesPerPartition {
			st.MaxFilesPerPartition, st.BusiestPartition = len(p.Files), partitionName(def, p.Files[0])
		}
	}
	// Leaf columns (list elements, map keys and values) count for their column.
	byColumn := map[string]int64{}
	for id, n := range byField {
		name, ok := tbl.Schema().FindColumnName(id)
		if !ok {
			name = fmt.Sprintf("field %d (dropped)", id)
		}
		top, _, _ := strings.Cut(name, ".")
		byColumn[top] += n
	}
	for c, n := range byColumn {
		st.Columns = append(st.Columns, ColumnBytes{c, n})
	}
	slices.SortFunc(st.Columns, func(a, b ColumnBytes) int { return cmpInt(b.Bytes, a.Bytes) })
	return st, nil
}

// partitionName prints a file's partition as its path does: timestamp_day=2014-03-10/symbol=BHP.
func partitionName(def TableDef, f liveFile) string {
	var parts []string
	for _, pf := range def.Spec.Fields() {
		v, ok := f.Partition()[pf.FieldID]
		if !ok {
			continue
		}
		s := fmt.Sprint(v)
		switch d := v.(type) {
		case iceberg.Date:
			s = time.Unix(int64(d)*86400, 0).UTC().Format(time.DateOnly)
		case int32:
			if _, day := pf.Transform.(iceberg.DayTransform); day {
				s = time.Unix(int64(d)*86400, 0).UTC().Format(time.DateOnly)
			}
		}
		parts = append(parts, pf.Name+"="+s)
	}
	return strings.Join(parts, "/")
}
