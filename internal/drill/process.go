package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The process drills: each kills a role with SIGKILL while trades flow,
// restarts it on its command line and data (what systemd's Restart=always
// or compose's restart: unless-stopped do), and measures the time from
// the restart to the installation healthy and storing records again.

const processRunbook = "docs/operations/runbooks/process-restart.md"

// trafficRate is the drills' steady stream, trades a second.
const trafficRate = 400

func init() {
	register(
		Drill{Name: "broker-kill", Family: "process", Runbook: processRunbook,
			Summary: "kill -9 `k2 broker` (the embedded Kafka broker) while trades flow; restart it on its data directory",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				in, err := e.Distributed(ctx, false, nil)
				if err != nil {
					return nil, err
				}
				return processDrill(ctx, e, in, "kill -9 k2 broker", in.Broker)
			}},
		Drill{Name: "registry-kill", Family: "process", Runbook: processRunbook,
			Summary: "kill -9 the schema registry (served by `k2 broker`) and the sink, start the sink while the registry is down, then the registry",
			Run:     registryDrill},
		Drill{Name: "sink-kill", Family: "process", Runbook: processRunbook,
			Summary: "kill -9 `k2 sink` while trades flow; restart it",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				in, err := e.Distributed(ctx, false, nil)
				if err != nil {
					return nil, err
				}
				return processDrill(ctx, e, in, "kill -9 k2 sink", in.Sink)
			}},
		Drill{Name: "api-kill", Family: "process", Runbook: processRunbook,
			Summary: "kill -9 `k2 api` while trades flow and it answers queries; restart it",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				in, err := e.Distributed(ctx, true, nil)
				if err != nil {
					return nil, err
				}
				return processDrill(ctx, e, in, "kill -9 k2 api", in.API, in.apiAnswers)
			}},
		Drill{Name: "up-kill", Family: "process", Runbook: processRunbook,
			Summary: "kill -9 `k2 up` (broker, registry, sink, API in one process) while trades flow; restart it",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				in, err := e.Up(ctx)
				if err != nil {
					return nil, err
				}
				return processDrill(ctx, e, in, "kill -9 k2 up", in.Up, in.apiAnswers)
			}},
	)
}

// recoverTimeout is how long a drill waits for recovery before it calls
// it failed: well past the RTO, so a slow recovery is measured, not cut.
const recoverTimeout = 60 * time.Second

// warm starts the traffic and waits until the sink stores it.
func warm(ctx context.Context, e *Env, in *Install, run string) (*Traffic, error) {
	t, err := e.StartTraffic(ctx, in, run, trafficRate)
	if err != nil {
		return nil, err
	}
	if _, err := WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		return nil, fmt.Errorf("before the fault: %w", err)
	}
	// A second of steady flow, so the fault lands mid-stream.
	sleep(ctx, time.Second)
	return t, nil
}

// processDrill kills victim with SIGKILL mid-stream, restarts it and
// measures the recovery: every process ready, the sink committing again,
// and any extra checks (the API answering) passing.
func processDrill(ctx context.Context, e *Env, in *Install, fault string, victim *Proc, extra ...func(context.Context) error) ([]Row, error) {
	t, err := warm(ctx, e, in, victim.Name)
	if err != nil {
		return nil, err
	}
	row := Row{Fault: fault, Target: ProcessRTO}
	row.InjectedAt = time.Now()
	victim.Kill()
	e.Logf("killed %s with %d trades sent", victim.Name, t.Sent())
	row.DetectedAt = WaitDetected(ctx, 5*time.Second, in.Ready)
	restart := time.Now()
	if err := e.Restart(ctx, victim); err != nil {
		return nil, err
	}
	checks := append([]func(context.Context) error{in.Ready, in.Consuming(ctx)}, extra...)
	var failures []string
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, checks...); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(restart)
	}
	e.Logf("%s restarted; recovered in %s", victim.Name, row.RTO)
	return finish(ctx, e, in, t, processRunbook, row, failures)
}

// finish lets the stream run on a second, stops it, runs the runbook's
// verify block and counts the lake.
func finish(ctx context.Context, e *Env, in *Install, t *Traffic, runbook string, row Row, failures []string) ([]Row, error) {
	sleep(ctx, time.Second)
	produced, err := t.Stop(ctx)
	if err != nil {
		failures = append(failures, "traffic: "+err.Error())
	}
	c, err := in.WaitStored(ctx, t, produced, 20*time.Second)
	if err != nil {
		return nil, err
	}
	row.fill(c)
	if _, err := e.RunRunbook(ctx, runbook, StepVerify, in); err != nil {
		failures = append(failures, err.Error())
	}
	if err := in.Ready(ctx); err != nil {
		failures = append(failures, "at the end: "+err.Error())
	}
	row.judge(failures...)
	return []Row{row}, nil
}

// apiAnswers checks that the API answers a query from the lake: the
// symbols with trades, one of the drill's among them.
func (in *Install) apiAnswers(ctx context.Context) error {
	p := in.API
	if p == nil {
		p = in.Up
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTP+"/v1/symbols", nil)
	if err != nil {
		return err
	}
	resp, err := probe.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/symbols: %s", resp.Status)
	}
	var body struct {
		Data []struct {
			Symbol string `json:"symbol"`
			Trades int64  `json:"trades"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET /v1/symbols: %w", err)
	}
	for _, s := range body.Data {
		if s.Symbol == trafficSymbols[0] && s.Trades > 0 {
			return nil
		}
	}
	return fmt.Errorf("GET /v1/symbols: no trades of %s yet", trafficSymbols[0])
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
