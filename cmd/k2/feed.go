package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/live"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// feedFlags configure one live feed, for k2 feed and k2 up --feed.
type feedFlags struct {
	symbols      []string
	urls         []string
	restURL      string
	apiKey       string
	rotateAfter  time.Duration
	staleAfter   time.Duration
	pingInterval time.Duration
	rate         float64
	seed         uint64
	limit        int64
}

// register adds the flags the feeds use (k2 up registers those of every
// feed, named with the prefix "feed-").
func (f *feedFlags) register(fs *pflag.FlagSet, prefix string, feeds ...*feed.Exchange) {
	live, backfill, synthetic := false, false, false
	for _, e := range feeds {
		live = live || e.Live != nil
		backfill = backfill || (e.Live != nil && e.Live.Backfill != nil)
		synthetic = synthetic || e.Synthetic
	}
	fs.StringSliceVar(&f.symbols, prefix+"symbols", nil, "instruments in the exchange's spelling: BTCUSDT,ETHUSDT (binance), BTC/USD,ETH/USD (kraken); synth defaults to 20 USD pairs")
	if live {
		fs.StringArrayVar(&f.urls, prefix+"url", nil, "WebSocket endpoint, repeatable: later ones are failovers (default: the exchange's own; a k2 replay-server's ws://host:port offline)")
		fs.DurationVar(&f.rotateAfter, prefix+"rotate-after", 0, "replace a connection this old, overlapping the new one (default: 30 min before the exchange's limit, 23h30m on binance)")
		fs.DurationVar(&f.staleAfter, prefix+"stale-after", 30*time.Second, "reconnect when a connection delivers nothing for this long")
		fs.DurationVar(&f.pingInterval, prefix+"ping-interval", 3*time.Minute, "ping the exchange this often; an unanswered ping drops the connection")
	}
	if backfill {
		fs.StringVar(&f.restURL, prefix+"rest-url", "", `REST API to backfill missed trades from (default: the exchange's own, or the --url host when --url is given; "none" only counts gaps)`)
		fs.StringVar(&f.apiKey, prefix+"api-key", "", "API key sent with backfill requests (or K2_"+strings.ToUpper(strings.ReplaceAll(prefix, "-", "_"))+"API_KEY)")
	}
	if synthetic {
		fs.Float64Var(&f.rate, prefix+"rate", 100, "synth: trades a second across the market (up to 2,000,000)")
		fs.Uint64Var(&f.seed, prefix+"seed", 1, "synth: seed of prices and sizes")
		fs.Int64Var(&f.limit, prefix+"limit", 0, "synth: stop after this many trades (0: run until stopped)")
	}
}

// feedRunner is a feed ready to run, with its counters for the summary.
type feedRunner struct {
	run     func(context.Context) error
	summary func() string
}

// newFeed builds the feed of the named exchange; its producer connects
// on first use, so bad settings fail before any I/O.
func (a *app) newFeed(name string, f *feedFlags) (*feedRunner, error) {
	ex, err := exchanges.Feed(name)
	if err != nil {
		return nil, err
	}
	prod, reg, err := a.producer("k2-feed-" + ex.Name)
	if err != nil {
		return nil, err
	}
	closeProd := func() { prod.Close(context.Background()) }
	var r *feedRunner
	if ex.Synthetic {
		var s *live.Synth
		s, err = live.NewSynth(prod, live.SynthConfig{Seed: f.seed, Symbols: upper(f.symbols), Rate: f.rate, Limit: f.limit, Logger: a.log})
		if err == nil {
			r = &feedRunner{run: s.Run, summary: func() string {
				t, q := s.Counts()
				return fmt.Sprintf("synth: %d trades, %d quotes produced", t, q)
			}}
		}
	} else {
		r, err = a.newExchangeFeed(ex, f, prod, reg)
	}
	if err != nil {
		closeProd()
		return nil, err
	}
	run := r.run
	r.run = func(ctx context.Context) error {
		defer closeProd()
		return run(ctx)
	}
	return r, nil
}

func (a *app) newExchangeFeed(ex *feed.Exchange, f *feedFlags, prod *bus.Producer, reg *registry.Client) (*feedRunner, error) {
	if len(f.symbols) == 0 {
		return nil, fmt.Errorf("--symbols is required, e.g. %s", ex.Example)
	}
	proto, err := ex.Live.Protocol(f.symbols, a.cfg.Assets())
	if err != nil {
		return nil, err
	}
	endpoints := f.urls
	if len(endpoints) == 0 {
		endpoints = ex.Live.Endpoints
	}
	var backfill feed.Backfill
	if ex.Live.Backfill != nil {
		rest := f.restURL
		if rest == "" {
			rest = ex.Live.REST
			if len(f.urls) > 0 {
				if rest, err = httpBase(f.urls[0]); err != nil {
					return nil, err
				}
			}
		}
		if rest != "none" {
			backfill = ex.Live.Backfill(rest, f.apiKey, a.cfg.Assets())
		}
	}
	for _, e := range endpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("--url %q: want ws://host:port or wss://host", e)
		}
	}
	fd, err := live.NewFeed(proto, live.SessionConfig{
		Endpoints: endpoints, RotateAfter: f.rotateAfter, StaleAfter: f.staleAfter, PingInterval: f.pingInterval, Logger: a.log,
	}, live.FeedConfig{Producer: prod, Backfill: backfill, Logger: a.log,
		Resume: a.lastTradeIDs(prod.TopicFor(md.Crypto, record.Trade.DataType, proto.Exchange()), reg)})
	if err != nil {
		return nil, err
	}
	return &feedRunner{run: fd.Run, summary: func() string {
		s, ss := fd.Stats(), fd.Session().Stats()
		return fmt.Sprintf("%s: %d frames, %d trades (%d backfilled), %d quotes, %d repeats dropped, %d gaps (%d trade ids), %d dead letters; %d connections, %d rotations, reconnects %v",
			ex.Name, s.Frames, s.Trades, s.Backfilled, s.Quotes, s.Duplicates, s.Gaps, s.Missing, s.DeadLetters, ss.Connects, ss.Rotations, ss.Reconnects)
	}}, nil
}

// lastTradeIDs reads the highest trade id per symbol from the tail of the
// feed's trades topic: a restarted feed backfills from there.
func (a *app) lastTradeIDs(topic string, reg *registry.Client) func(context.Context) (map[string]int64, error) {
	return func(ctx context.Context) (map[string]int64, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// Every symbol that traded in the last 100,000 records of its
		// partition: minutes of a busy market, and a bounded read.
		recs, err := bus.LatestByKey(ctx, a.cfg.BrokerList(), topic, 100_000)
		if err != nil {
			return nil, err
		}
		dec := codec.NewDecoder(reg.SchemaByID)
		out := map[string]int64{}
		for sym, r := range recs {
			t, _, err := dec.Trade(ctx, r.Value)
			if err != nil {
				a.log.Warn("cannot read the last trade; not resuming this symbol", "topic", topic, "symbol", sym, "error", err)
				continue
			}
			if t.SourceSequence.Valid {
				out[t.Symbol] = t.SourceSequence.Int64
			}
		}
		return out, nil
	}
}

// httpBase is the http(s) origin of a ws(s) URL: a replay server answers
// REST on the port it streams on.
func httpBase(ws string) (string, error) {
	u, err := url.Parse(ws)
	if err != nil {
		return "", fmt.Errorf("--url %q: %w", ws, err)
	}
	scheme := map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	if scheme == "" || u.Host == "" {
		return "", fmt.Errorf("--url %q: want ws://host:port or wss://host", ws)
	}
	return scheme + "://" + u.Host, nil
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(strings.TrimSpace(s))
	}
	return out
}

// ensureTopics creates K2's topics that are missing, so a feed pointed at
// a fresh cluster does not produce into auto-created defaults. Where the
// cluster forbids it, the producer reports what is missing.
func (a *app) ensureTopics(ctx context.Context) {
	adm, cl, err := a.admin()
	if err != nil {
		return
	}
	defer cl.Close()
	if _, err := bus.CreateTopics(ctx, adm, a.topology()); err != nil {
		lines := strings.Split(err.Error(), "\n") // one per topic
		a.log.Warn("could not create K2's topics; producing to what exists", "error", lines[0], "topics_failed", len(lines))
	}
}

// runFeedUntilDone runs r, logging progress every interval, and prints
// its summary at the end.
func (a *app) runFeedUntilDone(ctx context.Context, r *feedRunner, out io.Writer, every time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- r.run(ctx) }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			fmt.Fprintln(out, r.summary())
			return err
		case <-t.C:
			a.log.Info("feed progress", "summary", r.summary())
		}
	}
}

// serveMetrics exposes the process's metrics on addr until ctx ends.
func (a *app) serveMetrics(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", ops.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	a.log.Info("metrics listening", "addr", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

func newFeedCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Capture a market as it trades into Kafka: binance, kraken, or a synthetic one",
		Long: `A feed keeps a WebSocket to the exchange alive (pings, reconnects with
jittered back-off, failover between --url endpoints, a circuit breaker,
rotation before Binance's 24-hour limit), drops what a reconnect delivers
twice, backfills Binance trade-id gaps from REST, and dead-letters frames it
cannot read. It runs until interrupted, or for --duration.`,
	}
	for _, ex := range exchanges.Feeds() {
		f := &feedFlags{}
		var duration time.Duration
		var metrics string
		sub := &cobra.Command{
			Use: ex.Name, Example: "  " + ex.Example, Args: cobra.NoArgs, Short: ex.Short,
			RunE: func(cmd *cobra.Command, _ []string) error {
				setGC(feedGCPercent)
				ctx := cmd.Context()
				if duration > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, duration)
					defer cancel()
				}
				if err := a.serveMetrics(ctx, metrics); err != nil {
					return err
				}
				r, err := a.newFeed(ex.Name, f)
				if err != nil {
					return err
				}
				a.ensureTopics(ctx) // (k2 up creates them as it starts)
				err = a.runFeedUntilDone(ctx, r, cmd.OutOrStdout(), 10*time.Second)
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return nil
				}
				return err
			},
		}
		f.register(sub.Flags(), "", ex)
		sub.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: run until interrupted)")
		sub.Flags().StringVar(&metrics, "metrics-listen", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9101")
		cmd.AddCommand(sub)
	}
	return cmd
}
