package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/stack"
)

func newFeedCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Capture a market as it trades into Kafka: " + feedNames(),
		Long: `A feed keeps a WebSocket to the exchange alive (pings, reconnects with
jittered back-off, failover between --url endpoints, a circuit breaker,
rotation before Binance's 24-hour limit), drops what a reconnect delivers
twice, backfills Binance trade-id gaps from REST, and dead-letters frames it
cannot read. It runs until interrupted, or for --duration, and serves
/health and /metrics on --http-listen.`,
	}
	for _, ex := range exchanges.Feeds() {
		var duration time.Duration
		sub := &cobra.Command{
			Use: ex.Name, Example: "  " + ex.Example, Args: cobra.NoArgs, Short: ex.Short,
			RunE: func(cmd *cobra.Command, _ []string) error {
				setGC(serviceGCPercent)
				ctx, cancel := withDuration(cmd.Context(), duration)
				defer cancel()
				err := a.serve(ctx, cmd, "feed", stack.Parts{Feed: ex.Name}, func(st *stack.Stack) string {
					return where(st, "feed "+ex.Name)
				}, func(st *stack.Stack) { fmt.Fprintln(cmd.OutOrStdout(), st.FeedSummary()) })
				if errors.Is(err, context.DeadlineExceeded) {
					return nil
				}
				return err
			},
		}
		fs := sub.Flags()
		fs.DurationVar(&duration, "duration", 0, "stop after this long (0: run until interrupted)")
		a.cfg.RegisterFeed(fs, config.FeedFlags{Live: ex.Live != nil, Backfill: ex.Live != nil && ex.Live.Backfill != nil, Synthetic: ex.Synthetic})
		a.cfg.RegisterKafka(fs)
		a.cfg.RegisterHTTP(fs, "feed")
		a.cfg.RegisterAssets(fs)
		a.cfg.RegisterMemory(fs)
		cmd.AddCommand(sub)
	}
	return cmd
}

func feedNames() string {
	var s string
	for i, e := range exchanges.Feeds() {
		if i > 0 {
			s += ", "
		}
		s += e.Name
	}
	return s
}
