package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/bench"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
)

func newBenchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure K2 on this machine and print a report"}
	a.cfg.RegisterMemory(cmd.PersistentFlags()) // measured under the heap limit k2 up runs with
	var (
		rows      string
		o         bench.LakeOptions
		partition string
		jsonOut   bool
	)
	lakeCmd := &cobra.Command{
		Use:   "lake",
		Short: "Append synthetic trades (1M and 10M by default) and time the latest-100 and 1m-bar queries",
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range strings.Split(rows, ",") {
				n, err := parseCount(r)
				if err != nil {
					return fmt.Errorf("--rows: %w", err)
				}
				o.Rows = append(o.Rows, n)
			}
			p, err := lake.ParseSymbolPartition(partition)
			if err != nil {
				return err
			}
			o.Partition = p
			if o.Dir == "" {
				o.Dir = a.cfg.DataDir
			}
			if err := os.MkdirAll(o.Dir, 0o755); err != nil {
				return err
			}
			o.Progress = cmd.ErrOrStderr()
			rep, err := bench.RunLake(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printReport(cmd, rep, jsonOut)
		},
	}
	f := lakeCmd.Flags()
	f.StringVar(&rows, "rows", "1M,10M", "table sizes to build, comma separated (k and M suffixes)")
	f.IntVar(&o.BatchRows, "batch-rows", config.Default().Load.BatchRows, "rows per commit, as a load makes them")
	f.IntVar(&o.Symbols, "symbols", 20, "instruments in the synthetic market")
	f.Float64Var(&o.Rate, "rate", 20, "simulated trades per second across the market (sets how many days the data spans)")
	f.IntVar(&o.Queries, "queries", 200, "timed runs of each query")
	f.StringVar(&partition, "partition", "identity", "symbol partition: identity or bucket[N]")
	f.BoolVar(&o.Dedup, "dedup", false, "append through the loader's duplicate check")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep the benchmark tables")
	f.StringVar(&o.QuestDB, "questdb", "", "QuestDB's server jar (Maven Central org.questdb:questdb, run with the system java): measure the same trades and queries there as a reference")
	f.Uint64Var(&o.Seed, "seed", 1, "synthetic market seed")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	cmd.AddCommand(lakeCmd, newBenchIngestCmd(a), newBenchFeedCmd(a), newBenchSoakCmd(a), newBenchAPICmd(a))
	return cmd
}

func newBenchIngestCmd(a *app) *cobra.Command {
	var (
		o       = bench.IngestOptions{Trades: 2_000_000}
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Stream synthetic trades through a broker (embedded, or --brokers) and the sink into the lake: throughput, freshness, CPU profile, peak memory",
		Long: `k2 bench ingest produces synthetic trades as Avro into Kafka and has a sink
commit them into a scratch lake, in three runs: produce then drain, the whole
pipeline at once (CPU profiled), and freshness at a steady rate.

By default each run starts its own embedded broker and registry in this
process. With --brokers it measures that Kafka cluster instead (with its
--kafka-* security settings): the runs' topics are created under
--topic-prefix and a prefix of the run's own (k2-bench-<random>-), so runs
never meet, and are deleted with the sink groups afterwards unless --keep.
The schema registry is --registry where given (the subjects of the runs'
topics stay in it), else one served by this process. The report names the
broker measured.`,
		Example: `  k2 bench ingest
  k2 bench ingest --brokers kafka-1:9092,kafka-2:9092 --trades 2M`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			def := config.Default().Kafka
			// The defaults are k2 up's own broker and registry: the
			// benchmark runs its own instead.
			if f.Changed("brokers") || a.cfg.Kafka.Brokers != def.Brokers {
				k := a.cfg.Kafka
				if !f.Changed("registry") && k.Registry == def.Registry {
					k.Registry = ""
				}
				o.Kafka = &k
			} else {
				for _, name := range []string{"registry", "topic-prefix", "exchange-partitions"} {
					if f.Changed(name) {
						return fmt.Errorf("--%s applies to a cluster named by --brokers; the embedded broker has its own", name)
					}
				}
			}
			o.Partitions = a.cfg.Kafka.Partitions
			o.Progress, o.Logger = cmd.ErrOrStderr(), a.log
			return a.runBench(cmd, &o.Dir, jsonOut, func(ctx context.Context) (bench.Report, error) { return bench.RunIngest(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.Var(countFlag{&o.Trades}, "trades", "trades through the pipeline in the throughput runs (k and M suffixes)")
	f.IntVar(&o.BatchRows, "sink-batch-rows", config.Default().Sink.BatchRows, "the sink's batch rows")
	f.DurationVar(&o.BatchAge, "sink-batch-age", bench.FreshnessBatchAge, "the sink's batch age (bounds freshness; k2 up's default is longer)")
	f.IntVar(&o.Symbols, "symbols", 20, "instruments in the synthetic market")
	f.IntVar(&o.FreshRate, "fresh-rate", 100_000, "trades per second in the freshness run")
	f.DurationVar(&o.FreshFor, "fresh-for", 10*time.Second, "length of the freshness run")
	f.StringVar(&o.Profile, "cpuprofile", "", "also write the CPU profiles of the drain and end-to-end runs to FILE.drain and FILE.pipeline (go tool pprof)")
	f.StringVar(&o.Trace, "trace", "", "also write the execution traces of the drain and end-to-end runs to FILE.drain and FILE.pipeline (go tool trace): which goroutines ran when")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep the scratch broker and tables (and a cluster's topics)")
	f.Uint64Var(&o.Seed, "seed", 1, "synthetic market seed")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	a.cfg.RegisterKafka(f) // --brokers: measure that cluster; --partitions of the runs' topics
	return cmd
}

func newBenchFeedCmd(a *app) *cobra.Command {
	var (
		o       bench.FeedOptions
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "feed --capture FILE [--capture FILE…]",
		Short: "Replay a Binance capture at maximum speed through the live feed: messages per second, and memory over a long replay",
		Example: `  k2 bench feed --capture ../shared/data/binance/ws/spot_btcusdt_20240808.gz \
    --capture ../shared/data/binance/ws/spot_btcusdt_20240809.gz --loops 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Exe = exe
			setGC(serviceGCPercent) // measured as k2 feed runs
			o.Progress, o.Logger = cmd.ErrOrStderr(), a.log
			return a.runBench(cmd, &o.Dir, jsonOut, func(ctx context.Context) (bench.Report, error) { return bench.RunFeed(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Captures, "capture", nil, "Binance capture file, repeatable (as k2 replay-server reads them)")
	f.IntVar(&o.Loops, "loops", 20, "times the capture is played, ids continuing")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep the scratch broker")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

func newBenchSoakCmd(a *app) *cobra.Command {
	var (
		o         bench.SoakOptions
		rssTarget string
		jsonOut   bool
		strict    bool
	)
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Run k2 up with the synthetic market for a long while and follow files, metadata, commit and query latency, CPU and memory over time",
		Long: `k2 bench soak runs k2 up with the synthetic market in a child process on a
scratch directory and, every --every, prints one line of figures: per table
(trades/quotes) rows, data files, snapshots, metadata size and bytes per row
from the lake; commit duration p50/p99 from k2 up's /metrics; the latency of
the latest 100 trades and of a symbol-day's 1m bars, queried from this
process; k2 up's CPU and resident memory. At the end it prints the samples,
judges the targets (every curve flat: the mean of the last 10 minutes within
25% of the 10 minutes before, or the last third against the middle third of a
run shorter than 20 minutes; memory under --rss-target) and draws the curves
into a PNG. The child runs on K2's defaults: K2_* variables are not passed on.`,
		Example: `  k2 bench soak --for 1h --rate 100
  k2 bench soak --for 30m --rate 20000 --every 30s --plot soak-20k.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rssTarget != "" {
				n, err := config.ParseBytes(rssTarget)
				if err != nil || n == 0 {
					return fmt.Errorf("--rss-target: %q is not a size such as 500MB or 1GiB", rssTarget)
				}
				o.RSSTarget = n
			}
			if cmd.Flags().Changed("memory-limit") || a.cfg.Memory.Limit != config.Default().Memory.Limit {
				o.MemoryLimit = a.cfg.Memory.Limit
			}
			o.Progress, o.Logger = cmd.ErrOrStderr(), a.log
			var rep bench.Report
			err := a.runBench(cmd, &o.Dir, jsonOut, func(ctx context.Context) (bench.Report, error) {
				var err error
				rep, err = bench.RunSoak(ctx, o)
				return rep, err
			})
			switch {
			case err != nil:
				return err
			case rep.Note != "":
				return errors.New(rep.Note)
			case strict && rep.Failed() > 0:
				return &exitError{code: 1, err: fmt.Errorf("%d of %d soak targets failed (--strict)", rep.Failed(), len(rep.Checks))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.For, "for", 30*time.Minute, "how long k2 up runs")
	f.DurationVar(&o.Every, "every", time.Minute, "take a sample this often")
	f.Float64Var(&o.Rate, "rate", config.Default().Feed.Rate, "synthetic trades per second across the market")
	f.IntVar(&o.Queries, "queries", 20, "runs of each query per sample")
	f.StringVar(&rssTarget, "rss-target", "", "most resident memory k2 up may use (default 500MB up to 100 trades/s, else 1GiB)")
	f.StringVar(&o.Plot, "plot", "", "PNG file of the curves (default <dir>/soak.png)")
	f.BoolVar(&strict, "strict", false, "exit with status 1 when a target fails")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep k2 up's scratch data directory and log")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

func newBenchAPICmd(a *app) *cobra.Command {
	var (
		o       = bench.APIOptions{Trades: 10_000_000}
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Load the REST API over HTTP: k2 up over a lake of synthetic trades with a live feed, 64 connections; requests/s, latency, errors, CPU profile",
		Long: `k2 bench api builds a lake of --trades synthetic trades (k2 bench lake's
market, compacted as maintenance leaves a quiet lake), runs k2 up over it in a
child process with the synthetic market live at --feed-rate, and loads its
REST API on 127.0.0.1 with vegeta from this process: --connections requests
in flight, as fast as they are answered (or --rate). Two scenarios, one after
the other: the latest 100 trades of a random symbol (GET /v1/trades?symbol=S&
limit=100&order=desc) and a random symbol's 1m bars over a random hour of the
lake (GET /v1/bars/1m?symbol=S&start_time=…&end_time=…). Each first reads every
symbol (or symbol-day) once, as a server that has run a while has, then runs
--warmup, then is measured for --duration. It reports requests/s, p50/p90/p99/max latency, errors by
status, the mean answer size and the answers checked (one in --check-every is
decoded: success, count, symbol, order, window), judges the targets (latest
≥ 5,000 req/s at p99 ≤ 20 ms, bars ≥ 2,000 req/s at p99 ≤ 50 ms, no errors),
then profiles k2 up and itself for --profile-for under a further run of each
scenario and prints where the CPU time went. The lake stays in --dir with
--keep, and a later run with the same --trades and --symbols uses it again.
The child runs on K2's defaults: K2_* variables are not passed on.`,
		Example: `  k2 bench api --keep --dir /tmp/k2-bench-api     # 10M trades; later runs reuse the lake
  k2 bench api --trades 1M --duration 10s --cpuprofile /tmp/api.prof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress, o.Logger = cmd.ErrOrStderr(), a.log
			return a.runBench(cmd, &o.Dir, jsonOut, func(ctx context.Context) (bench.Report, error) { return bench.RunAPI(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.Var(countFlag{&o.Trades}, "trades", "trades in the lake (k and M suffixes)")
	f.IntVar(&o.Symbols, "symbols", 100, "instruments in the synthetic market")
	f.Float64Var(&o.FeedRate, "feed-rate", 1000, "live synthetic trades per second into k2 up while the load runs")
	f.IntVar(&o.Connections, "connections", 64, "requests in flight at most (HTTP connections)")
	f.IntVar(&o.Rate, "rate", 0, "requests per second (0: as fast as the connections are answered)")
	f.DurationVar(&o.Duration, "duration", 20*time.Second, "measured run of each scenario")
	f.DurationVar(&o.Warmup, "warmup", 5*time.Second, "run of each scenario before it is measured (0: none)")
	f.DurationVar(&o.ProfileFor, "profile-for", 10*time.Second, "CPU profile of k2 up and of the load generator under a further run of each scenario (0: none)")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "also keep the profiles as FILE.<scenario>.server and FILE.<scenario>.loadgen (go tool pprof -top FILE…)")
	f.IntVar(&o.CheckEvery, "check-every", 20, "decode and check one answer in this many")
	f.StringVar(&o.Dir, "dir", "", "where the lake is built (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep the lake, for the next run to use again")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

// runBench runs a benchmark in its scratch directory (default the data
// dir) and prints its report.
func (a *app) runBench(cmd *cobra.Command, dir *string, jsonOut bool, run func(context.Context) (bench.Report, error)) error {
	if *dir == "" {
		*dir = a.cfg.DataDir
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	rep, err := run(cmd.Context())
	if err != nil {
		return err
	}
	return printReport(cmd, rep, jsonOut)
}

// printReport writes a benchmark report as a table, or as JSON.
func printReport(cmd *cobra.Command, rep bench.Report, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(cmd.OutOrStdout())
	return nil
}

// countFlag is a flag holding a count, read as parseCount reads it.
type countFlag struct{ n *int }

func (c countFlag) String() string {
	switch {
	case c.n == nil:
		return "0"
	case *c.n%1_000_000 == 0 && *c.n > 0:
		return strconv.Itoa(*c.n/1_000_000) + "M"
	case *c.n%1_000 == 0 && *c.n > 0:
		return strconv.Itoa(*c.n/1_000) + "k"
	}
	return strconv.Itoa(*c.n)
}

func (c countFlag) Set(s string) error {
	n, err := parseCount(s)
	if err == nil {
		*c.n = n
	}
	return err
}

func (countFlag) Type() string { return "count" }

// parseCount reads 500000, 500k or 10M.
func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1_000_000, s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1_000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive count", s)
	}
	return n * mult, nil
}
