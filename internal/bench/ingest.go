package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/google/pprof/profile"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/stack"
)

// IngestOptions configure `k2 bench ingest`.
type IngestOptions struct {
	Trades     int // trades through the pipeline in the throughput runs
	Partitions int // per topic
	BatchRows  int // sink batch rows
	Symbols    int
	// FreshRate trades per second for FreshFor measure freshness, with the
	// sink's batches closing after BatchAge.
	FreshRate int
	FreshFor  time.Duration
	BatchAge  time.Duration
	Dir       string // scratch directory (removed afterwards unless Keep)
	Keep      bool
	Seed      uint64
	// Kafka, when set, is the cluster measured instead of an embedded
	// broker: its brokers, security and schema registry ("": one is served
	// in this process). The run's topics go under its topic prefix and a
	// prefix of the run's own, and are deleted afterwards unless Keep.
	Kafka   *config.Kafka
	Profile string // also write the pipeline's CPU profile here
	// Trace, when set, is where the drain's and the pipeline's execution
	// traces go (Trace.drain, Trace.pipeline): which goroutines ran when,
	// which a CPU profile cannot show.
	Trace    string
	Progress io.Writer
	Logger   *slog.Logger // the sink's log (default: none)
}

// ProfileShare is one part of where CPU time went.
type ProfileShare struct {
	What    string  `json:"what"`
	Percent float64 `json:"percent"`
}

// Profile is a run's CPU time by part of the pipeline, largest first.
type Profile struct {
	Run    string         `json:"run"`
	Shares []ProfileShare `json:"shares"`
	// Top are the functions with the most CPU time of their own (API only).
	Top []ProfileShare `json:"top_functions,omitempty"`
	// Note says what the profile covers and where it was saved.
	Note string `json:"note,omitempty"`
}

// addProfile summarizes a run's CPU profile into the report and, when
// asked, writes it next to path as <path>.<suffix>.
func (r *Report) addProfile(run string, data []byte, path, suffix string) error {
	if path != "" {
		if err := os.WriteFile(path+"."+suffix, data, 0o644); err != nil {
			return err
		}
	}
	sum, err := summarizeProfile(data, ingestParts, 0)
	if err != nil {
		return err
	}
	r.Profiles = append(r.Profiles, Profile{Run: run, Shares: sum.shares})
	return nil
}

// startTrace starts an execution trace into path.suffix, when path is
// set, and returns what ends it.
func startTrace(path, suffix string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path + "." + suffix)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error { trace.Stop(); return f.Close() }, nil
}

// FreshnessBatchAge is the sink's batch age the ingest benchmark runs
// with: freshness is measured at the age a latency-sensitive deployment
// would choose, not at k2 up's default, which favours few large commits.
const FreshnessBatchAge = time.Second

// RunIngest measures the stream into the lake on the embedded broker or
// the cluster o.Kafka names: producing, the sink alone draining a full
// topic, the whole pipeline at once (with a CPU profile), and freshness at
// a steady rate.
func RunIngest(ctx context.Context, o IngestOptions) (rep Report, err error) {
	if o.Trades <= 0 {
		o.Trades = 2_000_000
	}
	d := config.Default()
	config.Or(&o.Partitions, d.Kafka.Partitions)
	config.Or(&o.BatchRows, d.Sink.BatchRows)
	if o.Symbols <= 0 {
		o.Symbols = 20
	}
	if o.FreshRate <= 0 {
		o.FreshRate = 100_000
	}
	if o.FreshFor <= 0 {
		o.FreshFor = 10 * time.Second
	}
	config.Or(&o.BatchAge, FreshnessBatchAge)
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	root, err := os.MkdirTemp(o.Dir, "k2-bench-ingest-")
	if err != nil {
		return rep, err
	}
	if !o.Keep {
		defer os.RemoveAll(root)
	}
	kc, err := openCluster(ctx, o, root)
	if err != nil {
		return rep, err
	}
	defer kc.close()
	if !o.Keep {
		defer func() {
			if e := kc.dropTopics(context.WithoutCancel(ctx)); e != nil {
				err = errors.Join(err, e)
			}
		}()
	}
	topics := ""
	if kc.prefix != "" {
		topics = " · topics " + kc.prefix + "*"
		if o.Keep {
			topics += " (kept)"
		}
	}
	rep = Report{Machine: DescribeMachine(), Options: fmt.Sprintf(
		"%s%s · %d partitions · sink batches of %d rows or %s · %d symbols · GOGC %d · memory limit %s · freshness at %d trades/s for %s",
		kc.about, topics, o.Partitions, o.BatchRows, o.BatchAge, o.Symbols, gogc(), memLimit(), o.FreshRate, o.FreshFor)}

	// 1. Produce into the broker, then let the sink drain it.
	st, err := newPipeline(ctx, filepath.Join(root, "drain"), "drain", kc, o, false)
	if err != nil {
		return rep, err
	}
	resetPeak()
	fmt.Fprintf(o.Progress, "producing %d trades\n", o.Trades)
	start := time.Now()
	if err := produce(ctx, st.prod, o, o.Trades, 0); err != nil {
		st.close()
		return rep, err
	}
	prodTime := time.Since(start)
	rep.Results = append(rep.Results, Result{Name: "produce (synthetic feed → Avro → broker, acked)", Rows: o.Trades,
		Value: float64(o.Trades) / prodTime.Seconds(), Unit: "trades/s", Detail: prodTime.Round(time.Millisecond).String() + ", generating the trades included"})
	fmt.Fprintf(o.Progress, "sink draining %d trades\n", o.Trades)
	var drainProf bytes.Buffer
	if err := pprof.StartCPUProfile(&drainProf); err != nil {
		st.close()
		return rep, err
	}
	stopTrace, err := startTrace(o.Trace, "drain")
	if err != nil {
		pprof.StopCPUProfile()
		st.close()
		return rep, err
	}
	cpu0 := selfCPU()
	drain, err := st.sinkUntil(ctx, o, o.Trades, nil)
	drainCPU := cpuPerTrade(cpu0, o.Trades)
	err = errors.Join(err, stopTrace())
	pprof.StopCPUProfile()
	st.close()
	if err != nil {
		return rep, err
	}
	if err := rep.addProfile("sink drain", drainProf.Bytes(), o.Profile, "drain"); err != nil {
		return rep, err
	}
	rep.Results = append(rep.Results, Result{Name: "sink drain (broker → decode → Iceberg, committed)", Rows: o.Trades,
		Value: float64(o.Trades) / drain.Seconds(), Unit: "trades/s", Detail: drain.Round(time.Millisecond).String() + " from the sink's start (joining its group) to its last commit" + drainCPU})

	// 2. The whole pipeline at once, profiled.
	st, err = newPipeline(ctx, filepath.Join(root, "pipeline"), "pipeline", kc, o, false)
	if err != nil {
		return rep, err
	}
	var prof bytes.Buffer
	if err := pprof.StartCPUProfile(&prof); err != nil {
		st.close()
		return rep, err
	}
	fmt.Fprintf(o.Progress, "pipeline: producing and sinking %d trades at once\n", o.Trades)
	if stopTrace, err = startTrace(o.Trace, "pipeline"); err != nil {
		pprof.StopCPUProfile()
		st.close()
		return rep, err
	}
	start, cpu0 = time.Now(), selfCPU()
	produced := make(chan error, 1)
	go func() { produced <- produce(ctx, st.prod, o, o.Trades, 0) }()
	_, err = st.sinkUntil(ctx, o, o.Trades, nil)
	pipe := time.Since(start)
	pipeCPU := cpuPerTrade(cpu0, o.Trades)
	err = errors.Join(err, stopTrace())
	pprof.StopCPUProfile()
	st.close()
	if err = errors.Join(err, <-produced); err != nil {
		return rep, err
	}
	peak := peakRSS()
	rep.Results = append(rep.Results, Result{Name: "end to end (produce → broker → sink → committed)", Rows: o.Trades,
		Value: float64(o.Trades) / pipe.Seconds(), Unit: "trades/s", Detail: pipe.Round(time.Millisecond).String() + " from the first trade generated to the last committed" + pipeCPU})
	rep.Results = append(rep.Results, Result{Name: "peak memory (process RSS, runs 1–2)", Rows: o.Trades,
		Value: float64(peak) / (1 << 20), Unit: "MiB", Detail: kc.inProcess()})
	if err := rep.addProfile("end to end", prof.Bytes(), o.Profile, "pipeline"); err != nil {
		return rep, err
	}

	// 3. Freshness at a steady rate: in the lake, and through the API
	// (its event stream of one symbol, served from the in-memory tail).
	st, err = newPipeline(ctx, filepath.Join(root, "fresh"), "fresh", kc, o, true)
	if err != nil {
		return rep, err
	}
	defer st.close()
	n := int(float64(o.FreshRate) * o.FreshFor.Seconds())
	fmt.Fprintf(o.Progress, "freshness: %d trades/s for %s\n", o.FreshRate, o.FreshFor)
	w := &watcher{lake: st.st.Lake(), seen: map[string]bool{}}
	apiCtx, stopAPI := context.WithCancel(ctx)
	defer stopAPI()
	symbol := synth.DefaultSymbols[0]
	seenAPI := make(chan []time.Duration, 1)
	go func() { seenAPI <- watchAPI(apiCtx, st.st.HTTPAddr(), symbol) }()
	time.Sleep(500 * time.Millisecond) // the stream is open before the first trade
	go func() { produced <- produce(ctx, st.prod, o, n, o.FreshRate) }()
	if _, err := st.sinkUntil(ctx, o, n, w); err != nil {
		return rep, err
	}
	if err := <-produced; err != nil {
		return rep, err
	}
	if err := w.check(ctx); err != nil { // the last commit
		return rep, err
	}
	if len(w.fresh) != n {
		return rep, fmt.Errorf("freshness: saw %d of %d trades in the lake", len(w.fresh), n)
	}
	slices.Sort(w.fresh)
	pct := func(p float64) time.Duration { return w.fresh[min(len(w.fresh)-1, int(float64(len(w.fresh))*p))] }
	detail := fmt.Sprintf("snapshots polled every %s; batches close after %s", watchEvery, o.BatchAge)
	rep.Results = append(rep.Results,
		Result{Name: fmt.Sprintf("freshness p50 at %d trades/s (produce → visible in the lake)", o.FreshRate), Rows: n, Value: ms(pct(0.50)), Unit: "ms", Detail: detail},
		Result{Name: fmt.Sprintf("freshness p99 at %d trades/s", o.FreshRate), Rows: n, Value: ms(pct(0.99)), Unit: "ms"},
		Result{Name: fmt.Sprintf("freshness max at %d trades/s", o.FreshRate), Rows: n, Value: ms(w.fresh[len(w.fresh)-1]), Unit: "ms"},
	)
	time.Sleep(time.Second) // the stream's last events
	stopAPI()
	api := <-seenAPI
	if len(api) == 0 {
		return rep, fmt.Errorf("freshness through the API: the event stream of %s brought nothing", symbol)
	}
	slices.Sort(api)
	apct := func(p float64) time.Duration { return api[min(len(api)-1, int(float64(len(api))*p))] }
	detail = fmt.Sprintf("GET /v1/stream/trades?symbols=%s, %d events: produce → event received", symbol, len(api))
	rep.Results = append(rep.Results,
		Result{Name: fmt.Sprintf("API freshness p50 at %d trades/s (produce → visible through the API)", o.FreshRate), Rows: len(api), Value: ms(apct(0.50)), Unit: "ms", Detail: detail},
		Result{Name: fmt.Sprintf("API freshness p99 at %d trades/s", o.FreshRate), Rows: len(api), Value: ms(apct(0.99)), Unit: "ms"},
		Result{Name: fmt.Sprintf("API freshness max at %d trades/s", o.FreshRate), Rows: len(api), Value: ms(api[len(api)-1]), Unit: "ms"},
	)
	return rep, nil
}

// cpuPerTrade describes the CPU time this process used since cpu0 per
// trade of n: on a machine the pipeline keeps busy, throughput is the cores
// divided by it. Empty where the platform does not say.
func cpuPerTrade(cpu0 time.Duration, n int) string {
	cpu := selfCPU()
	if cpu0 < 0 || cpu < 0 {
		return ""
	}
	return fmt.Sprintf("; %.2f µs of this process's CPU a trade", float64(cpu-cpu0)/float64(time.Microsecond)/float64(n))
}

// watchAPI follows the API's event stream of one symbol until ctx ends,
// noting for each trade how long after it was produced (its timestamp) it
// arrived.
func watchAPI(ctx context.Context, addr, symbol string) []time.Duration {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/v1/stream/trades?symbols="+url.QueryEscape(symbol), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out []time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		at := time.Now()
		var ev struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if json.Unmarshal([]byte(data), &ev) == nil && !ev.Timestamp.IsZero() {
			out = append(out, at.Sub(ev.Timestamp))
		}
	}
	return out
}

// pipeline is a K2 in one directory (the embedded broker and registry or
// the cluster's, a lake and a sink: a stack.Stack as k2 up or k2 sink runs
// it) and a producer of synthetic trades.
type pipeline struct {
	st   *stack.Stack
	prod *bus.Producer
}

// newPipeline starts the pipeline of the named phase; withAPI serves the
// API (and its tail) on a listener of its own.
func newPipeline(ctx context.Context, dir, phase string, kc *cluster, o IngestOptions, withAPI bool) (*pipeline, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Kafka.Partitions = o.Partitions
	if err := kc.phase(ctx, &cfg, phase); err != nil {
		return nil, err
	}
	cfg.Sink.BatchRows, cfg.Sink.BatchAge = o.BatchRows, o.BatchAge
	cfg.HTTP.Listen = config.HTTPOff
	if withAPI {
		cfg.HTTP.Listen, cfg.API.RateLimit = "127.0.0.1:0", config.RateOff
	}
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	st, err := stack.Start(ctx, "bench", cfg, stack.Parts{Embedded: kc.kafka == nil, Sink: true, Unthrottled: true, API: withAPI}, o.Logger)
	if err != nil {
		return nil, err
	}
	prod, err := st.Producer("k2-bench")
	if err != nil {
		st.Close()
		return nil, err
	}
	return &pipeline{st: st, prod: prod}, nil
}

func (p *pipeline) close() { p.st.Close() }

// sinkUntil runs the sink until it has written n trades and returns how
// long that took from its start. A watcher, if given, looks at the lake as
// it goes.
func (p *pipeline) sinkUntil(ctx context.Context, o IngestOptions, n int, w *watcher) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.st.Run(ctx) }()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	reported := start
	for {
		select {
		case err := <-done:
			cancel()
			return 0, fmt.Errorf("sink stopped early: %w", err)
		case <-tick.C:
		}
		if w != nil {
			if err := w.check(ctx); err != nil {
				cancel()
				<-done
				return 0, err
			}
		}
		st := p.st.Sink().Stats()
		if st.Written >= int64(n) {
			elapsed := time.Since(start)
			cancel()
			return elapsed, <-done
		}
		if time.Since(reported) >= 5*time.Second {
			reported = time.Now()
			fmt.Fprintf(o.Progress, "  sink: %d of %d trades committed (consumed %d, dead letters %d, duplicates %d, lag %d)\n", st.Written, n, st.Consumed, st.DeadLetters, st.Duplicates, st.Lag)
		}
	}
}

// produce sends n synthetic trades; at rate > 0 trades per second, paced,
// each stamped with the time it was produced.
func produce(ctx context.Context, p *bus.Producer, o IngestOptions, n, rate int) error {
	g := synth.New(synth.Config{Seed: o.Seed, Symbols: synth.DefaultSymbols[:min(o.Symbols, len(synth.DefaultSymbols))], Rate: 1000})
	const tick = 10 * time.Millisecond
	per := n
	if rate > 0 {
		per = max(1, rate/int(time.Second/tick))
	}
	buf := make([]md.Trade, 0, 10_000)
	next := time.Now()
	for sent := 0; sent < n; {
		k := min(per, n-sent, 10_000)
		buf = g.Trades(buf[:0], k)
		now := md.Now()
		for i := range buf {
			if rate > 0 {
				buf[i].Timestamp, buf[i].IngestionTimestamp = now, now
			}
			if err := bus.Produce(ctx, p, record.Trade, &buf[i]); err != nil {
				return err
			}
		}
		sent += k
		if rate > 0 {
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}
	return p.Flush(ctx)
}

// watchEvery is how often the freshness watcher looks for a new snapshot.
const watchEvery = 10 * time.Millisecond

// watcher notes, for every trade, how long after it was produced it
// became visible: the moment a snapshot holding it was seen, minus its
// timestamp (its produce time).
type watcher struct {
	lake  *lake.Lake
	snap  int64
	seen  map[string]bool
	fresh []time.Duration
}

func (w *watcher) check(ctx context.Context) error {
	tbl, err := w.lake.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return err
	}
	at := time.Now()
	s := tbl.CurrentSnapshot()
	if s == nil || s.SnapshotID == w.snap {
		return nil
	}
	w.snap = s.SnapshotID
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		path := t.File.FilePath()
		if w.seen[path] {
			continue
		}
		w.seen[path] = true
		ts, err := readTimestamps(ctx, lake.LocalPath(path))
		if err != nil {
			return err
		}
		for _, v := range ts {
			w.fresh = append(w.fresh, at.Sub(time.UnixMicro(v)))
		}
	}
	return nil
}

// readTimestamps reads a data file's timestamp column.
func readTimestamps(ctx context.Context, path string) ([]int64, error) {
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, err
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	idx := rdr.MetaData().Schema.ColumnIndexByName("timestamp")
	if idx < 0 {
		return nil, fmt.Errorf("%s has no timestamp column", path)
	}
	col, err := fr.GetColumn(ctx, idx)
	if err != nil {
		return nil, err
	}
	groups := make([]int, rdr.NumRowGroups())
	for i := range groups {
		groups[i] = i
	}
	chunked, err := fr.ReadColumn(groups, col)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer chunked.Release()
	var out []int64
	for _, c := range chunked.Chunks() {
		ts, ok := c.(*array.Timestamp)
		if !ok {
			return nil, fmt.Errorf("%s: timestamp is %s", path, c.DataType())
		}
		for i := range ts.Len() {
			out = append(out, int64(ts.Value(i)))
		}
	}
	return out, nil
}

// profileSummary is what a CPU profile says: the time by part, the
// functions with the most time of their own, and how much CPU time it
// sampled over how long.
type profileSummary struct {
	shares []ProfileShare
	top    []ProfileShare
	cpu    time.Duration
	wall   time.Duration
}

// summarizeProfile turns a CPU profile into shares of time by part (parts)
// and its top functions by time of their own. A sample belongs to the
// innermost frame on its stack that names a part, so copying and
// allocation count for the code that asked for them; background garbage
// collection is its own part.
func summarizeProfile(data []byte, parts []profilePart, top int) (profileSummary, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return profileSummary{}, fmt.Errorf("cpu profile: %w", err)
	}
	idx := len(p.SampleType) - 1 // cpu nanoseconds
	byPart, byFunc := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		byPart[partOf(s, parts)] += v
		byFunc[leafName(s)] += v
	}
	sum := profileSummary{cpu: time.Duration(total), wall: time.Duration(p.DurationNanos)}
	if total == 0 {
		return sum, nil
	}
	sum.shares = sharesOf(byPart, total)
	if sum.top = sharesOf(byFunc, total); len(sum.top) > top {
		sum.top = sum.top[:top]
	}
	return sum, nil
}

// leafName is the function a sample was taken in, or as pprof names code
// without symbols (C and C++ built into the binary, shared libraries):
// the file it is in, in brackets.
func leafName(s *profile.Sample) string {
	if len(s.Location) == 0 {
		return "(unknown)"
	}
	loc := s.Location[0]
	if len(loc.Line) > 0 && loc.Line[0].Function != nil && loc.Line[0].Function.Name != "" {
		return loc.Line[0].Function.Name
	}
	if loc.Mapping != nil && loc.Mapping.File != "" {
		return "[" + filepath.Base(loc.Mapping.File) + "]"
	}
	return "(unknown)"
}

// sharesOf turns times by name into percentages of total, largest first.
func sharesOf(by map[string]int64, total int64) []ProfileShare {
	out := make([]ProfileShare, 0, len(by))
	for k, v := range by {
		out = append(out, ProfileShare{What: k, Percent: 100 * float64(v) / float64(total)})
	}
	slices.SortFunc(out, func(a, b ProfileShare) int {
		switch {
		case a.Percent > b.Percent:
			return -1
		case a.Percent < b.Percent:
			return 1
		}
		return strings.Compare(a.What, b.What)
	})
	return out
}

// profilePart names the part of a program a function belongs to by a
// fragment of its name.
type profilePart struct{ match, part string }

// ingestParts maps function-name fragments to the part of the pipeline
// they belong to; on a stack the innermost match wins. Library code called
// from several parts (compression, hashing) is named for what it does.
var ingestParts = []profilePart{
	{"klauspost/compress/zstd", "zstd (Parquet pages)"},
	{"klauspost/compress/s2", "snappy (Kafka batches, the sink's Parquet pages)"},
	{"pierrec/lz4", "lz4 (Kafka batches)"},
	{"crypto/sha1", "message ids (UUIDv5, SHA-1)"},
	{"hash/crc32", "CRC (Kafka batches)"},
	{"franz-go/pkg/kfake", "embedded broker (kfake)"},
	{"franz-go/pkg/kgo", "Kafka client (kgo)"},
	{"franz-go/pkg/kmsg", "Kafka client (kgo)"},
	{"arrow-go/v18/parquet", "Parquet encoding"},
	{"arrow-go/v18/arrow", "Arrow"},
	{"iceberg-go", "Iceberg (files, manifests, commit)"},
	{"modernc.org/sqlite", "catalog (SQLite)"},
	{"k2/internal/codec", "Avro encode/decode"},
	{"hamba/avro", "Avro encode/decode"},
	{"k2/internal/feed/synth", "synthetic feed"},
	{"k2/internal/lake", "lake writer (partition, sort, dedup, Arrow build)"},
	{"k2/internal/marketdata", "validation, decimals, ids"},
	{"k2/internal/sink", "sink (batching, sequence tracking)"},
	{"k2/internal/bus", "producer"},
	{"syscall.", "system calls (network, disk)"},
	{"internal/runtime/syscall", "system calls (network, disk)"},
}

func partOf(s *profile.Sample, parts []profilePart) string {
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if fn := line.Function.Name; strings.HasPrefix(fn, "runtime.gcBgMarkWorker") || strings.HasPrefix(fn, "runtime.bgsweep") || strings.HasPrefix(fn, "runtime.bgscavenge") {
				return "garbage collection (background)"
			}
		}
	}
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			for _, p := range parts {
				if strings.Contains(line.Function.Name, p.match) {
					return p.part
				}
			}
		}
	}
	return "Go runtime (scheduler, other)"
}

// gogc is the GC target in effect.
func gogc() int {
	v := debug.SetGCPercent(-1)
	debug.SetGCPercent(v)
	return v
}

// memLimit is the Go memory limit in effect.
func memLimit() string {
	if v := debug.SetMemoryLimit(-1); v != math.MaxInt64 {
		return fmt.Sprintf("%d MiB", v>>20)
	}
	return "none"
}

// resetPeak restarts the kernel's peak-RSS count for this process, so the
// peak reported is of the runs that follow (Linux; elsewhere a no-op).
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is the process's peak resident memory in bytes (VmHWM), or the
// Go runtime's memory obtained from the OS where /proc is absent.
func peakRSS() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Sys
}
