package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/k2-market-data/k2/internal/loader"
)

type loadFlags struct {
	viaKafka     bool
	deadLetter   string
	allowRejects bool
	batchRows    int
	batchAge     time.Duration
	noProgress   bool
}

func newLoadCmd(a *app) *cobra.Command {
	f := &loadFlags{}
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load recorded market history into the lake",
		Long: `Load recorded market history into the lake, one Iceberg commit per batch.

Loading is idempotent: every record carries an id derived from the exchange's
own identity (trade and update ids; for ASX files, which have none, the row's
ordinal within its symbol's trading day), and rows whose id is already stored
are dropped, so loading the same input twice adds nothing.

With --via-kafka (the default whenever --brokers is set) the records are
produced to their exchange topics and a running sink (k2 up, k2 sink) stores
them exactly once; otherwise they are committed to the lake directly.

Rejected lines go to a dead-letter file (JSON lines with file, line, reason
and the raw text). The command exits with status 3 when lines were rejected,
unless --allow-rejects is given.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.deadLetter, "dead-letter", "", "file rejected lines are appended to (default <data-dir>/dead-letter/load-<time>.jsonl)")
	pf.BoolVar(&f.allowRejects, "allow-rejects", false, "exit 0 even when lines were rejected")
	pf.IntVar(&f.batchRows, "batch-rows", 500_000, "rows per commit")
	pf.DurationVar(&f.batchAge, "batch-age", 30*time.Second, "commit a batch at least this often")
	pf.BoolVar(&f.noProgress, "no-progress", false, "no progress display")
	pf.BoolVar(&f.viaKafka, "via-kafka", false, "produce to Kafka for the sink to store, like live data (the default when --brokers is set)")

	var symbol string
	run := func(source string, fn func(ctx context.Context, ld *loader.Loader, path string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return a.load(cmd, f, source+":"+args[0], func(ctx context.Context, ld *loader.Loader) error {
				return fn(ctx, ld, args[0])
			})
		}
	}
	asx := &cobra.Command{
		Use:   "asx DIR",
		Short: "ASX tick files: DIR/trades/<company id>.csv, DIR/quotes/<id>.csv, DIR/reference-data/company_info.csv",
		Args:  cobra.ExactArgs(1),
		RunE:  run("asx", func(ctx context.Context, ld *loader.Loader, p string) error { return ld.ASX(ctx, p) }),
	}
	csv := &cobra.Command{
		Use:   "binance-csv FILE --symbol SYMBOL",
		Short: "Binance public-data trade file (data.binance.vision layout; ms or µs times)",
		Args:  cobra.ExactArgs(1),
		RunE: run("binance-csv", func(ctx context.Context, ld *loader.Loader, p string) error {
			return ld.BinanceCSV(ctx, p, symbol)
		}),
	}
	csv.Flags().StringVar(&symbol, "symbol", "", "the file's pair, e.g. BTCUSDT (required)")
	ws := &cobra.Command{
		Use:   "binance-ws FILE",
		Short: "Binance WebSocket capture, '<receive ns> <frame>' per line, gzip or plain: @trade → trades, @bookTicker → quotes",
		Args:  cobra.ExactArgs(1),
		RunE:  run("binance-ws", func(ctx context.Context, ld *loader.Loader, p string) error { return ld.BinanceWS(ctx, p) }),
	}
	kr := &cobra.Command{
		Use:   "kraken-ws FILE",
		Short: "Kraken WebSocket v2 messages, one per line: every trade of each trade message",
		Args:  cobra.ExactArgs(1),
		RunE:  run("kraken-ws", func(ctx context.Context, ld *loader.Loader, p string) error { return ld.KrakenWS(ctx, p) }),
	}
	cmd.AddCommand(asx, csv, ws, kr)
	return cmd
}

// load runs one load and prints its summary.
func (a *app) load(cmd *cobra.Command, f *loadFlags, source string, fn func(context.Context, *loader.Loader) error) error {
	ctx := cmd.Context()
	dlq := f.deadLetter
	if dlq == "" {
		dlq = filepath.Join(a.cfg.DataDir, "dead-letter", "load-"+time.Now().UTC().Format("20060102T150405Z")+".jsonl")
	}
	var progress io.Writer = os.Stderr
	if f.noProgress {
		progress = io.Discard
	}
	opts := loader.Options{
		DeadLetter: dlq, BatchRows: f.batchRows, BatchAge: f.batchAge,
		Progress: progress, Interactive: term.IsTerminal(int(os.Stderr.Fd())),
		Logger: a.log, Source: source, Assets: a.cfg.Assets(),
	}
	viaKafka := f.viaKafka
	if !cmd.Flags().Changed("via-kafka") {
		viaKafka = a.cfg.Brokers != ""
	}
	var ld *loader.Loader
	if viaKafka {
		p, _, err := a.producer("k2-load")
		if err != nil {
			return err
		}
		defer p.Close(context.Background())
		ld = loader.NewViaKafka(p, opts)
	} else {
		l, err := a.openLake(ctx)
		if err != nil {
			return err
		}
		defer l.Close()
		if ld, err = loader.New(l, opts); err != nil {
			return err
		}
	}
	runErr := fn(ctx, ld)
	sum, finErr := ld.Finish(ctx)
	printSummary(cmd.OutOrStdout(), sum)
	if runErr != nil {
		return runErr
	}
	if finErr != nil {
		return finErr
	}
	if sum.Rejected > 0 && !f.allowRejects {
		return &exitError{code: 3, err: fmt.Errorf("%d lines rejected, see %s (use --allow-rejects to accept)", sum.Rejected, sum.DeadLetter)}
	}
	return nil
}

func printSummary(w io.Writer, s loader.Summary) {
	fmt.Fprintf(w, "source      %s\n", s.Source)
	fmt.Fprintf(w, "read        %d records\n", s.Read)
	fmt.Fprintf(w, "written     %d rows in %d commits\n", s.Written, s.Commits)
	var tables []string
	for t := range s.Tables {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		fmt.Fprintf(w, "  %-26s %d\n", t, s.Tables[t])
	}
	fmt.Fprintf(w, "duplicates  %d (already stored, not written again)\n", s.Duplicates)
	fmt.Fprintf(w, "rejected    %d", s.Rejected)
	if s.DeadLetter != "" {
		fmt.Fprintf(w, " → %s", s.DeadLetter)
	}
	fmt.Fprintln(w)
	if s.Skipped > 0 {
		var parts []string
		for k, v := range s.SkippedBy {
			if k == "" {
				k = "other"
			}
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "skipped     %d (%s)\n", s.Skipped, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "elapsed     %s · %.0f records/s\n", s.Elapsed.Round(time.Millisecond), s.RowsPerSecond())
}
