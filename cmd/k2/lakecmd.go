package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/ops"
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
		Short: "Maintain the tables by hand: status, compaction, manifests, snapshot expiry, orphaned files, damaged files, bar tables",
		Long: `Maintain the tables by hand. k2 up and k2 maintain do all of this on a schedule
(--maintain-every); these commands are for a look (status), for a lake no
maintainer runs on, and for an operator who wants it done now.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringSliceVar(&tables, "table", record.AllTableNames(), "tables to maintain")
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
		Short: "Drop the snapshots the retention policy does not keep: all of the last --retain-dense-for, one per --retain-sparse-every until --expire-older-than, the newest --retain-last (time travel to the others ends)",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.ExpireSnapshots(cmd.Context(), t, lake.ExpireOptions{OlderThan: m.ExpireOlderThan, RetainLast: m.RetainLast,
				DenseFor: m.RetainDenseFor, SparseEvery: m.RetainSparseEvery, DryRun: dryRun})
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
	manifests := &cobra.Command{
		Use:   "rewrite-manifests",
		Short: "Merge a table's manifests into few when it has more than --max-manifests",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.RewriteManifests(cmd.Context(), t, m.MaxManifests, dryRun)
		}),
	}
	manifests.Flags().IntVar(&m.MaxManifests, "max-manifests", m.MaxManifests, "rewrite when the current snapshot has more manifests than this")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show each table's files per partition, small-file debt, snapshots, manifests, metadata size and last maintenance",
		RunE: each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
			return l.Status(cmd.Context(), t, m.CompactSmallFileBytes)
		}),
	}
	var metadataLocation string
	register := &cobra.Command{
		Use:   "register",
		Short: "Point the catalog at a table's metadata file: the newest in the table's metadata folder, or --metadata-location (a lost catalog, re-made from the warehouse)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if metadataLocation != "" && len(tables) != 1 {
				return errors.New("--metadata-location: name the one table it belongs to with --table")
			}
			return each(func(cmd *cobra.Command, l *lake.Lake, t string) (any, error) {
				return l.Register(cmd.Context(), t, metadataLocation, dryRun)
			})(cmd, args)
		},
	}
	register.Flags().StringVar(&metadataLocation, "metadata-location", "", "the metadata file (default: the newest in the table's metadata folder)")
	cmd.AddCommand(status, compact, manifests, expire, orphans, newRepairFileCmd(a, &tables, &dryRun, &jsonOut), register, newOffsetsCmd(a, &tables, &dryRun, &jsonOut), newLakeBarsCmd(a, &dryRun, &jsonOut))
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
	case lake.ManifestResult:
		switch {
		case r.DryRun && r.Before > r.Limit:
			fmt.Fprintf(w, "%s: would rewrite %d manifests (more than %d)\n", r.Table, r.Before, r.Limit)
		case r.After != r.Before:
			fmt.Fprintf(w, "%s: rewrote %d manifests into %d\n", r.Table, r.Before, r.After)
		default:
			fmt.Fprintf(w, "%s: %d manifests, nothing to rewrite\n", r.Table, r.Before)
		}
	case lake.TableStatus:
		printStatus(w, r)
	case lake.RegisterResult:
		verb := "registered at"
		if r.DryRun {
			verb = "would register at"
		}
		fmt.Fprintf(w, "%s: %s %s (%d rows, %d snapshots; was %s)\n", r.Table, verb, r.MetadataLocation, r.Rows, r.Snapshots, r.Previous)
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

func printStatus(w io.Writer, s lake.TableStatus) {
	fmt.Fprintf(w, "%s\n", s.Table)
	fmt.Fprintf(w, "  rows            %d in %d data files, %s (%.1f bytes a row)\n", s.Rows, s.DataFiles, ops.Bytes(s.DataBytes), s.BytesPerRow())
	fmt.Fprintf(w, "  partitions      %d; most files in one: %d (%s)\n", s.Partitions, s.MaxFilesPerPartition, s.BusiestPartition)
	fmt.Fprintf(w, "  small files     %d; compaction would remove %d\n", s.SmallFiles, s.SmallFileDebt)
	fmt.Fprintf(w, "  snapshots       %d", s.Snapshots)
	if !s.OldestSnapshot.IsZero() {
		fmt.Fprintf(w, "; time travel back to %s", s.OldestSnapshot.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  manifests       %d; metadata file %s\n", s.Manifests, ops.Bytes(s.MetadataBytes))
	if s.Rows > 0 && len(s.Columns) > 0 {
		var cols []string
		for _, c := range s.Columns {
			cols = append(cols, fmt.Sprintf("%s %.2f", c.Column, float64(c.Bytes)/float64(s.Rows)))
		}
		fmt.Fprintf(w, "  bytes a row     %s\n", strings.Join(cols, ", "))
	}
	mt := s.Maintenance
	switch {
	case mt.LastRun.IsZero() && mt.LeaseUntil.IsZero():
		fmt.Fprintf(w, "  maintenance     never run\n")
	case !mt.LastRun.IsZero():
		fmt.Fprintf(w, "  maintenance     last run %s ago by %s: %s\n", time.Since(mt.LastRun).Round(time.Second), mt.Owner, mt.LastResult)
	}
	if mt.LeaseUntil.After(time.Now()) {
		fmt.Fprintf(w, "  maintenance     running now (%s)\n", mt.Owner)
	}
}
