package kraken

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testutil"
)

var assets = marketdata.DefaultAssets

const received = marketdata.Timestamp(1762795434000000) // 2025-11-10T17:23:54Z

func TestRealTrades(t *testing.T) {
	t.Parallel()
	f, err := os.Open(testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The number texts as written, to prove the decimals are exact.
	numbers := regexp.MustCompile(`"price":([0-9.eE+-]+),"qty":([0-9.eE+-]+)`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var trades []marketdata.Trade
	lines := 0
	for sc.Scan() {
		lines++
		ev, err := ParseMessage(sc.Bytes(), received, assets)
		if err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		texts := numbers.FindAllStringSubmatch(sc.Text(), -1)
		if len(texts) != len(ev.Trades) {
			t.Fatalf("line %d: %d trades from %d elements", lines, len(ev.Trades), len(texts))
		}
		for i, tr := range ev.Trades {
			if tr.Price != marketdata.MustDecimal(texts[i][1]) || tr.Quantity != marketdata.MustDecimal(texts[i][2]) {
				t.Fatalf("line %d trade %d: %s × %s from %s × %s", lines, i, tr.Price, tr.Quantity, texts[i][1], texts[i][2])
			}
		}
		if lines == 1 && len(ev.Trades) != 50 {
			t.Fatalf("snapshot gave %d trades, want 50", len(ev.Trades))
		}
		trades = append(trades, ev.Trades...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != 561 || len(trades) != 1000 {
		t.Fatalf("%d lines, %d trades; want 561, 1000", lines, len(trades))
	}
	for i, tr := range trades {
		if tr.SourceSequence.Int64 != 10218208+int64(i) {
			t.Fatalf("trade %d has id %s", i, tr.TradeID)
		}
	}
	// {"symbol":"BTC/USDT","side":"buy","price":105433.6,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2025-11-10T17:23:53.971744Z"}
	want := marketdata.Trade{
		MessageID: marketdata.MessageID("trade", "BTCUSDT", "KRAKEN-10218208"), TradeID: "KRAKEN-10218208",
		Symbol: "BTCUSDT", Exchange: "KRAKEN", AssetClass: marketdata.Crypto,
		Timestamp: 1762795433971744, Price: marketdata.MustDecimal("105433.6"), Quantity: marketdata.MustDecimal("0.00027625"),
		Currency: "USDT", Side: marketdata.Buy, TradeConditions: []string{}, SourceSequence: marketdata.SomeInt64(10218208),
		IngestionTimestamp: received, VendorData: map[string]string{"ord_type": "limit", "pair": "BTC/USDT"},
	}
	if first := trades[0]; !reflect.DeepEqual(first, want) || first.Price.String() != "105433.6" || first.Quantity.String() != "0.00027625" {
		t.Fatalf("first trade\n got %+v\nwant %+v", first, want)
	}
	if trades[999].TradeID != "KRAKEN-10219207" || trades[999].Side != marketdata.Sell {
		t.Fatalf("last trade %+v", trades[999])
	}
}

func TestBatchKeepsEveryTrade(t *testing.T) {
	t.Parallel()
	msg := `{"channel":"trade","type":"update","data":[
		{"symbol":"XBT/USD","side":"buy","price":100.5,"qty":1e-05,"ord_type":"market","trade_id":1,"timestamp":"2025-11-10T17:23:53.971744Z"},
		{"symbol":"XBT/USD","side":"sell","price":101,"qty":0.1,"ord_type":"limit","trade_id":2,"timestamp":"2025-11-10T17:23:53.971745Z"},
		{"symbol":"XBT/USD","side":"sell","price":1.5E2,"qty":2,"ord_type":"limit","trade_id":3,"timestamp":"2025-11-10T18:23:53.971746+01:00"}]}`
	ev, err := ParseMessage([]byte(msg), received, assets)
	if err != nil || len(ev.Trades) != 3 || ev.Skipped != "" {
		t.Fatalf("%+v %v", ev, err)
	}
	got := []string{}
	for _, tr := range ev.Trades {
		got = append(got, tr.TradeID+" "+string(tr.Side)+" "+tr.Price.String()+"x"+tr.Quantity.String()+" "+tr.Symbol+" "+tr.Currency+" "+tr.Timestamp.String())
	}
	want := []string{
		"KRAKEN-1 BUY 100.5x0.00001 BTCUSD USD 2025-11-10T17:23:53.971744Z",
		"KRAKEN-2 SELL 101x0.1 BTCUSD USD 2025-11-10T17:23:53.971745Z",
		"KRAKEN-3 SELL 150x2 BTCUSD USD 2025-11-10T17:23:53.971746Z",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if ev.Trades[0].VendorData["pair"] != "XBT/USD" {
		t.Fatalf("vendor data %v", ev.Trades[0].VendorData)
	}
}

func TestSkipped(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"channel":"heartbeat"}`: "heartbeat",
		`{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":18446744073709551615}]}`:                                           "status",
		`{"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}`: "control",
		`{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}`:                                                                        "control",
		`{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":1}]}`:                                                                                      "book",
	}
	for msg, want := range cases {
		ev, err := ParseMessage([]byte(msg), received, assets)
		if err != nil || ev.Skipped != want || !ev.Empty() {
			t.Errorf("%s: %+v %v", msg, ev, err)
		}
	}
}

func TestTicker(t *testing.T) {
	t.Parallel()
	msg := `{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":105433.6,"bid_qty":0.5,"ask":105433.7,"ask_qty":1.25,"last":105433.6,"volume":1000.1,"vwap":105000,"low":104000,"high":106000,"change":100,"change_pct":0.1},
		{"symbol":"ETH/USD","bid":0,"bid_qty":0,"ask":3500.01,"ask_qty":2,"timestamp":"2025-11-10T17:23:53.971744Z"}]}`
	ev, err := ParseMessage([]byte(msg), received, assets)
	if err != nil || len(ev.Quotes) != 2 {
		t.Fatalf("%+v %v", ev, err)
	}
	q := ev.Quotes[0]
	if q.QuoteID != "KRAKEN-BTCUSD-1762795434000000" || q.Timestamp != received || q.BidPrice.String() != "105433.6" ||
		q.BidQuantity.String() != "0.5" || q.AskPrice.String() != "105433.7" || q.AskQuantity.String() != "1.25" ||
		q.Currency != "USD" || q.Exchange != "KRAKEN" || q.MessageID != marketdata.MessageID("quote", q.Symbol, q.QuoteID) || q.SourceSequence.Valid {
		t.Fatalf("%+v", q)
	}
	q = ev.Quotes[1]
	if q.BidPrice.Valid || q.BidQuantity.Valid || q.AskPrice.String() != "3500.01" || q.Timestamp != 1762795433971744 || q.QuoteID != "KRAKEN-ETHUSD-1762795433971744" {
		t.Fatalf("%+v", q)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const good = `"symbol":"BTC/USDT","side":"buy","price":105433.6,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2025-11-10T17:23:53.971744Z"`
	second := func(from, to string) string {
		return `{"channel":"trade","type":"update","data":[{` + good + `},{` + strings.Replace(good, from, to, 1) + `}]}`
	}
	cases := []struct{ msg, reason, text string }{
		{second(`"price":105433.6,`, ``), "invalid_price", `trade data[1]: price: "price" is missing`},
		{second(`105433.6`, `"abc"`), "invalid_price", `trade data[1]: price: "price": invalid decimal "abc"`},
		{second(`105433.6`, `-1`), "invalid_price", "negative values are not allowed"},
		{second(`105433.6`, `0`), "invalid_price", "must be positive"},
		{second(`0.00027625`, `null`), "invalid_quantity", `"qty" is missing`},
		{second(`0.00027625`, `0.000000001`), "invalid_quantity", "9 digits after the point"},
		{second(`"buy"`, `"b"`), "invalid_side", `trade data[1]: side: "b" is neither buy nor sell`},
		{second(`2025-11-10T17:23:53.971744Z`, `1762795433.971744`), "invalid_timestamp", `trade data[1]: timestamp: "1762795433.971744" is not RFC 3339`},
		{second(`"timestamp":"2025-11-10T17:23:53.971744Z"`, `"timestamp":""`), "invalid_timestamp", "is not RFC 3339"},
		{second(`10218208`, `1.5`), "invalid_trade_id", "1.5 is not a non-negative integer"},
		{second(`"trade_id":10218208,`, ``), "invalid_trade_id", `"trade_id" is missing`},
		{second(`"BTC/USDT"`, `"BTCXYZ"`), "invalid_symbol", `pair "BTCXYZ"`},
		{second(`"BTC/USDT"`, `""`), "invalid_symbol", `"symbol" is missing`},
		{second(`"side":"buy"`, `"side":5`), "wrong_type", "trade data[1]: json: cannot unmarshal number"},
		{`{"channel":"trade","type":"update","data":[1]}`, "wrong_type", "trade data[0]: json: cannot unmarshal number"},
		{`{"channel":"trade","type":"update","data":{}}`, "parse", "trade message data is not an array"},
		{`{"channel":"trade","type":"update"}`, "parse", "trade message data is not an array"},
		{`{"channel":"trade","type":"update","data":null}`, "parse", "trade message data is not an array"},
		{`{"channel":"trade","type":"delta","data":[]}`, "parse", `type "delta" is neither snapshot nor update`},
		{`{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1,"bid_qty":1,"ask":2}]}`, "invalid_ask_quantity", `ticker data[0]: ask_quantity: "ask_qty" is missing`},
		{`{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":0,"bid_qty":0,"ask":0,"ask_qty":0}]}`, "invalid_bid_price", "both sides are empty"},
		{`{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1,"bid_qty":1,"ask":2,"ask_qty":1,"timestamp":"yesterday"}]}`, "invalid_timestamp", `"yesterday"`},
		{`{"method":"subscribe","error":"Currency pair not supported BTC/XYZ","success":false,"symbol":"BTC/XYZ","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}`, "parse", "kraken subscribe failed: Currency pair not supported BTC/XYZ"},
		{`{"foo":1}`, "parse", "neither channel nor method"},
		{`{"channel":"trade"`, "malformed_json", "unexpected end of JSON input"},
		{`[1,2]`, "wrong_type", "cannot unmarshal array"},
	}
	for _, c := range cases {
		ev, err := ParseMessage([]byte(c.msg), received, assets)
		if err == nil || marketdata.ReasonOf(err) != c.reason || !strings.Contains(err.Error(), c.text) || !ev.Empty() {
			t.Errorf("%s:\n error %v (reason %s)\n want %s containing %q", c.msg, err, marketdata.ReasonOf(err), c.reason, c.text)
		}
	}
}

func BenchmarkParseMessageTrade(b *testing.B) {
	msg := []byte(`{"channel":"trade","type":"update","data":[{"symbol":"BTC/USDT","side":"buy","price":105433.6,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2025-11-10T17:23:53.971744Z"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(msg, received, assets); err != nil {
			b.Fatal(err)
		}
	}
}
