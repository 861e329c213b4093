package drill

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
)

// External names the services of their own an installation runs on: an
// Apache Kafka cluster, a PostgreSQL catalog, an S3 warehouse. The drills
// on a service run only when the installation names it, and when a
// ServiceControl command can kill and start it.
type External struct {
	Brokers string // Apache Kafka bootstrap brokers
	// Security is the cluster's TLS and SASL, password resolved: the
	// installation's processes get it as K2_* variables.
	Security config.KafkaSecurity
	Registry string // schema registry URL; empty: the drill's `k2 broker` serves one
	// Catalog is a postgres:// URL; Warehouse s3://bucket/prefix, with
	// S3Endpoint and S3Region (credentials from the AWS chain).
	Catalog, Warehouse   string
	S3Endpoint, S3Region string
	// ServiceControl is a command the drills call as `CMD VERB`, VERB one
	// of kafka-kill, kafka-start, postgres-kill, postgres-start, s3-kill,
	// s3-start: a kill is SIGKILL (a crash, the data kept); a start
	// returns once the service answers. scripts/test-services.sh is one;
	// on a host, a script over systemctl kill -s KILL / systemctl start.
	ServiceControl string
	// KafkaLogDir is the broker's log.dirs on this host (the checkpoint
	// drills corrupt files there; a single-broker cluster).
	KafkaLogDir string
}

// The services a drill may need.
const (
	svcKafka    = "kafka"
	svcPostgres = "postgres"
	svcS3       = "s3"
)

// uses reports whether the installation names the service.
func (x External) uses(svc string) bool {
	switch svc {
	case svcKafka:
		return x.Brokers != ""
	case svcPostgres:
		return strings.HasPrefix(x.Catalog, "postgres://") || strings.HasPrefix(x.Catalog, "postgresql://")
	case svcS3:
		return strings.HasPrefix(x.Warehouse, "s3://")
	}
	return false
}

// need returns an ErrSkip naming what is missing for a drill on svc.
func (e *Env) need(svc string, logDir bool) error {
	what := map[string]string{svcKafka: "no Apache Kafka named (--brokers)", svcPostgres: "no PostgreSQL catalog named (--catalog postgres://…)",
		svcS3: "no S3 warehouse named (--warehouse s3://…)"}
	switch {
	case !e.Ext.uses(svc):
		return fmt.Errorf("%w: %s", ErrSkip, what[svc])
	case e.Ext.ServiceControl == "":
		return fmt.Errorf("%w: no --service-control command to kill and start %s", ErrSkip, svc)
	case logDir && e.Ext.KafkaLogDir == "":
		return fmt.Errorf("%w: no --kafka-log-dir (the broker's log.dirs on this host)", ErrSkip)
	}
	return nil
}

// control runs the service-control command with verb and returns how
// long it took: for a start, the service's own start time.
func (e *Env) control(ctx context.Context, verb string) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", e.Ext.ServiceControl+` "$1"`, "service-control", verb)
	cmd.Dir = e.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	os.WriteFile(filepath.Join(e.Dir, "service-control.log"), append(readOr(filepath.Join(e.Dir, "service-control.log")),
		fmt.Appendf(nil, "--- %s %s (%s, %v)\n%s", start.UTC().Format(time.RFC3339Nano), verb, took.Round(time.Millisecond), err, out.String())...), 0o644)
	if err != nil {
		return took, fmt.Errorf("--service-control %s: %v: %s", verb, err, lastLine(out.String()))
	}
	e.Logf("service control: %s (%s)", verb, took.Round(time.Millisecond))
	return took, nil
}

func readOr(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// External starts an installation on the external services named (the
// others embedded): `k2 broker` (the schema registry when none is named,
// and the broker when no Kafka is), and `k2 sink`, with topics and a sink
// group of the drill's own so that a shared cluster's other users are
// not touched.
func (e *Env) External(ctx context.Context) (*Install, error) {
	in, err := e.newInstall()
	if err != nil {
		return nil, err
	}
	x := e.Ext
	var id [4]byte
	rand.Read(id[:])
	in.TopicPrefix = "drill-" + filepath.Base(e.Dir) + "-" + hex.EncodeToString(id[:]) + "."
	// The stream's ids are new to a catalog that outlives the drill.
	in.RunID = hex.EncodeToString(id[:3])
	in.SinkGroup = in.TopicPrefix + "sink"
	in.Settings = append(in.Settings, "K2_TOPIC_PREFIX="+in.TopicPrefix, "K2_SINK_GROUP="+in.SinkGroup)
	if x.uses(svcPostgres) {
		in.Lake.Catalog = x.Catalog
		in.Settings = append(in.Settings, "K2_CATALOG="+x.Catalog)
	}
	if x.uses(svcS3) {
		in.Lake.Warehouse = x.Warehouse
		in.Lake.S3 = lake.S3Options{Endpoint: x.S3Endpoint, Region: x.S3Region}
		in.Settings = append(in.Settings, "K2_WAREHOUSE="+x.Warehouse, "K2_S3_ENDPOINT="+x.S3Endpoint, "K2_S3_REGION="+x.S3Region)
	}
	if in.Broker, err = e.startRole(ctx, in, "broker"); err != nil {
		return nil, err
	}
	if x.uses(svcKafka) {
		in.Brokers = x.Brokers
		if in.Security, err = bus.NewSecurity(x.Security); err != nil {
			return nil, err
		}
		in.Settings = append(append(in.Settings, "K2_BROKERS="+x.Brokers), x.Security.Env()...)
		// The drill's topics, created on the cluster (which may not
		// create topics on first use).
		topo := bus.DefaultTopology()
		topo.Prefix = in.TopicPrefix
		if err := bus.EnsureTopics(ctx, strings.Split(x.Brokers, ","), in.Security, topo); err != nil {
			return nil, fmt.Errorf("create the drill's topics on %s: %w", x.Brokers, err)
		}
		// The sink subscribes to the topics its first metadata lists (it
		// looks again only every few minutes): all of them, led.
		want := len(topo.Specs())
		if _, err := WaitRecovered(ctx, 30*time.Second, func(ctx context.Context) error { return in.topicsLed(ctx, want) }); err != nil {
			return nil, fmt.Errorf("the drill's topics on %s: %w", x.Brokers, err)
		}
	}
	if x.Registry != "" {
		in.Registry = x.Registry
		in.Settings = append(in.Settings, "K2_REGISTRY="+x.Registry)
	}
	if _, err := in.lake(ctx); err != nil {
		return nil, err
	}
	if in.Sink, err = e.startRole(ctx, in, "sink", sinkFlags...); err != nil {
		return nil, err
	}
	return in, nil
}

// topicsLed checks that the cluster lists want topics of the
// installation, each partition with a leader.
func (in *Install) topicsLed(ctx context.Context, want int) error {
	cl, err := bus.NewClient(strings.Split(in.Brokers, ","), in.Security, kgo.ClientID("k2-drill"))
	if err != nil {
		return err
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return bus.TopicsLed(cctx, kadm.NewClient(cl), in.TopicPrefix, want)
}

// kafkaServes checks that the cluster serves the installation: every
// partition of its topics has a leader that answers, and the sink group's
// coordinator has loaded the group. A broker answers requests before
// that (after a crash the controller fences and unfences it, moving its
// partitions' leadership once more): K2's recovery is measured from here.
func (in *Install) kafkaServes(ctx context.Context) error {
	cl, err := bus.NewClient(strings.Split(in.Brokers, ","), in.Security, kgo.ClientID("k2-drill"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(cctx)
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	var names []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, in.TopicPrefix) {
			names = append(names, t)
		}
	}
	ends, err := adm.ListEndOffsets(cctx, names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: end offsets: %w", err)
	}
	groups, err := adm.DescribeGroups(cctx, in.SinkGroup)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: group %s: %w", in.SinkGroup, err)
	}
	return nil
}

// startKafka starts the broker and waits until it serves the
// installation; it returns when the broker answered (its own start) and
// how long it then took to serve.
func (e *Env) startKafka(ctx context.Context, in *Install) (answered, serving time.Duration, back time.Time, err error) {
	if answered, err = e.control(ctx, "kafka-start"); err != nil {
		return
	}
	t0 := time.Now()
	if back, err = WaitRecovered(ctx, recoverTimeout, in.kafkaServes); err != nil {
		err = fmt.Errorf("Apache Kafka answers but does not serve the installation: %w", err)
		return
	}
	return answered, back.Sub(t0), back, nil
}
