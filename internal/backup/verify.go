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
	st, err := openStore(ctx, opts.Location, opts.S3)
	if err != nil {
		return res, err
	}
	res.Location = st.root
	m, err := st.manifest()
	if errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("%s: no backup there (no %s)", st.root, ManifestName)
	}
	if err != nil {
		return res, err
	}
	res.Created, res.Tables, res.Files, res.Bytes = m.Created, m.Tables, len(m.Files), m.Bytes()
	var mu sync.Mutex
	errs := parallel(m.Files, opts.Workers, func(f File) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, sum, err := checksum(st.fs, st.file(f.Path))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Missing = append(res.Missing, f.Path)
		case err != nil:
			return err
		case n != f.Size || sum != f.SHA256:
			res.Corrupt = append(res.Corrupt, f.Path)
		}
		return nil
	})
	slices.Sort(res.Missing)
	slices.Sort(res.Corrupt)
	res.Duration = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if len(res.Missing)+len(res.Corrupt) > 0 {
		first := append(res.Corrupt, res.Missing...)[0]
		return res, fmt.Errorf("backup %s is damaged: %d of %d files corrupt, %d missing (first: %s)", st.root, len(res.Corrupt), res.Files, len(res.Missing), st.file(first))
	}
	opts.Logger.Info("backup verified", "location", st.root, "files", res.Files, "bytes", res.Bytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}
