package loader_test

import (
	"context"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/loader"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/testutil"
)

// kafka is an embedded broker with K2's topics, a schema registry, and a
// producer to them.
type kafka struct {
	addr string
	reg  *registry.Client
	adm  *kadm.Client
	prod *bus.Producer
}

func startKafka(t *testing.T) *kafka {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := bus.StartBroker(filepath.Join(dir, "kafka"), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	r, err := registry.Open(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() { srv.Close(); r.Close() })
	k := &kafka{addr: b.Addr()}
	if k.reg, err = registry.NewClient(srv.URL); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	k.adm = kadm.NewClient(cl)
	if _, err := bus.CreateTopics(ctx, k.adm, bus.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	if k.prod, err = bus.NewProducer(bus.ProducerConfig{Brokers: []string{k.addr}, Linger: time.Millisecond}, k.reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.prod.Close(context.Background()) })
	return k
}

// read returns every record of a topic: as many as the end offsets of its
// partitions say it holds.
func (k *kafka) read(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < n {
		f := cl.PollFetches(ctx)
		if err := f.Err0(); err != nil {
			t.Fatalf("%s: read %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// arrived decodes the records of a kind's topic on an exchange: each
// record's values by its table key. A key arriving twice, or a Kafka key
// other than the kind's, fails the test.
func arrived[T any](t *testing.T, k *kafka, kind *record.Kind[T], exchange string, row func(*T) []string) map[string][]string {
	t.Helper()
	topic, err := bus.TopicOf(kind.DataType, exchange)
	if err != nil {
		t.Fatal(err)
	}
	dec := codec.NewDecoder(k.reg.SchemaByID)
	out := map[string][]string{}
	for _, r := range k.read(t, topic) {
		v, _, err := kind.Decode(dec, context.Background(), r.Value)
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		id := kind.Rows.Key(&v)
		if string(r.Key) != kind.Key(&v) {
			t.Fatalf("%s: %s keyed %q, want %q", topic, id, r.Key, kind.Key(&v))
		}
		if _, dup := out[id]; dup {
			t.Fatalf("%s: %s arrived twice", topic, id)
		}
		out[id] = row(&v)
	}
	return out
}

// tradeRow and quoteRow are a record's asxColumns.
func tradeRow(r *md.Trade) []string {
	return append([]string{micros(r.Timestamp)}, decimals(md.SomeDecimal(r.Price), md.SomeDecimal(r.Quantity))...)
}

func quoteRow(r *md.Quote) []string {
	return append([]string{micros(r.Timestamp)}, decimals(r.BidPrice, r.BidQuantity, r.AskPrice, r.AskQuantity)...)
}

func micros(ts md.Timestamp) string { return strconv.FormatInt(int64(ts), 10) }

func decimals(ds ...md.NullDecimal) []string {
	var out []string
	for _, d := range ds {
		if !d.Valid {
			out = append(out, "null")
			continue
		}
		out = append(out, number(d.Decimal.String()))
	}
	return out
}

// TestViaKafkaEveryRecordReachesItsTopicOnce: through Kafka, each record
// of an ASX directory reaches its exchange topic exactly once, keyed and
// valued as in the files; a rejected line still goes to the dead-letter
// file; the summary's written count is what the broker acknowledged, for
// each load on a shared producer.
func TestViaKafkaEveryRecordReachesItsTopicOnce(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/3153.csv", "trades/7181.csv", "quotes/3153.csv")
	in := readASX(t, dir)
	replaceLine(t, filepath.Join(dir, "quotes", "3153.csv"), 7, "03/10/2014,13:55:42.299,1.1,1.1l,9000,5367")
	k := startKafka(t)
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	sum, err := run(t, loader.NewViaKafka(k.prod, loader.Options{DeadLetter: dlq}), "asx", dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := int64(len(in.companies) + in.total("trades") + in.total("quotes") - 1)
	stats := k.prod.Stats()
	if sum.Read != rows || sum.Written != rows || stats.Produced != rows || stats.Failed != 0 ||
		!maps.Equal(sum.Tables, map[string]int64{"kafka": rows}) || sum.Commits != 0 || sum.Duplicates != 0 || sum.Rejected != 1 {
		t.Fatalf("summary %+v, producer %+v: want %d records produced and acknowledged", sum, stats, rows)
	}
	if got := deadLetters(t, dlq); len(got) != 1 || got[0].File != "asx/quotes/3153.csv" || got[0].Line != 7 || got[0].Reason != "invalid_ask_price" {
		t.Fatalf("dead letters %+v", got)
	}

	sameRows(t, "trades topic", arrived(t, k, record.Trade, "ASX", tradeRow), in.rows["trades"])
	quotes := arrived(t, k, record.Quote, "ASX", quoteRow)
	wantQuotes := maps.Clone(in.rows["quotes"])
	delete(wantQuotes, "ASX-MWR-20140310-7")
	sameRows(t, "quotes topic", quotes, wantQuotes)
	refs := arrived(t, k, record.Reference, "ASX", func(r *md.ReferenceData) []string { return []string{r.CompanyID, r.Symbol} })
	companies := map[string]string{}
	for _, r := range refs {
		companies[r[0]] = r[1]
	}
	if len(refs) != len(in.companies) || !maps.Equal(companies, in.companies) {
		t.Fatalf("reference data topic %v, want %v", refs, in.companies)
	}

	// A second load on the same producer counts only its own records.
	kraken := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	second, err := run(t, loader.NewViaKafka(k.prod, loader.Options{}), "kraken-ws", kraken)
	if err != nil {
		t.Fatal(err)
	}
	if second.Read != 1000 || second.Written != 1000 || second.Tables["kafka"] != 1000 || k.prod.Stats().Produced != rows+1000 {
		t.Fatalf("second load %+v, producer %+v: want 1000 records", second, k.prod.Stats())
	}
	got := arrived(t, k, record.Trade, "KRAKEN", tradeRow)
	want := readKraken(t, kraken)
	for id, w := range want {
		want[id] = w[:3] // without the side
	}
	sameRows(t, "Kraken trades topic", got, want)
}
