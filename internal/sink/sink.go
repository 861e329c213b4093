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
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/resilience"
)

var (
	mConsumed = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_kafka_messages_consumed_total", Help: "Records the sink read.",
	}, []string{"topic"})
	mLagMessages = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_lag_messages", Help: "Records in the partition not yet read by the sink.",
	}, []string{"topic", "partition"})
	mLagSeconds = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_lag_seconds", Help: "Age of the last record read while the partition has unread records; 0 when caught up.",
	}, []string{"topic", "partition"})
	mOffset = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_offset", Help: "Next offset the sink reads.",
	}, []string{"topic", "partition"})
	mDeadLetters = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_sink_dead_letters_total", Help: "Records sent to a dead-letter topic, by reason.",
	}, []string{"topic", "reason"})
	mDuplicates = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_duplicate_messages_detected_total", Help: "Records dropped because their id was already stored or repeated.",
	}, []string{"table"})
	mConsumerErrors = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_consumer_errors_total", Help: "Sink errors by type (fetch, commit, group).",
	}, []string{"error_type"})
	mPaused = ops.Factory.NewGauge(prometheus.GaugeOpts{
		Name: "k2_sink_paused", Help: "1 while the sink has paused fetching (back-pressure or a failing lake).",
	})
)

// Config sets up a sink. Zero values take the defaults.
type Config struct {
	Brokers []string
	Group   string // consumer group (default k2-sink)
	// InstanceID makes the sink a static member of the group: restarted
	// with the same id (after a crash, a deploy) it takes its partitions
	// back at once instead of waiting for its old session to expire.
	InstanceID string
	// TopicPrefix is the installation's topic prefix (bus.Topology.Prefix).
	TopicPrefix string
	// Topics is a regular expression of the topics to consume (default
	// every data topic under TopicPrefix, bus.TopicPattern).
	Topics string
	// A batch closes at BatchRows rows, BatchBytes bytes of records or
	// BatchAge after its first record, whichever comes first. The age
	// bounds how stale the lake is; rows and bytes bound memory.
	BatchRows  int           // default 200,000
	BatchBytes int           // default 256 MiB
	BatchAge   time.Duration // default 1s
	// MaxPoll bounds records handled per poll (default 100,000).
	MaxPoll int
	// FetchBytes bounds what the client buffers (default 64 MiB).
	FetchBytes  int32
	Degradation *resilience.Degradation // back-pressure (optional)
	Shedder     *resilience.Shedder     // configured shedding (optional)
	// Memory measures the process for Degradation (default
	// resilience.ProcessMemory).
	Memory func() uint64
	Logger *slog.Logger
}

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

	mu       sync.Mutex // batches, lag; the poll loop and the rebalance callbacks
	trades   *batch[md.Trade]
	quotes   *batch[md.Quote]
	refs     *batch[md.ReferenceData]
	topicsMu sync.Mutex // topics is also read by the group's goroutine (resumeFromLake)
	topics   map[string]topicInfo
	lag      map[tp]int64
	held     map[tp]*held

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

type topicInfo struct {
	dt       bus.DataType
	exchange string
	err      error
}

// New builds a sink: the consumer group client, the decoder using reg for
// writer schemas, dlq for dead letters, and one lake writer per table.
func New(cfg Config, l *lake.Lake, reg *registry.Client, dlq *bus.Producer) (*Sink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("sink: no brokers")
	}
	if cfg.Group == "" {
		cfg.Group = "k2-sink"
	}
	if cfg.Topics == "" {
		cfg.Topics = bus.TopicPattern(cfg.TopicPrefix)
	}
	if _, err := regexp.Compile(cfg.Topics); err != nil {
		return nil, fmt.Errorf("sink topics %q: %w", cfg.Topics, err)
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 200_000
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 20
	}
	if cfg.BatchAge <= 0 {
		cfg.BatchAge = time.Second
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 100_000
	}
	if cfg.FetchBytes <= 0 {
		cfg.FetchBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Memory == nil {
		cfg.Memory = resilience.ProcessMemory
	}
	s := &Sink{
		cfg: cfg, lake: l, dlq: dlq, seq: NewTracker(), log: cfg.Logger.With("group", cfg.Group),
		dec:    codec.NewDecoder(reg.SchemaByID),
		topics: map[string]topicInfo{}, lag: map[tp]int64{}, held: map[tp]*held{},
		deadLog: rate.Sometimes{Interval: time.Second},
	}
	w, err := lake.NewWriters(l, lake.WithDedup(true))
	if err != nil {
		return nil, err
	}
	hint := min(cfg.BatchRows, 1<<17) // rows buffers start with; they are reused
	s.trades = &batch[md.Trade]{table: lake.Trades, w: w.Trades, capHint: hint}
	s.quotes = &batch[md.Quote]{table: lake.Quotes, w: w.Quotes, capHint: hint}
	s.refs = &batch[md.ReferenceData]{table: lake.ReferenceData, w: w.Reference}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("k2-sink"),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics),
		kgo.ConsumeRegex(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
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
	s.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return s, nil
}

// batch is one table's stream of rows: the buffer being filled from Kafka
// and at most one earlier buffer being committed, so that decoding the
// next batch overlaps writing the last. Commits of a table land in order,
// one at a time, because each carries the offsets the one before it left.
type batch[T any] struct {
	table    string
	w        *lake.Writer[T]
	capHint  int
	cur      buffer[T]
	spare    []T        // rows of a committed buffer, for reuse
	inflight *commit[T] // the commit under way, if any
}

// buffer is a batch's rows and the offsets they came from.
type buffer[T any] struct {
	rows    []T
	bytes   int
	since   time.Time
	offsets lake.Offsets // next offset per partition after what the buffer holds
	from    lake.Offsets // the buffer's first offset per partition
}

// commit is a buffer on its way into the lake.
type commit[T any] struct {
	buf  buffer[T]
	done chan struct{}
	res  lake.CommitResult
	err  error
}

func (b *batch[T]) add(r T, rec *kgo.Record) {
	if b.cur.rows == nil {
		if b.spare != nil {
			b.cur.rows, b.spare = b.spare, nil
		} else {
			b.cur.rows = make([]T, 0, max(1024, b.capHint))
		}
	}
	if len(b.cur.rows) == 0 && len(b.cur.offsets) == 0 {
		b.cur.since = time.Now()
	}
	b.cur.rows = append(b.cur.rows, r)
	b.cur.bytes += len(rec.Value)
	b.advance(rec)
}

// advance records that rec has been dealt with (stored, dead-lettered or shed).
func (b *batch[T]) advance(rec *kgo.Record) {
	c := &b.cur
	if c.offsets == nil {
		c.offsets, c.from = lake.Offsets{}, lake.Offsets{}
		if len(c.rows) == 0 {
			c.since = time.Now()
		}
	}
	if _, ok := c.from.Get(rec.Topic, rec.Partition); !ok {
		c.from.Set(rec.Topic, rec.Partition, rec.Offset)
	}
	c.offsets.Set(rec.Topic, rec.Partition, rec.Offset+1)
}

func (c *buffer[T]) pending() bool { return len(c.offsets) > 0 }

func (b *batch[T]) pending() bool { return b.cur.pending() }

func (b *batch[T]) due(cfg *Config, now time.Time) bool {
	c := &b.cur
	return c.pending() && (len(c.rows) >= cfg.BatchRows || c.bytes >= cfg.BatchBytes || now.Sub(c.since) >= cfg.BatchAge)
}

func (c *buffer[T]) reset() {
	clear(c.rows)
	c.rows, c.bytes, c.offsets, c.from = c.rows[:0], 0, nil, nil
}

// reset drops what the batch is filling.
func (b *batch[T]) reset() { b.cur.reset() }

// OverlapError refuses a batch whose records another sink already stored:
// the table's offsets for a partition are past the batch's first offset.
// It happens when a sink that lost its partitions (a long pause, a network
// split) commits late; the batch is dropped and the partition re-read from
// the table's offset.
type OverlapError struct {
	Topic         string
	Partition     int32
	First, Stored int64
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("%s[%d]: batch starts at offset %d but the table already holds records up to offset %d",
		e.Topic, e.Partition, e.First, e.Stored)
}

// summary checks the buffer against the table it will be committed on and
// returns the offsets to record: the table's, carried forward, with the
// buffer's on top.
func (b *buffer[T]) summary(base *table.Table) (map[string]string, error) {
	stored := lake.TableOffsets(base)
	for t, ps := range b.from {
		for p, first := range ps {
			if off, ok := stored.Get(t, p); ok && off > first {
				return nil, &OverlapError{Topic: t, Partition: p, First: first, Stored: off}
			}
		}
	}
	stored.Merge(b.offsets)
	return stored.Props(), nil
}

// flush starts committing what the batch holds: to the lake with its
// offsets, then to the group, in the background. It first waits for the
// table's previous commit and returns that one's failure, if any.
func flush[T any](ctx context.Context, s *Sink, b *batch[T]) error {
	if err := settle(ctx, s, b); err != nil {
		return err
	}
	if !b.cur.pending() {
		return nil
	}
	// A dead letter must be safe in its topic before its offset is committed.
	if err := s.dlq.Flush(ctx); err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	c := &commit[T]{buf: b.cur, done: make(chan struct{})}
	b.cur = buffer[T]{}
	b.inflight = c
	// The commit outlives a stopping poll loop: shutdown waits for it.
	cctx := context.WithoutCancel(ctx)
	go func() {
		defer close(c.done)
		c.res, c.err = b.w.Commit(cctx, c.buf.rows, map[string]string{"k2.source": "sink:" + s.cfg.Group}, lake.WithSummary(c.buf.summary))
		if c.err == nil {
			s.commitGroup(cctx, c.buf.offsets)
		}
	}()
	return nil
}

// settle waits for the table's commit under way, if any, and takes its
// outcome. After a failure both that buffer and the one being filled are
// dropped and their partitions read again from where the table stands.
func settle[T any](ctx context.Context, s *Sink, b *batch[T]) error {
	c := b.inflight
	if c == nil {
		return nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.inflight = nil
	if c.err == nil {
		mDuplicates.WithLabelValues(b.table).Add(float64(c.res.Duplicates))
		s.stats.Lock()
		s.stats.Written += int64(c.res.Rows)
		s.stats.Duplicates += int64(c.res.Duplicates)
		if c.res.Rows > 0 {
			s.stats.Commits++
		}
		s.stats.Unlock()
		c.buf.reset()
		b.spare = c.buf.rows
		return nil
	}
	s.rewind(ctx, b.table, c.buf.from, b.cur.from)
	b.cur.reset()
	var overlap *OverlapError
	if errors.As(c.err, &overlap) {
		mConsumerErrors.WithLabelValues("overlap").Inc()
		s.log.Warn("batch dropped: another sink stored some of its records; re-reading", "error", overlap.Error())
		return nil
	}
	return c.err
}

// settled takes the outcome of a commit that has finished, without waiting.
func settled[T any](ctx context.Context, s *Sink, b *batch[T]) error {
	if b.inflight == nil {
		return nil
	}
	select {
	case <-b.inflight.done:
		return settle(ctx, s, b)
	default:
		return nil
	}
}

// commitGroup commits offsets to the consumer group. The lake holds the
// truth; a failed group commit only means a restart reads the lake's.
func (s *Sink) commitGroup(ctx context.Context, o lake.Offsets) {
	m := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range o {
		m[t] = map[int32]kgo.EpochOffset{}
		for p, off := range ps {
			m[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
	}
	s.cl.CommitOffsetsSync(ctx, m, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			mConsumerErrors.WithLabelValues("commit").Inc()
			s.log.Warn("consumer group commit failed; the lake's offsets stand", "error", err)
		}
	})
}

// flushAll commits every pending batch and waits until all are in.
func (s *Sink) flushAll(ctx context.Context) error {
	return errors.Join(
		flush(ctx, s, s.trades), flush(ctx, s, s.quotes), flush(ctx, s, s.refs),
		settle(ctx, s, s.trades), settle(ctx, s, s.quotes), settle(ctx, s, s.refs))
}

// flushDue commits the batches that are due; after a failed commit it
// waits for the retry time.
func (s *Sink) flushDue(ctx context.Context) error {
	now := time.Now()
	if now.Before(s.stall) {
		return nil
	}
	errs := []error{settled(ctx, s, s.trades), settled(ctx, s, s.quotes), settled(ctx, s, s.refs)}
	if s.trades.due(&s.cfg, now) {
		errs = append(errs, flush(ctx, s, s.trades))
	}
	if s.quotes.due(&s.cfg, now) {
		errs = append(errs, flush(ctx, s, s.quotes))
	}
	if s.refs.due(&s.cfg, now) {
		errs = append(errs, flush(ctx, s, s.refs))
	}
	return errors.Join(errs...)
}

// untilDue is how long the poll may wait before a pending batch is due
// or held records are to be retried.
func (s *Sink) untilDue() time.Duration {
	wait := s.cfg.BatchAge
	for _, since := range []struct {
		pending bool
		at      time.Time
	}{{s.trades.pending(), s.trades.cur.since}, {s.quotes.pending(), s.quotes.cur.since}, {s.refs.pending(), s.refs.cur.since}} {
		if since.pending {
			wait = min(wait, max(time.Millisecond, s.cfg.BatchAge-time.Since(since.at)))
		}
	}
	for _, h := range s.held {
		wait = min(wait, max(time.Millisecond, time.Until(h.retryAt)))
	}
	return wait
}

// resumeFromLake moves each assigned partition to the offset the tables
// recorded when that is further than the group's committed offset.
func (s *Sink) resumeFromLake(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	byTable := map[string]lake.Offsets{}
	for topic, parts := range assigned {
		info := s.topic(topic)
		if info.err != nil {
			continue
		}
		name := tableOf(info.dt)
		lo, ok := byTable[name]
		if !ok {
			tbl, err := s.lake.Load(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("read offsets from %s: %w", name, err)
			}
			lo = lake.TableOffsets(tbl)
			byTable[name] = lo
		}
		for p, o := range parts {
			off, ok := lo[topic][p]
			if !ok {
				continue
			}
			if cur := o.EpochOffset().Offset; cur < 0 || off > cur {
				parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
				s.log.Info("resuming from the lake's offset", "topic", topic, "partition", p, "offset", off, "group_offset", cur)
			}
		}
	}
	return assigned, nil
}

func (s *Sink) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	n := 0
	for _, ps := range assigned {
		n += len(ps)
	}
	s.log.Info("partitions assigned", "partitions", n)
	s.stats.Lock()
	s.stats.Partitions += n
	s.stats.Unlock()
}

// onRevoked commits what was read from the partitions being given away,
// so their next owner starts after it.
func (s *Sink) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebalancing = true
	defer func() { s.rebalancing = false }()
	if err := s.flushAll(ctx); err != nil {
		// The new owner reads from the lake's offsets; nothing is lost,
		// and what this sink still holds is dropped.
		s.log.Error("could not commit before giving up partitions; their new owner re-reads them", "error", err)
		s.discard(ctx)
	}
	s.release(revoked)
	n := 0
	for t, ps := range revoked {
		n += len(ps)
		for _, p := range ps {
			delete(s.lag, tp{t, p})
		}
	}
	s.stats.Lock()
	s.stats.Partitions -= n
	s.stats.Unlock()
}

// onLost drops what was read: the group has moved on without this member.
func (s *Sink) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebalancing = true
	defer func() { s.rebalancing = false }()
	s.log.Warn("partitions lost; their unsaved records will be re-read by their owner", "partitions", len(lost))
	s.release(lost)
	s.discard(ctx)
	clear(s.lag)
	s.stats.Lock()
	s.stats.Partitions = 0
	s.stats.Unlock()
}

// rewind moves partitions back to be read again: each to the earliest
// of the given first offsets, or to where the table stands if that is
// further. Records held for the registry are dropped with them.
func (s *Sink) rewind(ctx context.Context, table string, froms ...lake.Offsets) {
	if s.rebalancing {
		return
	}
	var stored lake.Offsets
	if tbl, err := s.lake.Load(ctx, table); err == nil {
		stored = lake.TableOffsets(tbl)
	}
	earliest := lake.Offsets{}
	for _, f := range froms {
		for t, ps := range f {
			for p, off := range ps {
				if cur, ok := earliest.Get(t, p); !ok || off < cur {
					if earliest[t] == nil {
						earliest[t] = map[int32]int64{}
					}
					earliest[t][p] = off
				}
			}
		}
	}
	seek := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range earliest {
		seek[t] = map[int32]kgo.EpochOffset{}
		for p, off := range ps {
			if st, ok := stored.Get(t, p); ok && st > off {
				off = st
			}
			seek[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
			s.release(map[string][]int32{t: {p}})
		}
	}
	s.cl.SetOffsets(seek)
}

// discard drops what the batches are filling, after waiting for the
// commits under way (they may land; their offsets then stand).
func (s *Sink) discard(ctx context.Context) {
	settle(ctx, s, s.trades)
	settle(ctx, s, s.quotes)
	settle(ctx, s, s.refs)
	s.trades.reset()
	s.quotes.reset()
	s.refs.reset()
}

func tableOf(dt bus.DataType) string {
	switch dt {
	case bus.Quotes:
		return lake.Quotes
	case bus.ReferenceData:
		return lake.ReferenceData
	}
	return lake.Trades
}

func (s *Sink) topic(name string) topicInfo {
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	if info, ok := s.topics[name]; ok {
		return info
	}
	var info topicInfo
	if base, ok := strings.CutPrefix(name, s.cfg.TopicPrefix); ok {
		_, info.dt, info.exchange, info.err = bus.ParseTopic(base)
	} else {
		info.err = fmt.Errorf("topic %q lacks the prefix %q", name, s.cfg.TopicPrefix)
	}
	s.topics[name] = info
	return info
}

// Run consumes until ctx ends, then commits what it holds and leaves the group.
func (s *Sink) Run(ctx context.Context) error {
	defer s.cl.Close()
	s.log.Info("sink started", "topics", s.cfg.Topics, "batch_rows", s.cfg.BatchRows, "batch_age", s.cfg.BatchAge)
	for {
		s.mu.Lock()
		wait := s.untilDue()
		s.mu.Unlock()
		pollCtx, cancel := context.WithTimeout(ctx, wait)
		fetches := s.cl.PollRecords(pollCtx, s.cfg.MaxPoll)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			err := s.shutdown()
			// Close leaves the group, which waits for the rebalance that
			// BlockRebalanceOnPoll holds until it is allowed.
			s.cl.AllowRebalance()
			return err
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				mConsumerErrors.WithLabelValues("fetch").Inc()
				s.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
			}
		})
		s.mu.Lock()
		s.retryHeld(ctx)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) { s.take(ctx, p) })
		err := s.flushDue(ctx)
		s.backpressure(ctx, err)
		s.mu.Unlock()
		s.cl.AllowRebalance()
	}
}

func (s *Sink) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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

// handle decodes, checks and batches one partition's fetched records.
func (s *Sink) handle(ctx context.Context, p kgo.FetchTopicPartition) (rest []*kgo.Record) {
	if len(p.Records) == 0 {
		return nil
	}
	info := s.topic(p.Topic)
	level := resilience.Normal
	if s.cfg.Degradation != nil {
		level = s.cfg.Degradation.Level()
	}
	var consumed, shed, dead int64
	for i, r := range p.Records {
		consumed++
		var err error
		var dropped bool
		switch info.dt {
		case bus.Trades:
			dropped, err = accept(ctx, s, s.trades, r, info, level, s.dec.Trade, func(t *md.Trade) (string, error) {
				err := checkExchange(t.Exchange, info.exchange, t.Validate())
				if err == nil && t.SourceSequence.Valid {
					s.seq.Check(t.Exchange, t.Symbol, t.SourceSequence.Int64, t.Timestamp)
				}
				return t.Symbol, err
			})
		case bus.Quotes:
			dropped, err = accept(ctx, s, s.quotes, r, info, level, s.dec.Quote, func(q *md.Quote) (string, error) {
				return q.Symbol, checkExchange(q.Exchange, info.exchange, q.Validate())
			})
		case bus.ReferenceData:
			dropped, err = accept(ctx, s, s.refs, r, info, level, s.dec.Reference, func(ref *md.ReferenceData) (string, error) {
				return ref.Symbol, checkExchange(ref.Exchange, info.exchange, ref.Validate())
			})
		default:
			err = info.err
		}
		if dropped {
			shed++
		}
		if err == nil {
			continue
		}
		if transient(err) {
			// The registry could not be asked: the record is not bad.
			// It and the rest are held and tried again later.
			consumed--
			rest = p.Records[i:]
			s.log.Warn("schema registry unavailable; holding the partition's records to retry", "topic", p.Topic, "partition", p.Partition, "offset", r.Offset, "held", len(rest), "error", err)
			break
		}
		s.deadLetter(ctx, r, err)
		dead++
	}
	if consumed == 0 {
		return rest
	}
	last := p.Records[len(p.Records)-len(rest)-1]
	lag := max(0, p.HighWatermark-(last.Offset+1))
	s.lag[tp{p.Topic, p.Partition}] = lag
	part := strconv.Itoa(int(p.Partition))
	mConsumed.WithLabelValues(p.Topic).Add(float64(consumed))
	mLagMessages.WithLabelValues(p.Topic, part).Set(float64(lag))
	mOffset.WithLabelValues(p.Topic, part).Set(float64(last.Offset + 1))
	lagSeconds := 0.0
	if lag > 0 {
		lagSeconds = time.Since(last.Timestamp).Seconds()
	}
	mLagSeconds.WithLabelValues(p.Topic, part).Set(lagSeconds)
	s.stats.Lock()
	s.stats.Consumed += consumed
	s.stats.Shed += shed
	s.stats.DeadLetters += dead
	s.stats.Unlock()
	return rest
}

// held are a partition's records that could not be decoded for want of
// the schema registry. Its fetching is paused meanwhile, and they are
// decoded again later, backing off, so neither Kafka nor the registry is
// hammered and nothing is dead-lettered for a registry outage.
type held struct {
	p       kgo.FetchTopicPartition // the records left
	retryAt time.Time
	backoff time.Duration
}

const (
	holdFirst = 250 * time.Millisecond
	holdMax   = 10 * time.Second
)

// take handles a fetched partition, holding what cannot be decoded yet.
func (s *Sink) take(ctx context.Context, p kgo.FetchTopicPartition) {
	k := tp{p.Topic, p.Partition}
	if h := s.held[k]; h != nil {
		// Fetched before the pause took effect: keep the order.
		h.p.Records = append(h.p.Records, p.Records...)
		h.p.HighWatermark = p.HighWatermark
		return
	}
	if rest := s.handle(ctx, p); len(rest) > 0 {
		p.Records = slices.Clone(rest)
		s.held[k] = &held{p: p, retryAt: time.Now().Add(holdFirst), backoff: holdFirst}
		s.cl.PauseFetchPartitions(map[string][]int32{p.Topic: {p.Partition}})
	}
}

// retryHeld decodes held records whose time has come and resumes their
// partitions once they are all through.
func (s *Sink) retryHeld(ctx context.Context) {
	now := time.Now()
	for k, h := range s.held {
		if now.Before(h.retryAt) {
			continue
		}
		if rest := s.handle(ctx, h.p); len(rest) > 0 {
			h.p.Records = rest
			h.backoff = min(2*h.backoff, holdMax)
			h.retryAt = now.Add(h.backoff)
			continue
		}
		delete(s.held, k)
		s.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		s.log.Info("schema registry reachable again; partition resumed", "topic", k.topic, "partition", k.partition)
	}
}

// release forgets held records of partitions this sink no longer owns:
// their new owner reads them.
func (s *Sink) release(parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := s.held[tp{t, p}]; ok {
				delete(s.held, tp{t, p})
				s.cl.ResumeFetchPartitions(map[string][]int32{t: {p}})
			}
		}
	}
}

// accept decodes and checks one record of a batch's type and adds it to
// the batch, or counts it as dealt with when the shedding policy drops it.
// A record that fails is not counted (its offset is not passed) unless the
// failure is the record's own: one waiting for the registry must not have
// its offset committed before it is stored.
func accept[T any](ctx context.Context, s *Sink, b *batch[T], r *kgo.Record, info topicInfo, level resilience.Level,
	decode func(context.Context, []byte) (T, uint32, error), check func(*T) (symbol string, err error)) (dropped bool, err error) {
	rec, _, err := decode(ctx, r.Value)
	if err == nil {
		var symbol string
		if symbol, err = check(&rec); err == nil {
			if s.cfg.Shedder != nil && !s.cfg.Shedder.Keep(level, string(info.dt), symbol) {
				b.advance(r)
				return true, nil
			}
			b.add(rec, r)
			return false, nil
		}
	}
	if !transient(err) {
		b.advance(r) // a dead letter: its offset is passed once it is in the DLQ
	}
	return false, err
}

// transient reports an error that says nothing about the record: the
// schema registry was unreachable or the sink is stopping.
func transient(err error) bool {
	var unknown *codec.UnknownSchemaError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return errors.As(err, &unknown) && !errors.Is(err, registry.ErrNotFound)
}

// checkExchange rejects a record whose exchange is not its topic's.
func checkExchange(got, topic string, err error) error {
	if err == nil && got != topic {
		return &md.ValidationError{Field: "exchange", Reason: fmt.Sprintf("%s record on the %s topic", got, topic)}
	}
	return err
}

// deadLetter sends a record K2 cannot store to <topic>.dlq, unchanged,
// with why in its headers.
func (s *Sink) deadLetter(ctx context.Context, r *kgo.Record, err error) {
	reason := codec.Reason(err)
	mDeadLetters.WithLabelValues(r.Topic, reason).Inc()
	// A stream of bad records must not become a stream of log lines: one
	// a second, with the count since the last; the metric counts them all.
	s.deadSinceLog++
	s.deadLog.Do(func() {
		s.log.Warn("record sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"reason", reason, "error", err, "dead_letters_since_last_line", s.deadSinceLog)
		s.deadSinceLog = 0
	})
	headers := append(slices.Clone(r.Headers),
		kgo.RecordHeader{Key: bus.HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: bus.HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: bus.HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	if perr := s.dlq.DeadLetter(ctx, r.Topic, r.Key, r.Value, reason, err, headers...); perr != nil {
		s.log.Error("dead-letter produce failed", "error", perr)
	}
}

// backpressure applies the degradation level: at the top level fetching
// pauses until the level falls (nothing is dropped); a lake that fails to
// commit also pauses fetching, and the batch is retried.
func (s *Sink) backpressure(ctx context.Context, flushErr error) {
	pause := false
	if flushErr != nil {
		mConsumerErrors.WithLabelValues("lake").Inc()
		s.log.Error("lake commit failed; pausing and retrying, nothing is lost", "error", flushErr)
		pause = true
		s.stall = time.Now().Add(2 * time.Second)
	}
	var total int64
	for _, l := range s.lag {
		total += l
	}
	s.stats.Lock()
	s.stats.Lag = total
	s.stats.Unlock()
	if s.cfg.Degradation != nil {
		s.cfg.Degradation.Observe(total, s.cfg.Memory())
		pause = pause || s.cfg.Degradation.ShouldPause()
	}
	if pause && !s.paused {
		s.cl.PauseFetchTopics(s.assignedTopics()...)
		s.paused = true
		mPaused.Set(1)
		if flushErr == nil {
			// Free what the batches hold so memory can recover.
			if err := s.flushAll(ctx); err != nil {
				s.log.Error("flush while paused failed", "error", err)
			}
		}
	} else if !pause && s.paused && time.Now().After(s.stall) {
		s.cl.ResumeFetchTopics(s.assignedTopics()...)
		s.paused = false
		mPaused.Set(0)
	}
}

func (s *Sink) assignedTopics() []string {
	seen := map[string]bool{}
	var out []string
	for k := range s.lag {
		if !seen[k.topic] {
			seen[k.topic] = true
			out = append(out, k.topic)
		}
	}
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	for t := range s.topics {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.stats.Lock()
	defer s.stats.Unlock()
	return s.stats.Stats
}
