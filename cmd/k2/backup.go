package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/backup"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/stack"
)

func (a *app) backupOptions(location string) backup.Options {
	return backup.Options{Location: location, S3: stack.S3Options(a.cfg), Workers: a.cfg.Backup.Workers, Logger: a.log}
}

// newBackupCmd is `k2 backup` and `k2 backup verify`.
func newBackupCmd(a *app) *cobra.Command {
	var (
		to, from string
		tables   []string
		jsonOut  bool
	)
	cmd := &cobra.Command{
		Use:   "backup --to DIR|s3://bucket/prefix",
		Short: "Copy the lake for disaster recovery: each table's metadata and every file its snapshots reach, with a manifest of checksums; safe while sinks write, incremental",
		Long: `Copy the lake to a directory or an S3 prefix: each table's current metadata
file and every manifest list, manifest and data file of every snapshot it
keeps (time travel works after a restore), and manifest.json with each
file's size and SHA-256, each table's metadata location, rows and Kafka
offsets. Files already in the backup are not copied again.

Safe while sinks and maintainers run: Iceberg files never change, and each
table's metadata is read before its files are copied. Restore with
k2 restore --from; check with k2 backup verify --from.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return fmt.Errorf("--to: where to write the backup (a directory or s3://bucket/prefix)")
			}
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			res, err := backup.Backup(cmd.Context(), l, tables, a.backupOptions(to))
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(cmd, res)
			}
			out := cmd.OutOrStdout()
			for _, t := range res.Tables {
				fmt.Fprintf(out, "%s: %d rows, %d snapshots, current %d\n", t.Name, t.Rows, t.Snapshots, t.SnapshotID)
			}
			fmt.Fprintf(out, "backup %s: %d files, %s (%d files, %s copied now) in %s\n", res.Location, res.Files, ops.Bytes(res.Bytes),
				res.Copied, ops.Bytes(res.CopiedBytes), res.Duration.Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "where to write the backup: a directory or s3://bucket/prefix (the warehouse's S3 settings reach it)")
	f.StringSliceVar(&tables, "table", record.TableNames(), "tables to back up")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	a.cfg.RegisterLake(f)
	a.cfg.RegisterBackup(f)

	verify := &cobra.Command{
		Use:   "verify --from DIR|s3://bucket/prefix",
		Short: "Read every file of a backup and check its size and SHA-256 against the manifest; exit 1 naming the first bad file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return fmt.Errorf("--from: the backup to check (a directory or s3://bucket/prefix)")
			}
			res, err := backup.Verify(cmd.Context(), a.backupOptions(from))
			if jsonOut && res.Files > 0 {
				writeJSON(cmd, res)
			}
			if err != nil {
				return err
			}
			if !jsonOut {
				fmt.Fprintf(cmd.OutOrStdout(), "backup %s of %s: %d tables, %d files, %s: all intact (%s)\n", res.Location,
					res.Created.Format(time.RFC3339), len(res.Tables), res.Files, ops.Bytes(res.Bytes), res.Duration.Round(time.Millisecond))
			}
			return nil
		},
	}
	vf := verify.Flags()
	vf.StringVar(&from, "from", "", "the backup: a directory or s3://bucket/prefix")
	vf.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	a.cfg.RegisterLake(vf) // the S3 settings
	a.cfg.RegisterBackup(vf)
	cmd.AddCommand(verify)
	return cmd
}

// newRestoreCmd is `k2 restore`.
func newRestoreCmd(a *app) *cobra.Command {
	var (
		from    string
		force   bool
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "restore --from DIR|s3://bucket/prefix [--force]",
		Short: "Restore a backup into the configured catalog and warehouse: copy its files (checking each checksum), then register each table at its backed-up metadata",
		Long: `Restore a backup made by k2 backup into the configured catalog and
warehouse, which must be the warehouse the backup was taken of (the
metadata names files by their full location). Stop every role first.

Every file is checked against its SHA-256 while it is copied; the catalog
is changed only once all arrived intact. The catalog's tables must be
empty (a new catalog), or --force replaces them. The restored tables
carry the Kafka offsets they recorded, so sinks started afterwards
continue from there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" {
				return fmt.Errorf("--from: the backup to restore (a directory or s3://bucket/prefix)")
			}
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			res, err := backup.Restore(cmd.Context(), l, force, a.backupOptions(from))
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(cmd, res)
			}
			out := cmd.OutOrStdout()
			for _, t := range res.Tables {
				fmt.Fprintf(out, "%s: %d rows, %d snapshots, at %s\n", t.Table, t.Rows, t.Snapshots, t.MetadataLocation)
			}
			fmt.Fprintf(out, "restored %s (backup of %s): %d files, %s in %s\n", res.Location, res.Created.Format(time.RFC3339),
				res.Files, ops.Bytes(res.Bytes), res.Duration.Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the backup: a directory or s3://bucket/prefix")
	f.BoolVar(&force, "force", false, "replace tables that hold data")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	a.cfg.RegisterLake(f)
	a.cfg.RegisterBackup(f)
	return cmd
}
