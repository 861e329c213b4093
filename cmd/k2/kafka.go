package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/resilience"
	"github.com/k2-market-data/k2/internal/sink"
)

// admin opens a Kafka admin client on the configured brokers.
func (a *app) admin() (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.cfg.BrokerList()...), kgo.ClientID("k2-admin"))
	if err != nil {
		return nil, nil, fmt.Errorf("kafka %v: %w", a.cfg.BrokerList(), err)
	}
	return kadm.NewClient(cl), cl, nil
}

func (a *app) topology() bus.Topology {
	t := bus.DefaultTopology()
	t.Default = int32(a.cfg.Partitions)
	t.Prefix = a.cfg.TopicPrefix
	t.Partitions, _ = a.cfg.PartitionsByExchange() // checked when the config was resolved
	return t
}

func newTopicsCmd(a *app) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{Use: "topics", Short: "Create, list and describe K2's Kafka topics"}
	cmd.PersistentFlags().BoolVar(&jsonOut, "json", false, "print JSON")
	create := &cobra.Command{
		Use:   "create",
		Short: "Create every market.{asset_class}.{data_type}.{exchange} topic and its .dlq topic that is missing",
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, cl, err := a.admin()
			if err != nil {
				return err
			}
			defer cl.Close()
			res, err := bus.CreateTopics(cmd.Context(), adm, a.topology())
			if jsonOut {
				json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			} else {
				created := 0
				for _, r := range res {
					if r.Created {
						created++
						fmt.Fprintf(cmd.OutOrStdout(), "created %s (%d partitions)\n", r.Topic, r.Partitions)
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d topics created, %d already existed\n", created, len(res)-created)
			}
			return err
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "K2's topics with partitions and record counts",
		RunE: func(cmd *cobra.Command, _ []string) error { return a.describeTopics(cmd, jsonOut, false, nil) },
	}
	describe := &cobra.Command{
		Use: "describe [TOPIC...]", Short: "Topics with their end offsets and the configs K2 set",
		RunE: func(cmd *cobra.Command, args []string) error { return a.describeTopics(cmd, jsonOut, true, args) },
	}
	cmd.AddCommand(create, list, describe)
	return cmd
}

func (a *app) describeTopics(cmd *cobra.Command, jsonOut, detail bool, names []string) error {
	adm, cl, err := a.admin()
	if err != nil {
		return err
	}
	defer cl.Close()
	if detail && len(names) == 0 {
		all, err := bus.DescribeTopics(cmd.Context(), adm, a.cfg.TopicPrefix)
		if err != nil {
			return err
		}
		for _, t := range all {
			names = append(names, t.Topic)
		}
	}
	infos, err := bus.DescribeTopics(cmd.Context(), adm, a.cfg.TopicPrefix, names...)
	if err != nil {
		return fmt.Errorf("kafka %v: %w", a.cfg.BrokerList(), err)
	}
	if jsonOut {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(infos)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS")
	for _, t := range infos {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Topic, t.Partitions, t.Records)
		if detail {
			fmt.Fprintf(tw, "  end offsets\t%v\t\n  configs\t%v\t\n", t.EndOffsets, t.Configs)
		}
	}
	return tw.Flush()
}

// services are the embedded broker and schema registry.
type services struct {
	broker *bus.Broker
	reg    *registry.Registry
	http   *http.Server
}

func (s *services) close() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	if s.reg != nil {
		s.reg.Close()
	}
	if s.broker != nil {
		s.broker.Close()
	}
}

// startServices starts the embedded broker and registry under the data
// dir, creates the topics and registers K2's schemas.
func (a *app) startServices(ctx context.Context) (*services, error) {
	s := &services{}
	var err error
	if s.broker, err = bus.StartBroker(filepath.Join(a.cfg.DataDir, "kafka"), a.cfg.BrokerListen, a.log); err != nil {
		return nil, err
	}
	if s.reg, err = registry.Open(filepath.Join(a.cfg.DataDir, "registry"), registry.WithLogger(a.log)); err != nil {
		s.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", a.cfg.RegistryListen)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("schema registry on %s: %w", a.cfg.RegistryListen, err)
	}
	s.http = &http.Server{Handler: s.reg.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)
	a.log.Info("schema registry listening", "addr", ln.Addr().String())
	// Kafka commands in this process talk to what was just started.
	a.cfg.Brokers = s.broker.Addr()
	a.cfg.Registry = "http://" + ln.Addr().String()
	adm, cl, err := a.admin()
	if err != nil {
		s.close()
		return nil, err
	}
	defer cl.Close()
	if _, err := bus.CreateTopics(ctx, adm, a.topology()); err != nil {
		s.close()
		return nil, err
	}
	if err := a.registerSchemas(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// registerSchemas registers K2's schemas under every asset class's
// subjects; an incompatible change is refused here, before any data moves.
func (a *app) registerSchemas(ctx context.Context) error {
	reg, err := registry.NewClient(a.cfg.RegistryURL())
	if err != nil {
		return err
	}
	for _, sc := range bus.Schemas() {
		if _, err := reg.Register(ctx, sc.Subject, sc.Text); err != nil {
			return err
		}
	}
	return nil
}

func newBrokerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "broker",
		Short: "Serve the embedded Kafka-protocol broker and schema registry, state under --data-dir",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.startServices(cmd.Context())
			if err != nil {
				return err
			}
			defer s.close()
			fmt.Fprintf(cmd.OutOrStdout(), "kafka %s · schema registry %s · data %s\n", a.cfg.Brokers, a.cfg.Registry, a.cfg.DataDir)
			<-cmd.Context().Done()
			return nil
		},
	}
}

type sinkFlags struct {
	group    string
	instance string
	rows     int
	bytes    int
	age      time.Duration
	topics   string
}

func (f *sinkFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.group, "group", "k2-sink", "consumer group: sinks in one group share the partitions")
	fl.IntVar(&f.rows, "batch-rows", 200_000, "commit a batch at this many rows")
	fl.IntVar(&f.bytes, "batch-bytes", 256<<20, "commit a batch at this many bytes of records")
	fl.DurationVar(&f.age, "batch-age", time.Second, "commit a batch this long after its first record (how stale the lake may be)")
	fl.StringVar(&f.instance, "instance-id", f.instance, "static group membership: a sink restarted with the same id takes its partitions back at once, without waiting out its session")
	fl.StringVar(&f.topics, "topics", "", "regular expression of the topics to consume (default: every data topic under --topic-prefix)")
}

// runSink consumes into the lake until ctx ends.
func (a *app) runSink(ctx context.Context, f *sinkFlags) error {
	l, err := a.openLake(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	dlq, reg, err := a.producer("k2-sink-dlq")
	if err != nil {
		return err
	}
	defer dlq.Close(context.Background())
	deg, shed, err := a.backpressure()
	if err != nil {
		return err
	}
	s, err := sink.New(sink.Config{
		Brokers: a.cfg.BrokerList(), Group: f.group, InstanceID: f.instance, TopicPrefix: a.cfg.TopicPrefix, Topics: f.topics,
		BatchRows: f.rows, BatchBytes: f.bytes, BatchAge: f.age, Logger: a.log,
		Degradation: deg, Shedder: shed,
	}, l, reg, dlq)
	if err != nil {
		return err
	}
	err = s.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// producer connects a producer to the configured brokers, topic prefix and
// schema registry; the registry client is returned for decoding too.
func (a *app) producer(clientID string) (*bus.Producer, *registry.Client, error) {
	reg, err := registry.NewClient(a.cfg.RegistryURL())
	if err != nil {
		return nil, nil, err
	}
	p, err := bus.NewProducer(bus.ProducerConfig{Brokers: a.cfg.BrokerList(), ClientID: clientID, TopicPrefix: a.cfg.TopicPrefix, Logger: a.log}, reg)
	return p, reg, err
}

// backpressure builds the sink's degradation levels and the shedding
// policy, if one is named. The memory budget is 1.25 × --memory-limit: the
// heap runs up to the soft limit in normal work (the garbage collector
// then works harder), so only memory well past it, which the collector is
// not keeping down, reaches the top level and pauses the sink.
func (a *app) backpressure() (*resilience.Degradation, *resilience.Shedder, error) {
	var budget uint64
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim != math.MaxInt64 {
		budget = uint64(lim) / 4 * 5
	}
	deg, err := resilience.NewDegradation(resilience.Config{MemoryBudget: budget, Logger: a.log})
	if err != nil {
		return nil, nil, err
	}
	if a.cfg.SheddingPolicy == "" {
		return deg, nil, nil
	}
	b, err := os.ReadFile(a.cfg.SheddingPolicy)
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy: %w", err)
	}
	p, err := resilience.ParsePolicy(b, record.DataTypes())
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy %s: %w", a.cfg.SheddingPolicy, err)
	}
	shed, err := resilience.NewShedder(p)
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy %s: %w", a.cfg.SheddingPolicy, err)
	}
	return deg, shed, nil
}

func newSinkCmd(a *app) *cobra.Command {
	f := &sinkFlags{}
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Consume K2's topics into the lake, exactly once (offsets are recorded in each Iceberg commit)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runSink(cmd.Context(), f)
		},
	}
	f.register(cmd)
	return cmd
}

func newUpCmd(a *app) *cobra.Command {
	f := &sinkFlags{}
	ff := &feedFlags{}
	feedName := "synth"
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run K2 on this machine: Kafka broker, schema registry, a feed and the sink in one process",
		Example: `  k2 up                                    # a synthetic market, live
  k2 up --feed binance --feed-symbols BTCUSDT,ETHUSDT
  k2 up --feed none                        # only what k2 load and other feeds produce`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if feedName != "none" {
				ex, err := exchanges.Feed(feedName)
				if err != nil {
					return fmt.Errorf("--feed: %w or none", err)
				}
				if ex.Live != nil && len(ff.symbols) == 0 {
					return fmt.Errorf("--feed %s needs --feed-symbols", feedName)
				}
			}
			s, err := a.startServices(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			var fr *feedRunner
			if feedName != "none" {
				if fr, err = a.newFeed(feedName, ff); err != nil {
					return fmt.Errorf("--feed %s: %w", feedName, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "K2 up · kafka %s · schema registry %s · data %s · feed %s\n", a.cfg.Brokers, a.cfg.Registry, a.cfg.DataDir, feedName)
			feedDone := make(chan struct{})
			if fr != nil {
				// The feed and the sink stop together on ctx; a feed that
				// fails leaves the rest of K2 serving what it has.
				go func() {
					defer close(feedDone)
					if err := a.runFeedUntilDone(ctx, fr, cmd.OutOrStdout(), time.Minute); err != nil && ctx.Err() == nil {
						a.log.Error("feed stopped", "feed", feedName, "error", err)
					}
				}()
			} else {
				close(feedDone)
			}
			err = a.runSink(ctx, f)
			cancel() // a sink that failed takes the feed down with it
			<-feedDone
			return err
		},
	}
	f.register(cmd)
	var names []string
	for _, e := range exchanges.Feeds() {
		names = append(names, e.Name)
	}
	cmd.Flags().StringVar(&feedName, "feed", feedName, "market to capture while up: "+strings.Join(names, ", ")+" or none")
	ff.register(cmd.Flags(), "feed-", exchanges.Feeds()...)
	return cmd
}
