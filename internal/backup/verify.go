package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// VerifyResult is what a check of a backup found.
type VerifyResult struct {
	Location string        `json:"location"`
	Created  time.Time     `json:"created"`
	Tables   []Table       `json:"tables"`
	Files    int           `json:"files"`
	Bytes    int64         `json:"bytes"`
	Missing  []string      `json:"missing"`
	Corrupt  []string      `json:"corrupt"`
	Duration time.Duration `json:"duration_ns"`
}

// Verify reads every file of a backup and checks its size and SHA-256
// against the manifest. It returns an error naming the first bad file
// when any is missing or corrupt.
func Verify(ctx context.Context, opts Options) (VerifyResult, error) {
	opts.defaults()
	start := time.Now()
	res := VerifyResult{Location: opts.Location}
	st, m, err := openBackup(ctx, opts)
	if err != nil {
		return res, err
	}
	res.Location = st.root
	res.Created, res.Tables, res.Files, res.Bytes = m.Created, m.Tables, len(m.Files), m.Bytes()
	res.Missing, res.Corrupt, err = check(ctx, st, m, opts.Workers)
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	if len(res.Missing)+len(res.Corrupt) > 0 {
		return res, damaged(st, res.Files, res.Missing, res.Corrupt)
	}
	opts.Logger.Info("backup verified", "location", st.root, "files", res.Files, "bytes", res.Bytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}

// openBackup opens a backup and reads its manifest.
func openBackup(ctx context.Context, opts Options) (*store, *Manifest, error) {
	st, err := openStore(ctx, opts.Location, opts.S3)
	if err != nil {
		return nil, nil, err
	}
	m, err := st.manifest()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s: no backup there (no %s)", st.root, ManifestName)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, m, nil
}

// check reads every file of the backup and lists those missing and those
// whose size or SHA-256 differs from the manifest's.
func check(ctx context.Context, st *store, m *Manifest, workers int) (missing, corrupt []string, err error) {
	var mu sync.Mutex
	errs := parallel(m.Files, workers, func(f File) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, sum, err := checksum(st.fs, st.file(f.Path))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f.Path)
		case err != nil:
			return err
		case n != f.Size || sum != f.SHA256:
			corrupt = append(corrupt, f.Path)
		}
		return nil
	})
	slices.Sort(missing)
	slices.Sort(corrupt)
	return missing, corrupt, errors.Join(errs...)
}

// damaged says how many files are bad, naming the first.
func damaged(st *store, files int, missing, corrupt []string) error {
	first := append(slices.Clone(corrupt), missing...)[0]
	return fmt.Errorf("backup %s is damaged: %d of %d files corrupt, %d missing (first: %s)", st.root, len(corrupt), files, len(missing), st.file(first))
}
