// Package loader brings recorded market history into the lake, directly
// or through Kafka. Each exchange's package declares the file formats it
// knows (feed.Format: ASX tick files, Binance public-data files, Binance
// and Kraken WebSocket captures) and turns their lines into records; the
// loader reads the files (gzip or plain, with progress), batches the
// records into single-transaction commits, writes every rejected line with
// its file, line number and reason to a dead-letter file, and ends with a
// summary.
//
// Loading is idempotent: records carry ids derived from the exchange's own
// identity (trade ids, update ids, or per-day row ordinals where the
// exchange gives none), and the lake writer drops rows whose id is already
// stored. Loading the same input twice adds nothing.
package loader

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Options configure a load.
type Options struct {
	// DeadLetter is the JSON-lines file rejected lines are appended to.
	DeadLetter string
	// Load closes a batch (one commit per table) at BatchRows rows or
	// BatchAge; zero values take config.Default's, which favour few large
	// files: commits cost more than rows.
	config.Load
	// Progress receives the progress display; Interactive draws a bar
	// (a terminal), otherwise a plain line every few seconds.
	Progress    io.Writer
	Interactive bool
	Assets      *md.Assets
	// Symbol is the instrument of files that do not name it (--symbol).
	Symbol string
	Logger *slog.Logger
	// Source is recorded in each snapshot summary as k2.source.
	Source string
}

// Summary is what a load did.
type Summary struct {
	Source     string           `json:"source"`
	Read       int64            `json:"read"`       // records parsed from the input
	Written    int64            `json:"written"`    // rows newly stored
	Duplicates int64            `json:"duplicates"` // rows already stored (or repeated), not stored again
	Rejected   int64            `json:"rejected"`   // lines that could not become records
	Skipped    int64            `json:"skipped"`    // lines understood and deliberately not stored
	SkippedBy  map[string]int64 `json:"skipped_by,omitempty"`
	Tables     map[string]int64 `json:"tables"` // rows written per table
	Commits    int              `json:"commits"`
	Elapsed    time.Duration    `json:"elapsed_ns"`
	DeadLetter string           `json:"dead_letter,omitempty"`
	// Empty lists the input files that held no lines at all.
	Empty []string `json:"empty,omitempty"`
}

// RowsPerSecond is the read rate over the whole load.
func (s Summary) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Read) / s.Elapsed.Seconds()
}

// Loader writes parsed records to the lake, directly or through Kafka.
type Loader struct {
	opts Options
	// The output: a batch per record kind (by record.Spec.Index), or the
	// producer.
	batches []record.Batch
	props   map[string]string
	prod    *bus.Producer
	before  int64 // records the producer had acknowledged before the load

	symbol   string       // of the file being loaded
	ingested md.Timestamp // the load's ingestion time

	mu      sync.Mutex
	sum     Summary
	dlq     *os.File
	dlqEnc  *json.Encoder
	started time.Time
}

func newLoader(opts Options) *Loader {
	d := config.Default().Load
	config.Or(&opts.BatchRows, d.BatchRows)
	config.Or(&opts.BatchAge, d.BatchAge)
	if opts.Assets == nil {
		opts.Assets = md.DefaultAssets
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	ld := &Loader{opts: opts, started: time.Now(), ingested: md.Now()}
	ld.sum = Summary{Source: opts.Source, Tables: map[string]int64{}, SkippedBy: map[string]int64{}, DeadLetter: opts.DeadLetter}
	return ld
}

// New prepares a load into the lake l: one commit per table per batch.
func New(l *lake.Lake, opts Options) (*Loader, error) {
	ld := newLoader(opts)
	ld.props = map[string]string{"k2.source": opts.Source, "k2.writer": "k2 load"}
	for _, k := range record.All {
		b, err := k.NewBatch(l, lake.WithDedup(true))
		if err != nil {
			return nil, err
		}
		ld.batches = append(ld.batches, b)
	}
	return ld, nil
}

// NewViaKafka prepares a load through Kafka: records go to their exchange
// topics and the sink stores them, exactly once, like live data. The
// summary's written count is what the broker acknowledged.
func NewViaKafka(p *bus.Producer, opts Options) *Loader {
	ld := newLoader(opts)
	ld.prod, ld.before = p, p.Stats().Produced
	return ld
}

// add sends a record on: to the producer, or to its kind's batch, which
// is committed when it is due.
func add[T any](ctx context.Context, ld *Loader, k *record.Kind[T], r T) error {
	if ld.prod != nil {
		return bus.Produce(ctx, ld.prod, k, &r)
	}
	b := ld.batches[k.Index()]
	record.Add(b, r)
	if (record.Limits{Rows: ld.opts.BatchRows, Age: ld.opts.BatchAge}).Due(b.Len(), 0, b.Since(), time.Now()) {
		return ld.commit(ctx, b)
	}
	return nil
}

// commit writes a batch to its table and counts what it stored.
func (ld *Loader) commit(ctx context.Context, b record.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	res, err := b.Commit(ctx, ld.props)
	if err != nil {
		return err
	}
	b.Reset()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	s := &ld.sum
	s.Written += int64(res.Rows)
	s.Duplicates += int64(res.Duplicates)
	s.Tables[res.Table] += int64(res.Rows)
	if res.Rows > 0 {
		s.Commits++
	}
	return nil
}

// finish commits what the batches hold, or waits for the producer.
func (ld *Loader) finish(ctx context.Context) error {
	if ld.prod == nil {
		var errs []error
		for _, b := range ld.batches {
			errs = append(errs, ld.commit(ctx, b))
		}
		return errors.Join(errs...)
	}
	err := ld.prod.Flush(ctx)
	ld.mu.Lock()
	ld.sum.Written = ld.prod.Stats().Produced - ld.before
	ld.sum.Tables["kafka"] = ld.sum.Written
	ld.mu.Unlock()
	return err
}

// Rejection is one dead-lettered input line.
type Rejection struct {
	File   string `json:"file"`
	Line   int64  `json:"line"`
	Reason string `json:"reason"` // short code: invalid_price, parse, unknown_symbol …
	Error  string `json:"error"`
	Raw    string `json:"raw"`
	// RawBase64 holds the line's exact bytes when they are not UTF-8 (Raw
	// then shows them as JSON can: U+FFFD for each bad byte).
	RawBase64 string    `json:"raw_base64,omitempty"`
	At        time.Time `json:"at"`
}

func (ld *Loader) reject(file string, line int64, reason string, err error, raw string) error {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.sum.Rejected++
	if ld.dlq == nil {
		if ld.opts.DeadLetter == "" {
			return fmt.Errorf("%s:%d: %v (and no dead-letter file is configured)", file, line, err)
		}
		if err := os.MkdirAll(filepath.Dir(ld.opts.DeadLetter), 0o755); err != nil {
			return fmt.Errorf("dead-letter file: %w", err)
		}
		f, ferr := os.OpenFile(ld.opts.DeadLetter, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if ferr != nil {
			return fmt.Errorf("dead-letter file: %w", ferr)
		}
		ld.dlq, ld.dlqEnc = f, json.NewEncoder(f)
	}
	var exact string
	if !utf8.ValidString(raw) {
		exact = base64.StdEncoding.EncodeToString([]byte(raw))
	}
	if len(raw) > 4096 {
		raw = raw[:4096] + "…"
	}
	return ld.dlqEnc.Encode(Rejection{File: file, Line: line, Reason: reason, Error: err.Error(), Raw: raw, RawBase64: exact, At: time.Now().UTC()})
}

func (ld *Loader) skip(what string) {
	ld.mu.Lock()
	ld.sum.Skipped++
	ld.sum.SkippedBy[what]++
	ld.mu.Unlock()
}

func (ld *Loader) read(n int) {
	ld.mu.Lock()
	ld.sum.Read += int64(n)
	ld.mu.Unlock()
}

// Finish commits what is buffered and returns the summary. It must be
// called once, also after an error, to close the dead-letter file.
func (ld *Loader) Finish(ctx context.Context) (Summary, error) {
	err := ld.finish(ctx)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if ld.dlq != nil {
		if e := ld.dlq.Close(); e != nil && err == nil {
			err = e
		}
	} else {
		ld.sum.DeadLetter = ""
	}
	ld.sum.Elapsed = time.Since(ld.started)
	ld.opts.Logger.Info("load finished", "source", ld.sum.Source, "read", ld.sum.Read, "written", ld.sum.Written,
		"duplicates", ld.sum.Duplicates, "rejected", ld.sum.Rejected, "skipped", ld.sum.Skipped,
		"commits", ld.sum.Commits, "elapsed_ms", ld.sum.Elapsed.Milliseconds(), "dead_letter", ld.sum.DeadLetter)
	return ld.sum, err
}
