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

	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/stack"
)

type loadFlags struct {
	viaKafka     bool
	deadLetter   string
	allowRejects bool
	noProgress   bool
	symbol       string
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

With --via-kafka the records are produced to their exchange topics on
--brokers and a running sink (k2 up, k2 sink) stores them exactly once, like
live data; otherwise they are committed to the lake directly.

Rejected lines go to a dead-letter file (JSON lines with file, line, reason
and the raw text). The command exits with status 3 when lines were rejected,
unless --allow-rejects is given.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.deadLetter, "dead-letter", "", "file rejected lines are appended to (default <data-dir>/dead-letter/load-<time>.jsonl)")
	pf.BoolVar(&f.allowRejects, "allow-rejects", false, "exit 0 even when lines were rejected")
	pf.BoolVar(&f.noProgress, "no-progress", false, "no progress display")
	pf.BoolVar(&f.viaKafka, "via-kafka", false, "produce to Kafka (--brokers) for a sink to store, like live data")
	a.cfg.RegisterLake(pf)
	a.cfg.RegisterLoad(pf)
	a.cfg.RegisterKafka(pf)
	a.cfg.RegisterAssets(pf)
	a.cfg.RegisterMemory(pf)

	pf.StringVar(&f.symbol, "symbol", "", "the instrument of files that do not name it, e.g. BTCUSDT (binance-csv: default from the file name)")
	for _, format := range exchanges.Formats() {
		cmd.AddCommand(&cobra.Command{
			Use:   format.Name + " " + format.Arg,
			Short: format.Short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.load(cmd, f, format.Name+":"+args[0], func(ctx context.Context, ld *loader.Loader) error {
					return ld.Load(ctx, format, args[0])
				})
			},
		})
	}
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
		DeadLetter: dlq, Load: a.cfg.Load,
		Progress: progress, Interactive: a.interactive,
		Logger: a.log, Source: source, Assets: a.cfg.Assets.List(), Symbol: f.symbol,
	}
	var ld *loader.Loader
	if f.viaKafka {
		st, err := stack.Start(ctx, "load", a.cfg, stack.Parts{Kafka: true}, a.log)
		if err != nil {
			return err
		}
		defer st.Close()
		p, err := st.Producer("k2-load")
		if err != nil {
			return err
		}
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
	for _, f := range s.Empty {
		fmt.Fprintf(w, "warning     %s is empty: nothing read from it\n", f)
	}
	fmt.Fprintf(w, "elapsed     %s · %.0f records/s\n", s.Elapsed.Round(time.Millisecond), s.RowsPerSecond())
}
