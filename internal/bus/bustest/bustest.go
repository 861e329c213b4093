// Package bustest gives tests an embedded Kafka installation (the one k2
// up runs: bus.StartLocal) with a producer, and reads topics back.
package bustest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/registry"
)

// Kafka is an embedded broker and registry with K2's topics, and a
// producer to them that lingers 1 ms.
type Kafka struct {
	*bus.Local
	Prod  *bus.Producer
	Admin *kadm.Client
}

// Start starts one for the test; middleware, if given, wraps the
// registry's handler (a test takes the registry down with it).
func Start(t testing.TB, middleware ...func(http.Handler) http.Handler) *Kafka {
	t.Helper()
	cfg := bus.LocalConfig{Dir: t.TempDir(), BrokerListen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0", Topology: bus.DefaultTopology()}
	if len(middleware) > 0 {
		cfg.Middleware = middleware[0]
	}
	l, err := bus.StartLocal(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	k := &Kafka{Local: l, Prod: Producer(t, l.Brokers(), "", l.Registry())}
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	k.Admin = kadm.NewClient(cl)
	return k
}

// Producer opens a producer that lingers 1 ms, closed when the test ends.
func Producer(t testing.TB, brokers []string, prefix string, reg *registry.Client) *bus.Producer {
	t.Helper()
	p, err := bus.NewProducer(bus.ProducerConfig{Brokers: brokers, Linger: time.Millisecond, TopicPrefix: prefix}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// Read consumes a topic from its start until n records arrived (30 s at
// most).
func Read(t testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d records", topic, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// ReadAll returns every record of a topic: as many as the end offsets of
// its partitions say it holds.
func (k *Kafka) ReadAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ends, err := k.Admin.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return Read(t, k.Brokers(), topic, int(n))
}

// Read consumes a topic of the installation until n records arrived.
func (k *Kafka) Read(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	return Read(t, k.Brokers(), topic, n)
}
