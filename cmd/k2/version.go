package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/ops"
)

func newVersionCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Say which build of K2 this is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := ops.BuildInfo()
			if jsonOut {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(b)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "k2 %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
