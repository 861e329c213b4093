package binance

import (
	"reflect"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testutil"
)

var assets = marketdata.DefaultAssets

const received = marketdata.Timestamp(1723161254087896) // 2024-08-08T23:54:14.087896Z

type capture struct {
	trades  map[int64]marketdata.Trade
	quotes  int
	skipped map[string]int
}

func readCapture(t *testing.T, files ...string) capture {
	t.Helper()
	c := capture{trades: map[int64]marketdata.Trade{}, skipped: map[string]int{}}
	for _, name := range files {
		testutil.ForLines(t, testutil.Data(t, "binance", "ws", name), func(n int, line []byte) {
			ev, err := ParseCaptureLine(line, assets)
			if err != nil {
				t.Fatalf("%s line %d: %v", name, n, err)
			}
			for _, tr := range ev.Trades {
				id := tr.SourceSequence.Int64
				if _, dup := c.trades[id]; dup {
					t.Fatalf("%s line %d: duplicate trade %d", name, n, id)
				}
				c.trades[id] = tr
			}
			c.quotes += len(ev.Quotes)
			if ev.Skipped != "" {
				c.skipped[ev.Skipped]++
			}
		})
	}
	return c
}

func TestCaptureBTC(t *testing.T) {
	t.Parallel()
	c := readCapture(t, "spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
	if len(c.trades) != 19904 || c.quotes != 73174 {
		t.Fatalf("%d trades, %d quotes; want 19904, 73174", len(c.trades), c.quotes)
	}
	for id := int64(3735683259); id <= 3735703162; id++ {
		if _, ok := c.trades[id]; !ok {
			t.Fatalf("trade %d missing", id)
		}
	}
	if c.skipped["no_stream"] != 1 || c.skipped["depthUpdate"] != 6495 || len(c.skipped) != 2 {
		t.Fatalf("skipped %v", c.skipped)
	}
	// {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}
	first := c.trades[3735683259]
	want := marketdata.Trade{
		MessageID: marketdata.MessageID("trade", "BTCUSDT", "BINANCE-3735683259"), TradeID: "BINANCE-3735683259",
		Symbol: "BTCUSDT", Exchange: "BINANCE", AssetClass: marketdata.Crypto,
		Timestamp: 1723161255342000, Price: marketdata.MustDecimal("61837.63"), Quantity: marketdata.MustDecimal("0.02"),
		Currency: "USDT", Side: marketdata.Sell, TradeConditions: []string{}, SourceSequence: marketdata.SomeInt64(3735683259),
		IngestionTimestamp: 1723161254087896,
		VendorData:         map[string]string{"event_time": "1723161255343", "is_buyer_maker": "true", "is_best_match": "true"},
	}
	if !sameTrade(first, want) {
		t.Fatalf("first trade\n got %+v\nwant %+v", first, want)
	}
	t.Logf("%d trades, %d quotes, skipped %v", len(c.trades), c.quotes, c.skipped)
}

func sameTrade(a, b marketdata.Trade) bool { return reflect.DeepEqual(a, b) }

func TestCaptureETH(t *testing.T) {
	t.Parallel()
	c := readCapture(t, "spot_ethusdt_20240808.gz")
	if len(c.trades) != 6106 || c.quotes != 24077 {
		t.Fatalf("%d trades, %d quotes; want 6106, 24077", len(c.trades), c.quotes)
	}
	for _, tr := range c.trades {
		if tr.Symbol != "ETHUSDT" || tr.Currency != "USDT" {
			t.Fatalf("trade %+v", tr)
		}
	}
}

// The vision file holds the capture's trades in the public-data layout: both
// paths must give the same records apart from ingestion time and vendor data.
func TestVisionMatchesCapture(t *testing.T) {
	t.Parallel()
	path := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv")
	c := readCapture(t, "spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
	seen := 0
	testutil.ForLines(t, path, func(n int, line []byte) {
		tr, err := ParseVisionLine(string(line), "BTCUSDT", assets, received)
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		ws, ok := c.trades[tr.SourceSequence.Int64]
		if !ok {
			t.Fatalf("line %d: trade %s not in the capture", n, tr.TradeID)
		}
		if tr.TradeID != ws.TradeID || tr.MessageID != ws.MessageID || tr.Price != ws.Price || tr.Quantity != ws.Quantity ||
			tr.Side != ws.Side || tr.Timestamp != ws.Timestamp || tr.Symbol != ws.Symbol || tr.Currency != ws.Currency ||
			tr.VendorData["is_buyer_maker"] != ws.VendorData["is_buyer_maker"] || tr.VendorData["is_best_match"] != ws.VendorData["is_best_match"] {
			t.Fatalf("line %d:\nvision %+v\n    ws %+v", n, tr, ws)
		}
		seen++
	})
	if seen != 19904 {
		t.Fatalf("%d vision trades, want 19904", seen)
	}
}

func TestVisionMicroseconds(t *testing.T) {
	t.Parallel()
	path := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2025-01-01.first210.csv")
	n := 0
	testutil.ForLines(t, path, func(i int, line []byte) {
		tr, err := ParseVisionLine(string(line), "BTCUSDT", assets, 0)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if i == 1 {
			// 4359935386,93576.00000000,0.00136000,127.26336000,1735689600010866,True,True
			if tr.Timestamp.String() != "2025-01-01T00:00:00.010866Z" || tr.TradeID != "BINANCE-4359935386" ||
				tr.Price.String() != "93576" || tr.Quantity.String() != "0.00136" || tr.Side != marketdata.Sell ||
				tr.VendorData["is_buyer_maker"] != "true" || tr.VendorData["is_best_match"] != "true" {
				t.Fatalf("first row: %+v", tr)
			}
		}
		n++
	})
	if n != 210 {
		t.Fatalf("%d rows", n)
	}
}

func TestVisionLine(t *testing.T) {
	t.Parallel()
	tr, err := ParseVisionLine("7,1.5,2,3,1723161255342,false,False\r", "btcusdt", assets, received)
	if err != nil || tr.Side != marketdata.Buy || tr.Symbol != "BTCUSDT" || tr.Timestamp != 1723161255342000 ||
		tr.VendorData["is_buyer_maker"] != "false" || tr.VendorData["is_best_match"] != "false" || tr.IngestionTimestamp != received {
		t.Fatalf("%+v %v", tr, err)
	}
	cases := []struct{ line, symbol, reason, text string }{
		{"7,1.5,2,3,1723161255342,True", "BTCUSDT", "parse", "7 fields expected, got 6"},
		{"x,1.5,2,3,1723161255342,True,True", "BTCUSDT", "invalid_trade_id", `trade id "x"`},
		{"7,abc,2,3,1723161255342,True,True", "BTCUSDT", "invalid_price", `"price": invalid decimal "abc"`},
		{"7,-1.5,2,3,1723161255342,True,True", "BTCUSDT", "invalid_price", "negative"},
		{"7,1.5,0,3,1723161255342,True,True", "BTCUSDT", "invalid_quantity", "must be positive"},
		{"7,1.5,2,3,1723161255,True,True", "BTCUSDT", "invalid_timestamp", "neither milliseconds nor microseconds"},
		{"7,1.5,2,3,17231612553.42,True,True", "BTCUSDT", "invalid_timestamp", "not an integer epoch time"},
		{"7,1.5,2,3,1723161255342,yes,True", "BTCUSDT", "invalid_side", `"isBuyerMaker" = "yes"`},
		{"7,1.5,2,3,1723161255342,True,1", "BTCUSDT", "invalid_vendor_data", `"isBestMatch" = "1"`},
		{"7,1.5,2,3,1723161255342,True,True", "BTCXYZ", "invalid_symbol", "no known quote asset"},
	}
	for _, c := range cases {
		_, err := ParseVisionLine(c.line, c.symbol, assets, received)
		checkErr(t, c.line, err, c.reason, c.text)
	}
}

func checkErr(t *testing.T, in string, err error, reason, text string) {
	t.Helper()
	if err == nil || marketdata.ReasonOf(err) != reason || !strings.Contains(err.Error(), text) {
		t.Errorf("%s:\n error %v (reason %s)\n want %s containing %q", in, err, marketdata.ReasonOf(err), reason, text)
	}
}

const tradeFrame = `{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}`

func TestFrameShapes(t *testing.T) {
	t.Parallel()
	bare := `{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}`
	spaced := `{ "stream" : "btcusdt@trade", "data" : ` + bare + ` }`
	reordered := `{"data":` + bare + `,"stream":"btcusdt@trade"}`
	want, err := ParseFrame([]byte(tradeFrame), received, assets)
	if err != nil || len(want.Trades) != 1 {
		t.Fatal(want, err)
	}
	for _, f := range []string{bare, spaced, reordered, tradeFrame + "\n"} {
		ev, err := ParseFrame([]byte(f), received, assets)
		if err != nil || len(ev.Trades) != 1 || !sameTrade(ev.Trades[0], want.Trades[0]) {
			t.Errorf("%s: %+v %v", f, ev, err)
		}
	}
}

func TestFrameKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		frame           string
		trades, quotes  int
		skipped, reason string
	}{
		{`{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,"b":[["61737.63000000","0.00000000"]],"a":[]}}`, 0, 0, "depthUpdate", ""},
		{`{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}}`, 0, 0, "aggTrade", ""},
		{`{"e":"24hrTicker","E":1,"s":"BTCUSDT"}`, 0, 0, "24hrTicker", ""},
		{`{"result":null,"id":1}`, 0, 0, "control", ""},
		{`{"result":["btcusdt@trade"],"id":3}`, 0, 0, "control", ""},
		{`{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`, 0, 1, "", ""},
		{`{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}`, 0, 1, "", ""},
		{`{"e":"bookTicker","u":400900217,"E":1723161255343,"T":1723161255342,"s":"BNBUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}`, 0, 1, "", ""},
		// Older trade frames with buyer and seller order ids.
		{`{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","b":88,"a":50,"T":1672515782136,"m":true,"M":true}`, 1, 0, "", ""},
	}
	for _, c := range cases {
		ev, err := ParseFrame([]byte(c.frame), 1723161254087896, assets)
		if err != nil || len(ev.Trades) != c.trades || len(ev.Quotes) != c.quotes || ev.Skipped != c.skipped {
			t.Errorf("%s: %+v %v", c.frame, ev, err)
		}
	}
}

func TestAggTradeFramesSkipped(t *testing.T) {
	t.Parallel()
	n := 0
	testutil.ForLines(t, testutil.Data(t, "binance", "ws", "aggtrade_frames.txt"), func(i int, line []byte) {
		_, frame, ok := strings.Cut(string(line), ": ")
		if !ok {
			t.Fatalf("line %d: %q", i, line)
		}
		ev, err := ParseFrame([]byte(frame), received, assets)
		if err != nil || ev.Skipped != "aggTrade" || !ev.Empty() {
			t.Fatalf("line %d: %+v %v", i, ev, err)
		}
		n++
	})
	if n != 13 {
		t.Fatalf("%d frames", n)
	}
}

func TestOldTradeOrderIDs(t *testing.T) {
	t.Parallel()
	ev, err := ParseFrame([]byte(`{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","b":88,"a":50,"T":1672515782136,"m":false}`), received, assets)
	if err != nil {
		t.Fatal(err)
	}
	tr := ev.Trades[0]
	want := map[string]string{"event_time": "1672515782136", "is_buyer_maker": "false", "buyer_order_id": "88", "seller_order_id": "50"}
	if tr.Side != marketdata.Buy || tr.Currency != "BTC" || tr.Symbol != "BNBBTC" || !reflect.DeepEqual(tr.VendorData, want) {
		t.Fatalf("%+v", tr)
	}
}

func TestBookTicker(t *testing.T) {
	t.Parallel()
	ev, err := ParseFrame([]byte(`{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"0.00000000","A":"0.00000000"}}`), received, assets)
	if err != nil || len(ev.Quotes) != 1 {
		t.Fatal(ev, err)
	}
	q := ev.Quotes[0]
	if q.BidPrice.String() != "61837.63" || q.BidQuantity.String() != "3.78826" || q.AskPrice.Valid || q.AskQuantity.Valid ||
		q.QuoteID != "BINANCE-50093239212" || q.SourceSequence != marketdata.SomeInt64(50093239212) || q.Timestamp != received ||
		q.IngestionTimestamp != received || q.Currency != "USDT" || q.Symbol != "BTCUSDT" || q.Exchange != "BINANCE" ||
		q.AssetClass != marketdata.Crypto || q.MessageID != marketdata.MessageID("quote", "BTCUSDT", "BINANCE-50093239212") {
		t.Fatalf("%+v", q)
	}
	// A price with zero size is a side with nothing left at that price: kept.
	ev, err = ParseFrame([]byte(`{"u":1,"s":"BTCUSDT","b":"1","B":"0","a":"2","A":"3"}`), received, assets)
	if err != nil || !ev.Quotes[0].BidQuantity.Valid || !ev.Quotes[0].BidQuantity.Decimal.IsZero() {
		t.Fatal(ev, err)
	}
	// Futures-style bookTicker: T is the book's time.
	ev, err = ParseFrame([]byte(`{"e":"bookTicker","u":1,"E":1723161255343,"T":1723161255342,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"3"}`), received, assets)
	if err != nil || ev.Quotes[0].Timestamp != 1723161255342000 || ev.Quotes[0].VendorData["event_time"] != "1723161255343" {
		t.Fatal(ev, err)
	}
}

func TestFrameErrors(t *testing.T) {
	t.Parallel()
	trade := func(fields string) string {
		return `{"stream":"btcusdt@trade","data":{"e":"trade",` + fields + `}}`
	}
	const all = `"E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63","q":"0.02","T":1723161255342,"m":true`
	drop := func(key string) string {
		parts := strings.Split(all, ",")
		var kept []string
		for _, p := range parts {
			if !strings.HasPrefix(p, `"`+key+`":`) {
				kept = append(kept, p)
			}
		}
		return trade(strings.Join(kept, ","))
	}
	cases := []struct{ frame, reason, text string }{
		{drop("E"), "invalid_event_time", `trade field "E" is missing`},
		{drop("s"), "invalid_symbol", `trade field "s" is missing`},
		{drop("t"), "invalid_trade_id", `trade field "t" is missing`},
		{drop("p"), "invalid_price", `trade field "p" is missing`},
		{drop("q"), "invalid_quantity", `trade field "q" is missing`},
		{drop("T"), "invalid_timestamp", `trade field "T" is missing`},
		{drop("m"), "invalid_side", `trade field "m" is missing`},
		{trade(strings.Replace(all, `"61837.63"`, `"abc"`, 1)), "invalid_price", `price: "p": invalid decimal "abc"`},
		{trade(strings.Replace(all, `"61837.63"`, `"-61837.63"`, 1)), "invalid_price", "negative values are not allowed"},
		{trade(strings.Replace(all, `"61837.63"`, `""`, 1)), "invalid_price", `invalid decimal ""`},
		{trade(strings.Replace(all, `"61837.63"`, `"0"`, 1)), "invalid_price", "must be positive"},
		{trade(strings.Replace(all, `"0.02"`, `"0.000000001"`, 1)), "invalid_quantity", "9 digits after the point"},
		{trade(strings.Replace(all, `"BTCUSDT"`, `"BTCXYZ"`, 1)), "invalid_symbol", `pair "BTCXYZ"`},
		{trade(strings.Replace(all, `3735683259`, `-1`, 1)), "invalid_trade_id", "not a non-negative integer"},
		{trade(strings.Replace(all, `1723161255342`, `1723161255`, 1)), "invalid_timestamp", "neither milliseconds nor microseconds"},
		{trade(all + `,"b":"x"`), "invalid_vendor_data", `"b" = "x"`},
		{trade(strings.Replace(all, `"m":true`, `"m":"yes"`, 1)), "wrong_type", "cannot unmarshal"},
		{`{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2"}`, "parse", "neither an event"},
		{`{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2"}}`, "invalid_ask_quantity", `bookTicker field "A" is missing`},
		{`{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"x","B":"1","a":"2","A":"1"}}`, "invalid_bid_price", `"b": invalid decimal "x"`},
		{`{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"0","B":"5","a":"2","A":"1"}}`, "invalid_bid_price", "must be positive"},
		{`{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"0","B":"0","a":"0","A":"0"}}`, "invalid_bid_price", "both sides are empty"},
		{`{"stream":"btcusdt@bookTicker","data":{"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}`, "invalid_quote_id", `"u"`},
		{`{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}`, "invalid_symbol", `"s" is missing`},
		{`{"code":2,"msg":"Invalid request: unknown variant","id":1}`, "parse", "binance error frame: code 2: Invalid request"},
		{`{"stream":"btcusdt@trade","data":{"e":"trade"`, "malformed_json", "unexpected end of JSON input"},
		{`not json`, "malformed_json", "invalid character"},
		{`{"foo":1}`, "parse", "neither an event"},
		{``, "malformed_json", "unexpected end of JSON input"},
	}
	for _, c := range cases {
		_, err := ParseFrame([]byte(c.frame), received, assets)
		checkErr(t, c.frame, err, c.reason, c.text)
	}
}

func TestCaptureLine(t *testing.T) {
	t.Parallel()
	ev, err := ParseCaptureLine([]byte("1723161254087896568 "+tradeFrame+"\r\n"), assets)
	if err != nil || len(ev.Trades) != 1 || ev.Trades[0].IngestionTimestamp != 1723161254087896 {
		t.Fatal(ev, err)
	}
	ev, err = ParseCaptureLine([]byte(`1723161254206652067 {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"]],"asks":[]}`), assets)
	if err != nil || ev.Skipped != "no_stream" || !ev.Empty() {
		t.Fatal(ev, err)
	}
	for _, c := range []struct{ line, reason, text string }{
		{tradeFrame, "parse", "receive time"},
		{"abc " + tradeFrame, "parse", `receive time "abc"`},
		{"1723161254206652067", "parse", "no space"},
		{"1723161254206652067 {", "malformed_json", "unexpected end of JSON input"},
	} {
		_, err := ParseCaptureLine([]byte(c.line), assets)
		checkErr(t, c.line, err, c.reason, c.text)
	}
}

func BenchmarkParseFrameTrade(b *testing.B) {
	frame := []byte(tradeFrame)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	var ev feed.Events
	var err error
	for b.Loop() {
		if ev, err = ParseFrame(frame, received, assets); err != nil {
			b.Fatal(err)
		}
	}
	_ = ev
}

func BenchmarkParseFrameBookTicker(b *testing.B) {
	frame := []byte(`{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := ParseFrame(frame, received, assets); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseHistoricalTradesMatchesTheStream(t *testing.T) {
	t.Parallel()
	assets := marketdata.DefaultAssets
	body := []byte(`[{"id":3735683259,"price":"61837.63000000","qty":"0.00020000","quoteQty":"12.36752600","time":1723161255342,"isBuyerMaker":true,"isBestMatch":true}]`)
	const ingested = marketdata.Timestamp(1723161256000000)
	got, err := ParseHistoricalTrades(body, "BTCUSDT", assets, ingested)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	frame := []byte(`{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.00020000","T":1723161255342,"m":true,"M":true}}`)
	ev, err := ParseFrame(frame, ingested, assets)
	if err != nil || len(ev.Trades) != 1 {
		t.Fatalf("%v %v", ev, err)
	}
	a, b := got[0], ev.Trades[0]
	if a.MessageID != b.MessageID || a.TradeID != b.TradeID || a.Price != b.Price || a.Quantity != b.Quantity ||
		a.Timestamp != b.Timestamp || a.Side != b.Side || a.SourceSequence != b.SourceSequence {
		t.Fatalf("REST %+v\nstream %+v", a, b)
	}
	for _, bad := range []string{`{}`, `[{"id":"x","price":"1","qty":"1","time":1,"isBuyerMaker":true}]`, `[{"id":1,"price":"-1","qty":"1","time":1723161255342,"isBuyerMaker":true}]`, `[{"id":1,"price":"1","qty":"1","time":1723161255342}]`} {
		if _, err := ParseHistoricalTrades([]byte(bad), "BTCUSDT", assets, ingested); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
