package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/k2-market-data/k2/internal/config"
)

// setUsage makes every command's help list its own flags, and under
// "Settings" those it reads from the environment and the config file too:
// a command shows what it uses, nothing more.
func setUsage(root *cobra.Command) {
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		usage(cmd.OutOrStderr(), cmd)
		return nil
	})
}

func usage(w io.Writer, cmd *cobra.Command) {
	fmt.Fprintf(w, "Usage:\n  %s\n", cmd.UseLine())
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(w, "  %s [command]\n", cmd.CommandPath())
	}
	if cmd.Example != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", cmd.Example)
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintln(w, "\nCommands:")
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				fmt.Fprintf(w, "  %-*s %s\n", cmd.NamePadding(), c.Name(), c.Short)
			}
		}
	}
	params, settings := pflag.NewFlagSet("", pflag.ContinueOnError), pflag.NewFlagSet("", pflag.ContinueOnError)
	add := func(f *pflag.Flag) {
		if f.Hidden || params.Lookup(f.Name) != nil || settings.Lookup(f.Name) != nil {
			return
		}
		if config.IsSetting(f) {
			settings.AddFlag(f)
		} else {
			params.AddFlag(f)
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	if params.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", params.FlagUsages())
	}
	if settings.HasFlags() {
		fmt.Fprintf(w, "\nSettings (also K2_%s variables and --config keys):\n%s", "*", settings.FlagUsages())
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nUse \"%s [command] --help\" for more about a command.\n", strings.TrimSpace(cmd.CommandPath()))
	}
}
