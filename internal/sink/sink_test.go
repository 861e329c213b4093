package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/bus/bustest"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/resilience"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

const (
	binanceTrades = "market.crypto.trades.binance"
	binanceQuotes = "market.crypto.quotes.binance"
)

// encoded is an encoder's message; the test's records encode.
func encoded(msg []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return msg
}

// env is an embedded broker, schema registry and lake for one test.
type env struct {
	brokers []string
	prefix  string // of topics and groups on a shared broker
	reg     *registry.Client
	regDown atomic.Bool  // the registry answers 503 while set
	refused atomic.Int64 // requests it refused
	lake    *lake.Lake
	prod    *bus.Producer
	adm     *kadm.Client
}

// newEnv runs the test against an embedded broker.
func newEnv(t *testing.T) *env {
	t.Helper()
	b, err := bus.StartBroker(filepath.Join(t.TempDir(), "kafka"), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return setUp(t, &env{brokers: []string{b.Addr()}})
}

// newKafkaEnv runs the test against the real Apache Kafka of the test
// services, with topics and groups under a prefix of its own.
func newKafkaEnv(t *testing.T) *env {
	t.Helper()
	return setUp(t, &env{brokers: testsvc.KafkaSeeds(t), prefix: testsvc.KafkaTopicPrefix(t)})
}

func setUp(t *testing.T, e *env) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	r, err := registry.Open(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e.regDown.Load() {
			e.refused.Add(1)
			http.Error(w, "registry down for the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(func() { srv.Close(); r.Close() })
	if e.reg, err = registry.NewClient(srv.URL); err != nil {
		t.Fatal(err)
	}
	e.lake, err = lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.lake.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.adm = kadm.NewClient(cl)
	topo := bus.DefaultTopology()
	topo.Prefix = e.prefix
	if _, err := bus.CreateTopics(ctx, e.adm, topo); err != nil {
		t.Fatal(err)
	}
	e.prod = e.producer(t)
	return e
}

func (e *env) producer(t *testing.T) *bus.Producer {
	return bustest.Producer(t, e.brokers, e.prefix, e.reg)
}

// running is a sink in a goroutine.
type running struct {
	*Sink
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
	// metrics is the registry the sink's metrics are in.
	metrics *ops.Registry
}

// metric reads one of the sink's metrics as Prometheus would.
func (r *running) metric(family string, labels ...string) float64 {
	return ops.Sum(r.metrics, family, labels...)
}

// stop ends the sink and returns Run's error; it may be called again.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatal("sink did not stop")
		return nil
	}
}

func (e *env) startSink(t *testing.T, cfg Config) *running {
	t.Helper()
	cfg.Brokers = e.brokers
	cfg.TopicPrefix = e.prefix
	if cfg.Group == "" {
		cfg.Group = "k2-sink"
	}
	cfg.Group = e.prefix + cfg.Group
	cfg.Logger = testLogger(t)
	reg := ops.NewRegistry()
	cfg.Registerer = reg
	if cfg.BatchAge == 0 {
		cfg.BatchAge = 100 * time.Millisecond
	}
	dlq := e.producer(t)
	s, err := New(cfg, e.lake, e.reg, dlq)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Sink: s, cancel: cancel, done: make(chan struct{}), metrics: reg}
	go func() {
		r.err = s.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// testLogger keeps a sink's log and prints it if the test fails.
func testLogger(t *testing.T) *slog.Logger {
	log, logged := lockedLog()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sink log:\n%s", logged())
		}
	})
	return log
}

// lockedLog is a logger for a sink whose client logs from goroutines of
// its own, and what it has logged so far.
func lockedLog() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug})), logged
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitFor polls cond until it holds or 60 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 60*time.Second, cond)
}

// trade i of a synthetic Binance stream over three symbols.
func trade(i int) md.Trade {
	sym := []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}[i%3]
	tid := fmt.Sprintf("BINANCE-%d", i)
	return md.Trade{
		MessageID: md.MessageID("trade", sym, tid), TradeID: tid, Symbol: sym, Exchange: "BINANCE",
		AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(i)*1000),
		Price: md.DecimalFromUnits(6183763000000 + int64(i)), Quantity: md.MustDecimal("0.02"),
		Currency: "USDT", Side: md.Buy, TradeConditions: []string{},
		SourceSequence: md.SomeInt64(int64(i/3 + 1)), IngestionTimestamp: 1723161256000000,
	}
}

func quote(i int) md.Quote {
	qid := fmt.Sprintf("BINANCE-Q%d", i)
	return md.Quote{
		MessageID: md.MessageID("quote", "BTCUSDT", qid), QuoteID: qid, Symbol: "BTCUSDT", Exchange: "BINANCE",
		AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(i)*1000),
		BidPrice: md.SomeDecimal(md.MustDecimal("61837.62")), BidQuantity: md.SomeDecimal(md.MustDecimal("1.5")),
		AskPrice: md.SomeDecimal(md.MustDecimal("61837.63")), AskQuantity: md.SomeDecimal(md.MustDecimal("0.7")),
		Currency: "USDT", IngestionTimestamp: 1723161256000000,
	}
}

func (e *env) produceTrades(t *testing.T, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		tr := trade(i)
		if err := bus.Produce(ctx, e.prod, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// endOffsets are the topic's end offsets by partition.
func (e *env) endOffsets(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ends, err := e.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

func (e *env) tableOffsets(t *testing.T, name string) lake.Offsets {
	t.Helper()
	tbl, err := e.lake.Load(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return lake.TableOffsets(tbl)
}

// checkOffsetsAtEnd fails unless the table records the topic's end offsets
// for every partition that has records.
func (e *env) checkOffsetsAtEnd(t *testing.T, table, topic string) {
	t.Helper()
	topic = e.prefix + topic
	stored := e.tableOffsets(t, table)
	for p, end := range e.endOffsets(t, topic) {
		if got, _ := stored.Get(topic, p); end > 0 && got != end {
			t.Errorf("%s[%d]: the table records offset %d, the topic ends at %d", topic, p, got, end)
		}
	}
}

func checkOnce(t *testing.T, keys map[string]int, want int) {
	t.Helper()
	if rep := laketest.Repeated(keys); len(rep) > 0 {
		t.Fatalf("stored more than once: %v", rep[:min(len(rep), 10)])
	}
	if len(keys) != want {
		t.Fatalf("%d distinct rows stored, want %d", len(keys), want)
	}
}

func TestSinkStoresEveryRecordOnceAndRecordsOffsets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produceTrades(t, 0, 20_000)
	e.produceTrades(t, 0, 300) // a feed that replayed after a reconnect
	for i := range 5_000 {
		q := quote(i)
		if err := bus.Produce(ctx, e.prod, record.Quote, &q); err != nil {
			t.Fatal(err)
		}
	}
	ref := md.ReferenceData{
		MessageID: md.MessageID("reference", "BTCUSDT", "BINANCE-BTCUSDT"), CompanyID: "BINANCE-BTCUSDT", Symbol: "BTCUSDT",
		Exchange: "BINANCE", AssetClass: md.Crypto, CompanyName: "Bitcoin / Tether", Currency: "USDT", IsActive: true,
		IngestionTimestamp: 1723161256000000,
	}
	if err := bus.Produce(ctx, e.prod, record.Reference, &ref); err != nil {
		t.Fatal(err)
	}
	if err := e.prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	s := e.startSink(t, Config{})
	waitFor(t, "every record", func() bool { return s.Stats().Consumed == 25_301 && s.Stats().Written+s.Stats().Duplicates == 25_301 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Duplicates != 300 || st.Written != 25_001 || st.DeadLetters != 0 {
		t.Fatalf("stats %+v: want 25,001 written and the 300 replayed trades dropped", st)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), 20_000)
	checkOnce(t, laketest.Keys(t, e.lake, "quotes", "symbol", "quote_id"), 5_000)
	checkOnce(t, laketest.Keys(t, e.lake, "reference_data", "company_id"), 1)
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)
	e.checkOffsetsAtEnd(t, "quotes", binanceQuotes)
	// The quotes table records only quote topics, the trades table only trade topics.
	if _, ok := e.tableOffsets(t, "trades")[binanceQuotes]; ok {
		t.Error("the trades table records the quotes topic's offsets")
	}
}

// --sink-batch-rows bounds every commit, even when one fetch brings far more.
func TestBatchRowsBoundsEveryCommit(t *testing.T) {
	e := newEnv(t)
	e.produceTrades(t, 0, 10_000)
	s := e.startSink(t, Config{Sink: config.Sink{BatchRows: 1_500}})
	waitFor(t, "every record", func() bool { return s.Stats().Written == 10_000 })
	tbl, err := e.lake.Load(context.Background(), "trades")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, snap := range tbl.Metadata().Snapshots() {
		n, err := strconv.Atoi(snap.Summary.Properties["added-records"])
		if err != nil {
			t.Fatalf("snapshot %d: added-records: %v", snap.SnapshotID, err)
		}
		if n > 1_500 {
			t.Errorf("snapshot %d adds %d rows; the sink's batches close at 1,500", snap.SnapshotID, n)
		}
		total += n
	}
	if total != 10_000 {
		t.Fatalf("the snapshots add %d rows, want 10,000", total)
	}
}

// A sink slower than its feed (a commit per record) drains a fetch long
// after it was made: its lag is the broker's end against what it has
// read, not the fetch's stale high watermark, so the lag alerts see it
// fall behind.
func TestLagOfASlowSinkIsMeasuredAgainstTheBrokersEnd(t *testing.T) {
	e := newEnv(t)
	e.produceTrades(t, 0, 1_000)
	s := e.startSink(t, Config{Sink: config.Sink{BatchRows: 1}})
	waitFor(t, "the first records", func() bool { return s.Stats().Written > 0 })
	e.produceTrades(t, 1_000, 5_000)
	testutil.WaitFor(t, "the lag to count the new records", 10*time.Second, func() bool {
		read := s.Stats().Consumed
		if read >= 1_000 {
			t.Fatalf("the sink read %d records: too fast to show a fetch drained late", read)
		}
		return s.metric("k2_kafka_consumer_lag_messages") >= float64(6_000-read-1) && s.Stats().Lag >= 6_000-read-1
	})
}

// A sink killed after its lake commit but before its group commit must
// resume from the table's offsets, not the group's.
func TestSinkResumesFromTheTableNotTheGroup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produceTrades(t, 0, 5_000)
	s := e.startSink(t, Config{Sink: config.Sink{Group: "g"}})
	waitFor(t, "the first records", func() bool { return s.Stats().Written == 5_000 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	// Forget the group's offsets, as if its commit had never happened.
	if _, err := e.adm.DeleteGroups(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	e.produceTrades(t, 5_000, 100)
	s2 := e.startSink(t, Config{Sink: config.Sink{Group: "g"}})
	waitFor(t, "the new records", func() bool { return s2.Stats().Written == 100 })
	s2.stop(t)
	if st := s2.Stats(); st.Consumed != 100 || st.Duplicates != 0 {
		t.Fatalf("restarted sink re-read stored records: %+v", st)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 5_100)
}

func TestPoisonRecordsGoToTheDeadLetterTopic(t *testing.T) {
	poisonRecords(t, newEnv(t))
}

func TestPoisonRecordsGoToTheDeadLetterTopicKafka(t *testing.T) {
	poisonRecords(t, newKafkaEnv(t))
}

// poisonRecords sends five kinds of bad record between good ones.
func poisonRecords(t *testing.T, e *env) {
	topic := e.prefix + binanceTrades
	ctx := context.Background()
	tradeID, err := e.reg.Register(ctx, codec.Subject(md.Crypto, "trades"), codec.Trade.Text)
	if err != nil {
		t.Fatal(err)
	}
	negative := trade(1)
	negative.Price = md.DecimalFromUnits(-1)
	kraken := trade(2)
	kraken.Exchange, kraken.TradeID = "KRAKEN", "KRAKEN-2"
	good, _ := codec.AppendTrade(nil, tradeID, &[]md.Trade{trade(3)}[0])
	poison := map[string][]byte{
		md.ReasonNotWireFormat:   []byte("{\"price\": 1}"),
		md.ReasonUnknownSchemaID: codec.AppendHeader(nil, 9999),
		md.ReasonUndecodable:     good[:len(good)-20],
		"invalid_price":          encoded(codec.AppendTrade(nil, tradeID, &negative)),
		"invalid_exchange":       encoded(codec.AppendTrade(nil, tradeID, &kraken)),
	}
	e.produceTrades(t, 100, 50)
	for reason, v := range poison {
		r := &kgo.Record{Topic: topic, Key: []byte(reason), Value: v}
		if err := e.prod.Raw(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	e.produceTrades(t, 200, 50)
	s := e.startSink(t, Config{})
	waitFor(t, "the good records", func() bool { return s.Stats().Written == 100 && s.Stats().DeadLetters == 5 })
	s.stop(t)
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 100)
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic+bus.DLQSuffix),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]*kgo.Record{}
	for len(got) < len(poison) {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("dead letters: got %d of %d", len(got), len(poison))
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[bus.HeaderReason] != string(r.Key) {
				t.Errorf("record keyed %s has reason %q (error %q)", r.Key, h[bus.HeaderReason], h[bus.HeaderError])
			}
			if h[bus.HeaderTopic] != topic || h[bus.HeaderOffset] == "" || h[bus.HeaderError] == "" {
				t.Errorf("headers %v", h)
			}
			if string(r.Value) != string(poison[string(r.Key)]) {
				t.Errorf("%s: the dead letter's value is not the original", r.Key)
			}
			got[string(r.Key)] = r
		})
	}
	for reason := range poison {
		if got := s.metric("k2_sink_dead_letters_total", "topic", topic, "reason", reason); got != 1 {
			t.Errorf("k2_sink_dead_letters_total{reason=%s} is %v, want 1", reason, got)
		}
	}
}

// Without the registry a record cannot be decoded, but it is not bad: it
// waits and arrives once the registry is back.
func TestUnreachableRegistryDelaysWithoutDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.produceTrades(t, 0, 1_000)
	e.regDown.Store(true)
	s := e.startSink(t, Config{})
	waitFor(t, "the sink to ask the registry", func() bool { return e.refused.Load() > 0 })
	time.Sleep(1500 * time.Millisecond)
	if st := s.Stats(); st.DeadLetters != 0 || st.Written != 0 {
		t.Fatalf("with the registry down: %+v", st)
	}
	// Held records are retried with a back-off, not in a loop.
	if n := e.refused.Load(); n > 20 {
		t.Errorf("the registry was asked %d times in 1.5 s", n)
	}
	e.regDown.Store(false)
	waitFor(t, "the records", func() bool { return s.Stats().Written == 1_000 })
	s.stop(t)
	if st := s.Stats(); st.DeadLetters != 0 {
		t.Fatalf("%+v", st)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 1_000)
}

func TestSinksInOneGroupShareThePartitions(t *testing.T) {
	e := newEnv(t)
	a := e.startSink(t, Config{Sink: config.Sink{Group: "shared"}})
	b := e.startSink(t, Config{Sink: config.Sink{Group: "shared"}})
	waitFor(t, "both sinks to get partitions", func() bool { return a.Stats().Partitions > 0 && b.Stats().Partitions > 0 })
	// Many symbols, so that every partition has records.
	ctx := context.Background()
	const n = 30_000
	for i := range n {
		tr := trade(i)
		tr.Symbol = fmt.Sprintf("SYM%02dUSDT", i%40)
		tr.MessageID = md.MessageID("trade", tr.Symbol, tr.TradeID)
		if err := bus.Produce(ctx, e.prod, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every record", func() bool { return a.Stats().Written+b.Stats().Written == n })
	a.stop(t)
	b.stop(t)
	if a.Stats().Consumed == 0 || b.Stats().Consumed == 0 {
		t.Fatalf("one sink did all the work: %d and %d", a.Stats().Consumed, b.Stats().Consumed)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), n)
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)
}

// A batch that starts before what the table already holds (a sink that
// lost its partitions and commits late) is refused, whatever its rows.
func TestLateBatchIsRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w, err := record.Trade.Writer(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	stored := lake.Offsets{}
	stored.Set(binanceTrades, 0, 100)
	if _, err := w.Commit(ctx, []md.Trade{trade(1)}, stored.Props()); err != nil {
		t.Fatal(err)
	}
	rows, err := record.Trade.NewBatch(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	b := buffer{rows: rows}
	add := func(tr md.Trade, r *kgo.Record) {
		record.Add(b.rows, tr)
		b.advance(r, r)
	}
	add(trade(2), &kgo.Record{Topic: binanceTrades, Partition: 0, Offset: 60})
	add(trade(3), &kgo.Record{Topic: binanceTrades, Partition: 1, Offset: 7})
	_, err = b.rows.Commit(ctx, nil, lake.WithSummary(b.summaryOf))
	var overlap *OverlapError
	if !errors.As(err, &overlap) || overlap.Partition != 0 || overlap.First != 60 || overlap.Stored != 100 {
		t.Fatalf("got %v", err)
	}
	// After the table's offset it commits, carrying partition 0 forward.
	b.reset()
	add(trade(2), &kgo.Record{Topic: binanceTrades, Partition: 0, Offset: 100})
	add(trade(3), &kgo.Record{Topic: binanceTrades, Partition: 1, Offset: 7})
	if _, err := b.rows.Commit(ctx, nil, lake.WithSummary(b.summaryOf)); err != nil {
		t.Fatal(err)
	}
	got := e.tableOffsets(t, "trades")
	if p0, _ := got.Get(binanceTrades, 0); p0 != 101 {
		t.Errorf("partition 0 at %d, want 101", p0)
	}
	if p1, _ := got.Get(binanceTrades, 1); p1 != 8 {
		t.Errorf("partition 1 at %d, want 8", p1)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 3)
}

// Memory at the top level pauses consumption; nothing is dropped, and
// everything arrives once memory falls.
func TestMemoryPressurePausesWithoutLoss(t *testing.T) {
	e := newEnv(t)
	var mem atomic.Uint64
	mem.Store(990)
	deg, err := resilience.NewDegradation(resilience.Config{MemoryBudget: 1000, Cooldown: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.produceTrades(t, 0, 1_000)
	s := e.startSink(t, Config{Degradation: deg, Memory: mem.Load})
	// A second sink in this process, under no pressure, keeps its own gauge.
	other := e.startSink(t, Config{Sink: config.Sink{Group: "other", Topics: "^nothing$"}})
	waitFor(t, "the pause", func() bool { return s.metric("k2_sink_paused") == 1 })
	if other.metric("k2_sink_paused") != 0 {
		t.Error("the other sink reports the first one's pause")
	}
	held := s.Stats().Consumed
	e.produceTrades(t, 1_000, 2_000)
	time.Sleep(500 * time.Millisecond)
	if st := s.Stats(); st.Consumed != held || st.Shed != 0 {
		t.Fatalf("consumed %d → %d, shed %d while paused", held, st.Consumed, st.Shed)
	}
	mem.Store(100)
	waitFor(t, "every record", func() bool { return s.Stats().Written == 3_000 })
	waitFor(t, "the level to step down to NORMAL", func() bool { return deg.Level() == resilience.Normal })
	s.stop(t)
	if s.metric("k2_sink_paused") != 0 {
		t.Error("still reported as paused")
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 3_000)
}

// Shedding drops only what the policy names, and counts it.
func TestSheddingDropsOnlyWhatIsConfigured(t *testing.T) {
	e := newEnv(t)
	deg, err := resilience.NewDegradation(resilience.Config{MemoryBudget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	deg.Observe(0, 850) // GRACEFUL, held by the cool-down
	shed, err := resilience.NewShedder(resilience.Policy{
		CriticalSymbols: []string{"BTCUSDT"},
		DataTypes:       map[string]resilience.DataTypeRule{"trades": {Tier3From: "GRACEFUL"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.produceTrades(t, 0, 3_000)
	s := e.startSink(t, Config{Degradation: deg, Shedder: shed, Memory: func() uint64 { return 850 }})
	waitFor(t, "the stream", func() bool { return s.Stats().Consumed == 3_000 && s.Stats().Written == 1_000 })
	s.stop(t)
	if st := s.Stats(); st.Shed != 2_000 {
		t.Fatalf("%+v: want the 2,000 ETH and SOL trades shed", st)
	}
	for k := range laketest.Keys(t, e.lake, "trades", "symbol") {
		if k != "BTCUSDT" {
			t.Fatalf("%s stored while shedding tier-3 trades", k)
		}
	}
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)
}

// A sink stopped while records wait for the registry must not commit
// their offsets: the next sink reads them.
func TestRecordsWaitingForTheRegistrySurviveARestart(t *testing.T) {
	e := newEnv(t)
	e.produceTrades(t, 0, 300)
	e.regDown.Store(true)
	s := e.startSink(t, Config{Sink: config.Sink{Group: "g"}})
	waitFor(t, "the sink to ask the registry", func() bool { return e.refused.Load() > 0 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	e.regDown.Store(false)
	s2 := e.startSink(t, Config{Sink: config.Sink{Group: "g"}})
	waitFor(t, "every record", func() bool { return s2.Stats().Written == 300 })
	s2.stop(t)
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "trade_id"), 300)
}

// A rewind (after a failed commit) that cannot read the table's offsets
// says so and still re-reads from the dropped batch's first offset, and
// the sequence tracker forgets what it saw: the records read again are
// not out of order.
func TestRewindWithoutTheTableSaysSoAndForgetsSequences(t *testing.T) {
	e := newEnv(t)
	// The client joins its group meanwhile and logs from its own goroutine.
	log, logged := lockedLog()
	s, err := New(Config{Brokers: e.brokers, Logger: log}, e.lake, e.reg, e.prod)
	if err != nil {
		t.Fatal(err)
	}
	defer s.cl.Close()
	// As the poll loop does, under the lock the group's callbacks take.
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := md.Timestamp(1723161255342000)
	s.seq.Check("BINANCE", "BTCUSDT", 7, ts)
	e.lake.Close() // the catalog is gone
	from := lake.Offsets{}
	from.Set(binanceTrades, 0, 0)
	s.rewind(context.Background(), "trades", from)
	if got := logged(); !strings.Contains(got, "cannot read the table's offsets") {
		t.Errorf("the failed table read was not reported: %q", got)
	}
	if got := s.seq.Check("BINANCE", "BTCUSDT", 3, ts+1); got != SeqOK {
		t.Errorf("a record read again after the rewind counted as %s", got)
	}
}

// A topic an earlier K2 produced lz4 into (and, on Kafka, made with
// compression.type=lz4) is read on: its lz4 batches and the snappy ones
// produced since land once each.
func TestLz4BatchesOfAnEarlierK2(t *testing.T) {
	e := newEnv(t)
	lz4Then(t, e)
}

func TestLz4BatchesOfAnEarlierK2Kafka(t *testing.T) {
	e := newKafkaEnv(t)
	// The topic as an earlier K2 made it: the broker recompresses what
	// arrives into lz4.
	lz4 := "lz4"
	if _, err := e.adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "compression.type", Value: &lz4}}, e.prefix+binanceTrades); err != nil {
		t.Fatal(err)
	}
	lz4Then(t, e)
}

func lz4Then(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	old, err := bus.NewProducer(bus.ProducerConfig{Brokers: e.brokers, Linger: time.Millisecond, TopicPrefix: e.prefix, Compression: "lz4"}, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3_000 {
		tr := trade(i)
		if err := bus.Produce(ctx, old, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.produceTrades(t, 3_000, 3_000) // snappy, as K2 produces now
	s := e.startSink(t, Config{})
	waitFor(t, "every trade", func() bool { return s.Stats().Written == 6_000 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Consumed != 6_000 || st.DeadLetters != 0 || st.Duplicates != 0 {
		t.Fatalf("stats %+v: want 6,000 consumed and stored, none dead or duplicated", st)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), 6_000)
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)
}

// A topic made after the sink started (a feed's first exchange, k2
// topics create on a running deployment) is read within seconds, not at
// the Kafka client's next routine metadata refresh, minutes later.
func TestSinkReadsATopicMadeAfterItStarted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.adm.DeleteTopics(ctx, binanceTrades); err != nil {
		t.Fatal(err)
	}
	s := e.startSink(t, Config{})
	waitFor(t, "the sink to join its group", func() bool { return s.Stats().Partitions > 0 })
	if _, err := bus.CreateTopics(ctx, e.adm, bus.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	e.produceTrades(t, 0, 1_000)
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().Written < 1_000 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: the new topic's trades not stored within 30 s", s.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
