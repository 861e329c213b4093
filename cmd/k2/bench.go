package main

import (
	"context"
	"encoding/json"
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
	f.Uint64Var(&o.Seed, "seed", 1, "synthetic market seed")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	cmd.AddCommand(lakeCmd, newBenchIngestCmd(a), newBenchFeedCmd(a))
	return cmd
}

func newBenchIngestCmd(a *app) *cobra.Command {
	var (
		o       bench.IngestOptions
		trades  string
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Stream synthetic trades through the embedded broker and sink into the lake: throughput, freshness, CPU profile, peak memory",
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseCount(trades)
			if err != nil {
				return fmt.Errorf("--trades: %w", err)
			}
			o.Trades = n
			o.Progress, o.Logger = cmd.ErrOrStderr(), a.log
			return a.runBench(cmd, &o.Dir, jsonOut, func(ctx context.Context) (bench.Report, error) { return bench.RunIngest(ctx, o) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&trades, "trades", "2M", "trades through the pipeline in the throughput runs (k and M suffixes)")
	f.IntVar(&o.Partitions, "partitions", config.Default().Kafka.Partitions, "partitions per topic")
	f.IntVar(&o.BatchRows, "sink-batch-rows", config.Default().Sink.BatchRows, "the sink's batch rows")
	f.DurationVar(&o.BatchAge, "sink-batch-age", bench.FreshnessBatchAge, "the sink's batch age (bounds freshness; k2 up's default is longer)")
	f.IntVar(&o.Symbols, "symbols", 20, "instruments in the synthetic market")
	f.IntVar(&o.FreshRate, "fresh-rate", 100_000, "trades per second in the freshness run")
	f.DurationVar(&o.FreshFor, "fresh-for", 10*time.Second, "length of the freshness run")
	f.StringVar(&o.Profile, "cpuprofile", "", "also write the CPU profiles of the drain and end-to-end runs to FILE.drain and FILE.pipeline (go tool pprof)")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default <data-dir>)")
	f.BoolVar(&o.Keep, "keep", false, "keep the scratch broker and tables")
	f.Uint64Var(&o.Seed, "seed", 1, "synthetic market seed")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
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
			setGC(feedGCPercent) // measured as k2 feed runs
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
