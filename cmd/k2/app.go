package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/stack"
)

// openLake opens the configured lake for a command that runs once.
func (a *app) openLake(ctx context.Context) (*lake.Lake, error) {
	return stack.OpenLake(ctx, a.cfg, nil, a.log)
}

// openQuery opens the lake and a query engine over it.
func (a *app) openQuery(ctx context.Context) (*lake.Lake, *query.Engine, error) {
	l, err := a.openLake(ctx)
	if err != nil {
		return nil, nil, err
	}
	e, err := stack.OpenQuery(l, a.cfg, nil, a.log)
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	return l, e, nil
}

// serve runs a long-running role until it is interrupted or fails: its
// stack serves /health and /metrics, and on a terminal it shows a status
// line. banner says where it serves; done, when set, prints a summary at
// the end.
func (a *app) serve(ctx context.Context, cmd *cobra.Command, role string, parts stack.Parts, banner func(*stack.Stack) string, done func(*stack.Stack)) error {
	if a.interactive && strings.EqualFold(a.cfg.Log.Format, "text") {
		parts.Status = os.Stderr
	}
	st, err := stack.Start(ctx, role, a.cfg, parts, a.log)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(cmd.OutOrStdout(), banner(st))
	err = st.Run(ctx)
	if done != nil {
		done(st)
	}
	return err
}

// where names what a stack serves and where, for banners.
func where(st *stack.Stack, role string) string {
	parts := []string{"K2 " + role}
	if b := st.Brokers(); len(b) > 0 {
		parts = append(parts, "kafka "+strings.Join(b, ","), "schema registry "+st.RegistryURL())
	}
	if addr := st.HTTPAddr(); addr != "" {
		parts = append(parts, "http://"+addr)
		if st.ServesAPI() {
			parts = append(parts, "dashboard http://"+addr+"/")
		}
	}
	return strings.Join(parts, " · ")
}

// withDuration stops a command after a while (0: until interrupted).
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
