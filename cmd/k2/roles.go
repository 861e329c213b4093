package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/stack"
)

func newUpCmd(a *app) *cobra.Command {
	feedName := "synth"
	var names []string
	var which config.FeedFlags
	for _, e := range exchanges.Feeds() {
		names = append(names, e.Name)
		which.Live = which.Live || e.Live != nil
		which.Backfill = which.Backfill || (e.Live != nil && e.Live.Backfill != nil)
		which.Synthetic = which.Synthetic || e.Synthetic
	}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run K2 on this machine: Kafka broker, schema registry, a feed and the sink in one process",
		Long: `k2 up runs all of K2 in one process: a Kafka-protocol broker and a schema
registry (their state under --data-dir), the sink that stores every record in
the lake exactly once, a live feed (a synthetic market unless --feed says
otherwise) and the tables' maintenance (compaction, manifests, snapshot
expiry, orphaned files, every --maintain-every). /health and /metrics are
served on --http-listen. On a terminal
it shows a status line every few seconds; the per-commit transaction log goes
to --log-file or to the log when it is JSON or not a terminal.`,
		Example: `  k2 up                                    # a synthetic market, live
  k2 up --feed binance --symbols BTCUSDT,ETHUSDT
  k2 up --feed none                        # only what k2 load and other feeds produce`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setGC(serviceGCPercent)
			parts := stack.Parts{Embedded: true, Sink: true, Maintain: true, API: true, FeedMayFail: true}
			if feedName != "none" {
				ex, err := exchanges.Feed(feedName)
				if err != nil {
					return fmt.Errorf("--feed: %w or none", err)
				}
				if ex.Live != nil && len(a.cfg.Feed.Symbols) == 0 {
					return fmt.Errorf("--feed %s needs --symbols, e.g. %s", feedName, strings.TrimPrefix(ex.Example, "k2 feed "+ex.Name+" "))
				}
				parts.Feed = ex.Name
			}
			return a.serve(cmd.Context(), cmd, "up", parts, func(st *stack.Stack) string {
				return where(st, "up") + " · data " + a.cfg.DataDir + " · feed " + feedName
			}, func(st *stack.Stack) {
				if s := st.FeedSummary(); s != "" {
					fmt.Fprintln(cmd.OutOrStdout(), s)
				}
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&feedName, "feed", feedName, "market to capture while up: "+strings.Join(names, ", ")+" or none")
	a.cfg.RegisterEmbedded(fs)
	a.cfg.RegisterHTTP(fs, "up")
	a.cfg.RegisterAPI(fs)
	a.cfg.RegisterLake(fs)
	a.cfg.RegisterQuery(fs) // the API's queries
	a.cfg.RegisterSink(fs)
	a.cfg.RegisterMaintain(fs)
	a.cfg.RegisterFeed(fs, which)
	a.cfg.RegisterAssets(fs)
	a.cfg.RegisterMemory(fs)
	return cmd
}

func newBrokerCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Serve the embedded Kafka-protocol broker and schema registry, state under --data-dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), cmd, "broker", stack.Parts{Embedded: true}, func(st *stack.Stack) string {
				return where(st, "broker") + " · data " + a.cfg.DataDir
			}, nil)
		},
	}
	a.cfg.RegisterEmbedded(cmd.Flags())
	a.cfg.RegisterSinkGroup(cmd.Flags())
	a.cfg.RegisterHTTP(cmd.Flags(), "broker")
	return cmd
}

func newSinkCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Consume K2's topics into the lake, exactly once (offsets are recorded in each Iceberg commit)",
		Long: `A sink joins a consumer group (--sink-group) and stores every record of K2's
topics in the lake exactly once: each Iceberg commit records the Kafka offsets
it consumed, so a crash at any moment neither loses nor repeats a record.
Several sinks in one group share the partitions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), cmd, "sink", stack.Parts{Sink: true}, func(st *stack.Stack) string {
				return where(st, "sink") + " · group " + a.cfg.Sink.Group
			}, nil)
		},
	}
	fs := cmd.Flags()
	a.cfg.RegisterKafka(fs)
	a.cfg.RegisterHTTP(fs, "sink")
	a.cfg.RegisterLake(fs)
	a.cfg.RegisterSink(fs)
	a.cfg.RegisterMemory(fs)
	return cmd
}

func newMaintainCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintain",
		Short: "Maintain the tables on a schedule, beside running sinks: compaction, manifests, snapshot expiry, orphaned files",
		Long: `k2 maintain is the maintenance k2 up runs, as a role of its own for a cluster:
every --maintain-every it compacts the small files sinks leave (a partition
still being written by merging files of one size; a quiet one entirely),
rewrites manifests, expires snapshots on the retention policy and, every
--remove-orphans-every, deletes files no snapshot references. Any number may
run: a table is maintained by one at a time (a lease in the catalog), and
every commit is checked against the table it lands on, so sinks never lose
a commit and queries never change their answer. k2 lake status shows the
result.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.cfg.Maintain.Every <= 0 {
				return fmt.Errorf("--maintain-every %s: k2 maintain needs a period", a.cfg.Maintain.Every)
			}
			return a.serve(cmd.Context(), cmd, "maintain", stack.Parts{Maintain: true}, func(st *stack.Stack) string {
				return where(st, "maintain") + " · every " + a.cfg.Maintain.Every.String()
			}, nil)
		},
	}
	fs := cmd.Flags()
	a.cfg.RegisterHTTP(fs, "maintain")
	a.cfg.RegisterLake(fs)
	a.cfg.RegisterMaintain(fs)
	a.cfg.RegisterMemory(fs)
	return cmd
}

func newAPICmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Serve the REST API over the lake, as a role of its own for a cluster",
		Long: `k2 api answers the REST API k2 up serves (docs/api.md) over the lake of
--catalog and --warehouse, with /health, /ready and /metrics beside it. Any
number may run against one lake: they only read it. Without --api-keys it
only listens on a loopback address.`,
		Example: "  K2_API_KEYS=dash:$DASH_KEY,ops:$OPS_KEY k2 api --catalog postgres://k2@db/k2 --warehouse s3://market-data/k2 --http-listen 0.0.0.0:8005",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), cmd, "api", stack.Parts{API: true}, func(st *stack.Stack) string {
				return where(st, "api")
			}, nil)
		},
	}
	fs := cmd.Flags()
	a.cfg.RegisterHTTP(fs, "api")
	a.cfg.RegisterAPI(fs)
	a.cfg.RegisterLake(fs)
	a.cfg.RegisterQuery(fs)
	a.cfg.RegisterKafka(fs) // the stream the tail reads
	a.cfg.RegisterMemory(fs)
	return cmd
}
