package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/stack"
)

// APIOptions configure `k2 bench api`.
type APIOptions struct {
	// Exe is the k2 binary (default this one), run as `k2 up` in its own
	// process: the server and the load generator share the machine as
	// two processes.
	Exe string
	// Trades and Symbols size the lake, built by k2 bench lake's generator
	// (Seed, SimRate trades/s of simulated time, BatchRows per commit).
	Trades    int
	Symbols   int
	SimRate   float64
	Seed      uint64
	BatchRows int
	// FeedRate is the live synthetic market's trades/s while the load runs.
	FeedRate float64
	// Connections is how many requests are in flight at most (64).
	Connections int
	// Rate is requests/s per scenario; 0 is as fast as Connections go.
	Rate int
	// Duration is each scenario's measured run, after Warmup.
	Duration time.Duration
	Warmup   time.Duration
	// ProfileFor is the CPU profile taken of the server (and of this
	// process) under a further run of each scenario; 0 for none.
	ProfileFor time.Duration
	// CPUProfile, when set, keeps the profiles as
	// CPUProfile.<scenario>.server and .loadgen (go tool pprof).
	CPUProfile string
	// CheckEvery: one answer in this many is decoded and checked.
	CheckEvery int
	// Dir holds the lake (k2-bench-api-…), removed afterwards unless
	// Keep; a kept lake of the same size is used again.
	Dir      string
	Keep     bool
	Progress io.Writer
	Logger   *slog.Logger
}

// apiChildEnv are settings of the k2 up the load runs against: the API
// must not refuse the load generator (its rate limit is 100/min a client
// by default).
var apiChildEnv = []string{"K2_API_RATE_LIMIT=" + config.RateOff}

// The targets of issue 11 (point 8), on 2 cores, the load generator
// included.
const (
	latestTargetRate = 5_000
	latestTargetP99  = 20 * time.Millisecond
	barsTargetRate   = 2_000
	barsTargetP99    = 50 * time.Millisecond
)

// apiLake describes a lake built for the API benchmark; it is written
// beside the lake so that a kept one can be used again.
type apiLake struct {
	Trades    int      `json:"trades"`
	Symbols   []string `json:"symbols"`
	SimRate   float64  `json:"simulated_rate"`
	Seed      uint64   `json:"seed"`
	BatchRows int      `json:"batch_rows"`
	Appended  appended `json:"appended"`
	// Files after compaction, as maintenance leaves a quiet lake.
	Files int `json:"files_after_compaction"`
}

const apiLakeFile = "k2-bench-api.json"

// RunAPI builds (or reuses) a lake of synthetic trades, runs k2 up over it
// with the live synthetic market, and loads its REST API over HTTP on
// 127.0.0.1: the latest 100 trades of a symbol, then an hour of a symbol's
// 1m bars, each for o.Duration after o.Warmup, a random symbol and window
// per request. It reports requests/s, latency percentiles, errors by
// status and checked answers, judges the targets, and profiles the server
// under load.
func RunAPI(ctx context.Context, o APIOptions) (Report, error) {
	config.Or(&o.Trades, 10_000_000)
	config.Or(&o.Symbols, 100)
	config.Or(&o.SimRate, 20) // as k2 bench lake: 10M trades span 5.8 days
	config.Or(&o.Seed, 1)
	config.Or(&o.BatchRows, config.Default().Load.BatchRows)
	config.Or(&o.FeedRate, 1000)
	config.Or(&o.Connections, 64)
	config.Or(&o.Duration, 20*time.Second)
	config.Or(&o.CheckEvery, 20)
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return Report{}, err
		}
		o.Exe = exe
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pace := "as fast as they answer"
	if o.Rate > 0 {
		pace = fmt.Sprintf("%d requests/s", o.Rate)
	}
	rep := Report{Machine: DescribeMachine()}

	dir := filepath.Join(o.Dir, fmt.Sprintf("k2-bench-api-%d-trades-%d-symbols", o.Trades, o.Symbols))
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	lk, err := apiLakeIn(ctx, dir, o)
	if err != nil {
		return rep, err
	}
	rows, files, err := tradeFigures(ctx, dir)
	if err != nil {
		return rep, err
	}
	span := lk.Appended.To.Time().Sub(lk.Appended.From.Time())
	spanText := fmt.Sprintf("%.1f days", span.Hours()/24)
	if span < 48*time.Hour {
		spanText = span.Round(time.Minute).String()
	}
	rep.Options = fmt.Sprintf("k2 up --feed synth --rate %g in its own process, log level info (a line per request) · over %d trades of %d symbols (%s of market at %g trades/s, %d data files after compaction; %d rows, %d files now) · vegeta in this process: %d connections, %s · each scenario: every symbol (latest) or symbol-day (bars) read once, a %s warm-up, %s measured · one answer in %d checked",
		o.FeedRate, lk.Trades, len(lk.Symbols), spanText, lk.SimRate, lk.Files, rows, files,
		o.Connections, pace, o.Warmup, o.Duration, o.CheckEvery)

	up, err := startK2(ctx, childOptions{exe: o.Exe, role: "up", dataDir: dir, logPath: filepath.Join(dir, "k2-up.log"),
		flags: []string{"--feed", "synth", "--rate", strconv.FormatFloat(o.FeedRate, 'f', -1, 64)}, env: apiChildEnv})
	if err != nil {
		return rep, err
	}
	defer up.stop()
	b := &apiBench{o: o, up: up, lake: lk, base: up.baseURL, http: &http.Client{Timeout: time.Minute}, rows: int(rows)}
	if err := b.waitForSymbols(ctx); err != nil {
		return rep, err
	}
	fmt.Fprintf(o.Progress, "k2 up serving the API at %s over %d trades, live feed at %g trades/s (log %s)\n", up.baseURL, rows, o.FeedRate, up.logPath)
	for _, sc := range b.scenarios() {
		if err := b.run(ctx, sc, &rep); err != nil {
			return rep, err
		}
	}
	rep.Results = append(rep.Results,
		Result{Name: "k2 up resident memory, highest seen", Rows: b.rows, Value: b.peakRSS / (1 << 20), Unit: "MiB", Detail: "at the start and end of each run"},
		Result{Name: "k2 up sink degradation level, highest seen", Rows: b.rows, Value: b.peakLevel, Detail: "0 NORMAL, 1 SOFT, 2 GRACEFUL, 3 AGGRESSIVE, 4 CIRCUIT_BREAK (the sink slows down above 0)"})
	if err := up.stop(); err != nil {
		o.Logger.Warn("k2 up did not stop cleanly", "error", err, "log", up.logPath)
	}
	return rep, nil
}

// apiLakeIn returns the lake in dir described by its file, building it
// first when dir holds none of these options (or an unfinished one).
func apiLakeIn(ctx context.Context, dir string, o APIOptions) (apiLake, error) {
	want := apiLake{Trades: o.Trades, Symbols: marketSymbols(o.Symbols), SimRate: o.SimRate, Seed: o.Seed, BatchRows: o.BatchRows}
	if b, err := os.ReadFile(filepath.Join(dir, apiLakeFile)); err == nil {
		var have apiLake
		if err := json.Unmarshal(b, &have); err == nil && have.Trades == want.Trades && slices.Equal(have.Symbols, want.Symbols) &&
			have.SimRate == want.SimRate && have.Seed == want.Seed && have.BatchRows == want.BatchRows {
			fmt.Fprintf(o.Progress, "using the lake built before in %s\n", dir)
			return have, nil
		}
	}
	// Nothing, a lake of other options, or a build that did not finish:
	// the directory is this benchmark's own, so it is built afresh.
	if err := os.RemoveAll(dir); err != nil {
		return want, err
	}
	cfg, err := dataDirConfig(dir)
	if err != nil {
		return want, err
	}
	l, err := stack.OpenLake(ctx, cfg, nil, nil) // a line per commit would drown the progress
	if err != nil {
		return want, err
	}
	defer l.Close()
	w, err := record.Trade.Writer(l)
	if err != nil {
		return want, err
	}
	gen := synth.New(synth.Config{Seed: o.Seed, Symbols: want.Symbols, Rate: o.SimRate})
	if want.Appended, err = appendTrades(ctx, w, gen, o.Trades, o.BatchRows, o.Progress); err != nil {
		return want, err
	}
	// k2 up's maintenance would compact the small files of the load while
	// the benchmark runs; compacted first, the lake is as maintenance
	// leaves a quiet one.
	fmt.Fprintf(o.Progress, "compacting %d files…\n", want.Appended.Files)
	start := time.Now()
	res, err := l.Compact(ctx, record.Trade.Table.Name, lake.CompactOptions{})
	if err != nil {
		return want, err
	}
	want.Files = want.Appended.Files - res.FilesBefore + res.FilesAfter
	fmt.Fprintf(o.Progress, "  %d files into %d in %.1f s\n", res.FilesBefore, res.FilesAfter, time.Since(start).Seconds())
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		return want, err
	}
	return want, os.WriteFile(filepath.Join(dir, apiLakeFile), b, 0o644)
}

// dataDirConfig is K2's default configuration over data directory dir.
func dataDirConfig(dir string) (config.Config, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	return cfg, cfg.Resolve()
}

// tradeFigures reads the trades table's rows and data files in dir.
func tradeFigures(ctx context.Context, dir string) (rows, files int64, err error) {
	cfg, err := dataDirConfig(dir)
	if err != nil {
		return 0, 0, err
	}
	l, err := stack.OpenLake(ctx, cfg, nil, nil)
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	t, err := tableFigures(ctx, l, record.Trade.Table.Name)
	return t.Rows, t.DataFiles, err
}
