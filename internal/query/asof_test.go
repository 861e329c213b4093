package query

import (
	"context"
	"fmt"
	"testing"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

func testQuote(id int64, ts md.Timestamp, bid string) md.Quote {
	qid := fmt.Sprintf("BINANCE-%d", id)
	return md.Quote{MessageID: md.MessageID("quote", "AAAUSDT", qid), QuoteID: qid, Symbol: "AAAUSDT", Exchange: "BINANCE",
		AssetClass: md.Crypto, Timestamp: ts, BidPrice: md.SomeDecimal(md.MustDecimal(bid)), BidQuantity: md.SomeDecimal(md.MustDecimal("1")),
		AskPrice: md.SomeDecimal(md.MustDecimal("200")), AskQuantity: md.SomeDecimal(md.MustDecimal("2")), Currency: "USDT",
		SourceSequence: md.SomeInt64(id), IngestionTimestamp: ts + 1000}
}

// The prevailing quote is the latest at or before the instant, of the
// same symbol and exchange and exchange-local date, the lake's or the
// stream's.
func TestPrevailingQuotes(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, Options{})
	midnight := md.Timestamp(1_735_689_600_000_000) // 2025-01-01T00:00:00Z, BINANCE's day starts
	lakeQuotes := []md.Quote{
		testQuote(1, midnight-1_000_000, "101"), // the day before
		testQuote(2, midnight+1_000_000, "102"),
		testQuote(3, midnight+5_000_000, "103"),
		testQuote(4, midnight+5_000_000, "104"), // the same instant, later in sequence
		testQuote(5, midnight+9_000_000, "105"),
	}
	w, err := record.Quote.Writer(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, lakeQuotes, nil); err != nil {
		t.Fatal(err)
	}
	ref, err := e.Pin(ctx, record.Quote.Table.Name, AsOf{})
	if err != nil || ref == nil {
		t.Fatal(ref, err)
	}
	extra := []md.Quote{testQuote(7, midnight+20_000_000, "107"), testQuote(6, midnight+8_000_000, "106")}
	probe := func(sec float64) QuoteProbe {
		return QuoteProbe{Symbol: "AAAUSDT", Exchange: "BINANCE", Time: midnight + md.Timestamp(sec*1e6)}
	}
	probes := []QuoteProbe{probe(-0.5), probe(0.5), probe(1), probe(4.9), probe(5), probe(8.5), probe(9.5), probe(30),
		{Symbol: "BBBUSDT", Exchange: "BINANCE", Time: midnight + 5_000_000}, {Symbol: "AAAUSDT", Exchange: "KRAKEN", Time: midnight + 5_000_000}}
	want := []string{"101", "", "102", "102", "104", "106", "105", "107", "", ""}
	got, err := e.PrevailingQuotes(ctx, QuoteJoin{Probes: probes, AsOf: AsOf{SnapshotID: ref.ID}, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range got {
		bid := ""
		if q != nil {
			bid = q.BidPrice.String()
		}
		if bid != want[i] {
			t.Errorf("probe %d at %s: bid %q, want %q", i, probes[i].Time, bid, want[i])
		}
	}
	// As of a time before the first quote: none.
	none, err := e.PrevailingQuotes(ctx, QuoteJoin{Probes: probes[:3], AsOf: AsOf{Time: 1}})
	if err != nil || none[0] != nil || none[2] != nil {
		t.Errorf("before any snapshot: %v %v", none, err)
	}
}
