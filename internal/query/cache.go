package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	iceio "github.com/apache/iceberg-go/io"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// fileCache keeps local copies of object-store data files so DuckDB reads
// them without its httpfs extension (which cannot be installed everywhere)
// and repeated queries do not refetch. Iceberg data files are never
// modified after commit, so a copy is valid for as long as it exists.
type fileCache struct {
	dir      string
	maxBytes int64
	open     func(ctx context.Context) (iceio.IO, error)

	flight       singleflight.Group
	mu           sync.Mutex
	used         int64
	hits, misses prometheus.Counter // set by the engine
}

func newFileCache(dir string, maxBytes int64, open func(ctx context.Context) (iceio.IO, error)) (*fileCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("query cache %s: %w", dir, err)
	}
	c := &fileCache{dir: dir, maxBytes: maxBytes, open: open}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			c.used += info.Size()
		}
	}
	return c, nil
}

// local returns the path of a local copy of location, fetching it once
// however many queries ask at the same time.
func (c *fileCache) local(ctx context.Context, location string) (string, error) {
	sum := sha256.Sum256([]byte(location))
	path := filepath.Join(c.dir, hex.EncodeToString(sum[:16])+".parquet")
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		os.Chtimes(path, now, now) // LRU order for eviction
		c.hits.Inc()
		return path, nil
	}
	c.misses.Inc()
	_, err, _ := c.flight.Do(path, func() (any, error) {
		if _, err := os.Stat(path); err == nil {
			return nil, nil
		}
		fs, err := c.open(ctx)
		if err != nil {
			return nil, err
		}
		src, err := fs.Open(location)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", location, err)
		}
		defer src.Close()
		tmp, err := os.CreateTemp(c.dir, ".fetch-*")
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(tmp, src)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return nil, fmt.Errorf("fetch %s: %w", location, err)
		}
		c.mu.Lock()
		c.used += n
		over := c.used > c.maxBytes
		c.mu.Unlock()
		if over {
			c.evict(path)
		}
		return nil, nil
	})
	return path, err
}

// evict removes least recently used copies until the cache fits, never the
// file just fetched.
func (c *fileCache) evict(keep string) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type f struct {
		path string
		size int64
		at   time.Time
	}
	var files []f
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			files = append(files, f{filepath.Join(c.dir, e.Name()), info.Size(), info.ModTime()})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].at.Before(files[j].at) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range files {
		if c.used <= c.maxBytes {
			return
		}
		if x.path == keep {
			continue
		}
		if os.Remove(x.path) == nil {
			c.used -= x.size
		}
	}
}
