// Package sink moves market data from Kafka into the lake, exactly once.
//
// A sink is a member of a consumer group. It decodes and validates each
// record, sends what cannot be stored to the topic's dead-letter topic with
// the reason in headers, follows exchange sequence numbers, and gathers
// records into batches that close by rows, bytes or age. Each batch is one
// Iceberg commit whose snapshot summary records the Kafka offsets it
// consumed; only then are the group's offsets committed. On start a sink
// resumes from the offsets in the tables, so a crash between the two
// commits neither loses nor repeats data, and rows already stored (a
// replay, a zombie's late commit) are dropped by key.
//
// The files follow the record's way through: config.go, decode.go (from a
// fetch to a batch, and held records), stream.go (batches and their
// commits), offsets.go (where to read from), rebalance.go, deadletter.go,
// backpressure.go, sequence.go, metrics.go.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// Stats are the sink's counters.
type Stats struct {
	Consumed    int64 `json:"consumed"`
	Written     int64 `json:"written"`
	Duplicates  int64 `json:"duplicates"`
	DeadLetters int64 `json:"dead_letters"`
	Shed        int64 `json:"shed"`
	Commits     int64 `json:"commits"`
	Lag         int64 `json:"lag"`
	Partitions  int   `json:"partitions"` // assigned to this sink
}

// Sink consumes K2's topics into the lake.
type Sink struct {
	cfg  Config
	lake *lake.Lake
	dlq  *bus.Producer
	dec  *codec.Decoder
	cl   *kgo.Client
	seq  *Tracker
	log  *slog.Logger
	m    *metrics

	mu       sync.Mutex // streams, lag, held; the poll loop and the rebalance callbacks
	streams  []*stream  // one per record kind, by record.Spec.Index
	topicsMu sync.Mutex // topics is also read by the group's goroutine (resumeFromLake)
	topics   map[string]topicInfo
	lag      map[tp]int64
	read     map[tp]readPos // lag.go
	held     map[tp]*held

	refusedMu sync.Mutex // set by the poll loop and the group's goroutine, read by health checks
	refused   map[tp]string
	readMu    sync.Mutex // set by the poll loop, read by the group's goroutine (resumeFromLake)
	readTo    map[tp]kgo.EpochOffset

	deadLog      rate.Sometimes // paces dead-letter log lines
	deadSinceLog int
	paused       bool
	stall        time.Time // a flush failed: retry after this
	// rebalancing is set while a rebalance callback runs: the partitions
	// are leaving, so a failed commit does not seek them (their next owner
	// reads from the table), and kgo is not re-entered with SetOffsets.
	rebalancing bool

	stats struct {
		sync.Mutex
		Stats
	}
}

type tp struct {
	topic     string
	partition int32
}

// topicDiscovery is how often the sink asks the brokers for their topics,
// to find new ones its pattern matches (a feed's first exchange, k2
// topics create on a running deployment): the Kafka client's default, 5
// minutes, left a sink started before its topics idle that long. A
// metadata request every 10 s is little even to a cluster of thousands
// of topics.
const topicDiscovery = 10 * time.Second

// New builds a sink: the consumer group client, the decoder using reg for
// writer schemas, dlq for dead letters, and a stream of batches per record
// kind.
func New(cfg Config, l *lake.Lake, reg *registry.Client, dlq *bus.Producer) (*Sink, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sink{
		cfg: cfg, lake: l, dlq: dlq, log: cfg.Logger.With("group", cfg.Group),
		dec:    codec.NewDecoder(reg.SchemaByID),
		topics: map[string]topicInfo{}, lag: map[tp]int64{}, read: map[tp]readPos{}, held: map[tp]*held{}, refused: map[tp]string{}, readTo: map[tp]kgo.EpochOffset{},
		deadLog: rate.Sometimes{Interval: time.Second}, m: newMetrics(cfg.Registerer),
	}
	s.seq = newTracker(s.m.seq)
	for _, k := range record.All {
		b, err := k.NewBatch(l, lake.WithDedup(true), lake.WithTransientFiles())
		if err != nil {
			return nil, err
		}
		s.streams = append(s.streams, &stream{kind: k.Describe(), cur: buffer{rows: b}})
	}
	opts := []kgo.Opt{
		kgo.ClientID("k2-sink"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics),
		kgo.ConsumeRegex(),
		kgo.MetadataMaxAge(topicDiscovery),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(cfg.FetchBytes),
		kgo.FetchMaxPartitionBytes(cfg.FetchBytes / 4),
		kgo.MaxConcurrentFetches(2),
		kgo.AdjustFetchOffsetsFn(s.resumeFromLake),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	s.cl, err = bus.NewClient(cfg.Brokers, cfg.Security, opts...)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return s, nil
}

// Run consumes until ctx ends, then commits what it holds and leaves the group.
func (s *Sink) Run(ctx context.Context) error {
	defer s.cl.Close()
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); s.watchLag(lagCtx) }()
	defer func() { stopLag(); <-lagDone }() // before the client closes
	s.log.Info("sink started", "topics", s.cfg.Topics, "batch_rows", s.cfg.BatchRows, "batch_age", s.cfg.BatchAge)
	for {
		s.mu.Lock()
		wait, limit := s.untilDue(), s.pollLimit()
		s.mu.Unlock()
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fetches := s.cl.PollRecords(pollCtx, limit)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			err := s.shutdown()
			// Close leaves the group, which waits for the rebalance that
			// BlockRebalanceOnPoll holds until it is allowed.
			s.cl.AllowRebalance()
			return err
		}
		fetches.EachError(func(t string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				s.truncated(loss)
				return
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.m.consumerErrors.WithLabelValues("fetch").Inc()
				s.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
			}
		})
		s.mu.Lock()
		s.retryHeld(ctx)
		s.reserve(fetches)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) { s.take(ctx, p) })
		err := s.flushDue(ctx)
		s.backpressure(ctx, err)
		s.mu.Unlock()
		s.cl.AllowRebalance()
	}
}

// reserve makes room in each stream's batch for what the poll brought, at
// once: a batch grown a doubling at a time from empty copied and zeroed
// 2.6 times what it came to hold (memory the system faulted in afresh):
// 3.8% of the CPU of a 2M-trade end-to-end run.
func (s *Sink) reserve(fetches kgo.Fetches) {
	n := make([]int, len(s.streams))
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if info := s.topic(p.Topic); info.stream != nil {
			n[info.stream.kind.Index()] += len(p.Records)
		}
	})
	for i, st := range s.streams {
		if room := min(n[i], s.cfg.BatchRows-st.cur.rows.Len()); room > 0 {
			st.cur.rows.Reserve(room)
		}
	}
}

// stopCommit bounds a stopping sink's last commit: the process it runs in
// stops within 10 s, and what is not committed is read again on restart.
const stopCommit = 8 * time.Second

func (s *Sink) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopCommit)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.flushAll(ctx)
	if err != nil {
		s.log.Error("stopping with uncommitted records; they are re-read on restart", "error", err)
	}
	s.log.Info("sink stopped", "stats", s.Stats())
	return err
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.stats.Lock()
	defer s.stats.Unlock()
	return s.stats.Stats
}

func (s *Sink) count(fn func(*Stats)) {
	s.stats.Lock()
	fn(&s.stats.Stats)
	s.stats.Unlock()
}
