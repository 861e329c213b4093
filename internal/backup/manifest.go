// Package backup copies the lake — every table's metadata and every file
// its snapshots reach — to a directory or S3 prefix, checks such a copy,
// and restores it into an empty (or replaced) catalog and warehouse.
//
// Iceberg files are never changed once written, so a backup taken while
// sinks commit is consistent: each table's current metadata file is read
// first, and everything it reaches is copied; files committed later are
// simply not part of this backup. The catalog itself is not copied: it
// holds only each table's metadata location, which the manifest records
// and a restore registers again.
//
// Files: manifest.go (what a backup holds), storage.go (copying with
// checksums), backup.go, verify.go, restore.go.
package backup

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/k2-market-data/k2/internal/lake"
)

// ManifestName is the manifest's file name at the top of a backup; the
// files are under FilesDir, at their paths relative to the warehouse.
const (
	ManifestName = "manifest.json"
	FilesDir     = "files"
)

// Manifest describes a backup.
type Manifest struct {
	K2Version string    `json:"k2_version"`
	Created   time.Time `json:"created"`
	// Warehouse is the warehouse the files came from; a restore writes
	// them back there (the metadata names files by their full location).
	Warehouse string  `json:"warehouse"`
	Tables    []Table `json:"tables"`
	Files     []File  `json:"files"`
}

// Table is one table as the backup holds it.
type Table struct {
	Name             string       `json:"name"`
	MetadataLocation string       `json:"metadata_location"`
	SnapshotID       int64        `json:"snapshot_id"`
	Snapshots        int          `json:"snapshots"`
	Rows             int64        `json:"rows"`
	Offsets          lake.Offsets `json:"kafka_offsets"`
}

// File is one file of the backup.
type File struct {
	Path   string `json:"path"` // relative to the warehouse
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Bytes is the size of all files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

func readManifest(r io.Reader, where string) (*Manifest, error) {
	var m Manifest
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("backup manifest %s: %w", where, err)
	}
	if m.Warehouse == "" || len(m.Tables) == 0 {
		return nil, fmt.Errorf("backup manifest %s: no warehouse or no tables: not a K2 backup", where)
	}
	return &m, nil
}
