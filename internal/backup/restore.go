package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	iceio "github.com/apache/iceberg-go/io"

	"github.com/k2-market-data/k2/internal/lake"
)

// RestoreResult is what a restore did.
type RestoreResult struct {
	Location string                `json:"location"`
	Created  time.Time             `json:"backup_created"`
	Tables   []lake.RegisterResult `json:"tables"`
	Files    int                   `json:"files"`
	Bytes    int64                 `json:"bytes"`
	Duration time.Duration         `json:"duration_ns"`
}

// ErrNotEmpty refuses to restore over tables that hold data.
var ErrNotEmpty = errors.New("restore into an empty catalog, or give --force to replace its tables")

// Restore copies a backup's files into l's warehouse, checking each
// against its recorded SHA-256, and then points the catalog at each
// table's backed-up metadata file. Nothing is registered unless every
// file arrived intact, so a restore cut short or refused leaves the
// catalog as it was. The tables carry the Kafka offsets they recorded: a
// sink started afterwards continues from there.
//
// The backup must be of this warehouse: Iceberg's metadata names its
// files by their full location. Tables that hold snapshots are replaced
// only with force; files written after the backup stay behind
// unreferenced, for k2 lake remove-orphans.
func Restore(ctx context.Context, l *lake.Lake, force bool, opts Options) (RestoreResult, error) {
	opts.defaults()
	start := time.Now()
	res := RestoreResult{Location: opts.Location}
	st, m, err := openBackup(ctx, opts)
	if err != nil {
		return res, err
	}
	res.Location = st.root
	res.Created = m.Created
	if m.Warehouse != l.Warehouse() {
		return res, fmt.Errorf("the backup %s is of the warehouse %s, not %s: restore it into that warehouse (--warehouse), as its metadata names files by their full location", st.root, m.Warehouse, l.Warehouse())
	}
	for _, t := range m.Tables {
		tbl, err := l.Load(ctx, t.Name)
		if err != nil {
			return res, err
		}
		if n := len(tbl.Metadata().Snapshots()); n > 0 && !force {
			return res, fmt.Errorf("table %s holds %d snapshots: %w", t.Name, n, ErrNotEmpty)
		}
	}
	dst, err := l.FS(ctx)
	if err != nil {
		return res, err
	}
	wfs, ok := dst.(iceio.WriteFileIO)
	if !ok {
		return res, fmt.Errorf("warehouse %s: storage is read-only", l.Warehouse())
	}
	// Every file is checked before any is written: a damaged backup
	// changes nothing, not even a warehouse file of the same name.
	missing, corrupt, err := check(ctx, st, m, opts.Workers)
	if err == nil && len(missing)+len(corrupt) > 0 {
		err = damaged(st, len(m.Files), missing, corrupt)
	}
	if err != nil {
		return res, fmt.Errorf("restore: nothing written or registered: %w", err)
	}
	rename, _ := dst.(iceio.RenameIO)
	errs := parallel(m.Files, opts.Workers, func(f File) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		target := l.Warehouse() + "/" + f.Path
		if rename == nil {
			_, _, err := copyFile(st.fs, st.file(f.Path), wfs, target, f.SHA256)
			return err
		}
		tmp := target + ".k2-restore"
		if _, _, err := copyFile(st.fs, st.file(f.Path), wfs, tmp, f.SHA256); err != nil {
			return err
		}
		return rename.Rename(tmp, target)
	})
	if len(errs) > 0 {
		return res, fmt.Errorf("restore from %s: nothing registered, the catalog is as it was: %w", st.root, errs[0])
	}
	res.Files, res.Bytes = len(m.Files), m.Bytes()
	for _, t := range m.Tables {
		r, err := l.Register(ctx, t.Name, t.MetadataLocation, false)
		if err != nil {
			return res, err
		}
		res.Tables = append(res.Tables, r)
	}
	res.Duration = time.Since(start)
	opts.Logger.Info("lake restored", "location", st.root, "backup_created", m.Created, "tables", len(res.Tables),
		"files", res.Files, "bytes", res.Bytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}
