package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/rollup"
)

// newLakeBarsCmd brings the bar tables up to the trades now: what k2 up
// and k2 maintain do every --maintain-bars-every.
func newLakeBarsCmd(a *app, dryRun, jsonOut *bool) *cobra.Command {
	var verify bool
	cmd := &cobra.Command{
		Use:   "bars",
		Short: "Bring the bar tables (bars_1m, bars_5m, bars_30m, bars_1h, bars_1d) up to the trades table now",
		Long: `Bring the bar tables up to the trades table's current snapshot: every partition
(a symbol's day or month of bars) that a trades commit since the last roll could
have touched is computed again from the trades and replaces the old one, in one
commit per table that records the trades snapshot. Bars past their retention
(1m 90 days, 5m 180, 30m 365, 1h 1095, 1d 1825) are dropped. Running it again,
or after a roll that died, computes the same bars. --verify then compares every
bar table with the bars its trades snapshot makes, computed over each symbol's
whole span, and exits non-zero on the first difference.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *dryRun {
				return errors.New("k2 lake bars has no --dry-run: a roll changes only derived tables, and running it again computes the same bars")
			}
			l, e, err := a.openQuery(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			defer e.Close()
			r := rollup.New(l, e, rollup.Options{Logger: a.log})
			reps, err := r.Roll(cmd.Context())
			out := cmd.OutOrStdout()
			if *jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(reps); jerr != nil {
					return jerr
				}
			} else {
				for _, r := range reps {
					switch {
					case r.Unchanged:
						fmt.Fprintf(out, "%s: up to date with trades snapshot %d\n", r.Table, r.TradesSnapshot)
					default:
						how := "partitions computed again"
						if r.Rebuilt {
							how = "partitions computed from every trade"
						}
						fmt.Fprintf(out, "%s: %d %s (%d bars), %d past retention dropped; matches trades snapshot %d\n",
							r.Table, r.Partitions, how, r.Bars, r.Dropped, r.TradesSnapshot)
					}
				}
			}
			if err == nil && verify {
				if err = r.Verify(cmd.Context()); err == nil && !*jsonOut {
					fmt.Fprintln(out, "verified: every bar table holds exactly the bars of its trades snapshot")
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&verify, "verify", false, "then compare every bar table with the bars computed from its trades snapshot")
	return cmd
}
