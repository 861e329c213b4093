package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/codec"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// producerMetrics are one producer's metrics, the original's names (P1.3),
// labelled with the producer's client id: a process runs several (a feed's,
// the sink's dead letters).
type producerMetrics struct {
	produced   *prometheus.CounterVec // topic
	errors     *prometheus.CounterVec // topic, error_type
	retries    prometheus.Counter
	exhausted  *prometheus.CounterVec // topic
	latency    prometheus.Histogram
	serialize  *prometheus.CounterVec // data_type, error_type: refused before Kafka
	byTopic    sync.Map               // topic → prometheus.Counter of produced, resolved once
	errorTypes []string
}

func newProducerMetrics(cfg ProducerConfig) *producerMetrics {
	reg := cfg.Registerer
	if reg != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"client": cfg.ClientID}, reg)
	}
	f := ops.NewMetrics(reg)
	m := &producerMetrics{
		produced:  f.CounterVec("k2_kafka_messages_produced_total", "Records the broker acknowledged.", "topic"),
		errors:    f.CounterVec("k2_kafka_produce_errors_total", "Records that failed to produce, by error type.", "topic", "error_type"),
		retries:   f.Counter("k2_kafka_produce_retries_total", "Produce requests that failed and were retried."),
		exhausted: f.CounterVec("k2_kafka_produce_max_retries_exceeded_total", "Records given up on after the retry limit or delivery timeout.", "topic"),
		latency:   f.Histogram("k2_kafka_produce_duration_seconds", "Time from producing a record to its acknowledgement.", ops.LatencyBuckets),
		serialize: f.CounterVec("k2_serializer_errors_total", "Records refused before reaching Kafka, by data type and error type (invalid: failed validation; registry: its schema could not be registered; encode).", "data_type", "error_type"),
	}
	for _, dt := range record.DataTypes() {
		for _, e := range serializeErrorTypes {
			m.serialize.WithLabelValues(dt, e)
		}
	}
	// The topics this producer writes to, at zero from the start.
	for _, spec := range (Topology{Prefix: cfg.TopicPrefix}).Specs() {
		if len(cfg.Exchanges) > 0 && !slices.Contains(cfg.Exchanges, spec.Exchange) {
			continue
		}
		m.produced.WithLabelValues(spec.Name)
		m.exhausted.WithLabelValues(spec.Name)
		for _, e := range produceErrorTypes {
			m.errors.WithLabelValues(spec.Name, e)
		}
	}
	return m
}

// ErrClosed is returned when producing after Close.
var ErrClosed = errors.New("producer is closed")

// ProducerConfig tunes the producer. Zero values take the defaults.
type ProducerConfig struct {
	Brokers     []string
	Security    Security // TLS and SASL (zero: PLAINTEXT)
	ClientID    string
	TopicPrefix string        // see Topology.Prefix
	Linger      time.Duration // wait to fill batches (default 5 ms)
	BatchBytes  int32         // largest batch (default 1 MiB)
	Compression string        // none, gzip, snappy, lz4, zstd (default Compression)
	// MaxBuffered bounds records waiting for the broker (default 200,000):
	// a producer faster than the broker blocks rather than growing memory.
	MaxBuffered int
	// DeliveryTimeout gives up on a record after this long (default 2 min).
	DeliveryTimeout time.Duration
	Logger          *slog.Logger
	// Registerer takes the producer's metrics, labelled client=ClientID
	// (nil: kept to itself). Exchanges, when set, are the only ones whose
	// topics the metrics start with at zero.
	Registerer prometheus.Registerer
	Exchanges  []string
}

// ProducerStats are the producer's counters; they stay readable after Close.
type ProducerStats struct {
	Produced int64 `json:"produced"` // acknowledged by the broker
	Failed   int64 `json:"failed"`
	Retries  int64 `json:"retries"`
	Buffered int64 `json:"buffered"` // waiting for the broker now
	Closed   bool  `json:"closed"`
}

// Producer writes K2 records to Kafka: Avro in the Confluent wire format,
// keyed by symbol (company id for reference data), to the exchange's topic.
// It is idempotent with acks=all, so a retried batch is never written
// twice, and records of one key stay in order.
type Producer struct {
	cl     *kgo.Client
	reg    *registry.Client
	log    *slog.Logger
	prefix string

	mu    sync.RWMutex
	dests map[destKey]dest
	slab  slab // records and messages

	closed    atomic.Bool
	closeOnce sync.Once
	closeRes  atomic.Pointer[closeResult] // set once Close has finished

	produced, failed, retries atomic.Int64
	errMu                     sync.Mutex
	firstErr                  error
	m                         *producerMetrics
}

type closeResult struct {
	queued int
	err    error
}

// NewProducer connects to the brokers; schemas are registered with reg on
// first use of each subject.
func NewProducer(cfg ProducerConfig, reg *registry.Client) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("producer: no brokers")
	}
	if cfg.Linger == 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 1 << 20
	}
	if cfg.MaxBuffered == 0 {
		cfg.MaxBuffered = 200_000
	}
	if cfg.DeliveryTimeout == 0 {
		cfg.DeliveryTimeout = 2 * time.Minute
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "k2"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	comp, err := compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	p := &Producer{reg: reg, log: cfg.Logger, prefix: cfg.TopicPrefix, dests: map[destKey]dest{}, m: newProducerMetrics(cfg)}
	cl, err := NewClient(cfg.Brokers, cfg.Security,
		kgo.ClientID(cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes need acks=all
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytes(cfg.BatchBytes),
		kgo.ProducerBatchCompression(comp),
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.WithHooks(retryHook{p}),
	)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	p.cl = cl
	return p, nil
}

func compression(name string) (kgo.CompressionCodec, error) {
	if name == "" {
		name = Compression
	}
	switch name {
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q is not none, gzip, snappy, lz4 or zstd", name)
}

// SubjectSchema is a schema registry subject and the schema K2 writes under it.
type SubjectSchema struct {
	Subject string
	Text    string
}

// Schemas lists the subjects of every asset class K2 has exchanges for,
// and of each of the topology's record topics (codec.TopicSubject), with
// the schema each kind writes under them.
func Schemas(t Topology) []SubjectSchema {
	seen := map[string]bool{}
	var out []SubjectSchema
	for _, code := range md.ExchangeCodes() {
		ex, _ := md.LookupExchange(code)
		for _, kind := range record.All {
			k := kind.Describe()
			subj := codec.Subject(ex.AssetClass, string(k.DataType))
			if !seen[subj] {
				seen[subj] = true
				out = append(out, SubjectSchema{subj, k.Avro.Text})
			}
		}
	}
	for _, s := range t.Specs() {
		if !s.DLQ {
			kind, _ := record.ByDataType(s.DataType)
			out = append(out, SubjectSchema{codec.TopicSubject(s.Name), kind.Describe().Avro.Text})
		}
	}
	return out
}

// dest names a destination's topic and registers K2's schema for it once,
// under the asset class's subject and the topic's own.
func (p *Producer) dest(ctx context.Context, key destKey, schema string) (dest, error) {
	p.mu.RLock()
	d, ok := p.dests[key]
	p.mu.RUnlock()
	if ok {
		return d, nil
	}
	d.topic = p.prefix + Topic(key.asset, key.dataType, key.exchange)
	id, err := p.reg.Register(ctx, codec.Subject(key.asset, string(key.dataType)), schema)
	if err != nil {
		return d, err
	}
	if _, err := p.reg.Register(ctx, codec.TopicSubject(d.topic), schema); err != nil {
		return d, err
	}
	d.id = id
	p.mu.Lock()
	p.dests[key] = d
	p.mu.Unlock()
	return d, nil
}

// destKey is where a record goes: its kind's data type on an exchange.
type destKey struct {
	asset    md.AssetClass
	dataType record.DataType
	exchange string
}

// dest is a destination's topic and the schema id its records carry, made
// once: naming them per record was 7% of a producer's CPU.
type dest struct {
	topic string
	id    uint32
}

// Produce validates r and produces it to its kind's topic on its
// exchange (market.{asset}.{data_type}.{exchange}), keyed by the kind's
// key, as a wire-format message of the kind's schema. An invalid record is
// an error here, before it reaches Kafka.
func Produce[T any](ctx context.Context, p *Producer, k *record.Kind[T], r *T) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := k.Validate(r); err != nil {
		p.m.serialize.WithLabelValues(string(k.DataType), "invalid").Inc()
		return fmt.Errorf("%s %s: %w", k.Name, k.Key(r), err)
	}
	d, err := p.dest(ctx, destKey{k.Asset(r), k.DataType, k.Exchange(r)}, k.Avro.Text)
	if err != nil {
		p.m.serialize.WithLabelValues(string(k.DataType), "registry").Inc()
		return err
	}
	key := k.Key(r)
	rec, err := p.slab.record(key, func(b []byte) ([]byte, error) { return k.Encode(b, d.id, r) })
	if err != nil {
		p.m.serialize.WithLabelValues(string(k.DataType), "encode").Inc()
		return fmt.Errorf("%s %s: %w", k.Name, key, err)
	}
	rec.Topic = d.topic
	p.cl.Produce(ctx, rec, p.promise)
	return nil
}

// Dead-letter headers: why a record was set aside and where it came from.
const (
	HeaderReason    = "k2-dlq-reason" // a short code: not_wire_format, invalid_price, malformed_json…
	HeaderError     = "k2-dlq-error"  // the full error text
	HeaderTopic     = "k2-dlq-topic"  // the topic a consumed record came from
	HeaderPartition = "k2-dlq-partition"
	HeaderOffset    = "k2-dlq-offset"
	HeaderSource    = "k2-dlq-source" // where a feed received a frame: the endpoint
)

// DeadLetter produces value, unchanged, to topic's dead-letter topic
// (topic + DLQSuffix) with the reason and error in headers, after any
// headers given.
func (p *Producer) DeadLetter(ctx context.Context, topic string, key, value []byte, reason string, cause error, headers ...kgo.RecordHeader) error {
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(cause.Error())})
	return p.Raw(ctx, &kgo.Record{Topic: topic + DLQSuffix, Key: key, Value: value, Headers: headers})
}

// TopicFor names the topic of a data type on an exchange, with the
// producer's prefix.
func (p *Producer) TopicFor(asset md.AssetClass, dt record.DataType, exchange string) string {
	return p.prefix + Topic(asset, dt, exchange)
}

// Raw produces a record as given: the sink forwards undecodable records to
// dead-letter topics with it.
func (p *Producer) Raw(ctx context.Context, r *kgo.Record) error {
	if p.closed.Load() {
		return ErrClosed
	}
	p.cl.Produce(ctx, r, p.promise)
	return nil
}

// promise runs when the broker has acknowledged or refused a record.
func (p *Producer) promise(r *kgo.Record, err error) {
	if err != nil {
		p.failed.Add(1)
		p.m.errors.WithLabelValues(r.Topic, errorType(err)).Inc()
		if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) {
			p.m.exhausted.WithLabelValues(r.Topic).Inc()
		}
		p.errMu.Lock()
		if p.firstErr == nil {
			why := ""
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				// The client gives up after a few metadata loads rather
				// than waiting for the topic, and K2 does not ask the
				// broker to create it with the broker's defaults.
				why = "the topic does not exist (k2 topics create makes K2's topics): "
			}
			p.firstErr = fmt.Errorf("produce to %s: %s%w", r.Topic, why, err)
		}
		p.errMu.Unlock()
		return
	}
	p.produced.Add(1)
	c, ok := p.m.byTopic.Load(r.Topic)
	if !ok {
		c, _ = p.m.byTopic.LoadOrStore(r.Topic, p.m.produced.WithLabelValues(r.Topic))
	}
	c.(prometheus.Counter).Inc()
	p.m.latency.Observe(time.Since(r.Timestamp).Seconds())
}

// serializeErrorTypes are the error_type values of k2_serializer_errors_total.
var serializeErrorTypes = []string{"invalid", "registry", "encode"}

// produceErrorTypes are errorType's answers.
var produceErrorTypes = []string{"timeout", "retries_exhausted", "canceled", "closed", "broker"}

func errorType(err error) string {
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries_exhausted"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, kgo.ErrClientClosed):
		return "closed"
	}
	return "broker"
}

// Flush waits until every record produced so far is acknowledged or has
// failed, and returns the first failure since the last Flush.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w (%d records still queued)", err, p.cl.BufferedProduceRecords())
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	err := p.firstErr
	p.firstErr = nil
	return err
}

// Close flushes what is queued (until ctx ends) and closes the client. It
// returns how many records were still queued when it gave up, and is safe
// to call more than once: later calls return the first call's result.
// Producing after Close returns ErrClosed.
func (p *Producer) Close(ctx context.Context) (queued int, err error) {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		err := p.Flush(ctx)
		q := int(p.cl.BufferedProduceRecords())
		p.cl.Close()
		if q > 0 {
			p.log.Warn("producer closed with records still queued", "queued", q, "error", err)
		}
		p.closeRes.Store(&closeResult{queued: q, err: err})
	})
	r := p.closeRes.Load()
	return r.queued, r.err
}

// Stats returns the counters.
func (p *Producer) Stats() ProducerStats {
	s := ProducerStats{Produced: p.produced.Load(), Failed: p.failed.Load(), Retries: p.retries.Load(), Closed: p.closed.Load()}
	if r := p.closeRes.Load(); r != nil {
		s.Buffered = int64(r.queued)
	} else {
		s.Buffered = p.cl.BufferedProduceRecords()
	}
	return s
}

// retryHook counts produce requests the broker failed: kgo retries them.
type retryHook struct{ p *Producer }

func (h retryHook) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err != nil { // 0 is Produce
		h.p.retries.Add(1)
		h.p.m.retries.Inc()
	}
}
