package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/ops/alerts"
)

func newOpsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ops", Short: "Operate K2: its alert rules, the alerts a Prometheus server holds, fault drills"}
	al := &cobra.Command{Use: "alerts", Short: "Validate K2's alert rules and read the alerts a Prometheus server holds"}
	al.AddCommand(newAlertsValidateCmd(), newAlertsCheckCmd())
	cmd.AddCommand(al, newDrillCmd())
	return cmd
}

func newAlertsValidateCmd() *cobra.Command {
	var (
		files          []string
		repo, promtool string
	)
	cmd := &cobra.Command{
		Use:   "validate [--rules FILE ...] [--repo DIR]",
		Short: "Check alert rule files: syntax, promtool, and that every alert is labelled, annotated and has its runbook and dashboard",
		Long: `Checks alert rule files before they are deployed:

  syntax         each file is parsed by Prometheus's rule parser, which parses
                 every expression and template;
  configuration  promtool check rules, when promtool is on PATH or --promtool
                 names it (the output says when it was not found);
  completeness   every alert has severity (critical, high or medium),
                 component and team labels, and summary, description,
                 runbook_url and dashboard_url annotations; runbook_url is a
                 path to a file under --repo headed "# <alert>", with the
                 sections Symptoms, Impact, Diagnose, Recover and Verify;
                 dashboard_url is a Grafana address (.../d/<uid>) whose uid
                 is one of the dashboards in deploy/grafana/dashboards under
                 --repo.

Prints one line per problem (file: alert: problem) and a summary; the exit
status is 1 when anything is wrong.`,
		Example: "  k2 ops alerts validate\n  k2 ops alerts validate --rules deploy/prometheus/rules/k2-alerts.yml --repo .",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				files = []string{filepath.Join(repo, alerts.DefaultRules)}
			}
			out := cmd.OutOrStdout()
			opts := alerts.Options{Files: files, Repo: repo}
			var pre []alerts.Problem
			switch p, err := findPromtool(promtool); {
			case err != nil && promtool != "":
				pre = append(pre, alerts.Problem{File: promtool, What: fmt.Sprintf("--promtool: %v", err)})
			case err != nil:
				fmt.Fprintln(out, "promtool not found on PATH: promtool check rules skipped (give --promtool)")
			default:
				opts.Promtool = p
			}
			r := alerts.Validate(cmd.Context(), opts)
			r.Problems = append(pre, r.Problems...)
			for _, p := range r.Problems {
				fmt.Fprintln(out, p)
			}
			checked := "syntax and completeness"
			if opts.Promtool != "" {
				checked = "syntax, promtool and completeness"
			}
			fmt.Fprintf(out, "%s, %s (%s): %s\n", plural(r.Files, "file"), plural(r.Alerts, "alert"), checked, plural(len(r.Problems), "problem"))
			if !r.OK() {
				return &exitError{1, fmt.Errorf("alert rules: %s", plural(len(r.Problems), "problem"))}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&files, "rules", nil, "rule file to check (repeatable; default: "+alerts.DefaultRules+" under --repo)")
	cmd.Flags().StringVar(&repo, "repo", ".", "repository root that runbook_url paths are relative to and whose deploy/grafana/dashboards dashboard_url must name")
	cmd.Flags().StringVar(&promtool, "promtool", "", "promtool to run (default: promtool on PATH, skipped when absent)")
	return cmd
}

// findPromtool resolves --promtool, or promtool on PATH when it is empty.
func findPromtool(flag string) (string, error) {
	if flag == "" {
		flag = "promtool"
	}
	return exec.LookPath(flag)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// exitCritical is check's exit status when a critical alert is firing,
// apart from 1 (the server could not be read) so a script can tell them
// apart.
const exitCritical = 2

func newAlertsCheckCmd() *cobra.Command {
	var (
		base, name string
		f          alerts.Filter
		watch      time.Duration
		timeout    time.Duration
		jsonOut    bool
	)
	cmd := &cobra.Command{
		Use:   "check --prometheus URL",
		Short: "List the alerts a Prometheus server holds, filtered; exit 2 when a critical one is firing",
		Long: `Reads the pending and firing alerts of a Prometheus server
(GET /api/v1/alerts), keeps those the filters select and prints them as a
table (name, state, severity, component, since, summary) or, with --json,
as a JSON array.

With --watch DURATION it asks again every DURATION until interrupted and
prints only when the answer changed (the first answer always, with its time;
with --json one array per line). A failed request is printed once and
watching goes on.

Exit status: 0; 2 when any selected alert is firing with severity critical
(under --watch: at the last answer); 1 when the server could not be read
(unreachable, not 200, not Prometheus's JSON).`,
		Example: "  k2 ops alerts check --prometheus http://localhost:9090\n" +
			"  k2 ops alerts check --prometheus http://prometheus:9090 --state firing --severity critical --json\n" +
			"  k2 ops alerts check --prometheus http://localhost:9090 --component ingestion --watch 30s",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(alerts.States, f.State) {
				return fmt.Errorf("--state %q: want one of %s", f.State, strings.Join(alerts.States, ", "))
			}
			if name != "" {
				re, err := regexp.Compile(name)
				if err != nil {
					return fmt.Errorf("--name: %w", err)
				}
				f.Name = re
			}
			if cmd.Flags().Changed("watch") && watch <= 0 {
				return fmt.Errorf("--watch %s: want a positive duration", watch)
			}
			client := &http.Client{Timeout: timeout}
			var selected []alerts.Alert
			poll := func(ctx context.Context) (string, error) {
				all, err := alerts.Fetch(ctx, client, base)
				if err != nil {
					return "", err
				}
				selected = f.Select(all)
				var b bytes.Buffer
				if jsonOut {
					err = json.NewEncoder(&b).Encode(selected)
				} else {
					err = alerts.WriteTable(&b, selected)
				}
				return b.String(), err
			}
			out := cmd.OutOrStdout()
			var lastErr error
			if watch > 0 {
				alerts.Watch(cmd.Context(), watch, poll, func(s string, err error) {
					lastErr = err
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "k2: %s: %v\n", time.Now().UTC().Format(time.RFC3339), err)
						return
					}
					if !jsonOut {
						fmt.Fprintf(out, "%s\n", time.Now().UTC().Format(time.RFC3339))
					}
					fmt.Fprint(out, s)
				})
			} else {
				s, err := poll(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprint(out, s)
			}
			if lastErr != nil {
				return lastErr
			}
			if n := alerts.CriticalFiring(selected); n > 0 {
				return &exitError{exitCritical, errors.New(plural(n, "critical alert") + " firing")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "prometheus", "", "the Prometheus server's URL, e.g. http://localhost:9090")
	cmd.MarkFlagRequired("prometheus")
	cmd.Flags().StringVar(&f.State, "state", "all", "firing, pending or all")
	cmd.Flags().StringVar(&f.Severity, "severity", "", "only alerts of this severity (critical, high, medium)")
	cmd.Flags().StringVar(&f.Component, "component", "", "only alerts of this component label")
	cmd.Flags().StringVar(&name, "name", "", "only alerts whose name matches this regular expression (anywhere; anchor with ^…$)")
	cmd.Flags().DurationVar(&watch, "watch", 0, "ask again every DURATION until interrupted, printing changes")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time limit of each request")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
