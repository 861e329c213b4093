package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
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

// apiBench runs the scenarios against one k2 up.
type apiBench struct {
	o    APIOptions
	up   *upProcess // nil when the server is not a child (tests)
	lake apiLake
	base string
	http *http.Client
	rows int
	// The server's highest resident memory and sink degradation level
	// (0 NORMAL … 4 CIRCUIT_BREAK) seen at the start and end of each run.
	peakRSS, peakLevel float64
}

// waitForSymbols waits until the API lists every symbol of the lake.
func (b *apiBench) waitForSymbols(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		missing, err := b.missingSymbols(ctx)
		switch {
		case err == nil && len(missing) == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("%d of the lake's %d symbols missing, e.g. %s", len(missing), len(b.lake.Symbols), missing[0])
			}
			return fmt.Errorf("the API at %s does not list the lake's symbols: %w", b.base, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *apiBench) missingSymbols(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/v1/symbols?format=list", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ans apiAnswer[string]
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || !ans.Success {
		return nil, fmt.Errorf("/v1/symbols: %s, %v", resp.Status, err)
	}
	var missing []string
	for _, s := range b.lake.Symbols {
		if !slices.Contains(ans.Data, s) {
			missing = append(missing, s)
		}
	}
	return missing, nil
}

// apiScenario is one kind of request, its answer's check and its targets.
type apiScenario struct {
	name    string // "latest 100 trades"
	key     string // "latest", in file names
	minRate float64
	maxP99  time.Duration
	// path makes a request's path and query from the random source ("":
	// no more requests).
	path  func(rng *rand.Rand) string
	check func(u *url.URL, body []byte) error
	// first are requests that each read a part of the lake (a symbol's
	// newest files, a symbol-day's file) the server has not read yet.
	first     []string
	firstName string
}

// scenarios are the two loads of issue 11: the latest 100 trades of a
// random symbol, and a random symbol's 1m bars over a random hour of the
// lake's range (whole minutes, so no bar is partial).
func (b *apiBench) scenarios() []apiScenario {
	syms := b.lake.Symbols
	from := b.lake.Appended.From.Time().UTC().Truncate(time.Minute)
	span := b.lake.Appended.To.Time().Sub(from)
	minutes := max(1, int((span-time.Hour)/time.Minute)+1) // window starts inside the range
	dense := expectedInWindow(b.lake, len(syms)) >= minTradesDense
	latest := func(sym string) string { return "/v1/trades?symbol=" + url.QueryEscape(sym) + "&limit=100&order=desc" }
	bars := func(sym string, start time.Time) string {
		return "/v1/bars/1m?symbol=" + url.QueryEscape(sym) +
			"&start_time=" + start.Format(time.RFC3339) + "&end_time=" + start.Add(time.Hour).Format(time.RFC3339)
	}
	var firstLatest, firstBars []string
	last := from.Add(time.Duration(minutes-1) * time.Minute) // the last window start
	for _, sym := range syms {
		firstLatest = append(firstLatest, latest(sym))
		for day := from.Truncate(24 * time.Hour); !day.After(last); day = day.Add(24 * time.Hour) {
			start := day
			if start.Before(from) {
				start = from
			}
			if start.After(last) {
				start = last
			}
			firstBars = append(firstBars, bars(sym, start))
		}
	}
	return []apiScenario{{
		name: "latest 100 trades", key: "latest", minRate: latestTargetRate, maxP99: latestTargetP99,
		path:  func(rng *rand.Rand) string { return latest(syms[rng.IntN(len(syms))]) },
		check: checkLatest,
		first: firstLatest, firstName: "first read of each symbol",
	}, {
		name: "1m bars of an hour", key: "bars", minRate: barsTargetRate, maxP99: barsTargetP99,
		path: func(rng *rand.Rand) string {
			return bars(syms[rng.IntN(len(syms))], from.Add(time.Duration(rng.IntN(minutes))*time.Minute))
		},
		check: func(u *url.URL, body []byte) error { return checkBars(u, body, dense) },
		first: firstBars, firstName: "first read of each symbol-day",
	}}
}

// inTurn is a scenario making sc.first's requests once each, in turn.
func (sc apiScenario) inTurn() apiScenario {
	next := 0
	sc.path = func(*rand.Rand) string {
		if next == len(sc.first) {
			return ""
		}
		next++
		return sc.first[next-1]
	}
	return sc
}

// minTradesDense is how many trades the least active symbol must be
// expected to make in a window for an empty answer to count as wrong.
const minTradesDense = 20

// expectedInWindow is the trades the least active of n symbols is expected
// to make in a bar window (an hour, or the lake's range when shorter):
// the synthetic market's activity falls as 1/rank (Zipf).
func expectedInWindow(lk apiLake, n int) float64 {
	h := 0.0
	for i := 1; i <= n; i++ {
		h += 1 / float64(i)
	}
	window := min(time.Hour, lk.Appended.To.Time().Sub(lk.Appended.From.Time()))
	return lk.SimRate * window.Seconds() / float64(n) / h
}

// apiAnswer is the API's success shape, with the rows as T.
type apiAnswer[T any] struct {
	Success bool `json:"success"`
	Data    []T  `json:"data"`
	Meta    struct {
		Count *int `json:"count"`
	} `json:"meta"`
}

// decodeAnswer reads an answer in the success shape whose count is its
// rows'.
func decodeAnswer[T any](body []byte) ([]T, error) {
	var a apiAnswer[T]
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("not the API's JSON: %v", err)
	}
	switch {
	case !a.Success:
		return nil, errors.New("success is not true")
	case a.Meta.Count == nil || *a.Meta.Count != len(a.Data):
		return nil, fmt.Errorf("meta.count %v for %d rows", a.Meta.Count, len(a.Data))
	}
	return a.Data, nil
}

// checkLatest checks an answer to the latest 100 trades of a symbol: 100
// trades, all of that symbol, newest first.
func checkLatest(u *url.URL, body []byte) error {
	trades, err := decodeAnswer[struct {
		Symbol    string       `json:"symbol"`
		Timestamp md.Timestamp `json:"timestamp"`
	}](body)
	if err != nil {
		return err
	}
	sym := u.Query().Get("symbol")
	if len(trades) != 100 {
		return fmt.Errorf("%d trades of %s, want 100", len(trades), sym)
	}
	for i, t := range trades {
		switch {
		case t.Symbol != sym:
			return fmt.Errorf("a trade of %s in the answer for %s", t.Symbol, sym)
		case i > 0 && t.Timestamp > trades[i-1].Timestamp:
			return fmt.Errorf("%s's trades are not newest first", sym)
		}
	}
	return nil
}

// checkBars checks an answer to a symbol's 1m bars of an hour: at most 60
// bars of that symbol inside the hour, in order; none at all only where
// the market is too thin to expect any (dense false).
func checkBars(u *url.URL, body []byte, dense bool) error {
	bars, err := decodeAnswer[struct {
		Symbol      string       `json:"symbol"`
		Interval    md.Interval  `json:"interval"`
		WindowStart md.Timestamp `json:"window_start"`
		TradeCount  int64        `json:"trade_count"`
	}](body)
	if err != nil {
		return err
	}
	q := u.Query()
	sym := q.Get("symbol")
	from, err1 := time.Parse(time.RFC3339, q.Get("start_time"))
	to, err2 := time.Parse(time.RFC3339, q.Get("end_time"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	switch {
	case len(bars) == 0 && dense:
		return fmt.Errorf("no bars of %s from %s", sym, q.Get("start_time"))
	case len(bars) > int(to.Sub(from)/time.Minute):
		return fmt.Errorf("%d 1m bars of %s in %s", len(bars), sym, to.Sub(from))
	}
	for i, bar := range bars {
		start := bar.WindowStart.Time()
		switch {
		case bar.Symbol != sym:
			return fmt.Errorf("a bar of %s in the answer for %s", bar.Symbol, sym)
		case bar.Interval != md.Interval1m:
			return fmt.Errorf("a %s bar in the answer for 1m", bar.Interval)
		case start.Before(from) || !start.Before(to):
			return fmt.Errorf("a bar of %s at %s, outside %s – %s", sym, start.Format(time.RFC3339), q.Get("start_time"), q.Get("end_time"))
		case i > 0 && bar.WindowStart <= bars[i-1].WindowStart:
			return fmt.Errorf("%s's bars are not in order", sym)
		case bar.TradeCount <= 0:
			return fmt.Errorf("a bar of %s with %d trades", sym, bar.TradeCount)
		}
	}
	return nil
}

// apiRun is what one run of a scenario measured.
type apiRun struct {
	requests  int
	took      time.Duration // from the first request sent to the last answer
	latencies []time.Duration
	codes     map[int]int // answers by HTTP status; 0: none (connection error, timeout)
	firstErr  string
	bytesIn   uint64
	checked   int
	wrong     int
	firstBad  string
	cpu       cpuUse
}

func (r *apiRun) rate() float64 { return float64(r.requests) / r.took.Seconds() }

// errors counts the requests that did not get a 2xx answer.
func (r *apiRun) errors() int {
	n := 0
	for code, c := range r.codes {
		if code < 200 || code >= 300 {
			n += c
		}
	}
	return n
}

// errorText says how the requests failed: by status, then the wrong
// answers among those checked.
func (r *apiRun) errorText() string {
	var parts []string
	codes := make([]int, 0, len(r.codes))
	for c := range r.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, r.codes[c]))
	}
	s := strings.Join(parts, ", ")
	if r.firstErr != "" {
		s += " (first: " + r.firstErr + ")"
	}
	s += fmt.Sprintf("; %d of %d answers checked were wrong", r.wrong, r.checked)
	if r.firstBad != "" {
		s += " (first: " + r.firstBad + ")"
	}
	return s
}

// attack loads the API with one scenario for d, each answer's latency and
// status kept and one in CheckEvery checked. With during set, it is
// called once the load has run for a moment, and the load lasts until it
// returns.
func (b *apiBench) attack(ctx context.Context, sc apiScenario, d time.Duration, during func()) (*apiRun, error) {
	n := b.o.Connections
	atk := vegeta.NewAttacker(vegeta.Connections(n), vegeta.MaxConnections(n),
		vegeta.Workers(uint64(n)), vegeta.MaxWorkers(uint64(n)), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(b.o.Seed, uint64(time.Now().UnixNano())))
	targets := func(t *vegeta.Target) error {
		mu.Lock()
		p := sc.path(rng)
		mu.Unlock()
		if p == "" {
			return vegeta.ErrNoTargets
		}
		t.Method, t.URL = http.MethodGet, b.base+p
		return nil
	}
	if during != nil {
		d = 0 // until stopped
	}
	results := atk.Attack(targets, vegeta.Rate{Freq: b.o.Rate, Per: time.Second}, d, sc.key)
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			atk.Stop()
		case <-stop:
		}
	}()
	defer close(stop)
	if during != nil {
		go func() {
			time.Sleep(500 * time.Millisecond) // the load under way
			during()
			atk.Stop()
		}()
	}
	run := &apiRun{codes: map[int]int{}}
	var first, last time.Time
	for res := range results {
		if res.Method == "" {
			continue // not a request: the targets ran out
		}
		run.requests++
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if end := res.End(); end.After(last) {
			last = end
		}
		run.latencies = append(run.latencies, res.Latency)
		run.codes[int(res.Code)]++
		run.bytesIn += res.BytesIn
		ok := res.Code >= 200 && res.Code < 300
		if !ok && run.firstErr == "" {
			run.firstErr = failureText(res)
		}
		if ok && res.Seq%uint64(b.o.CheckEvery) == 0 {
			run.checked++
			u, err := url.Parse(res.URL)
			if err == nil {
				err = sc.check(u, res.Body)
			}
			if err != nil {
				run.wrong++
				if run.firstBad == "" {
					run.firstBad = err.Error()
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if run.requests == 0 {
		return nil, fmt.Errorf("%s: no request was made", sc.name)
	}
	run.took = last.Sub(first)
	slices.Sort(run.latencies)
	if b.up != nil && b.up.exited() {
		return nil, b.up.failure()
	}
	return run, nil
}

// failureText says how a request failed: its status and the start of
// the answer, or the client's error.
func failureText(res *vegeta.Result) string {
	body := string(res.Body[:min(len(res.Body), 200)])
	return strings.TrimSpace(res.Error + " " + body)
}

// measured runs a scenario while following the CPU time of the server
// (from its /metrics), of this process and of the whole machine.
func (b *apiBench) measured(ctx context.Context, sc apiScenario, d time.Duration, during func()) (*apiRun, error) {
	cpu := b.cpuMeter(ctx)
	run, err := b.attack(ctx, sc, d, during)
	if err != nil {
		return nil, err
	}
	run.cpu = cpu()
	return run, nil
}

// cpuUse is the cores in use over a while: by the server, by this process
// (the load generator), and by the whole machine; NaN where unknown.
type cpuUse struct{ server, load, machine float64 }

// others is what the rest of the machine used: other people's work on a
// shared machine.
func (c cpuUse) others() float64 { return max(0, c.machine-c.server-c.load) }

func (c cpuUse) String() string {
	return fmt.Sprintf("CPU: server %.2f cores, load generator %.2f, rest of the machine %.2f", c.server, c.load, c.others())
}

// cpuMeter starts following the cores in use; the function it returns
// says how many were used since.
func (b *apiBench) cpuMeter(ctx context.Context) func() cpuUse {
	serverCPU := func() float64 {
		if b.up == nil {
			return math.NaN()
		}
		m, err := scrapeMetrics(ctx, b.http, b.up.metricsURL)
		if err != nil {
			return math.NaN()
		}
		if rss, ok := m.value("process_resident_memory_bytes"); ok {
			b.peakRSS = max(b.peakRSS, rss)
		}
		if level, ok := m.value("k2_degradation_level"); ok {
			b.peakLevel = max(b.peakLevel, level)
		}
		v, ok := m.value("process_cpu_seconds_total")
		if !ok {
			return math.NaN()
		}
		return v
	}
	seconds := func(d time.Duration) float64 {
		if d < 0 {
			return math.NaN()
		}
		return d.Seconds()
	}
	start, s0, l0, m0 := time.Now(), serverCPU(), seconds(selfCPU()), seconds(machineCPU())
	return func() cpuUse {
		s1, l1, m1 := serverCPU(), seconds(selfCPU()), seconds(machineCPU())
		secs := time.Since(start).Seconds()
		return cpuUse{server: (s1 - s0) / secs, load: (l1 - l0) / secs, machine: (m1 - m0) / secs}
	}
}

// run has the server read each part of the lake a scenario reads once,
// warms it up, measures it, judges its targets and profiles the server
// under a further run of it, into rep.
func (b *apiBench) run(ctx context.Context, sc apiScenario, rep *Report) error {
	o := b.o
	warm := func(what string, sc apiScenario, d time.Duration) error {
		fmt.Fprintf(o.Progress, "%s: %s…\n", sc.name, what)
		w, err := b.measured(ctx, sc, d, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Progress, "  %s\n", runLine(w))
		rep.Results = append(rep.Results, Result{Name: sc.name + ", " + what, Rows: b.rows, Value: w.rate(), Unit: "req/s",
			Detail: fmt.Sprintf("%d requests in %.1f s; p50 %.1f ms, p99 %.1f ms; errors %d",
				w.requests, w.took.Seconds(), ms(quantile(w.latencies, 0.5)), ms(quantile(w.latencies, 0.99)), w.errors()+w.wrong)})
		return nil
	}
	// A server that has run a while has read each part of the lake once.
	if err := warm(sc.firstName, sc.inTurn(), 0); err != nil {
		return err
	}
	if o.Warmup > 0 {
		if err := warm("warm-up", sc, o.Warmup); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Progress, "%s: measuring for %s…\n", sc.name, o.Duration)
	r, err := b.measured(ctx, sc, o.Duration, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Progress, "  %s\n", runLine(r))
	rep.Results = append(rep.Results, runResults(sc, r, b.rows, o)...)
	rep.Checks = append(rep.Checks, judgeAPI(sc, r)...)
	if o.ProfileFor <= 0 {
		return nil
	}
	fmt.Fprintf(o.Progress, "%s: profiling the server for %s under the same load…\n", sc.name, o.ProfileFor)
	prof, err := b.profile(ctx, sc)
	if err != nil {
		// The figures stand without it.
		o.Logger.Warn("profile failed", "scenario", sc.name, "error", err)
		rep.Profiles = append(rep.Profiles, Profile{Run: sc.name, Note: "no profile: " + err.Error()})
		return nil
	}
	rep.Profiles = append(rep.Profiles, prof...)
	return nil
}

// runLine is a run in one progress line.
func runLine(r *apiRun) string {
	return fmt.Sprintf("%.0f req/s · p50 %.1f ms · p99 %.1f ms · errors %d · %d/%d checked answers wrong · %s",
		r.rate(), ms(quantile(r.latencies, 0.5)), ms(quantile(r.latencies, 0.99)), r.errors(), r.wrong, r.checked, r.cpu)
}

// runResults are a measured run's figures.
func runResults(sc apiScenario, r *apiRun, rows int, o APIOptions) []Result {
	lat := func(label string, q float64) Result {
		return Result{Name: sc.name + ", " + label, Rows: rows, Value: ms(quantile(r.latencies, q)), Unit: "ms"}
	}
	return []Result{
		{Name: sc.name + ", requests/s", Rows: rows, Value: r.rate(), Unit: "req/s",
			Detail: fmt.Sprintf("%d requests in %.1f s, %d connections; %s", r.requests, r.took.Seconds(), o.Connections, r.cpu)},
		lat("p50", 0.5), lat("p90", 0.9), lat("p99", 0.99),
		{Name: sc.name + ", max", Rows: rows, Value: ms(r.latencies[len(r.latencies)-1]), Unit: "ms"},
		{Name: sc.name + ", errors", Rows: rows, Value: float64(r.errors() + r.wrong), Unit: "", Detail: r.errorText()},
		{Name: sc.name + ", mean answer", Rows: rows, Value: float64(r.bytesIn) / float64(r.requests), Unit: "bytes"},
		cpuPerRequest(sc, r, rows),
	}
}

// cpuPerRequest is the server's CPU time per request, with the load
// generator's: on a machine shared with others' work it varies less than
// requests/s, and it bounds what the machine's cores could answer.
func cpuPerRequest(sc apiScenario, r *apiRun, rows int) Result {
	server, load := 1000*r.cpu.server/r.rate(), 1000*r.cpu.load/r.rate()
	return Result{Name: sc.name + ", server CPU per request", Rows: rows, Value: server, Unit: "ms",
		Detail: fmt.Sprintf("the live feed and sink beside it included; load generator %.2f ms; at these costs %d cores would answer at most %.0f req/s", load, runtime.NumCPU(), float64(runtime.NumCPU())*1000/(server+load))}
}

// judgeAPI judges a measured run against its scenario's targets.
func judgeAPI(sc apiScenario, r *apiRun) []Check {
	status := func(ok bool) string {
		if ok {
			return checkPass
		}
		return checkFail
	}
	p99 := quantile(r.latencies, 0.99)
	errs := r.errors() + r.wrong
	return []Check{
		{Name: fmt.Sprintf("%s ≥ %s req/s", sc.name, groupDigits(int64(sc.minRate))), Status: status(r.rate() >= sc.minRate),
			Detail: fmt.Sprintf("%.0f req/s", r.rate())},
		{Name: fmt.Sprintf("%s p99 ≤ %d ms", sc.name, sc.maxP99.Milliseconds()), Status: status(p99 <= sc.maxP99),
			Detail: fmt.Sprintf("%.1f ms", ms(p99))},
		{Name: sc.name + " errors 0", Status: status(errs == 0 && r.checked > 0),
			Detail: fmt.Sprintf("%d errors, %d wrong of %d answers checked", r.errors(), r.wrong, r.checked)},
	}
}

// profile runs a scenario for o.ProfileFor while taking the server's CPU
// profile (/debug/pprof/profile) and this process's, and says where each
// spent its time.
func (b *apiBench) profile(ctx context.Context, sc apiScenario) ([]Profile, error) {
	secs := max(1, int(b.o.ProfileFor.Round(time.Second)/time.Second))
	var server, load bytes.Buffer
	var serverErr, loadErr error
	var use cpuUse
	run, err := b.measured(ctx, sc, 0, func() {
		cpu := b.cpuMeter(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { serverErr = b.fetchProfile(ctx, secs, &server) })
		if loadErr = pprof.StartCPUProfile(&load); loadErr == nil {
			time.Sleep(time.Duration(secs) * time.Second)
			pprof.StopCPUProfile()
		}
		wg.Wait()
		use = cpu()
	})
	if err != nil {
		return nil, err
	}
	if serverErr != nil {
		return nil, fmt.Errorf("the server's profile: %w", serverErr)
	}
	fmt.Fprintf(b.o.Progress, "  %s\n", runLine(run))
	var out []Profile
	add := func(who string, data []byte, suffix, used string) error {
		sum, err := summarizeProfile(data, apiParts, 15)
		if err != nil {
			return err
		}
		note := fmt.Sprintf("%.2f cores sampled over %.0f s%s", sum.cpu.Seconds()/sum.wall.Seconds(), sum.wall.Seconds(), used)
		if b.o.CPUProfile != "" {
			path := b.o.CPUProfile + "." + sc.key + "." + suffix
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			note += "; saved: go tool pprof -top " + path
		}
		out = append(out, Profile{Run: sc.name + " (" + who + ")", Shares: sum.shares, Top: sum.top, Note: note})
		return nil
	}
	if err := add("server, k2 up", server.Bytes(), "server", fmt.Sprintf("; the process used %.2f (its /metrics)", use.server)); err != nil {
		return nil, err
	}
	if loadErr == nil {
		if err := add("load generator", load.Bytes(), "loadgen", fmt.Sprintf("; the process used %.2f; the rest of the machine %.2f", use.load, use.others())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchProfile reads the server's CPU profile over secs seconds.
func (b *apiBench) fetchProfile(ctx context.Context, secs int, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// apiParts name where a k2 up answering the API (and the load generator)
// spends its time; on a stack the innermost match wins. The live feed,
// broker and sink running beside the API are one part.
var apiParts = []profilePart{
	{"duckdb", "DuckDB (cgo)"},
	{"runtime.cgocall", "DuckDB (cgo)"},
	{"runtime._ExternalCode", "C/C++ threads (DuckDB's workers)"},
	{"runtime.gcAssistAlloc", "garbage collection (assists)"},
	{"runtime.mallocgc", "memory allocation"},
	{"encoding/json", "JSON encoding and decoding"},
	{"log/slog", "logging (access log)"},
	{"k2/internal/ops", "logging (access log)"},
	{"prometheus", "metrics"},
	{"k2/internal/api", "API handlers"},
	{"k2/internal/query", "query engine (Go side: plan, rows)"},
	{"iceberg-go", "Iceberg metadata"},
	{"tsenart/vegeta", "load generator (vegeta)"},
	{"k2/internal/bench", "load generator (answers checked)"},
	{"franz-go", "live feed, broker and sink"},
	{"hamba/avro", "live feed, broker and sink"},
	{"k2/internal/codec", "live feed, broker and sink"},
	{"k2/internal/feed", "live feed, broker and sink"},
	{"k2/internal/live", "live feed, broker and sink"},
	{"k2/internal/sink", "live feed, broker and sink"},
	{"k2/internal/lake", "live feed, broker and sink"},
	{"k2/internal/maintain", "live feed, broker and sink"},
	{"arrow-go", "live feed, broker and sink"},
	{"klauspost/compress", "live feed, broker and sink"},
	{"modernc.org/sqlite", "catalog (SQLite)"},
	{"net/http", "HTTP (net/http)"},
	{"net.", "network I/O (net, poll, syscalls)"},
	{"internal/poll", "network I/O (net, poll, syscalls)"},
	{"syscall.", "network I/O (net, poll, syscalls)"},
	{"internal/runtime/syscall", "network I/O (net, poll, syscalls)"},
}
