package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	iceio "github.com/apache/iceberg-go/io"

	"github.com/k2-market-data/k2/internal/lake"
)

// store is where a backup is: a directory or an S3 prefix.
type store struct {
	root string // directory path or s3://bucket/prefix, no trailing slash
	fs   iceio.IO
}

func openStore(ctx context.Context, root string, s3 lake.S3Options) (*store, error) {
	if root == "" {
		return nil, errors.New("no backup location (a directory or s3://bucket/prefix)")
	}
	if !strings.Contains(root, "://") {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("backup %s: %w", root, err)
		}
		root = abs
	}
	fsys, err := lake.OpenStorage(ctx, root, s3)
	if err != nil {
		return nil, err
	}
	return &store{root: strings.TrimSuffix(root, "/"), fs: fsys}, nil
}

func (s *store) path(rel string) string { return s.root + "/" + rel }

// file is where a backed-up file lies.
func (s *store) file(rel string) string { return s.path(FilesDir + "/" + rel) }

func (s *store) writer() (iceio.WriteFileIO, error) {
	w, ok := s.fs.(iceio.WriteFileIO)
	if !ok {
		return nil, fmt.Errorf("backup %s: storage is read-only", s.root)
	}
	return w, nil
}

// manifest reads the backup's manifest; fs.ErrNotExist if there is none.
func (s *store) manifest() (*Manifest, error) {
	f, err := s.fs.Open(s.path(ManifestName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readManifest(f, s.path(ManifestName))
}

// writeManifest writes the manifest last, so a backup cut short leaves
// the previous manifest (and every file it names) as it was.
func (s *store) writeManifest(m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	w, err := s.writer()
	if err != nil {
		return err
	}
	final := s.path(ManifestName)
	if r, ok := s.fs.(iceio.RenameIO); ok {
		tmp := final + ".tmp"
		if err := w.WriteFile(tmp, b); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := r.Rename(tmp, final); err != nil {
			return fmt.Errorf("write %s: %w", final, err)
		}
		return nil
	}
	if err := w.WriteFile(final, b); err != nil { // an object store's put is atomic
		return fmt.Errorf("write %s: %w", final, err)
	}
	return nil
}

// copyFile copies src to dst and returns the size and SHA-256 of what it
// read. want, if set, is the checksum the bytes must have: on a mismatch
// dst is removed and the error names src.
func copyFile(from iceio.IO, src string, to iceio.WriteFileIO, dst string, want string) (int64, string, error) {
	in, err := from.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	out, err := to.Create(dst)
	if err != nil {
		return 0, "", fmt.Errorf("create %s: %w", dst, err)
	}
	h := sha256.New()
	n, err := io.Copy(out, io.TeeReader(in, h))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		to.Remove(dst)
		return n, "", fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		to.Remove(dst)
		return n, sum, &CorruptError{File: src, Want: want, Got: sum}
	}
	return n, sum, nil
}

// checksum reads a file and returns its size and SHA-256.
func checksum(fsys iceio.IO, name string) (int64, string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, "", fmt.Errorf("read %s: %w", name, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// size is a file's size; fs.ErrNotExist when it is not there.
func size(fsys iceio.IO, name string) (int64, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// CorruptError is a backed-up file whose bytes are not those recorded.
type CorruptError struct {
	File      string
	Want, Got string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is corrupt: SHA-256 %s, the manifest records %s", e.File, e.Got, e.Want)
}

// parallel runs fn on every item with n workers and returns the errors.
func parallel[T any](items []T, n int, fn func(T) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	ch := make(chan T)
	for range n {
		wg.Go(func() {
			for it := range ch {
				if err := fn(it); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	return errs
}
