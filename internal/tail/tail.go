// Package tail holds the stream's recent records in memory, per symbol,
// as kdb+'s real-time database does: the API answers "the latest trades"
// and streams events from here, never waiting for the lake. A read
// combines the lake up to the Kafka offsets its snapshot records with the
// tail's records from exactly those offsets: no gap, no overlap.
//
// The tail reads every data topic directly (no consumer group, so it
// never disturbs the sink's), from the offsets the lake's newest snapshot
// holds. It is bounded by age and by bytes; what it evicts before the
// lake has it makes reads say they are incomplete.
package tail

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// Options configure a Tail.
type Options struct {
	Brokers     []string
	Security    bus.Security // TLS and SASL (zero: PLAINTEXT)
	TopicPrefix string
	// MaxAge and MaxBytes bound what is held; the oldest goes first.
	MaxAge   time.Duration
	MaxBytes int64
	Logger   *slog.Logger
	// Registerer takes the tail's metrics (nil: none exported).
	Registerer prometheus.Registerer
}

// Tail is the stream's recent records of every time-keyed kind.
type Tail struct {
	o     Options
	lake  *lake.Lake
	dec   *codec.Decoder
	log   *slog.Logger
	m     *metrics
	kinds []*kindTail // by record.Spec.Index; nil for kinds without time
	match *regexp.Regexp
	ready chan struct{}
	// mu guards parts. Lock order: a kind's mu before it, never after.
	mu    sync.Mutex
	parts map[tp]*part
	// The series of each held record, oldest first, and the bytes held:
	// only Run's goroutine (add, evict) touches them.
	fifo   []*series
	fhead  int
	bytes  int64
	notify chan struct{}
	subsMu sync.Mutex
	subs   map[*Sub]struct{}
}

type tp struct {
	topic     string
	partition int32
}

// part is one partition's place: low is the first offset held (earlier
// ones were evicted or are in the lake), next the next to read.
type part struct {
	tp
	kind     *kindTail
	exchange string
	low      int64
	next     int64
}

// entry is one record as the stream carried it: its place and the bytes
// to decode it from when a read wants it.
type entry struct {
	off     int64
	time    int64
	seq     int64
	hasSeq  bool
	arrived int64 // unix nanoseconds
	msg     []byte
}

// entryOverhead is what an entry costs beside its message bytes.
const entryOverhead = 64

// series is one symbol's records on one partition, in offset order.
type series struct {
	symbol  string
	part    *part
	entries []entry
}

type kindTail struct {
	kind   record.Any
	mu     sync.RWMutex
	series map[string][]*series // by symbol; a symbol moved between partitions has several
}

// New makes a tail over the data topics at brokers, starting from the
// offsets the lake's tables record.
func New(o Options, l *lake.Lake, reg *registry.Client) *Tail {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tail{o: o, lake: l, dec: codec.NewDecoder(reg.SchemaByID), log: o.Logger, m: newMetrics(o.Registerer),
		kinds: make([]*kindTail, len(record.All)), match: regexp.MustCompile(bus.TopicPattern(o.TopicPrefix)),
		ready: make(chan struct{}), parts: map[tp]*part{}, notify: make(chan struct{}, 1), subs: map[*Sub]struct{}{}}
	for _, k := range record.All {
		if k.Describe().Table.Time != "" {
			t.kinds[k.Describe().Index()] = &kindTail{kind: k, series: map[string][]*series{}}
		}
	}
	return t
}

// Run reads the stream until ctx ends.
func (t *Tail) Run(ctx context.Context) error {
	admin, err := bus.NewClient(t.o.Brokers, t.o.Security, kgo.ClientID("k2-api-tail-admin"))
	if err != nil {
		return err
	}
	defer admin.Close()
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	discover := time.NewTicker(5 * time.Second)
	defer discover.Stop()
	failing := false
	for {
		added, err := t.discover(ctx, kadm.NewClient(admin))
		switch { // said once when it starts failing, once when it recovers
		case err != nil && ctx.Err() == nil && !failing:
			t.log.Warn("API tail: cannot list the stream's topics; recent reads see the lake only until it can", "brokers", t.o.Brokers, "error", err)
			failing = true
		case err == nil && failing:
			t.log.Info("API tail: reading the stream again")
			failing = false
		}
		if len(added) > 0 {
			if cl == nil {
				if cl, err = bus.NewClient(t.o.Brokers, t.o.Security, kgo.ClientID("k2-api-tail"),
					kgo.ConsumePartitions(added), kgo.FetchMaxWait(100*time.Millisecond)); err != nil {
					return err
				}
			} else {
				cl.AddConsumePartitions(added)
			}
		}
		if cl == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-discover.C:
			}
			continue
		}
		// Poll until the next discovery is due.
		for polling := true; polling; {
			select {
			case <-ctx.Done():
				return nil
			case <-discover.C:
				polling = false
				continue
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			fs := cl.PollFetches(pctx)
			cancel()
			fs.EachError(func(topic string, p int32, err error) {
				if ctx.Err() == nil && err != context.DeadlineExceeded {
					t.log.Warn("tail: fetch failed", "topic", topic, "partition", p, "error", err)
				}
			})
			fs.EachPartition(func(p kgo.FetchTopicPartition) { t.add(ctx, p) })
			t.evict(time.Now())
		}
	}
}

// discover finds data partitions the tail does not read yet and where to
// start each: the offset the lake's newest snapshot records, or the
// start of the partition when the lake has none of it.
func (t *Tail) discover(ctx context.Context, adm *kadm.Client) (map[string]map[int32]kgo.Offset, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	offsets := map[string]lake.Offsets{}
	added := map[string]map[int32]kgo.Offset{}
	for _, td := range topics.Sorted() {
		if td.Err != nil || !t.match.MatchString(td.Topic) {
			continue
		}
		_, k, exchange, err := bus.ParseTopic(strings.TrimPrefix(td.Topic, t.o.TopicPrefix))
		if err != nil {
			continue
		}
		kt := t.kinds[k.Describe().Index()]
		if kt == nil {
			continue
		}
		table := k.Describe().Table.Name
		if _, ok := offsets[table]; !ok {
			offsets[table] = lake.Offsets{}
			if tbl, err := t.lake.Load(ctx, table); err == nil {
				offsets[table] = lake.TableOffsets(tbl)
			} else {
				t.log.Warn("tail: reading the table's offsets failed; starting its partitions at their start", "table", table, "error", err)
			}
		}
		for _, pd := range td.Partitions.Sorted() {
			key := tp{td.Topic, pd.Partition}
			t.mu.Lock()
			_, known := t.parts[key]
			t.mu.Unlock()
			if known {
				continue
			}
			start := kgo.NewOffset().AtStart()
			var low int64
			if off, ok := offsets[table].Get(td.Topic, pd.Partition); ok {
				start, low = kgo.NewOffset().At(off), off
			}
			t.mu.Lock()
			t.parts[key] = &part{tp: key, kind: kt, exchange: exchange, low: low, next: low}
			t.mu.Unlock()
			if added[td.Topic] == nil {
				added[td.Topic] = map[int32]kgo.Offset{}
			}
			added[td.Topic][pd.Partition] = start
		}
	}
	return added, nil
}

// add keeps a fetched partition's records.
func (t *Tail) add(ctx context.Context, p kgo.FetchTopicPartition) {
	t.mu.Lock()
	pt := t.parts[tp{p.Topic, p.Partition}]
	t.mu.Unlock()
	if pt == nil || len(p.Records) == 0 {
		return
	}
	kt := pt.kind
	now := time.Now()
	var added int64
	var held []*series
	kt.mu.Lock()
	if first := p.Records[0].Offset; pt.next < first {
		// The partition starts later than the tail expected (its head was
		// deleted): nothing before first can be held.
		pt.low = first
	}
	for _, r := range p.Records {
		pt.next = r.Offset + 1
		row, err := kt.kind.DecodeRow(t.dec, ctx, r.Value)
		if err != nil {
			// The sink dead-letters it; the lake will not have it either.
			t.m.skipped.Inc()
			continue
		}
		s := kt.seriesOf(row.Symbol, pt)
		e := entry{off: r.Offset, time: int64(row.Time), seq: row.Seq.Int64, hasSeq: row.Seq.Valid,
			arrived: now.UnixNano(), msg: r.Value}
		s.entries = append(s.entries, e)
		held = append(held, s)
		added += int64(len(r.Value)) + entryOverhead
		t.m.delay.Observe(now.Sub(row.Time.Time()).Seconds())
	}
	kt.mu.Unlock()
	t.fifo = append(t.fifo, held...)
	t.bytes += added
	t.m.records.Add(float64(len(held)))
	t.wake()
}

func (kt *kindTail) seriesOf(symbol string, pt *part) *series {
	for _, s := range kt.series[symbol] {
		if s.part == pt {
			return s
		}
	}
	s := &series{symbol: symbol, part: pt}
	kt.series[symbol] = append(kt.series[symbol], s)
	return s
}

// evict drops the oldest records past the tail's age or bytes.
func (t *Tail) evict(now time.Time) {
	cutoff := now.Add(-t.o.MaxAge).UnixNano()
	evicted := 0
	for t.fhead < len(t.fifo) {
		s := t.fifo[t.fhead]
		kt := s.part.kind
		kt.mu.Lock()
		e := s.entries[0]
		if e.arrived >= cutoff && t.bytes <= t.o.MaxBytes {
			kt.mu.Unlock()
			break
		}
		s.entries[0] = entry{}
		s.entries = s.entries[1:]
		if s.part.low <= e.off {
			s.part.low = e.off + 1
		}
		if len(s.entries) == 0 {
			s.entries = nil
		}
		kt.mu.Unlock()
		t.fifo[t.fhead] = nil
		t.fhead++
		t.bytes -= int64(len(e.msg)) + entryOverhead
		evicted++
	}
	if t.fhead > 4096 && t.fhead > len(t.fifo)/2 {
		t.fifo = append(t.fifo[:0:0], t.fifo[t.fhead:]...)
		t.fhead = 0
	}
	if evicted > 0 {
		t.m.evicted.Add(float64(evicted))
		t.m.records.Sub(float64(evicted))
	}
	t.m.bytes.Set(float64(t.bytes))
}

func (t *Tail) wake() {
	t.subsMu.Lock()
	for s := range t.subs {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	t.subsMu.Unlock()
}

type metrics struct {
	records prometheus.Gauge
	bytes   prometheus.Gauge
	evicted prometheus.Counter
	skipped prometheus.Counter
	delay   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := ops.NewMetrics(reg)
	return &metrics{
		records: f.Gauge("k2_api_tail_records", "Records the API holds in memory from the stream."),
		bytes:   f.Gauge("k2_api_tail_bytes", "Bytes the API's in-memory tail holds (message bytes plus bookkeeping)."),
		evicted: f.Counter("k2_api_tail_evicted_total", "Records the tail dropped for age or size."),
		skipped: f.Counter("k2_api_tail_skipped_total", "Stream records the tail could not decode or validate (the sink dead-letters them)."),
		delay: f.Histogram("k2_api_tail_delay_seconds", "From a record's event time to the tail holding it.",
			[]float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
	}
}
