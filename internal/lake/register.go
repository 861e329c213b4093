package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// A table's whole state is its metadata file: the catalog holds only where
// the current one is. A catalog lost (or restored from a backup older than
// the warehouse) is mended by pointing it at a metadata file again.

// RegisterResult says which metadata file a table now stands at.
type RegisterResult struct {
	Table            string `json:"table"`
	MetadataLocation string `json:"metadata_location"`
	Previous         string `json:"previous"`
	SnapshotID       int64  `json:"snapshot_id"`
	Snapshots        int    `json:"snapshots"`
	Rows             int64  `json:"rows"`
	DryRun           bool   `json:"dry_run"`
}

// Register points the catalog's entry of a table at a metadata file (""
// for the newest in the table's metadata folder). The file must describe
// this table's location. The table's row exists: Open creates it. The
// Kafka offsets the file records are then set as the table's offsets
// (SetOffsets), so a sink resumes from them even where the consumer group
// went further: the records after them are not in this table.
func (l *Lake) Register(ctx context.Context, name, metadataLocation string, dryRun bool) (RegisterResult, error) {
	def, tbl, err := l.table(ctx, name)
	res := RegisterResult{Table: def.FullName(), DryRun: dryRun}
	if err != nil {
		return res, err
	}
	res.Previous = tbl.MetadataLocation()
	if metadataLocation == "" {
		if metadataLocation, err = l.NewestMetadata(ctx, name); err != nil {
			return res, err
		}
	}
	md, err := l.readMetadata(ctx, metadataLocation)
	if err != nil {
		return res, err
	}
	if want := l.warehouse + "/" + Namespace + "/" + def.Name; md.Location() != want {
		return res, fmt.Errorf("%s describes a table at %s, not %s", metadataLocation, md.Location(), want)
	}
	res.MetadataLocation, res.Snapshots = metadataLocation, len(md.Snapshots())
	if s := md.CurrentSnapshot(); s != nil {
		res.SnapshotID = s.SnapshotID
		if s.Summary != nil {
			fmt.Sscan(s.Summary.Properties["total-records"], &res.Rows)
		}
	}
	if dryRun || metadataLocation == res.Previous {
		return res, nil
	}
	q := "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?"
	if l.dialect == sqlcat.Postgres {
		q = "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2 WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5"
	}
	r, err := l.db.ExecContext(ctx, q, metadataLocation, res.Previous, CatalogName, Namespace, def.Name)
	if err != nil {
		return res, fmt.Errorf("register %s: %w", def.FullName(), err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		return res, fmt.Errorf("register %s: the catalog has no entry for it", def.FullName())
	}
	tbl, err = l.Load(ctx, name)
	if err != nil {
		return res, fmt.Errorf("register %s: the catalog now points at %s, which does not load: %w", def.FullName(), metadataLocation, err)
	}
	// The consumer group may be past what this metadata records (a backup
	// restored, an older metadata file): a sink resumes from a table's
	// offsets only where they are further, unless they were set by hand.
	if o := TableOffsets(tbl); len(o) > 0 {
		if _, err := l.setOffsets(ctx, def, tbl, o, false); err != nil {
			return res, fmt.Errorf("register %s: %w", def.FullName(), err)
		}
	}
	l.log.Info("table registered at a metadata file", "table", def.FullName(), "metadata_location", metadataLocation,
		"previous", res.Previous, "snapshot_id", res.SnapshotID, "rows", res.Rows)
	return res, nil
}

// NewestMetadata finds the metadata file in a table's metadata folder that
// has seen the most commits (the highest sequence number, then the latest
// update): the table as its last writer left it. A folder holds a few
// dozen files (write.metadata.previous-versions-max), each read once.
func (l *Lake) NewestMetadata(ctx context.Context, name string) (string, error) {
	def, err := l.Def(name)
	if err != nil {
		return "", err
	}
	dir := l.warehouse + "/" + Namespace + "/" + def.Name + "/metadata"
	fsys, err := l.FS(ctx)
	if err != nil {
		return "", err
	}
	lister, ok := fsys.(iceio.ListableIO)
	if !ok {
		return "", fmt.Errorf("%s: the storage cannot list files", dir)
	}
	var names []string
	err = lister.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".metadata.json") {
			names = append(names, path.Base(strings.ReplaceAll(p, "\\", "/")))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("list %s: %w", dir, err)
	}
	var best string
	var bestSeq, bestTime int64 = -1, -1
	for _, n := range names {
		loc := dir + "/" + n
		md, err := l.readMetadata(ctx, loc)
		if err != nil {
			l.log.Warn("skipping a metadata file that does not parse", "file", loc, "error", err)
			continue
		}
		seq, at := md.LastSequenceNumber(), md.LastUpdatedMillis()
		if seq > bestSeq || seq == bestSeq && at > bestTime {
			best, bestSeq, bestTime = loc, seq, at
		}
	}
	if best == "" {
		return "", fmt.Errorf("no metadata file of %s in %s", def.FullName(), dir)
	}
	return best, nil
}

// readMetadata reads and parses a metadata file.
func (l *Lake) readMetadata(ctx context.Context, location string) (table.Metadata, error) {
	fsys, err := l.FS(ctx)
	if err != nil {
		return nil, err
	}
	f, err := fsys.Open(location)
	if err != nil {
		return nil, fmt.Errorf("metadata file %s: %w", location, err)
	}
	defer f.Close()
	md, err := table.ParseMetadata(f)
	if err != nil {
		return nil, fmt.Errorf("metadata file %s: %w", location, err)
	}
	return md, nil
}
