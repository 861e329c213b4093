// Package bench measures K2 the way its users load it: appending synthetic
// trades to the lake and asking the questions analysts ask, with the machine
// and the data size printed beside every figure.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/rollup"
)

// LakeOptions configure `k2 bench lake`.
type LakeOptions struct {
	Rows      []int // table sizes to build, e.g. 1M and 10M
	BatchRows int   // rows per commit
	Symbols   int   // instruments in the synthetic market
	Rate      float64
	Queries   int // timed runs of each query
	Partition lake.SymbolPartition
	Dedup     bool   // append with the loader's duplicate check
	Dir       string // scratch directory (removed afterwards unless Keep)
	Keep      bool
	Seed      uint64
	Progress  io.Writer
	// QuestDB, when set, is the path of QuestDB's server jar: the same
	// trades and queries are measured there too, as a reference.
	QuestDB string
}

// Result is one measured figure.
type Result struct {
	Name   string  `json:"name"`
	Rows   int     `json:"rows"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Detail string  `json:"detail,omitempty"`
}

// Report is the benchmark output.
type Report struct {
	Machine Machine  `json:"machine"`
	Options string   `json:"options"`
	Results []Result `json:"results"`
	// Profiles say where CPU time went (ingest only).
	Profiles []Profile `json:"cpu_profiles,omitempty"`
	// Soak only: a sample per interval, the targets judged, the plot
	// written, and why the run ended early, if it did.
	Samples []SoakSample `json:"samples,omitempty"`
	Checks  []Check      `json:"checks,omitempty"`
	Plot    string       `json:"plot,omitempty"`
	Note    string       `json:"note,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	OS     string `json:"os"`
	Go     string `json:"go"`
}

// DescribeMachine reads the CPU model and memory from /proc where present.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), CPU: "unknown", Memory: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
		f.Close()
	}
	return m
}

// RunLake builds each table size and measures append throughput and the
// two reference queries on it.
func RunLake(ctx context.Context, o LakeOptions) (Report, error) {
	config.Or(&o.BatchRows, config.Default().Load.BatchRows)
	if o.Symbols <= 0 {
		o.Symbols = 20
	}
	if o.Rate <= 0 {
		o.Rate = 20 // trades per second across the market: 1.7M a day
	}
	if o.Queries <= 0 {
		o.Queries = 200
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	rep := Report{Machine: DescribeMachine(), Options: fmt.Sprintf("batch %d rows · %d symbols · %.0f trades/s simulated · partition day+%s · dedup %v · %d query runs",
		o.BatchRows, o.Symbols, o.Rate, o.Partition, o.Dedup, o.Queries)}
	for _, n := range o.Rows {
		res, err := runSize(ctx, o, n)
		if err != nil {
			return rep, err
		}
		rep.Results = append(rep.Results, res...)
	}
	return rep, nil
}

func runSize(ctx context.Context, o LakeOptions, rows int) ([]Result, error) {
	dir, err := os.MkdirTemp(o.Dir, fmt.Sprintf("k2-bench-%d-", rows))
	if err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	l, err := lake.Open(ctx, lake.Options{Tables: record.AllTables(),
		Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse"), SymbolPartition: o.Partition,
	})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	w, err := record.Trade.Writer(l, lake.WithDedup(o.Dedup))
	if err != nil {
		return nil, err
	}
	gen := synth.New(synth.Config{Seed: o.Seed, Symbols: marketSymbols(o.Symbols), Rate: o.Rate})
	app, err := appendTrades(ctx, w, gen, rows, o.BatchRows, o.Progress)
	if err != nil {
		return nil, err
	}
	results := []Result{{Name: "append (commits timed; generating the trades is not)", Rows: rows, Value: app.rowsPerSecond(), Unit: "rows/s", Detail: app.String()}}

	// The append phase leaves a large heap behind; collect it so the query
	// phase is measured on its own, as in a query server.
	runtime.GC()
	e, err := query.New(l, query.Options{WorkDir: filepath.Join(dir, "query"), Query: config.Query{PoolSize: 2}})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	symInfo, err := e.Symbols(ctx, "", query.AsOf{})
	if err != nil {
		return nil, err
	}
	var days []symDay
	for _, s := range symInfo {
		for d := s.First.Time().Truncate(24 * time.Hour); d.Before(s.Last.Time()); d = d.Add(24 * time.Hour) {
			days = append(days, symDay{s.Symbol, md.TimestampOf(d), md.TimestampOf(d.Add(24 * time.Hour))})
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 42))
	fmt.Fprintf(o.Progress, "querying %d-row table…\n", rows)
	latestOf := func(sym string) (int, error) {
		r, err := e.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: sym}, Limit: 100, Desc: true})
		return len(r), err
	}
	// Cold: each symbol's first query opens its newest files. Then the
	// measured runs, as a server answers them once it has seen each file.
	var firsts []time.Duration
	for _, s := range symInfo {
		start := time.Now()
		if _, err := latestOf(s.Symbol); err != nil {
			return nil, err
		}
		firsts = append(firsts, time.Since(start))
	}
	slices.Sort(firsts)
	latest, err := timeQuery(o.Queries, func() (int, error) {
		return latestOf(symInfo[rng.IntN(len(symInfo))].Symbol)
	})
	if err != nil {
		return nil, err
	}
	barsOf := func(d symDay) (int, error) {
		r, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: d.sym, From: d.from, To: d.to}, Interval: md.Interval1m})
		return len(r), err
	}
	// Cold: the first bars of a symbol-day aggregate its data files' trades.
	// Each symbol-day is asked once (drawn without replacement): a second
	// ask would be answered from the aggregates the first one left.
	coldDays := slices.Clone(days)
	rng.Shuffle(len(coldDays), func(i, j int) { coldDays[i], coldDays[j] = coldDays[j], coldDays[i] })
	coldDays = coldDays[:min(40, len(coldDays))]
	next := 0
	cold, err := timeQuery(len(coldDays), func() (int, error) {
		next++
		return barsOf(coldDays[next-1])
	})
	if err != nil {
		return nil, err
	}
	// Warm: a running server has aggregated every file by minute as it landed.
	warmStart := time.Now()
	if err := e.WarmBars(ctx); err != nil {
		return nil, err
	}
	warmTook := time.Since(warmStart)
	bars, err := timeQuery(o.Queries, func() (int, error) {
		return barsOf(days[rng.IntN(len(days))])
	})
	if err != nil {
		return nil, err
	}
	// The bar tables: rolled once over every trade (as the maintainer
	// keeps them, commit by commit), then each symbol-day's first query
	// reads its bars from them. The roller's clock is the data's, so
	// retention keeps every day.
	var newest md.Timestamp
	for _, s := range symInfo {
		newest = max(newest, s.Last)
	}
	rollStart := time.Now()
	if _, err := rollup.New(l, e, rollup.Options{Now: newest.Time}).Roll(ctx); err != nil {
		return nil, err
	}
	rollTook := time.Since(rollStart)
	rng.Shuffle(len(coldDays), func(i, j int) { coldDays[i], coldDays[j] = coldDays[j], coldDays[i] })
	next = 0
	tableCold, err := timeQuery(len(coldDays), func() (int, error) {
		next++
		return barsOf(coldDays[next-1])
	})
	if err != nil {
		return nil, err
	}
	perSymDay := float64(rows) / float64(len(days))
	results = append(results,
		Result{Name: "latest 100 trades of a symbol, p50", Rows: rows, Value: ms(latest.p50), Unit: "ms", Detail: fmt.Sprintf("%d symbols; each symbol's first query: median %.1f ms, max %.1f ms", len(symInfo), ms(firsts[len(firsts)/2]), ms(firsts[len(firsts)-1]))},
		Result{Name: "latest 100 trades of a symbol, p99", Rows: rows, Value: ms(latest.p99), Unit: "ms"},
		Result{Name: "1m bars of a symbol-day, cold, p50", Rows: rows, Value: ms(cold.p50), Unit: "ms", Detail: fmt.Sprintf("~%.0f trades per symbol-day on average, %d largest", perSymDay, largestDay(symInfo))},
		Result{Name: "1m bars of a symbol-day, cold, p99", Rows: rows, Value: ms(cold.p99), Unit: "ms", Detail: "first read of the day's files"},
		Result{Name: "1m bars of a symbol-day, p50", Rows: rows, Value: ms(bars.p50), Unit: "ms", Detail: fmt.Sprintf("minute aggregates of all files built in %.1f s", warmTook.Seconds())},
		Result{Name: "1m bars of a symbol-day, p99", Rows: rows, Value: ms(bars.p99), Unit: "ms"},
		Result{Name: "1m bars of a symbol-day from the bar table, cold, p50", Rows: rows, Value: ms(tableCold.p50), Unit: "ms", Detail: fmt.Sprintf("bar tables rolled from every trade in %.1f s; first read of each day's bar file", rollTook.Seconds())},
		Result{Name: "1m bars of a symbol-day from the bar table, cold, p99", Rows: rows, Value: ms(tableCold.p99), Unit: "ms"},
	)
	if o.QuestDB != "" {
		syms := make([]string, len(symInfo))
		for i, s := range symInfo {
			syms[i] = s.Symbol
		}
		ref, err := questDBResults(ctx, o, rows, syms, days)
		if err != nil {
			return nil, err
		}
		results = append(results, ref...)
	}
	return results, nil
}

// symDay is a UTC day a symbol traded on, for the bar query.
type symDay struct {
	sym      string
	from, to md.Timestamp
}

// marketSymbols names the n instruments of a benchmark's synthetic market:
// the default market's, then SYM020USD, SYM021USD…
func marketSymbols(n int) []string {
	syms := synth.DefaultSymbols
	if n <= len(syms) {
		return slices.Clone(syms[:n])
	}
	syms = slices.Clone(syms)
	for i := len(syms); i < n; i++ {
		syms = append(syms, fmt.Sprintf("SYM%03dUSD", i))
	}
	return syms
}

// appended is what appendTrades wrote: commits, files, bytes, the time
// spent committing and the range of trade times.
type appended struct {
	Rows    int           `json:"rows"`
	Commits int           `json:"commits"`
	Files   int           `json:"files"`
	Bytes   int64         `json:"bytes"`
	Took    time.Duration `json:"commit_ns"`
	From    md.Timestamp  `json:"first_trade"`
	To      md.Timestamp  `json:"last_trade"`
}

func (a appended) rowsPerSecond() float64 { return float64(a.Rows) / a.Took.Seconds() }

func (a appended) String() string {
	return fmt.Sprintf("%d commits, %d files, %.1f MiB, %.1f bytes/row", a.Commits, a.Files, float64(a.Bytes)/(1<<20), float64(a.Bytes)/float64(a.Rows))
}

// appendTrades appends rows trades of gen through w in commits of
// batchRows, as a load makes them, timing the commits alone (encoding,
// Parquet files, catalog commit): generating each batch is left out of
// Took, so the rate is the lake's, not the synthetic market's.
func appendTrades(ctx context.Context, w *lake.Writer[md.Trade], gen *synth.Generator, rows, batchRows int, progress io.Writer) (appended, error) {
	a := appended{Rows: rows}
	buf := make([]md.Trade, 0, batchRows)
	fmt.Fprintf(progress, "appending %d trades in %d-row commits…\n", rows, batchRows)
	for done := 0; done < rows; {
		n := min(batchRows, rows-done)
		buf = gen.Trades(buf[:0], n)
		if done == 0 {
			a.From = buf[0].Timestamp
		}
		a.To = buf[len(buf)-1].Timestamp
		start := time.Now()
		res, err := w.Commit(ctx, buf, map[string]string{"k2.source": "bench"})
		if err != nil {
			return a, err
		}
		a.Took += time.Since(start)
		a.Commits++
		a.Files += res.FilesAdded
		a.Bytes += res.BytesAdded
		done += n
		if a.Commits%5 == 0 {
			fmt.Fprintf(progress, "  %d / %d rows, %.0f rows/s\n", done, rows, float64(done)/a.Took.Seconds())
		}
	}
	return a, nil
}

// largestDay estimates the busiest symbol-day: the busiest symbol's
// trades per day of its trading span.
func largestDay(syms []query.SymbolInfo) int {
	best := 0.0
	for _, s := range syms {
		if span := s.Last.Time().Sub(s.First.Time()); span > 0 {
			best = max(best, float64(s.Trades)/max(1, span.Hours()/24))
		}
	}
	return int(best)
}

type timings struct{ first, p50, p99 time.Duration }

func timeQuery(n int, fn func() (int, error)) (timings, error) {
	var d []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		rows, err := fn()
		if err != nil {
			return timings{}, err
		}
		if rows == 0 {
			return timings{}, fmt.Errorf("benchmark query returned no rows")
		}
		d = append(d, time.Since(start))
	}
	first := d[0]
	t := percentiles(d)
	t.first = first
	return t, nil
}

// percentiles sorts d and returns its median and 99th percentile.
func percentiles(d []time.Duration) timings {
	slices.Sort(d)
	return timings{p50: quantile(d, 0.5), p99: quantile(d, 0.99)}
}

// quantile is the q-quantile of sorted durations (not empty).
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*q))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Print writes the report as a table.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s · %d cores · %s · %s · %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.Memory, r.Machine.OS, r.Machine.Go)
	fmt.Fprintf(w, "options: %s\n\n", r.Options)
	r.printSamples(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tROWS\tRESULT\tDETAIL")
	for _, res := range r.Results {
		v := fmt.Sprintf("%.0f %s", res.Value, res.Unit)
		if res.Unit == "ms" {
			v = fmt.Sprintf("%.2f ms", res.Value)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", res.Name, res.Rows, v, res.Detail)
	}
	tw.Flush()
	for _, prof := range r.Profiles {
		fmt.Fprintf(w, "\nwhere the %s run spent its CPU time:\n", prof.Run)
		if prof.Note != "" {
			fmt.Fprintf(w, "  %s\n", prof.Note)
		}
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, p := range prof.Shares {
			if p.Percent >= 0.5 {
				fmt.Fprintf(tw, "  %s\t%5.1f%%\n", p.What, p.Percent)
			}
		}
		if len(prof.Top) > 0 {
			fmt.Fprintln(tw, "  top functions (own time):\t")
			for _, p := range prof.Top {
				fmt.Fprintf(tw, "    %s\t%5.1f%%\n", p.What, p.Percent)
			}
		}
		tw.Flush()
	}
	r.printChecks(w)
}
