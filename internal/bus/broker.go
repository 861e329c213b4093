package bus

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is the embedded Kafka-protocol broker: franz-go's kfake with its
// state on disk, so topics, records and consumer-group offsets survive a
// restart (and kill -9: its files live in the page cache). Ordinary Kafka
// clients and tools connect to it.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// StartBroker serves the broker on listen (host:port) with its data under dir.
func StartBroker(dir, listen string, log *slog.Logger) (*Broker, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("broker listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("broker listen address %q: bad port", listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		// The listener's address is what clients are told to connect to.
		return nil, fmt.Errorf("broker listen address %q: give the host clients reach, such as 127.0.0.1", listen)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("broker data dir: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.DataDir(dir),
		kfake.ClusterID("k2"),
		kfake.DefaultNumPartitions(6),
		// As Kafka's auto.create.topics.enable defaults to true: a client
		// that asks (the console producer, a Java or librdkafka producer)
		// gets a missing topic created with six partitions instead of
		// waiting for it until it times out. K2's own clients never ask:
		// they create their topics with their configs, and its producer
		// fails at once on a missing one.
		kfake.AllowAutoTopicCreation(),
		kfake.WithLogger(slogAdapter{log}),
	)
	if err != nil {
		return nil, fmt.Errorf("start broker on %s (data in %s): %w", listen, dir, err)
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0]}
	log.Info("broker listening", "addr", b.addr, "data_dir", dir)
	return b, nil
}

// Addr is the address clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, writing its state out.
func (b *Broker) Close() { b.cluster.Close() }

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		a.log.Error("broker: " + fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		a.log.Warn("broker: " + fmt.Sprintf(format, args...))
	}
}
