package lake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// liveFile is a data file of the current snapshot and when it was added.
type liveFile struct {
	iceberg.DataFile
	// Added is when the snapshot that added the file was committed; zero
	// when that snapshot has expired (the file is old).
	Added time.Time
}

// partitionFiles are the live files of one partition, oldest first.
type partitionFiles struct {
	Key   string // spec id and partition values, e.g. 0|1000=16140|1001=BHP
	Files []liveFile
}

// newest is when the partition last received a file.
func (p partitionFiles) newest() time.Time {
	var t time.Time
	for _, f := range p.Files {
		if f.Added.After(t) {
			t = f.Added
		}
	}
	return t
}

// liveFiles lists the current snapshot's data files by partition, in
// partition order. Compaction and status need when each file was added,
// which scan planning does not say; the manifests do.
func liveFiles(ctx context.Context, tbl *table.Table) ([]partitionFiles, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("read manifest list: %w", err)
	}
	md := tbl.Metadata()
	added := func(id int64) time.Time {
		if s := md.SnapshotByID(id); s != nil {
			return time.UnixMilli(s.TimestampMs)
		}
		return time.Time{}
	}
	byKey := map[string]*partitionFiles{}
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentData {
			continue
		}
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
			}
			df := e.DataFile()
			k := partitionKey(df)
			p := byKey[k]
			if p == nil {
				p = &partitionFiles{Key: k}
				byKey[k] = p
			}
			p.Files = append(p.Files, liveFile{DataFile: df, Added: added(e.SnapshotID())})
		}
	}
	out := make([]partitionFiles, 0, len(byKey))
	for _, p := range byKey {
		slices.SortStableFunc(p.Files, func(a, b liveFile) int { return a.Added.Compare(b.Added) })
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b partitionFiles) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// partitionKey names a file's partition: its spec and partition values.
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
