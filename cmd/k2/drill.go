package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/drill"
)

func newDrillCmd() *cobra.Command {
	var (
		only          []string
		report, work  string
		repo          string
		list, verbose bool
		timeout       time.Duration
		cfg           = config.Default()
		ext           drill.External
	)
	cmd := &cobra.Command{
		Use:   "drill [--only NAME[,NAME]] [--report FILE] [--list] [--work DIR]",
		Short: "Run fault drills on real K2 processes: kill -9, corrupt files, a full disk; check recovery, RTO and exact counts",
		Long: `Each drill starts a K2 installation from this binary (each role a
process of its own), produces trades with known ids at a steady rate,
injects a fault, applies the recovery its runbook gives (the runbook's
` + "```sh recover" + ` and ` + "```sh verify" + ` blocks, run as written with sh -eu), and
checks: every process healthy, every produced id in the lake exactly once,
and the recovery time against its target (10 s for a process restart).

Prints a line per drill and writes, with --report, a Markdown report with a
table per drill. The exit status is 1 when any drill fails.

The runbooks are read under --repo (docs/operations/runbooks/…).

The drills on external services run when the installation names them and
--service-control can kill and start them: Apache Kafka (--brokers, and
--kafka-log-dir for its checkpoint files), a PostgreSQL catalog (--catalog
postgres://…) and an S3 warehouse (--warehouse s3://…, --s3-endpoint).
The command is called as CMD VERB, VERB one of kafka-kill, kafka-start,
postgres-kill, postgres-start, s3-kill, s3-start (a kill is SIGKILL; a start
returns once the service answers); scripts/test-services.sh is one. Those
drills use topics and a sink group of their own.`,
		Example: "  k2 ops drill --list\n  k2 ops drill --report drills.md\n  k2 ops drill --only sink-kill,broker-kill",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if list {
				sel, err := drill.Select(only)
				if err != nil {
					return err
				}
				for _, d := range sel {
					fmt.Fprintf(out, "%-22s %-12s %s (%s)\n", d.Name, d.Family, d.Summary, d.Runbook)
				}
				return nil
			}
			if _, err := drill.Select(only); err != nil {
				return err
			}
			// The settings are this command's own (the root resolves the
			// app's): passwords read, protocols checked.
			if err := cfg.Resolve(); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("the k2 binary: %w", err)
			}
			if _, err := os.Stat(filepath.Join(repo, "docs", "operations", "runbooks")); err != nil {
				return fmt.Errorf("--repo %s: no docs/operations/runbooks there (give the repository root)", repo)
			}
			keep := work != ""
			if !keep {
				if work, err = os.MkdirTemp("", "k2-drill-"); err != nil {
					return err
				}
			}
			ext.Catalog, ext.Warehouse = cfg.Lake.Catalog, cfg.Lake.Warehouse
			ext.S3Endpoint, ext.S3Region = cfg.Lake.S3Endpoint, cfg.Lake.S3Region
			// The defaults are k2 up's own broker and registry: not services
			// of their own.
			if cfg.Kafka.Brokers != config.Default().Kafka.Brokers {
				ext.Brokers, ext.Security = cfg.Kafka.Brokers, cfg.Kafka.Security
			}
			if cfg.Kafka.Registry != config.Default().Kafka.Registry {
				ext.Registry = cfg.Kafka.Registry
			}
			o := drill.Options{Exe: exe, Repo: repo, Work: work, Only: only, Timeout: timeout, External: ext}
			if verbose {
				o.Progress = cmd.ErrOrStderr()
			}
			rep, err := drill.Run(cmd.Context(), o)
			if err != nil {
				if !keep {
					os.RemoveAll(work)
				}
				return err
			}
			if report != "" {
				f, err := os.Create(report)
				if err != nil {
					return fmt.Errorf("--report: %w", err)
				}
				err = errors.Join(drill.WriteMarkdown(f, rep), f.Close())
				if err != nil {
					return fmt.Errorf("--report: %w", err)
				}
			}
			drill.WriteSummary(out, rep)
			if !rep.Pass() {
				fmt.Fprintf(out, "logs and data in %s\n", work)
				return &exitError{1, fmt.Errorf("fault drills: %s failed", failedNames(rep))}
			}
			if !keep {
				os.RemoveAll(work)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&only, "only", nil, "run only these drills (comma separated or repeated; --list names them)")
	fs.StringVar(&report, "report", "", "write the Markdown report to this file")
	fs.BoolVar(&list, "list", false, "list the drills and exit")
	fs.StringVar(&work, "work", "", "directory for the drills' data and logs, kept (default: a temporary one, removed when every drill passes)")
	fs.StringVar(&repo, "repo", ".", "repository root the runbooks are read under")
	fs.DurationVar(&timeout, "timeout", drill.DefaultTimeout, "time limit of each drill")
	fs.BoolVarP(&verbose, "verbose", "v", false, "print each drill's steps on stderr")
	cfg.RegisterKafka(fs)
	cfg.RegisterLake(fs)
	fs.StringVar(&ext.ServiceControl, "service-control", "", "command run as CMD kafka-kill|kafka-start|postgres-kill|postgres-start|s3-kill|s3-start to crash and start the external services")
	fs.StringVar(&ext.KafkaLogDir, "kafka-log-dir", "", "Apache Kafka's log.dirs on this host (one broker), for the checkpoint drills")
	return cmd
}

func failedNames(rep *drill.Report) string {
	var names []string
	for _, r := range rep.Results {
		if !r.Pass() {
			names = append(names, r.Drill.Name)
		}
	}
	return strings.Join(names, ", ")
}
