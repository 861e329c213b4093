package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/sink"
)

// newRepairFileCmd is `k2 lake repair-file`; tables, dryRun and jsonOut
// are the lake command's flags.
func newRepairFileCmd(a *app, tables *[]string, dryRun, jsonOut *bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repair-file FILE",
		Short: "Drop a damaged data file from its table and store its rows again from Kafka",
		Long: `A data file that cannot be read (a query fails naming it) is dropped from
its table in one commit (a file dropped before is found in the table's
snapshots, so a repair can run again), and its rows are read again from Kafka: every
record the table had consumed that the topics still hold, within the file's
symbols and times, is committed with the table's deduplication, which stores
exactly the rows the table lacks. The damaged file is left where it is.

Kafka holds the records for the topics' retention (a week), the embedded
broker for --broker-keep after the sink stored them: a file older than that
cannot be refilled from Kafka, and the command says how many rows it stored
of how many the file held. Exit status 1 when some are missing.`,
		Example: "  k2 lake repair-file /srv/k2/warehouse/market_data/trades/data/timestamp_day=2026-12-05/symbol=BTCUSD/….parquet",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if *dryRun {
				return errors.New("repair-file has no --dry-run: it changes the table")
			}
			path := args[0]
			l, err := a.openLake(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			sec, err := bus.NewSecurity(a.cfg.Kafka.Security)
			if err != nil {
				return err
			}
			reg, err := bus.RegistryClient(a.cfg.Kafka)
			if err != nil {
				return err
			}
			dropped, table, err := dropOrFind(cmd.Context(), l, *tables, path)
			if err != nil {
				return err
			}
			res, err := sink.Refill(cmd.Context(), sink.RefillConfig{Brokers: a.cfg.Kafka.BrokerList(), Security: sec, TopicPrefix: a.cfg.Kafka.TopicPrefix,
				Registry: reg, Lake: l, Logger: a.log}, table, dropped)
			if err != nil {
				return fmt.Errorf("%s dropped from %s; storing its %d rows again: %w (run k2 lake repair-file again: it stores only what is missing)", path, table, dropped.Records, err)
			}
			out := cmd.OutOrStdout()
			if *jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "%s: dropped %s (%d rows); read %d records from Kafka, %d within its bounds, stored %d again\n",
					lake.Namespace+"."+table, path, res.Records, res.Read, res.Matched, res.Stored)
			}
			if !res.Complete() {
				return &exitError{1, fmt.Errorf("%d of the file's %d rows are no longer in Kafka (%v): restore them from a backup or load them again from their source", res.Records-res.Stored, res.Records, res.Gone)}
			}
			return nil
		},
	}
	a.cfg.RegisterKafka(cmd.Flags())
	return cmd
}

// dropOrFind drops the file from the table whose current snapshot has
// it, or finds it among the files dropped before: a repair run again
// after its refill failed stores what is still missing.
func dropOrFind(ctx context.Context, l *lake.Lake, tables []string, path string) (lake.DroppedFile, string, error) {
	for _, find := range []func(context.Context, string, string) (lake.DroppedFile, error){l.DropDataFile, l.DroppedDataFile} {
		for _, t := range tables {
			d, err := find(ctx, t, path)
			if err == nil {
				return d, t, nil
			}
			if !errors.Is(err, lake.ErrNoDataFile) {
				return d, t, err
			}
		}
	}
	return lake.DroppedFile{}, "", fmt.Errorf("%s: no table has this data file, nor dropped it (give its path as the error names it)", path)
}
