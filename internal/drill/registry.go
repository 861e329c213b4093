package drill

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// registryDrill kills the schema registry mid-stream. In K2's embedded
// installation the registry is served by `k2 broker` (and `k2 up`) and
// keeps its schemas in an append-only log under the data directory, so
// it dies and comes back with the broker. The drill registers a subject
// the moment before the kill (the log's newest entry must survive
// SIGKILL with its id), kills the sink too and starts it again while the
// registry is still down (a sink with no cached schema must wait for it,
// not drop records or exit), and only then restarts the registry.
func registryDrill(ctx context.Context, e *Env) ([]Row, error) {
	in, err := e.Distributed(ctx, false, nil)
	if err != nil {
		return nil, err
	}
	t, err := warm(ctx, e, in, "registry")
	if err != nil {
		return nil, err
	}
	reg, err := registry.NewClient(in.Registry)
	if err != nil {
		return nil, err
	}
	// Every subject's id before, and a subject new to the registry
	// registered last, the moment before the kill: the log's newest entry.
	fresh := "drill.registry-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-value"
	ids := map[string]uint32{}
	texts := map[string]string{fresh: record.Trade.Avro.Text}
	for _, s := range bus.Schemas() {
		texts[s.Subject] = s.Text
	}
	subjects, err := reg.Subjects(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range append(subjects, fresh) {
		if ids[s], err = reg.Register(ctx, s, texts[s]); err != nil {
			return nil, fmt.Errorf("register %s: %w", s, err)
		}
	}
	row := Row{Fault: "kill -9 the registry (k2 broker) right after a registration; kill -9 the sink and start it while the registry is down", Target: ProcessRTO}
	row.InjectedAt = time.Now()
	in.Broker.Kill()
	row.DetectedAt = WaitDetected(ctx, 5*time.Second, in.Ready)
	in.Sink.Kill()
	if err := e.Restart(ctx, in.Sink); err != nil {
		return nil, fmt.Errorf("the sink did not start while the registry was down: %w", err)
	}
	var failures []string
	// The sink stands, reporting the registry and Kafka failing, for two
	// seconds of outage.
	sleep(ctx, 2*time.Second)
	if !in.Sink.Running() {
		failures = append(failures, "the sink exited while the registry was down: "+in.Sink.LogTail(2))
		if err := e.Restart(ctx, in.Sink); err != nil {
			return nil, err
		}
	} else if err := in.Sink.Ready(ctx); err == nil {
		failures = append(failures, "the sink reported ready while the registry was down")
	}
	restart := time.Now()
	if err := e.Restart(ctx, in.Broker); err != nil {
		return nil, err
	}
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(restart)
	}
	// The same ids for the same schemas, the last registration included.
	for s, want := range ids {
		got, err := reg.Register(ctx, s, texts[s])
		if err != nil || got != want {
			failures = append(failures, fmt.Sprintf("subject %s: id %d after the restart (%v), %d before", s, got, err, want))
		}
	}
	row.Notes = fmt.Sprintf("%d subjects kept their ids, %s registered last", len(ids), fresh)
	return finish(ctx, e, in, t, processRunbook, row, failures)
}
