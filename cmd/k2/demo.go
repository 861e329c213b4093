package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/loader"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

func newDemoCmd(a *app) *cobra.Command {
	var trades int
	cmd := &cobra.Command{
		Use:   "demo [PATH]",
		Short: "Load sample data (a synthetic market, or PATH: an ASX directory, a Binance or Kraken capture, a Binance public-data file) and query it",
		Long: `Load sample data into the lake and show what K2 answers about it.

Without PATH, a deterministic synthetic market (20 crypto pairs, volatility
that clusters, spreads that widen with it) is generated. With PATH, the kind
is recognised: an ASX directory (reference-data/company_info.csv), a Binance
capture (.gz or '<ns> <frame>' lines), a Kraken v2 capture (.jsonl) or a
Binance public-data file (SYMBOL-trades-….csv). Running it twice adds nothing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			l, e, err := a.openQuery(ctx)
			if err != nil {
				return err
			}
			defer l.Close()
			defer e.Close()
			fmt.Fprintf(out, "K2 demo · catalog %s · warehouse %s\n\n", a.cfg.Lake.Catalog, l.Warehouse())
			if len(args) == 1 {
				err = a.demoLoad(ctx, l, args[0], out)
			} else {
				err = demoSynthetic(ctx, l, trades, out)
			}
			if err != nil {
				return err
			}
			return demoQueries(ctx, e, out)
		},
	}
	cmd.Flags().IntVar(&trades, "trades", 300_000, "synthetic trades to generate")
	a.cfg.RegisterLake(cmd.Flags())
	a.cfg.RegisterQuery(cmd.Flags())
	a.cfg.RegisterAssets(cmd.Flags())
	a.cfg.RegisterMemory(cmd.Flags())
	return cmd
}

func demoSynthetic(ctx context.Context, l *lake.Lake, n int, out io.Writer) error {
	// A fixed seed and start: the same market every time, so running the
	// demo again finds every trade already stored.
	start := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	gen := synth.New(synth.Config{Seed: 2026, Start: md.TimestampOf(start), Rate: 10, QuoteEvery: 3})
	var trades []md.Trade
	var quotes []md.Quote
	for len(trades) < n {
		gen.Next(&trades, &quotes)
	}
	fmt.Fprintf(out, "Generated %d trades and %d quotes of %d synthetic pairs from %s.\n", len(trades), len(quotes), len(gen.Symbols()), start.Format(time.DateOnly))
	props := map[string]string{"k2.source": "demo:synthetic"}
	tw, err := record.Trade.Writer(l, lake.WithDedup(true))
	if err != nil {
		return err
	}
	t0 := time.Now()
	rt, err := tw.Commit(ctx, trades, props)
	if err != nil {
		return err
	}
	qw, err := record.Quote.Writer(l, lake.WithDedup(true))
	if err != nil {
		return err
	}
	rq, err := qw.Commit(ctx, quotes, props)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Stored %d new trades and %d new quotes in %s (%d already stored).\n\n",
		rt.Rows, rq.Rows, time.Since(t0).Round(time.Millisecond), rt.Duplicates+rq.Duplicates)
	return nil
}

func (a *app) demoLoad(ctx context.Context, l *lake.Lake, path string, out io.Writer) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	format, err := exchanges.Detect(path, info.IsDir())
	if err != nil {
		return err
	}
	ld, err := loader.New(l, loader.Options{
		Source:      "demo:" + path,
		DeadLetter:  filepath.Join(a.cfg.DataDir, "dead-letter", "demo-"+time.Now().UTC().Format("20060102T150405Z")+".jsonl"),
		Progress:    os.Stderr,
		Interactive: a.interactive,
		Logger:      a.log,
		Assets:      a.cfg.Assets.List(),
	})
	if err != nil {
		return err
	}
	err = ld.Load(ctx, format, path)
	sum, finErr := ld.Finish(ctx)
	if err == nil {
		err = finErr
	}
	printSummary(out, sum)
	fmt.Fprintln(out)
	return err
}

func demoQueries(ctx context.Context, e *query.Engine, out io.Writer) error {
	f := &queryFlags{format: "table"}
	stats, err := e.Stats(ctx, query.AsOf{})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "── k2 query stats")
	f.write(out, stats, statsColumns, len(stats), func(i int) any { return &stats[i] })
	syms, err := e.Symbols(ctx, "", query.AsOf{})
	if err != nil || len(syms) == 0 {
		return err
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].Trades > syms[j].Trades })
	top := syms[0]
	fmt.Fprintln(out, "\n── k2 query symbols (busiest first)")
	shown := syms[:min(5, len(syms))]
	f.write(out, shown, symbolColumns, len(shown), func(i int) any { return &shown[i] })

	fmt.Fprintf(out, "\n── k2 query trades --symbol %s --exchange %s --limit 5\n", top.Symbol, top.Exchange)
	trades, err := e.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: top.Symbol, Exchange: top.Exchange}, Limit: 5, Desc: true})
	if err != nil {
		return err
	}
	f.write(out, trades, tradeColumns[:8], len(trades), func(i int) any { return &trades[i] })

	ex, err := md.LookupExchange(top.Exchange)
	if err != nil {
		return fmt.Errorf("the lake holds trades of exchange %q, which this K2 does not know: %w", top.Exchange, err)
	}
	day := ex.LocalDate(top.Last)
	fmt.Fprintf(out, "\n── k2 query bars --symbol %s --exchange %s --interval 1h --limit 6 --order desc\n", top.Symbol, top.Exchange)
	bars, err := e.Bars(ctx, query.BarQuery{Filter: query.Filter{Symbol: top.Symbol, Exchange: top.Exchange}, Interval: md.Interval1h, Limit: 6, Desc: true})
	if err != nil {
		return err
	}
	f.write(out, bars, barColumns, len(bars), func(i int) any { return &bars[i] })

	fmt.Fprintf(out, "\n── k2 query summary %s %s --exchange %s\n", top.Symbol, day, top.Exchange)
	s, err := e.Summary(ctx, top.Symbol, top.Exchange, day, query.AsOf{})
	if err != nil {
		return err
	}
	if s != nil {
		one := []md.Bar{*s}
		f.write(out, one, barColumns, 1, func(i int) any { return &one[i] })
	}
	snaps, err := e.Snapshots(ctx, record.Trade.Table.Name)
	if err != nil {
		return err
	}
	snaps = snaps[:min(5, len(snaps))]
	fmt.Fprintln(out, "\n── k2 query snapshots --table trades (every load is a snapshot you can read as of)")
	f.write(out, snaps, snapshotColumns, len(snaps), func(i int) any { return &snaps[i] })
	return nil
}
