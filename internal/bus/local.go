package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/registry"
)

// LocalConfig places an embedded Kafka installation.
type LocalConfig struct {
	Dir            string // state: Dir/kafka, Dir/registry
	BrokerListen   string // host:port ("127.0.0.1:0": any free port)
	RegistryListen string
	Topology       Topology
	Logger         *slog.Logger
	// Middleware, when set, wraps the registry's HTTP handler (tests use
	// it to take the registry down).
	Middleware func(http.Handler) http.Handler
}

// Local is a Kafka installation in this process: the kfake broker and the
// schema registry, serving on local addresses, with K2's topics created
// and its schemas registered. It is what k2 up and k2 broker serve, and
// what tests and benchmarks run against.
type Local struct {
	broker *Broker
	reg    *registry.Registry
	srv    *http.Server
	url    string
	client *registry.Client
	errc   chan error
}

// StartLocal starts the broker and the registry and prepares them.
func StartLocal(ctx context.Context, cfg LocalConfig) (l *Local, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l = &Local{errc: make(chan error, 1)}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.broker, err = StartBroker(filepath.Join(cfg.Dir, "kafka"), cfg.BrokerListen, cfg.Logger); err != nil {
		return l, err
	}
	if l.reg, err = registry.Open(filepath.Join(cfg.Dir, "registry"), registry.WithLogger(cfg.Logger)); err != nil {
		return l, err
	}
	ln, err := net.Listen("tcp", cfg.RegistryListen)
	if err != nil {
		return l, fmt.Errorf("schema registry on %s: %w", cfg.RegistryListen, err)
	}
	var h http.Handler = l.reg.Handler()
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}
	l.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	l.url = "http://" + ln.Addr().String()
	go func() {
		if err := l.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			l.errc <- fmt.Errorf("schema registry on %s: %w", ln.Addr(), err)
		}
	}()
	cfg.Logger.Info("schema registry listening", "addr", ln.Addr().String())
	if l.client, err = registry.NewClient(l.url); err != nil {
		return l, err
	}
	return l, Prepare(ctx, l.Brokers(), Security{}, cfg.Topology, l.client)
}

// Brokers is the broker's address.
func (l *Local) Brokers() []string { return []string{l.broker.Addr()} }

// RegistryURL is the registry's address.
func (l *Local) RegistryURL() string { return l.url }

// Registry is a client of the registry.
func (l *Local) Registry() *registry.Client { return l.client }

// Err delivers the registry server's failure, should it stop serving.
func (l *Local) Err() <-chan error { return l.errc }

// Close stops the registry and the broker, writing the broker's state out.
func (l *Local) Close() {
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l.srv.Shutdown(ctx)
		cancel()
	}
	if l.reg != nil {
		l.reg.Close()
	}
	if l.broker != nil {
		l.broker.Close()
	}
}

// Prepare makes a cluster ready for K2: it creates the topics that are
// missing and registers K2's schemas, so an incompatible change is refused
// before any data moves.
func Prepare(ctx context.Context, brokers []string, sec Security, topo Topology, reg *registry.Client) error {
	if err := EnsureTopics(ctx, brokers, sec, topo); err != nil {
		return err
	}
	for _, sc := range Schemas(topo) {
		if _, err := reg.Register(ctx, sc.Subject, sc.Text); err != nil {
			return err
		}
	}
	return nil
}

// EnsureTopics creates K2's topics that are missing on the cluster.
func EnsureTopics(ctx context.Context, brokers []string, sec Security, topo Topology) error {
	cl, err := NewClient(brokers, sec, kgo.ClientID("k2-admin"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err = CreateTopics(ctx, adm, topo); err != nil || topo.SegmentBytes <= 0 {
		return err
	}
	// Topics made by an earlier K2 get the segment size too.
	v := strconv.FormatInt(topo.SegmentBytes, 10)
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: &v}}, topo.StreamTopics()...)
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				return fmt.Errorf("set segment.bytes of %s: %w", r.Name, r.Err)
			}
		}
	}
	return err
}
