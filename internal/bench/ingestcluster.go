package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/stack"
)

// cluster is the Kafka a benchmark run measures: nil kafka is an embedded
// broker per phase; otherwise an external cluster, whose topics the run
// names under a prefix of its own so that runs never meet.
type cluster struct {
	kafka  *config.Kafka // resolved: brokers, security, registry
	sec    bus.Security
	adm    *kadm.Client
	prefix string // before every topic and the sink groups: <--topic-prefix>k2-bench-<id>-
	about  string // what was measured, for the report
	// ownRegistry: the schema registry is served in this process.
	ownRegistry bool
	closers     []func()
}

// openCluster connects to o.Kafka, when set, and serves a schema registry
// under root where it names none (the registry is not what is measured:
// the producer registers once and the sink caches each schema).
func openCluster(ctx context.Context, o IngestOptions, root string) (c *cluster, err error) {
	if o.Kafka == nil {
		return &cluster{about: "embedded broker (in this process)"}, nil
	}
	k := *o.Kafka
	c = &cluster{kafka: &k}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	brokers := k.BrokerList()
	if len(brokers) == 0 {
		return c, errors.New("--brokers is empty: name the Kafka cluster to measure, e.g. 127.0.0.1:9092")
	}
	if c.sec, err = bus.NewSecurity(k.Security); err != nil {
		return c, err
	}
	if err = bus.Check(ctx, brokers, c.sec); err != nil {
		return c, err
	}
	cl, err := bus.NewClient(brokers, c.sec, kgo.ClientID("k2-bench-admin"))
	if err != nil {
		return c, err
	}
	c.closers = append(c.closers, cl.Close)
	c.adm = kadm.NewClient(cl)
	if c.about, err = describeKafka(ctx, c.adm, brokers); err != nil {
		return c, err
	}
	var id [4]byte
	rand.Read(id[:])
	c.prefix = k.TopicPrefix + "k2-bench-" + hex.EncodeToString(id[:]) + "-"
	if k.Registry == "" {
		url, stop, err := serveRegistry(filepath.Join(root, "registry"))
		if err != nil {
			return c, err
		}
		c.closers = append(c.closers, stop)
		k.Registry, k.RegistryTLS, k.RegistryAuth = url, config.TLSFiles{}, config.Credentials{}
		c.ownRegistry = true
		c.about += " · schema registry in this process"
	} else {
		c.about += " · schema registry " + k.Registry
	}
	return c, nil
}

// describeKafka names the cluster: Apache Kafka's release whose API
// versions its brokers serve exactly (kversion's guess), or what the guess
// says of a cluster that matches no release.
func describeKafka(ctx context.Context, adm *kadm.Client, brokers []string) (string, error) {
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		return "", fmt.Errorf("kafka %s: api versions: %w", strings.Join(brokers, ","), err)
	}
	guesses := map[string]bool{}
	var guess string
	n := 0
	vs.Each(func(v kadm.BrokerApiVersions) {
		if v.Err == nil {
			n++
			guess = v.VersionGuess()
			guesses[guess] = true
		}
	})
	if n == 0 {
		return "", fmt.Errorf("kafka %s: no broker answered its api versions", strings.Join(brokers, ","))
	}
	name := "Kafka-protocol cluster (API versions: " + guess + ")"
	if m := releaseGuess.FindStringSubmatch(guess); m != nil && len(guesses) == 1 {
		name = "Apache Kafka " + m[1]
	} else if len(guesses) > 1 {
		name = "Kafka-protocol cluster (brokers of several versions)"
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s at %s (%d broker%s)", name, strings.Join(brokers, ","), n, plural), nil
}

// releaseGuess is kversion's guess when a broker serves exactly one
// release's API versions: "v4.4".
var releaseGuess = regexp.MustCompile(`^v(\d+\.\d+(?:\.\d+)?)$`)

// serveRegistry serves a schema registry on a free local port.
func serveRegistry(dir string) (url string, stop func(), err error) {
	r, err := registry.Open(dir)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return "", nil, fmt.Errorf("schema registry: %w", err)
	}
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close(); r.Close() }, nil
}

// phase gives one run of the benchmark its configuration: its own
// embedded broker, or its own topics and sink group on the cluster, so
// that each run starts from empty topics.
func (c *cluster) phase(ctx context.Context, cfg *config.Config, name string) error {
	if c.kafka == nil {
		cfg.Embedded = config.Embedded{BrokerListen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0"}
		cfg.Sink.Group = "k2-bench"
		return nil
	}
	partitions := cfg.Kafka.Partitions
	cfg.Kafka = *c.kafka
	cfg.Kafka.Partitions = partitions
	cfg.Kafka.TopicPrefix = c.prefix + name + "."
	cfg.Sink.Group = cfg.Kafka.TopicPrefix + "sink"
	// Only the synthetic market's trade topic and its dead letters: the
	// benchmark uses no other, and a shared cluster is spared a hundred
	// partitions a run.
	topo := stack.Topology(cfg.Kafka)
	want := 0
	for _, s := range topo.Specs() {
		if s.Exchange != synth.Code || s.DataType != record.Trade.DataType {
			continue
		}
		want++
		resp, err := c.adm.CreateTopic(ctx, s.Partitions, topo.ReplicationFactor, s.Configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create the benchmark's topic %s on %s: %w", s.Name, cfg.Kafka.Brokers, err)
		}
	}
	// The sink subscribes to the topics its first metadata lists: wait
	// until the cluster lists them, each partition led.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := bus.TopicsLed(ctx, c.adm, cfg.Kafka.TopicPrefix, want)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the benchmark's topics on %s: %w", cfg.Kafka.Brokers, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dropTopics deletes the run's topics and sink groups from the cluster.
func (c *cluster) dropTopics(ctx context.Context) error {
	if c.kafka == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topics, err := c.adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("delete the benchmark's topics: %w", err)
	}
	var names []string
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, c.prefix) {
			names = append(names, t)
		}
	}
	var errs []error
	if len(names) > 0 {
		resp, err := c.adm.DeleteTopics(ctx, names...)
		if err != nil {
			return fmt.Errorf("delete the benchmark's topics %s*: %w", c.prefix, err)
		}
		for _, r := range resp {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
			}
		}
	}
	groups, err := c.adm.ListGroups(ctx)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list the benchmark's sink groups: %w", err))...)
	}
	var mine []string
	for _, g := range groups.Groups() {
		if strings.HasPrefix(g, c.prefix) {
			mine = append(mine, g)
		}
	}
	if len(mine) > 0 {
		resp, err := c.adm.DeleteGroups(ctx, mine...)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete the benchmark's sink groups: %w", err))
		}
		for _, r := range resp {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("delete group %s: %w", r.Group, r.Err))
			}
		}
	}
	return errors.Join(errs...)
}

// inProcess says what the benchmark's process holds, which its memory
// and CPU figures count.
func (c *cluster) inProcess() string {
	if c.kafka == nil {
		return "broker, registry, producer and sink in this process"
	}
	if c.ownRegistry {
		return "producer, sink and registry in this process; the broker's own not counted"
	}
	return "producer and sink in this process; the broker's own not counted"
}

func (c *cluster) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}
