package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

func newLakeCmd(a *app) *cobra.Command {
	var (
		tables  []string
		dryRun  bool
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "lake",
		Short: "Maintain the tables: compact small files, expire old snapshots, remove orphaned files",
	}
	pf := cmd.PersistentFlags()
	pf.StringSliceVar(&tables, "table", record.TableNames(), "tables to maintain")
	pf.BoolVar(&dryRun, "dry-run", false, "report what would be done, change nothing")
	pf.BoolVar(&jsonOut, "json", false, "print results as JSON")
	a.cfg.RegisterLake(pf)
	m := &a.cfg.Maintain

	each := func(fn func(cmd *cobra.Command, l *lake.Lake, table string) (any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			var results []any
			for _, t := range tables {
				r, err := fn(cmd, l, t)
				if err != nil {
					return err
				}
				results = append(results, r)
				if !jsonOut {
					printResult(cmd.OutOrStdout(), r)
				}
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			return nil
		}
	}
	compact := &cobra.Command{
		Use:   "compact",
		Short: "Rewrite each partition's small files into few large sorted ones (one replace commit per table)",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.Compact(cmd.Context(), t, lake.CompactOptions{DryRun: dryRun, MaxRows: m.CompactMaxRows, SmallFileBytes: m.CompactSmallFileBytes})
		}),
	}
	a.cfg.RegisterCompact(compact.Flags())
	expire := &cobra.Command{
		Use:   "expire-snapshots",
		Short: "Drop snapshots older than --expire-older-than, keeping the newest --retain-last (time travel to them ends)",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.ExpireSnapshots(cmd.Context(), t, lake.ExpireOptions{OlderThan: m.ExpireOlderThan, RetainLast: m.RetainLast, DryRun: dryRun})
		}),
	}
	a.cfg.RegisterExpire(expire.Flags())
	orphans := &cobra.Command{
		Use:   "remove-orphans",
		Short: "Delete files in the table's location that no snapshot references (e.g. from a killed writer)",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.RemoveOrphans(cmd.Context(), t, lake.OrphanOptions{OlderThan: m.OrphanMinAge, DryRun: dryRun})
		}),
	}
	a.cfg.RegisterOrphans(orphans.Flags())
	cmd.AddCommand(compact, expire, orphans)
	return cmd
}

func printResult(w io.Writer, r any) {
	switch r := r.(type) {
	case lake.CompactResult:
		verb := "compacted"
		if r.DryRun {
			verb = "would compact"
		}
		fmt.Fprintf(w, "%s: %s %d files in %d partition groups (%d rows, %d bytes)", r.Table, verb, r.FilesBefore, r.Groups, r.Rows, r.BytesBefore)
		if !r.DryRun && r.Groups > 0 {
			fmt.Fprintf(w, " into %d files (%d bytes), snapshot %d", r.FilesAfter, r.BytesAfter, r.SnapshotAfter)
		}
		fmt.Fprintln(w)
	case lake.ExpireResult:
		verb := "expired"
		if r.DryRun {
			verb = "would expire"
		}
		fmt.Fprintf(w, "%s: %s %d snapshots older than %s (before %s, keeping the newest %d), %d remain\n",
			r.Table, verb, len(r.Expired), r.OlderThan, r.Cutoff.Format(time.RFC3339), r.RetainLast, r.Remaining)
	case lake.OrphanResult:
		verb := "removed"
		if r.DryRun {
			verb = "would remove"
		}
		fmt.Fprintf(w, "%s: %s %d orphaned files older than %s (%d bytes)\n", r.Table, verb, len(r.Files), r.MinAge, r.Bytes)
		for _, f := range r.Files {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}
