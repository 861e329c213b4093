package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/codec"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// embedded starts a broker and a registry for a test.
func embedded(t *testing.T, dir string) (*Broker, *registry.Client) {
	t.Helper()
	b, err := StartBroker(dir+"/kafka", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	reg, err := registry.Open(dir + "/registry")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() { srv.Close(); reg.Close() })
	cl, err := registry.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return b, cl
}

func admin(t *testing.T, brokers string) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func TestTopicNames(t *testing.T) {
	name, err := TopicOf(record.Trade.DataType, "Binance")
	if err != nil || name != "market.crypto.trades.binance" {
		t.Fatalf("%s %v", name, err)
	}
	asset, kind, ex, err := ParseTopic("market.equities.reference_data.asx")
	if err != nil || asset != md.Equities || kind != record.Reference || ex != "ASX" {
		t.Fatalf("%s %v %s %v", asset, kind, ex, err)
	}
	for _, bad := range []string{"market.crypto.trades", "x.crypto.trades.binance", "market.stocks.trades.asx", "market.crypto.bars.binance"} {
		if _, _, _, err := ParseTopic(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestCreateTopicsIsIdempotent(t *testing.T) {
	b, _ := embedded(t, t.TempDir())
	adm := admin(t, b.Addr())
	ctx := context.Background()
	first, err := CreateTopics(ctx, adm, DefaultTopology())
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, r := range first {
		if r.Created {
			created++
		}
	}
	if created != len(DefaultTopology().Specs()) || created == 0 {
		t.Fatalf("created %d of %d topics", created, len(first))
	}
	again, err := CreateTopics(ctx, adm, DefaultTopology())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if r.Created {
			t.Fatalf("%s created twice", r.Topic)
		}
	}
	infos, err := DescribeTopics(ctx, adm, "", "market.crypto.trades.binance", "market.equities.reference_data.asx")
	if err != nil || len(infos) != 2 {
		t.Fatalf("%v %v", infos, err)
	}
	trades, ref := infos[0], infos[1] // sorted by name
	if trades.Partitions != 6 || trades.Configs["compression.type"] != Compression || trades.Configs["retention.ms"] != "604800000" {
		t.Errorf("trades topic %+v", trades)
	}
	if ref.Partitions != 1 || ref.Configs["cleanup.policy"] != "compact" {
		t.Errorf("reference topic %+v", ref)
	}
}

func testTrade(i int) md.Trade {
	id := "BINANCE-" + string(rune('0'+i%10))
	return md.Trade{
		MessageID: md.MessageID("trade", "BTCUSDT", id), TradeID: id, Symbol: "BTCUSDT", Exchange: "BINANCE",
		AssetClass: md.Crypto, Timestamp: md.Timestamp(1723161255342000 + int64(i)), Price: md.MustDecimal("61837.63"),
		Quantity: md.MustDecimal("0.02"), Currency: "USDT", Side: md.Sell, TradeConditions: []string{},
		SourceSequence: md.SomeInt64(int64(i)), IngestionTimestamp: 1723161256000000,
	}
}

// producing starts a broker with K2's topics and a producer to it.
func producing(t *testing.T) (*Broker, *registry.Client, *Producer) {
	t.Helper()
	b, reg := embedded(t, t.TempDir())
	if _, err := CreateTopics(context.Background(), admin(t, b.Addr()), DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(ProducerConfig{Brokers: []string{b.Addr()}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return b, reg, p
}

func TestProducerDeliversAndCloses(t *testing.T) {
	b, reg, p := producing(t)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		tr := testTrade(i)
		if err := Produce(ctx, p, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
	}
	queued, err := p.Close(ctx)
	if err != nil || queued != 0 {
		t.Fatalf("close: %d queued, %v", queued, err)
	}
	if q, err := p.Close(ctx); q != 0 || err != nil {
		t.Fatalf("second close: %d %v", q, err)
	}
	tr := testTrade(0)
	if err := Produce(ctx, p, record.Trade, &tr); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce after close: %v", err)
	}
	if s := p.Stats(); s.Produced != 1000 || s.Failed != 0 || !s.Closed {
		t.Fatalf("stats after close %+v", s)
	}

	// The records are there, keyed by symbol, in the wire format, with the
	// schema registered under the asset-class subject.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("market.crypto.trades.binance"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	dec := codec.NewDecoder(reg.SchemaByID)
	n := 0
	deadline, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for n < 1000 && deadline.Err() == nil {
		cl.PollFetches(deadline).EachRecord(func(r *kgo.Record) {
			got, _, err := dec.Trade(ctx, r.Value)
			if err != nil || string(r.Key) != "BTCUSDT" || got.Price != md.MustDecimal("61837.63") {
				t.Fatalf("record %d: key %s %+v %v", n, r.Key, got, err)
			}
			n++
		})
	}
	if n != 1000 {
		t.Fatalf("read %d of 1000 records", n)
	}
}

// A record the codec cannot write, or that fails validation, is an error
// naming the field, before anything reaches Kafka; it never panics.
func TestProduceRefusesInvalidRecords(t *testing.T) {
	_, _, p := producing(t)
	ctx := context.Background()
	bonds := testTrade(1)
	bonds.AssetClass = "bonds"
	negative := testTrade(2)
	negative.Price = -negative.Price
	noSide := testTrade(3)
	noSide.Side = ""
	for want, tr := range map[string]md.Trade{"invalid_asset_class": bonds, "invalid_price": negative, "invalid_side": noSide} {
		err := Produce(ctx, p, record.Trade, &tr)
		if err == nil || md.ReasonOf(err) != want || !strings.Contains(err.Error(), "trade BTCUSDT") {
			t.Errorf("%s: got %v (reason %s)", want, err, md.ReasonOf(err))
		}
	}
	if err := p.Flush(ctx); err != nil || p.Stats().Produced != 0 {
		t.Fatalf("something was produced: %+v %v", p.Stats(), err)
	}
}

// Records refused before Kafka are counted by why: failed validation, or
// a schema registry that cannot be reached.
func TestRefusedRecordsAreCounted(t *testing.T) {
	b, reg := embedded(t, t.TempDir())
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	unreachable, err := registry.NewClient(gone.URL, registry.WithRegisterRetry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	metrics := ops.NewRegistry()
	ctx := context.Background()
	for _, c := range []struct {
		reg *registry.Client
		typ string
	}{{reg, "invalid"}, {unreachable, "registry"}} {
		p, err := NewProducer(ProducerConfig{Brokers: []string{b.Addr()}, ClientID: "test-" + c.typ, Registerer: metrics}, c.reg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(ctx)
		tr := testTrade(1)
		if c.typ == "invalid" {
			tr.Price = -tr.Price
		}
		if err := Produce(ctx, p, record.Trade, &tr); err == nil {
			t.Fatalf("%s: produced", c.typ)
		}
		if n := ops.Sum(metrics, "k2_serializer_errors_total", "client", "test-"+c.typ, "data_type", "trades", "error_type", c.typ); n != 1 {
			t.Errorf("k2_serializer_errors_total{error_type=%q} %v, want 1", c.typ, n)
		}
		if n := ops.Sum(metrics, "k2_serializer_errors_total", "client", "test-"+c.typ); n != 1 {
			t.Errorf("%s: %v refusals counted in all, want 1", c.typ, n)
		}
	}
}

func TestProducerCloseReportsWhatWasQueued(t *testing.T) {
	_, reg := embedded(t, t.TempDir())
	// Nothing listens here: records cannot be delivered.
	p, err := NewProducer(ProducerConfig{Brokers: []string{"127.0.0.1:1"}, DeliveryTimeout: time.Minute}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		tr := testTrade(i)
		Produce(ctx, p, record.Trade, &tr)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	queued, err := p.Close(short)
	if queued != 10 || err == nil {
		t.Fatalf("close with an unreachable broker: %d queued, %v; want 10 and an error", queued, err)
	}
	if s := p.Stats(); s.Buffered != 10 || !s.Closed {
		t.Fatalf("stats %+v", s)
	}
}

func TestBrokerKeepsRecordsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	b, reg := embedded(t, dir)
	ctx := context.Background()
	CreateTopics(ctx, admin(t, b.Addr()), DefaultTopology())
	p, _ := NewProducer(ProducerConfig{Brokers: []string{b.Addr()}}, reg)
	for i := 0; i < 100; i++ {
		tr := testTrade(i)
		Produce(ctx, p, record.Trade, &tr)
	}
	if _, err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.Close()
	b2, err := StartBroker(dir+"/kafka", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	infos, err := DescribeTopics(ctx, admin(t, b2.Addr()), "", "market.crypto.trades.binance")
	if err != nil || len(infos) != 1 || infos[0].Records != 100 {
		t.Fatalf("after restart: %+v %v", infos, err)
	}
}

func TestTopicPrefixNamespacesAnInstallation(t *testing.T) {
	b, reg := embedded(t, t.TempDir())
	ctx := context.Background()
	adm := admin(t, b.Addr())
	staging := DefaultTopology()
	staging.Prefix = "staging."
	if _, err := CreateTopics(ctx, adm, staging); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(ProducerConfig{Brokers: []string{b.Addr()}, TopicPrefix: "staging."}, reg)
	if err != nil {
		t.Fatal(err)
	}
	tr := testTrade(1)
	if err := Produce(ctx, p, record.Trade, &tr); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	infos, err := DescribeTopics(ctx, adm, "staging.")
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]int64{}
	for _, i := range infos {
		records[i.Topic] = i.Records
	}
	if len(infos) != len(staging.Specs()) || records["staging.market.crypto.trades.binance"] != 1 {
		t.Fatalf("%v", records)
	}
	if other, _ := DescribeTopics(ctx, adm, ""); len(other) != 0 {
		t.Fatalf("unprefixed listing shows %d staging topics", len(other))
	}
	if !regexp.MustCompile(TopicPattern("staging.")).MatchString("staging.market.crypto.trades.binance") ||
		regexp.MustCompile(TopicPattern("staging.")).MatchString("staging.market.crypto.trades.binance.dlq") ||
		regexp.MustCompile(TopicPattern("")).MatchString("staging.market.crypto.trades.binance") {
		t.Error("TopicPattern")
	}
}

// LatestByKey finds each symbol's newest record in the tail of a topic;
// a symbol last seen before the window is not found.
func TestLatestByKey(t *testing.T) {
	b, reg, p := producing(t)
	ctx := context.Background()
	tr := func(symbol string, seq int) *md.Trade {
		t := testTrade(seq)
		t.Symbol, t.SourceSequence = symbol, md.SomeInt64(int64(seq))
		t.MessageID = md.MessageID("trade", symbol, fmt.Sprint(seq))
		return &t
	}
	if err := Produce(ctx, p, record.Trade, tr("OLDUSDT", 1)); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		for _, s := range []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"} {
			if err := Produce(ctx, p, record.Trade, tr(s, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := LatestByKey(ctx, []string{b.Addr()}, Security{}, "market.crypto.trades.binance", 2000)
	if err != nil {
		t.Fatal(err)
	}
	dec := codec.NewDecoder(reg.SchemaByID)
	seqs := map[string]int64{}
	for k, r := range got {
		trade, _, err := dec.Trade(ctx, r.Value)
		if err != nil || trade.Symbol != k {
			t.Fatalf("%s: %+v %v", k, trade, err)
		}
		seqs[k] = trade.SourceSequence.Int64
	}
	if fmt.Sprint(seqs) != "map[BTCUSDT:2999 ETHUSDT:2999 SOLUSDT:2999]" {
		t.Fatalf("latest by key: %v (OLDUSDT is outside the window unless it shares a partition's last 2000 records)", seqs)
	}
	none, err := LatestByKey(ctx, []string{b.Addr()}, Security{}, "market.crypto.trades.kraken", 2000)
	if err != nil || len(none) != 0 {
		t.Fatalf("empty topic: %v %v", none, err)
	}
}

// K2's schemas are registered under each topic's own subject too
// (Confluent's default naming), with the ids of the asset-class subjects.
func TestSchemasUnderTopicSubjects(t *testing.T) {
	ctx := context.Background()
	topo := DefaultTopology()
	topo.Prefix = "staging."
	l, err := StartLocal(ctx, LocalConfig{Dir: t.TempDir(), BrokerListen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0", Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	latest := func(subject string) (id int) {
		t.Helper()
		resp, err := http.Get(l.RegistryURL() + "/subjects/" + subject + "/versions/latest")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ ID int }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: HTTP %d %v", subject, resp.StatusCode, err)
		}
		return v.ID
	}
	subjects, err := l.Registry().Subjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range topo.Specs() {
		subject := codec.TopicSubject(s.Name)
		if s.DLQ {
			if slices.Contains(subjects, subject) {
				t.Errorf("dead-letter topic %s has a subject: its records are kept as they came", s.Name)
			}
			continue
		}
		asset, _, _, err := ParseTopic(strings.TrimPrefix(s.Name, topo.Prefix))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := latest(subject), latest(codec.Subject(asset, string(s.DataType))); got != want {
			t.Errorf("%s: schema id %d, the asset class's subject has %d", subject, got, want)
		}
	}
}

// K2's producer never asks a broker to create a topic with the broker's
// defaults: producing to a missing one fails at once, saying so, on the
// embedded broker (which creates topics for clients that ask) and on
// Apache Kafka without auto-creation alike.
func TestProduceToMissingTopicFailsAtOnce(t *testing.T) {
	for _, broker := range []string{"embedded", "kafka"} {
		t.Run(broker, func(t *testing.T) {
			var brokers []string
			var reg *registry.Client
			prefix := "missing."
			if broker == "embedded" {
				b, r := embedded(t, t.TempDir())
				brokers, reg = []string{b.Addr()}, r
			} else {
				brokers, prefix = testsvc.KafkaSeeds(t), testsvc.KafkaTopicPrefix(t)
				_, reg = embedded(t, t.TempDir())
			}
			p, err := NewProducer(ProducerConfig{Brokers: brokers, TopicPrefix: prefix}, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			// Far longer than failing takes, far shorter than the
			// delivery timeout (2 min) a wait for the topic would run to.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tr := testTrade(1)
			if err := Produce(ctx, p, record.Trade, &tr); err != nil {
				t.Fatal(err)
			}
			err = p.Flush(ctx)
			topic := prefix + "market.crypto.trades.binance"
			if !errors.Is(err, kerr.UnknownTopicOrPartition) || !strings.Contains(err.Error(), "produce to "+topic+": the topic does not exist") {
				t.Fatalf("flush: %v; want the missing topic named", err)
			}
			if infos, err := DescribeTopics(context.Background(), admin(t, brokers[0]), prefix); err != nil || len(infos) != 0 {
				t.Fatalf("topics under %s after the attempt: %v %v", prefix, infos, err)
			}
		})
	}
}
