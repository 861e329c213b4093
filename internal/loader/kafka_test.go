package loader_test

import (
	"context"
	"maps"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/bus/bustest"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/loader"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testutil"
)

// arrived decodes the records of a kind's topic on an exchange: each
// record's values by its table key. A key arriving twice, or a Kafka key
// other than the kind's, fails the test.
func arrived[T any](t *testing.T, k *bustest.Kafka, kind *record.Kind[T], exchange string, row func(*T) []string) map[string][]string {
	t.Helper()
	topic, err := bus.TopicOf(kind.DataType, exchange)
	if err != nil {
		t.Fatal(err)
	}
	dec := codec.NewDecoder(k.Registry().SchemaByID)
	out := map[string][]string{}
	for _, r := range k.ReadAll(t, topic) {
		var v T
		if _, err := kind.Decode(dec, context.Background(), r.Value, &v, nil); err != nil {
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
	k := bustest.Start(t)
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	sum, err := run(t, loader.NewViaKafka(k.Prod, loader.Options{DeadLetter: dlq}), "asx", dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := int64(len(in.companies) + in.total("trades") + in.total("quotes") - 1)
	stats := k.Prod.Stats()
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
	second, err := run(t, loader.NewViaKafka(k.Prod, loader.Options{}), "kraken-ws", kraken)
	if err != nil {
		t.Fatal(err)
	}
	if second.Read != 1000 || second.Written != 1000 || second.Tables["kafka"] != 1000 || k.Prod.Stats().Produced != rows+1000 {
		t.Fatalf("second load %+v, producer %+v: want 1000 records", second, k.Prod.Stats())
	}
	got := arrived(t, k, record.Trade, "KRAKEN", tradeRow)
	want := readKraken(t, kraken)
	for id, w := range want {
		want[id] = w[:3] // without the side
	}
	sameRows(t, "Kraken trades topic", got, want)
}
