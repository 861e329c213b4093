package drill

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// The drills on external services: each kills a service the installation
// runs on (Apache Kafka's JVM, PostgreSQL, the S3 server) with SIGKILL
// while trades flow, keeps it down a few seconds, starts it with the
// service-control command, and measures K2's recovery from the moment the
// service answers again. The service's own start time is reported beside
// it: it is the service's, not K2's.

const (
	brokerLossRunbook  = "docs/operations/runbooks/broker-loss.md"
	catalogDownRunbook = "docs/operations/runbooks/catalog-database-down.md"
	objectStoreRunbook = "docs/operations/runbooks/object-store-loss.md"
)

// serviceDown is how long a drill keeps a killed service down while the
// traffic goes on: long enough for the sink to fail a commit.
const serviceDown = 4 * time.Second

func init() {
	register(
		Drill{Name: "kafka-kill", Family: "external", Runbook: brokerLossRunbook,
			Summary: "kill -9 Apache Kafka's broker JVM while trades flow; start it on its data",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				return serviceDrill(ctx, e, svcKafka, "Apache Kafka", brokerLossRunbook)
			}},
		Drill{Name: "postgres-kill", Family: "external", Runbook: catalogDownRunbook,
			Summary: "kill -9 the PostgreSQL catalog's server while trades flow; start it (crash recovery)",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				return serviceDrill(ctx, e, svcPostgres, "PostgreSQL", catalogDownRunbook)
			}},
		Drill{Name: "s3-kill", Family: "external", Runbook: objectStoreRunbook,
			Summary: "kill -9 the S3 server of the warehouse while trades flow; start it",
			Run: func(ctx context.Context, e *Env) ([]Row, error) {
				return serviceDrill(ctx, e, svcS3, "the S3 server", objectStoreRunbook)
			}},
	)
}

// serviceDrill kills svc mid-stream, holds it down for serviceDown, starts
// it and measures K2's recovery from when it answers: every process ready
// and the sink committing again. While the catalog or the object store is
// down the sink must say so in its log (a failed commit, retried).
func serviceDrill(ctx context.Context, e *Env, svc, name, runbook string) ([]Row, error) {
	if err := e.need(svc, false); err != nil {
		return nil, err
	}
	in, err := e.External(ctx)
	if err != nil {
		return nil, err
	}
	t, err := warm(ctx, e, in, svc)
	if err != nil {
		return nil, err
	}
	row := Row{Fault: "kill -9 " + name, Target: ProcessRTO}
	failedBefore, writeFailedBefore := in.Sink.logCount(commitFailed), in.Sink.logCount(writeFailed)
	row.InjectedAt = time.Now()
	if _, err := e.control(ctx, svc+"-kill"); err != nil {
		return nil, err
	}
	e.Logf("killed %s with %d trades sent", name, t.Sent())
	// K2 shows it: /ready fails (the kafka check, the lake's catalog
	// check) or, for the object store, which /ready does not reach, the
	// sink's next commit fails.
	row.DetectedAt = WaitDetected(ctx, serviceDown+10*time.Second, func(ctx context.Context) error {
		if err := in.Ready(ctx); err != nil {
			return err
		}
		if in.Sink.logCount(commitFailed) > failedBefore || in.Sink.logCount(writeFailed) > writeFailedBefore {
			return fmt.Errorf("commit failed")
		}
		return nil
	})
	sleep(ctx, time.Until(row.InjectedAt.Add(serviceDown)))
	var failures []string
	var back time.Time
	if svc == svcKafka {
		answered, serving, b, err := e.startKafka(ctx, in)
		if err != nil {
			return nil, err
		}
		back = b
		row.Notes += kafkaStartNote(answered, serving)
	} else {
		took, err := e.control(ctx, svc+"-start")
		if err != nil {
			return nil, err
		}
		back = time.Now()
		row.Notes += fmt.Sprintf("%s started in %s (its own start, not counted in the RTO)", name, took.Round(100*time.Millisecond))
	}
	if row.RecoveredAt, err = WaitRecovered(ctx, recoverTimeout, in.Ready, in.Consuming(ctx)); err != nil {
		failures = append(failures, err.Error())
	} else {
		row.RTO = row.RecoveredAt.Sub(back)
	}
	if svc != svcKafka {
		// A catalog or object store away fails the sink's commits; it
		// must say so, and pause and retry rather than drop the batch.
		// The line may come after the service is back: the S3 client
		// retries a request for seconds before it gives up.
		if in.Sink.logCount(commitFailed) == failedBefore {
			failures = append(failures, fmt.Sprintf("the sink's log has no %q line for the time %s was down", commitFailed, name))
		} else {
			row.Notes = "sink: " + clip(in.Sink.lastLine(commitFailed), 160) + "; " + row.Notes
		}
	}
	e.Logf("%s back; K2 recovered in %s", name, row.RTO)
	return finish(ctx, e, in, t, runbook, row, failures)
}

// kafkaStartNote says how long Apache Kafka took to answer, then to
// serve: its own start, before K2's recovery is measured.
func kafkaStartNote(answered, serving time.Duration) string {
	return fmt.Sprintf("Apache Kafka answered %s after its start and served the partitions and the group %s later (its own start, not counted in the RTO)",
		answered.Round(100*time.Millisecond), serving.Round(100*time.Millisecond))
}

// commitFailed is what the sink logs when a lake commit fails, and
// writeFailed what the lake's writer logs first.
const (
	commitFailed = "lake commit failed"
	writeFailed  = "Iceberg transaction failed"
)

// logCount is how many lines of the process's log hold s.
func (p *Proc) logCount(s string) int {
	b, _ := os.ReadFile(p.log)
	return strings.Count(string(b), s)
}

// lastLine is the last line of the process's log holding s.
func (p *Proc) lastLine(s string) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// clip shortens s to n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
