// Command k2 is the K2 market-data lakehouse: one binary that captures
// markets into Kafka, keeps them in Apache Iceberg tables, queries them
// through DuckDB and maintains them. Run `k2 --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// app is the state every command shares.
type app struct {
	cfg config.Config
	log *slog.Logger
	// interactive is set when stderr is a terminal: long-running commands
	// then show a status line instead of routine log lines.
	interactive bool
	logFile     io.Closer
}

func newRoot() (*cobra.Command, *app) {
	a := &app{cfg: config.Default()}
	root := &cobra.Command{
		Use:   "k2",
		Short: "K2 market-data lakehouse: capture trades and quotes, keep them in Iceberg, query them in milliseconds",
		Long: `K2 keeps every trade and quote in open Apache Iceberg tables and answers
questions of them through DuckDB: the latest trades, bars of any size, the
table as it stood at any snapshot.

Each command lists the settings it reads under "Settings". A setting can also
be given as a K2_* environment variable (--data-dir is K2_DATA_DIR) or in the
--config YAML file, keyed by its flag name; the command line wins, then the
environment, then the file. One file may hold the settings of every command.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.setUp(cmd) },
		PersistentPostRun: func(*cobra.Command, []string) {
			if a.logFile != nil {
				a.logFile.Close()
			}
		},
	}
	a.cfg.RegisterCommon(root.PersistentFlags())
	root.AddCommand(newUpCmd(a), newBrokerCmd(a), newSinkCmd(a), newFeedCmd(a), newMaintainCmd(a), newAPICmd(a), newTopicsCmd(a),
		newReplayServerCmd(a), newLoadCmd(a), newQueryCmd(a), newLakeCmd(a), newDemoCmd(a), newBenchCmd(a), newOpsCmd(), newVersionCmd(),
		newBackupCmd(a), newRestoreCmd(a))
	setUsage(root)
	return root, a
}

// setUp reads the settings (environment and --config file under the
// command line), checks them, and sets up logging and the heap limit.
func (a *app) setUp(cmd *cobra.Command) error {
	path := a.cfg.ConfigFile
	if !cmd.Flags().Changed("config") {
		if v, ok := os.LookupEnv(config.EnvName("config")); ok {
			path = v
		}
	}
	if err := config.ResetDefaults(cmd.Flags()); err != nil {
		return err
	}
	known := settingNames(cmd.Root())
	if err := config.Apply(cmd.Flags(), path, func(k string) bool { return known[k] }); err != nil {
		return err
	}
	if err := a.cfg.Resolve(); err != nil {
		return err
	}
	a.interactive = term.IsTerminal(int(os.Stderr.Fd()))
	opts := ops.LogOptions{Format: a.cfg.Log.Format, Level: a.cfg.Log.Level}
	if a.cfg.Log.File != "" {
		f, err := os.OpenFile(a.cfg.Log.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		a.logFile, opts.File = f, f
	}
	// A person at a terminal gets a status line from long-running
	// commands; the routine lines it replaces stay in collected logs.
	opts.Quiet = a.interactive && strings.EqualFold(a.cfg.Log.Format, "text")
	a.log = ops.NewLogger(os.Stderr, opts)
	slog.SetDefault(a.log)
	if cmd.Flags().Lookup("memory-limit") != nil && os.Getenv("GOMEMLIMIT") == "" && a.cfg.Memory.LimitBytes > 0 {
		debug.SetMemoryLimit(a.cfg.Memory.LimitBytes)
	}
	return nil
}

// settingNames is every setting any command reads: the keys a --config
// file may hold.
func settingNames(cmd *cobra.Command) map[string]bool {
	out := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			if config.IsSetting(f) {
				out[f.Name] = true
			}
		}
		c.LocalFlags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	return out
}

// gcPercent is the default GOGC: K2 holds whole batches in memory while it
// encodes them, and collecting four times less often measured ~10% more
// append throughput on two cores. GOGC in the environment still wins.
const gcPercent = 400

// serviceGCPercent is the default GOGC of k2 feed and k2 up, which run for
// days beside other work: collecting at the usual pace keeps their memory
// near what they hold. It halved k2 feed's peak memory (575 → 286 MiB in k2
// bench feed) for 2% of its rate, and keeps k2 up's resident memory flat
// at a trickle (at 400 it wandered from 245 to 390 MB over half an hour at
// 100 trades/s, 55 MB of it live).
const serviceGCPercent = 100

// setGC sets the collector's pace unless GOGC in the environment does.
func setGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}

func main() {
	setGC(gcPercent)
	root, _ := newRoot()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(report(err))
}

// report prints err as one line and returns the exit status.
func report(err error) int {
	if err == nil {
		return 0
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintln(os.Stderr, "k2: "+msg)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}
