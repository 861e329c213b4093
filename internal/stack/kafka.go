package stack

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
)

// Topology is the topics the configuration asks for.
func Topology(k config.Kafka) bus.Topology {
	t := bus.DefaultTopology()
	t.Default = int32(k.Partitions)
	t.Prefix = k.TopicPrefix
	t.Partitions, _ = k.PartitionsByExchange() // checked when the config was resolved
	return t
}

// connectKafka starts the embedded installation or connects to the
// configured cluster; either way the parts get its addresses explicitly.
func (st *Stack) connectKafka(ctx context.Context) error {
	if st.parts.Embedded {
		topo := Topology(st.cfg.Kafka)
		topo.SegmentBytes = embeddedSegmentBytes
		l, err := bus.StartLocal(ctx, bus.LocalConfig{
			Dir: st.cfg.DataDir, BrokerListen: st.cfg.Embedded.BrokerListen, RegistryListen: st.cfg.Embedded.RegistryListen,
			Topology: topo, Logger: st.log,
		})
		if err != nil {
			return err
		}
		st.onClose(l.Close)
		st.local, st.brokers, st.regURL, st.reg = l, l.Brokers(), l.RegistryURL(), l.Registry()
		if err := st.watchTopics(); err != nil {
			return err
		}
		if st.cfg.Embedded.BrokerKeep > 0 {
			if st.trim, err = st.newTrimmer(); err != nil {
				return err
			}
		}
	} else {
		st.brokers = st.cfg.Kafka.BrokerList()
		if len(st.brokers) == 0 {
			return fmt.Errorf("--brokers is empty: name the Kafka cluster, e.g. %s", config.LocalBroker)
		}
		st.regURL = st.cfg.Kafka.Registry
		var err error
		if st.sec, err = bus.NewSecurity(st.cfg.Kafka.Security); err != nil {
			return err
		}
		// A refused password or certificate stops the process here, in a
		// line, rather than in the clients' retries.
		if err := bus.Check(ctx, st.brokers, st.sec); err != nil {
			return err
		}
		if st.reg, err = bus.RegistryClient(st.cfg.Kafka); err != nil {
			return err
		}
		// The sink watches the cluster it reads, so KafkaBrokerDown
		// (no end offset reported by anyone) also covers a cluster of
		// one's own.
		if st.parts.Sink {
			if err := st.watchTopics(); err != nil {
				return err
			}
		}
	}
	st.health.Add("kafka", st.checkKafka)
	st.health.Add("schema_registry", func(ctx context.Context) error {
		_, err := st.reg.Subjects(ctx)
		return err
	})
	return nil
}

// watchTopics exports the end offsets of K2's topics at each scrape.
func (st *Stack) watchTopics() error {
	tc, err := newTopicCollector(st.brokers, st.sec, st.cfg.Kafka.TopicPrefix)
	if err != nil {
		return err
	}
	st.onClose(tc.close)
	st.metrics.MustRegister(tc)
	return nil
}

func (st *Stack) localErr() <-chan error {
	if st.local == nil {
		return nil
	}
	return st.local.Err()
}

// checkKafka asks the cluster for its brokers.
func (st *Stack) checkKafka(ctx context.Context) error {
	cl, err := bus.NewClient(st.brokers, st.sec, kgo.ClientID("k2-health"))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(st.brokers, ","), err)
	}
	return nil
}

// Producer opens a producer to the stack's cluster, its metrics labelled
// with clientID; exchanges, when given, are the only ones whose topics
// its metrics start with. The stack closes it, waiting at most a second
// for what is queued.
func (st *Stack) Producer(clientID string, exchanges ...string) (*bus.Producer, error) {
	p, err := bus.NewProducer(bus.ProducerConfig{
		Brokers: st.brokers, Security: st.sec, ClientID: clientID, TopicPrefix: st.cfg.Kafka.TopicPrefix, Logger: st.log,
		Registerer: st.metrics, Exchanges: exchanges,
	}, st.reg)
	if err != nil {
		return nil, err
	}
	st.onClose(func() { closeProducer(p, time.Now().Add(time.Second), st.log) })
	return p, nil
}

// closeProducer closes p, waiting until deadline for the broker; it
// reports what was left undelivered.
func closeProducer(p *bus.Producer, deadline time.Time, log interface {
	Error(string, ...any)
}) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	queued, err := p.Close(ctx)
	if queued > 0 {
		err = fmt.Errorf("%d records not delivered to Kafka: %v", queued, err)
		log.Error("stopped with records not delivered", "error", err)
		return err
	}
	return err
}
