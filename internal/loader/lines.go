package loader

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// countingReader counts bytes read from the underlying file, so progress is
// measured on disk bytes even when the content is gzip-compressed.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// eachLine calls fn with every line of path (gzip detected by its magic
// bytes), 1-based line numbers, CR and LF stripped. fn's slice is valid
// only during the call. Progress is reported while reading.
func (ld *Loader) eachLine(ctx context.Context, path string, fn func(line []byte, n int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	counter := &countingReader{r: f}
	br := bufio.NewReaderSize(counter, 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: gzip: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	stop := ld.progress(filepath.Base(path), info.Size(), counter)
	defer stop()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var n, read int64 // lines, and of them not blank
	for sc.Scan() {
		n++
		if n&0xfff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(line) == 0 {
			continue
		}
		read++
		if err := fn(line, n); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", path, n+1, err)
	}
	if read == 0 {
		ld.opts.Logger.Warn("the file is empty: nothing read from it", "file", path)
		ld.mu.Lock()
		ld.sum.Empty = append(ld.sum.Empty, path)
		ld.mu.Unlock()
	}
	return nil
}

// progress shows a bar on a terminal or a line every 5 s elsewhere, until
// the returned stop is called.
func (ld *Loader) progress(name string, size int64, c *countingReader) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	var bar *progressbar.ProgressBar
	if ld.opts.Interactive {
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(ld.opts.Progress),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	go func() {
		defer close(finished)
		every := 5 * time.Second
		if bar != nil {
			every = 100 * time.Millisecond
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					bar.Set64(size)
					bar.Finish()
				}
				return
			case <-t.C:
				ld.mu.Lock()
				read := ld.sum.Read
				ld.mu.Unlock()
				if bar != nil {
					bar.Set64(c.n.Load())
					continue
				}
				pct := 100.0
				if size > 0 {
					pct = 100 * float64(c.n.Load()) / float64(size)
				}
				fmt.Fprintf(ld.opts.Progress, "loading %s: %.0f%% · %d records · %.0f records/s\n",
					name, pct, read, float64(read)/time.Since(start).Seconds())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
