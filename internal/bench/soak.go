package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/stack"
)

// SoakOptions configure `k2 bench soak`.
type SoakOptions struct {
	// Exe is the k2 binary (default this one), run as `k2 up` in its own
	// process so that its CPU and memory are its own.
	Exe   string
	For   time.Duration // how long k2 up runs (default 30m)
	Every time.Duration // one sample per interval (default 1m)
	Rate  float64       // synthetic trades per second (default 100)
	// MemoryLimit is passed to k2 up as --memory-limit when set.
	MemoryLimit string
	// RSSTarget is the most resident memory k2 up may use, in bytes
	// (default: 500 MB up to 100 trades/s, else 1 GiB).
	RSSTarget int64
	Queries   int    // runs of each query per sample (default 20)
	Plot      string // PNG of the samples (default <Dir>/soak.png)
	Dir       string // scratch directory (removed afterwards unless Keep)
	Keep      bool
	Progress  io.Writer // one line per sample
	Logger    *slog.Logger
}

// SoakSample is what the soak saw at the end of one interval.
type SoakSample struct {
	// Elapsed is the sample's scheduled time since k2 up was serving.
	Elapsed float64   `json:"elapsed_s"`
	Time    time.Time `json:"time"`
	// Tables are trades and quotes, in that order.
	Tables []SoakTable `json:"tables"`
	// Query latencies over the interval's runs, in ms.
	LatestP50   Num `json:"latest_100_p50_ms"`
	LatestP99   Num `json:"latest_100_p99_ms"`
	BarsP50     Num `json:"bars_1m_p50_ms"`
	BarsP99     Num `json:"bars_1m_p99_ms"`
	QueryErrors int `json:"query_errors,omitempty"`
	// CPU is k2 up's CPU time over the interval, in cores; RSS its
	// resident memory at the sample, in bytes.
	CPU Num   `json:"cpu_cores"`
	RSS int64 `json:"rss_bytes"`
}

// SoakTable is one table as of a sample.
type SoakTable struct {
	Table     string `json:"table"`
	Rows      int64  `json:"rows"`
	DataFiles int64  `json:"data_files"`
	DataBytes int64  `json:"data_bytes"`
	Snapshots int    `json:"snapshots"`
	// MetadataJSON is the current metadata.json's size; MetadataBytes
	// every file under the table's metadata/ directory (metadata files,
	// manifest lists, manifests).
	MetadataJSON  int64 `json:"metadata_json_bytes"`
	MetadataBytes int64 `json:"metadata_bytes"`
	BytesPerRow   Num   `json:"bytes_per_row"`
	// Commits in the interval and their duration, estimated from k2 up's
	// k2_iceberg_write_duration_seconds buckets, in ms.
	Commits   int64 `json:"commits"`
	CommitP50 Num   `json:"commit_p50_ms"`
	CommitP99 Num   `json:"commit_p99_ms"`
}

// Check is a target judged at the end of a soak.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // pass, fail, or n/a (too few samples)
	Detail string `json:"detail,omitempty"`
}

// Check statuses.
const (
	checkPass      = "pass"
	checkFail      = "fail"
	checkNotJudged = "n/a"
)

// Failed counts the checks that failed.
func (r Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == checkFail {
			n++
		}
	}
	return n
}

// Num is a figure that may be missing (NaN): JSON null.
type Num float64

// MarshalJSON writes the figure to 3 decimals, NaN and infinities as
// null.
func (n Num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(float64(n)*1000)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*n = Num(v)
	return err
}

// soakTables are the tables a soak follows.
var soakTables = []string{record.Trade.Table.Name, record.Quote.Table.Name}

// flatTolerance is how far the last window's mean may move from the one
// before it for a curve to count as flat.
const flatTolerance = 0.25

// RunSoak runs `k2 up` with the synthetic market for o.For, samples it
// every o.Every, and judges whether its figures stay flat. Interrupted, it
// stops k2 up and reports the samples it has.
func RunSoak(ctx context.Context, o SoakOptions) (Report, error) {
	if o.For <= 0 {
		o.For = 30 * time.Minute
	}
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	config.Or(&o.Rate, config.Default().Feed.Rate)
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return Report{}, err
		}
		o.Exe = exe
	}
	if o.RSSTarget <= 0 {
		o.RSSTarget = defaultRSSTarget(o.Rate)
	}
	if o.Queries <= 0 {
		o.Queries = 20
	}
	if o.Plot == "" {
		o.Plot = filepath.Join(o.Dir, "soak.png")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	window, windowRule := flatWindow(o.For)
	rep := Report{Machine: DescribeMachine(), Options: fmt.Sprintf(
		"k2 up --feed synth --rate %g in its own process for %s · a sample every %s · %d runs of each query per sample · memory limit %s · RSS target %s · flat: %s",
		o.Rate, o.For, o.Every, o.Queries, cmp.Or(o.MemoryLimit, "k2 up's default"), sizeText(o.RSSTarget), windowRule)}
	root, err := os.MkdirTemp(o.Dir, "k2-bench-soak-")
	if err != nil {
		return rep, err
	}
	if !o.Keep {
		defer os.RemoveAll(root)
	}
	up, err := startUp(ctx, o, root)
	if err != nil {
		return rep, err
	}
	defer up.stop()

	cfg := config.Default()
	cfg.DataDir = up.dataDir
	if err := cfg.Resolve(); err != nil {
		return rep, err
	}
	l, err := stack.OpenLake(ctx, cfg, nil, o.Logger)
	if err != nil {
		return rep, err
	}
	defer l.Close()
	e, err := query.New(l, query.Options{Query: cfg.Query, WorkDir: filepath.Join(root, "bench-query"), Logger: o.Logger})
	if err != nil {
		return rep, err
	}
	defer e.Close()

	s := &soaker{o: o, up: up, lake: l, engine: e, http: &http.Client{}, rng: rand.New(rand.NewPCG(1, 42))}
	if s.prev, err = scrapeMetrics(ctx, s.http, up.metricsURL); err != nil {
		return rep, fmt.Errorf("k2 up's metrics: %w", err)
	}
	start := s.prev.at
	fmt.Fprintf(o.Progress, "k2 up serving at %s; sampling every %s for %s (trades/quotes pairs; p50/p99 in ms)\n", up.metricsURL, o.Every, o.For)
	// A run that ends early (interrupted, k2 up gone, a sample failed)
	// still reports what it saw, and says why it ended.
	for i := 1; ; i++ {
		at := min(time.Duration(i)*o.Every, o.For)
		select {
		case <-ctx.Done():
		case <-up.done:
		case <-time.After(time.Until(start.Add(at))):
		}
		sample, err := s.sample(ctx, at)
		switch {
		case ctx.Err() != nil:
			rep.Note = fmt.Sprintf("interrupted after %d samples of %s", len(rep.Samples), o.For)
		case up.exited():
			rep.Note = fmt.Sprintf("after %d samples: %v", len(rep.Samples), up.failure())
		case err != nil:
			rep.Note = fmt.Sprintf("after %d samples: %v", len(rep.Samples), err)
		}
		if rep.Note != "" {
			fmt.Fprintln(o.Progress, rep.Note)
			break
		}
		rep.Samples = append(rep.Samples, sample)
		fmt.Fprintln(o.Progress, sampleLine(sample))
		if at == o.For {
			break
		}
	}
	if err := up.stop(); err != nil && rep.Note == "" {
		o.Logger.Warn("k2 up did not stop cleanly", "error", err, "log", up.logPath)
	}
	var bulk *bulkFigures
	if rep.Note == "" {
		if bulk, err = bulkBytesPerRow(ctx, filepath.Join(root, "bulk"), o.Rate); err != nil {
			o.Logger.Warn("bulk load for bytes per row failed", "error", err)
		}
	}
	if len(rep.Samples) == 0 {
		return rep, errors.New(rep.Note)
	}
	rep.Results = soakResults(rep.Samples, bulk)
	rep.Checks = judgeSoak(rep.Samples, window, o, bulk)
	if err := writeSoakPlot(o.Plot, plotTitle(o, rep.Machine), rep.Samples, o.RSSTarget); err != nil {
		return rep, fmt.Errorf("plot: %w", err)
	}
	rep.Plot = o.Plot
	return rep, nil
}

// defaultRSSTarget is the memory target at a rate: 500 MB for a quiet
// market (up to 100 trades/s), 1 GiB above (the 20,000 trades/s target).
func defaultRSSTarget(rate float64) int64 {
	if rate <= 100 {
		return 500_000_000
	}
	return 1 << 30
}

// flatWindow is the length of the two windows whose means the flatness
// test compares: 10 minutes, or a third of a run shorter than 20 minutes.
func flatWindow(d time.Duration) (time.Duration, string) {
	if d >= 20*time.Minute {
		return 10 * time.Minute, "mean of the last 10m0s within 25% of the 10m0s before"
	}
	w := d / 3
	return w, fmt.Sprintf("--for %s is under 20m: mean of the last third (%s) within 25%% of the middle third", d, w.Round(time.Second))
}

// soaker takes the samples.
type soaker struct {
	o      SoakOptions
	up     *upProcess
	lake   *lake.Lake
	engine *query.Engine
	http   *http.Client
	rng    *rand.Rand
	prev   metricSet
}

// sample reads k2 up's metrics, the tables and the query latencies.
func (s *soaker) sample(ctx context.Context, at time.Duration) (SoakSample, error) {
	cur, err := scrapeMetrics(ctx, s.http, s.up.metricsURL)
	if err != nil {
		return SoakSample{}, fmt.Errorf("k2 up's metrics: %w", err)
	}
	prev := s.prev
	s.prev = cur
	out := SoakSample{Elapsed: at.Seconds(), Time: cur.at, CPU: Num(math.NaN())}
	if c1, ok := cur.value("process_cpu_seconds_total"); ok {
		if c0, ok := prev.value("process_cpu_seconds_total"); ok {
			out.CPU = Num((c1 - c0) / cur.at.Sub(prev.at).Seconds())
		}
	}
	if rss, ok := cur.value("process_resident_memory_bytes"); ok {
		out.RSS = int64(rss)
	}
	for _, name := range soakTables {
		t, err := tableFigures(ctx, s.lake, name)
		if err != nil {
			return out, err
		}
		t.CommitP50, t.CommitP99 = Num(math.NaN()), Num(math.NaN())
		if h1, ok := cur.histogram("k2_iceberg_write_duration_seconds", "table", name); ok {
			h0, _ := prev.histogram("k2_iceberg_write_duration_seconds", "table", name)
			d := h1.since(h0)
			t.Commits = int64(d.count)
			t.CommitP50, t.CommitP99 = Num(1000*d.quantile(0.5)), Num(1000*d.quantile(0.99))
		}
		out.Tables = append(out.Tables, t)
	}
	s.queries(ctx, &out)
	return out, ctx.Err()
}

// tableFigures reads a table's size from its current snapshot's summary
// and its metadata from the warehouse.
func tableFigures(ctx context.Context, l *lake.Lake, name string) (SoakTable, error) {
	tbl, err := l.Load(ctx, name)
	if err != nil {
		return SoakTable{}, err
	}
	t := SoakTable{Table: name, Snapshots: len(tbl.Metadata().Snapshots()), BytesPerRow: Num(math.NaN())}
	if snap := tbl.CurrentSnapshot(); snap != nil && snap.Summary != nil {
		p := snap.Summary.Properties
		t.Rows, _ = strconv.ParseInt(p["total-records"], 10, 64)
		t.DataFiles, _ = strconv.ParseInt(p["total-data-files"], 10, 64)
		t.DataBytes, _ = strconv.ParseInt(p["total-files-size"], 10, 64)
	}
	if t.Rows > 0 {
		t.BytesPerRow = Num(float64(t.DataBytes) / float64(t.Rows))
	}
	if path := lake.LocalPath(tbl.MetadataLocation()); path != "" {
		if fi, err := os.Stat(path); err == nil {
			t.MetadataJSON = fi.Size()
		}
		t.MetadataBytes = dirBytes(filepath.Dir(path))
	}
	return t, nil
}

// dirBytes adds up the sizes of the files under dir (files removed while
// it walks are skipped).
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// queries times the latest 100 trades of a symbol and the 1-minute bars
// of a symbol's current UTC day, o.Queries runs each on random symbols of
// the synthetic market. Only runs that found rows are timed (before the
// first commit there is nothing to read); a failed run is counted.
func (s *soaker) queries(ctx context.Context, out *SoakSample) {
	syms := synth.DefaultSymbols
	day := time.Now().UTC().Truncate(24 * time.Hour)
	from, to := md.TimestampOf(day), md.TimestampOf(day.Add(24*time.Hour))
	run := func(fn func(sym string) (int, error)) (p50, p99 Num) {
		var d []time.Duration
		for range s.o.Queries {
			if ctx.Err() != nil {
				break
			}
			start := time.Now()
			rows, err := fn(syms[s.rng.IntN(len(syms))])
			took := time.Since(start)
			switch {
			case err != nil:
				if out.QueryErrors == 0 && ctx.Err() == nil {
					s.o.Logger.Warn("soak query failed", "error", err)
				}
				out.QueryErrors++
			case rows > 0:
				d = append(d, took)
			}
		}
		if len(d) == 0 {
			return Num(math.NaN()), Num(math.NaN())
		}
		t := percentiles(d)
		return Num(ms(t.p50)), Num(ms(t.p99))
	}
	out.LatestP50, out.LatestP99 = run(func(sym string) (int, error) {
		r, err := s.engine.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: sym}, Limit: 100, Desc: true})
		return len(r), err
	})
	out.BarsP50, out.BarsP99 = run(func(sym string) (int, error) {
		r, err := s.engine.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: sym, From: from, To: to}, Interval: md.Interval1m})
		return len(r), err
	})
}

// bulkFigures are bytes per row of the same market loaded in one commit
// per table, as a load writes it: what the streamed tables compare with.
type bulkFigures struct {
	rows        map[string]int
	bytesPerRow map[string]float64
}

// bulkBytesPerRow writes one load batch of synthetic trades (and the
// quotes the market makes with them) into a lake under dir.
func bulkBytesPerRow(ctx context.Context, dir string, rate float64) (*bulkFigures, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	l, err := stack.OpenLake(ctx, cfg, nil, nil)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	g := synth.New(synth.Config{Seed: 1, Rate: rate, QuoteEvery: 2, Start: md.Now()})
	var trades []md.Trade
	var quotes []md.Quote
	for len(trades) < cfg.Load.BatchRows {
		g.Next(&trades, &quotes)
	}
	tw, err := record.Trade.Writer(l)
	if err != nil {
		return nil, err
	}
	qw, err := record.Quote.Writer(l)
	if err != nil {
		return nil, err
	}
	tr, err := tw.Commit(ctx, trades, nil)
	if err != nil {
		return nil, err
	}
	qr, err := qw.Commit(ctx, quotes, nil)
	if err != nil {
		return nil, err
	}
	return &bulkFigures{
		rows: map[string]int{record.Trade.Table.Name: len(trades), record.Quote.Table.Name: len(quotes)},
		bytesPerRow: map[string]float64{
			record.Trade.Table.Name: float64(tr.BytesAdded) / float64(len(trades)),
			record.Quote.Table.Name: float64(qr.BytesAdded) / float64(len(quotes)),
		},
	}, nil
}
