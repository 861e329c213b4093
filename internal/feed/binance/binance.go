// Package binance parses Binance spot market data: public-data trade files
// (data.binance.vision), live WebSocket frames (trade and bookTicker
// streams) and the recorder's capture lines that wrap those frames.
package binance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/marketdata"
)

// Binance's markets, each a venue code of its own: a futures trade's id
// can equal a spot trade's of the same pair, and their prices must never
// meet in one bar. Spot keeps the code, ids and topics it always had.
const (
	exchangeCode = "BINANCE"       // spot
	usdmCode     = "BINANCE_USDM"  // USD-M futures (USDT- and USDC-margined)
	coinmCode    = "BINANCE_COINM" // COIN-M futures: coin-margined, quantities in contracts
)

// futuresCode tells the futures venue of a frame: COIN-M contracts are
// priced in USD (BTCUSD_PERP, BTCUSD_240927; their bookTicker names the
// pair in "ps"), USD-M ones in a stablecoin (ETHUSDT, BTCUSDT_240927).
func futuresCode(symbol, pair string) string {
	if pair == "" {
		pair, _, _ = strings.Cut(symbol, "_")
	}
	if strings.HasSuffix(pair, "USD") {
		return coinmCode
	}
	return usdmCode
}

// instrument splits a symbol of a market into the stored symbol (Binance's
// own spelling) and its quote currency; a futures symbol's contract
// (PERP, or a delivery date YYMMDD) goes into vendor.
func instrument(assets *marketdata.Assets, code, symbol string, vendor map[string]string) (sym, quote string, err error) {
	if code == exchangeCode {
		return pairSymbol(assets, symbol)
	}
	pair, contract, _ := strings.Cut(symbol, "_")
	if _, quote, err = pairSymbol(assets, pair); err != nil {
		return "", "", err
	}
	switch contract {
	case "", "PERP":
		vendor["contract_type"] = "PERPETUAL"
	default:
		d, err := time.Parse("060102", contract)
		if err != nil {
			return "", "", invalid("symbol", "%q: contract %q is neither PERP nor a delivery date YYMMDD", symbol, contract)
		}
		vendor["contract_type"], vendor["delivery_date"] = "DELIVERY", d.Format(time.DateOnly)
	}
	if code == coinmCode {
		vendor["quantity_unit"] = "contracts"
	}
	return symbol, quote, nil
}

func invalid(field, format string, args ...any) error {
	return &marketdata.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// decimal parses a price or size from its text: Binance sends them as
// strings precisely so they never pass through a float.
func decimal(field, key, text string) (marketdata.Decimal, error) {
	d, err := marketdata.ParseDecimal(text)
	if err != nil {
		return 0, invalid(field, "%q: %v", key, err)
	}
	return d, nil
}

func parseBool(field, key, text string) (bool, error) {
	switch text {
	case "True", "true":
		return true, nil
	case "False", "false":
		return false, nil
	}
	return false, invalid(field, "%q = %q is not True or False", key, text)
}

// side turns isBuyerMaker into the aggressor side: when the buyer was the
// resting maker order, the taker sold.
func side(isBuyerMaker bool) marketdata.Side {
	if isBuyerMaker {
		return marketdata.Sell
	}
	return marketdata.Buy
}

// pairSymbol keeps Binance's own spelling of a symbol (upper case, as
// Binance writes them), whatever it holds: the quote asset is found by
// suffix, and only an alias of the base (--asset-aliases) changes it. A
// "/" is a character here, not Kraken's separator.
func pairSymbol(assets *marketdata.Assets, s string) (sym, quote string, err error) {
	s = strings.ToUpper(s)
	quote, err = assets.QuoteOf(s)
	if err != nil {
		return "", "", invalid("symbol", "%v", err)
	}
	return assets.Normalize(s[:len(s)-len(quote)]) + quote, quote, nil
}

func newTrade(id int64, sym, quote string, ts marketdata.Timestamp, price, qty marketdata.Decimal, buyerMaker bool, ingested marketdata.Timestamp, vendor map[string]string) (marketdata.Trade, error) {
	return feed.CryptoTrade(exchangeCode, id, sym, quote, side(buyerMaker), ts, price, qty, ingested, vendor)
}

// ParseVisionLine converts one row of a public-data trade file:
// `trade id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch` (the reader
// skips the header line newer files have). time is milliseconds before
// 2025 and microseconds after, told apart by its digit count. quoteQty is
// price × qty and is not stored.
func ParseVisionLine(line string, symbol string, assets *marketdata.Assets, ingested marketdata.Timestamp) (marketdata.Trade, error) {
	f := strings.Split(strings.TrimRight(line, "\r\n"), ",")
	if len(f) != 7 {
		return marketdata.Trade{}, fmt.Errorf("7 fields expected, got %d", len(f))
	}
	sym, quote, err := pairSymbol(assets, symbol)
	if err != nil {
		return marketdata.Trade{}, err
	}
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || id < 0 {
		return marketdata.Trade{}, invalid("trade_id", "trade id %q is not a non-negative integer", f[0])
	}
	price, err := decimal("price", "price", f[1])
	if err != nil {
		return marketdata.Trade{}, err
	}
	qty, err := decimal("quantity", "qty", f[2])
	if err != nil {
		return marketdata.Trade{}, err
	}
	ts, err := epoch("timestamp", "time", f[4])
	if err != nil {
		return marketdata.Trade{}, err
	}
	maker, err := parseBool("side", "isBuyerMaker", f[5])
	if err != nil {
		return marketdata.Trade{}, err
	}
	best, err := parseBool("vendor_data", "isBestMatch", f[6])
	if err != nil {
		return marketdata.Trade{}, err
	}
	vendor := map[string]string{"is_buyer_maker": strconv.FormatBool(maker), "is_best_match": strconv.FormatBool(best)}
	return newTrade(id, sym, quote, ts, price, qty, maker, ingested, vendor)
}

func epoch(field, key, text string) (marketdata.Timestamp, error) {
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, invalid(field, "%q = %q is not an integer epoch time", key, text)
	}
	ts, err := marketdata.EpochToTimestamp(v)
	if err != nil {
		return 0, invalid(field, "%q: %v", key, err)
	}
	return ts, nil
}

// event holds the fields of every spot event K2 reads. Numbers stay text
// (json.Number, json.RawMessage) so prices reach ParseDecimal unrounded and
// absence is visible. encoding/json matches keys case-insensitively when no
// field matches exactly, so each key that differs only in case from one we
// read (U beside u) is declared too.
type event struct {
	Type      string          `json:"e"`
	EventTime json.Number     `json:"E"`
	Symbol    string          `json:"s"`
	TradeID   json.Number     `json:"t"`
	TradeTime json.Number     `json:"T"`
	Price     json.RawMessage `json:"p"`
	Qty       json.RawMessage `json:"q"`
	Maker     *bool           `json:"m"`
	BestMatch *bool           `json:"M"`
	TradeType string          `json:"X"`  // futures trades: MARKET, INSURANCE_FUND, ADL, NA
	Pair      string          `json:"ps"` // COIN-M bookTicker: the pair of the contract
	Index     json.RawMessage `json:"i"`  // markPriceUpdate: index price ("p" is the mark price)
	Settle    json.RawMessage `json:"P"`  // markPriceUpdate: estimated settle price
	Rate      json.RawMessage `json:"r"`  // markPriceUpdate: funding rate ("T" is the next funding time)
	UpdateID  json.Number     `json:"u"`
	FirstID   json.RawMessage `json:"U"`
	Bid       json.RawMessage `json:"b"` // bid price (bookTicker) or buyer order id (older trades)
	BidQty    json.RawMessage `json:"B"`
	Ask       json.RawMessage `json:"a"` // ask price (bookTicker) or seller order id (older trades)
	AskQty    json.RawMessage `json:"A"`
	Result    json.RawMessage `json:"result"`
	ID        json.RawMessage `json:"id"`
	Code      json.RawMessage `json:"code"`
	Msg       string          `json:"msg"`
}

// text returns a raw JSON string or number without its quotes, "" when absent or null.
func text(raw json.RawMessage) string {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		return string(raw[1 : len(raw)-1])
	}
	if absent(raw) {
		return ""
	}
	return string(raw)
}

// absent reports whether a key was missing or null.
func absent(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

var (
	streamPrefix = []byte(`{"stream":"`)
	dataKey      = []byte(`,"data":`)
)

// splitEnvelope takes a combined-stream frame `{"stream":"…","data":{…}}`
// apart without decoding it, so the event is decoded once; ok is false for
// any other shape, which then takes the general path.
func splitEnvelope(frame []byte) (stream, data []byte, ok bool) {
	rest, found := bytes.CutPrefix(frame, streamPrefix)
	if !found {
		return nil, nil, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return nil, nil, false
	}
	stream = rest[:i]
	data, found = bytes.CutPrefix(rest[i+1:], dataKey)
	data = bytes.TrimRight(data, " \t\r\n")
	if !found || len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return nil, nil, false
	}
	return stream, data[:len(data)-1], true
}

// envelope is the general form of a frame, for what splitEnvelope declines.
type envelope struct {
	Stream *string         `json:"stream"`
	Data   json.RawMessage `json:"data"`
}

// ParseFrame converts one WebSocket text frame, either a combined-stream
// envelope or a bare event. A trade event yields a Trade, a bookTicker a
// Quote; aggTrade, depthUpdate, subscription answers and other events are
// understood and skipped; an error frame from Binance is an error.
func ParseFrame(frame []byte, received marketdata.Timestamp, assets *marketdata.Assets) (feed.Events, error) {
	return parseFrame(frame, received, assets, false)
}

// ParseCaptureLine converts one line of a recorder capture:
// `<local receive time, ns> <raw JSON frame>`. Frames without a "stream" key
// (a REST depth snapshot taken when the capture started) are skipped as
// "no_stream".
func ParseCaptureLine(line []byte, assets *marketdata.Assets) (feed.Events, error) {
	head, frame, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte{' '})
	if !ok {
		return feed.Events{}, fmt.Errorf("capture line: no space between receive time and frame")
	}
	ns, err := strconv.ParseInt(string(head), 10, 64)
	if err != nil || ns <= 0 {
		return feed.Events{}, fmt.Errorf("capture line: receive time %q is not positive integer nanoseconds", head)
	}
	return parseFrame(frame, marketdata.Timestamp(ns/1000), assets, true)
}

func parseFrame(frame []byte, received marketdata.Timestamp, assets *marketdata.Assets, needStream bool) (feed.Events, error) {
	var ev event
	stream, data, ok := splitEnvelope(frame)
	if ok && !scanEvent(data, &ev) {
		ev = event{}
		ok = json.Unmarshal(data, &ev) == nil
	}
	if !ok {
		// Not the usual envelope: decode the frame in full.
		var env envelope
		if err := json.Unmarshal(frame, &env); err != nil {
			return feed.Events{}, fmt.Errorf("frame: %w", err)
		}
		if env.Stream == nil && needStream {
			return feed.Events{Skipped: "no_stream"}, nil
		}
		stream, data = nil, frame
		if env.Stream != nil {
			stream = []byte(*env.Stream)
		}
		if env.Data != nil {
			data = env.Data
		}
		ev = event{}
		if err := json.Unmarshal(data, &ev); err != nil {
			return feed.Events{}, fmt.Errorf("frame data: %w", err)
		}
	}
	switch {
	case ev.Code != nil:
		return feed.Events{}, fmt.Errorf("binance error frame: code %s: %s", ev.Code, ev.Msg)
	case ev.Type == "trade":
		t, err := ev.trade(received, assets)
		if err != nil {
			return feed.Events{}, err
		}
		return feed.Events{Trades: []marketdata.Trade{t}}, nil
	case ev.Type == "markPriceUpdate":
		f, err := ev.funding(received, assets)
		if err != nil {
			return feed.Events{}, err
		}
		return feed.Events{Funding: []marketdata.FundingRate{f}}, nil
	case ev.Type == "bookTicker" || (ev.Type == "" && (bytes.HasSuffix(stream, []byte("@bookTicker")) || ev.isBookTicker())):
		q, err := ev.quote(received, assets)
		if err != nil {
			return feed.Events{}, err
		}
		return feed.Events{Quotes: []marketdata.Quote{q}}, nil
	case ev.Type != "":
		return feed.Events{Skipped: ev.Type}, nil
	case ev.Result != nil || ev.ID != nil:
		return feed.Events{Skipped: "control"}, nil
	}
	return feed.Events{}, fmt.Errorf("frame is neither an event, a bookTicker nor a control answer: %.80s", data)
}

func (ev *event) isBookTicker() bool {
	return ev.UpdateID != "" && ev.Symbol != "" && ev.Bid != nil && ev.BidQty != nil && ev.Ask != nil && ev.AskQty != nil
}

// market is the venue code of the event: a futures trade carries its type
// ("X"), a futures bookTicker its event type ("e"), spot's neither.
func (ev *event) market() string {
	if ev.TradeType != "" || ev.Type == "bookTicker" {
		return futuresCode(ev.Symbol, ev.Pair)
	}
	return exchangeCode
}

func (ev *event) trade(received marketdata.Timestamp, assets *marketdata.Assets) (marketdata.Trade, error) {
	var t marketdata.Trade
	for _, r := range []struct {
		field, key string
		missing    bool
	}{
		{"event_time", "E", ev.EventTime == ""},
		{"symbol", "s", ev.Symbol == ""},
		{"trade_id", "t", ev.TradeID == ""},
		{"price", "p", absent(ev.Price)},
		{"quantity", "q", absent(ev.Qty)},
		{"timestamp", "T", ev.TradeTime == ""},
		{"side", "m", ev.Maker == nil},
	} {
		if r.missing {
			return t, invalid(r.field, "trade field %q is missing", r.key)
		}
	}
	code := ev.market()
	vendor := make(map[string]string, 6)
	sym, quote, err := instrument(assets, code, ev.Symbol, vendor)
	if err != nil {
		return t, err
	}
	id, err := strconv.ParseInt(ev.TradeID.String(), 10, 64)
	if err != nil || id < 0 {
		return t, invalid("trade_id", `"t" = %s is not a non-negative integer`, ev.TradeID)
	}
	price, err := decimal("price", "p", text(ev.Price))
	if err != nil {
		return t, err
	}
	qty, err := decimal("quantity", "q", text(ev.Qty))
	if err != nil {
		return t, err
	}
	ts, err := epoch("timestamp", "T", ev.TradeTime.String())
	if err != nil {
		return t, err
	}
	if _, err := strconv.ParseInt(ev.EventTime.String(), 10, 64); err != nil {
		return t, invalid("event_time", `"E" = %s is not an integer`, ev.EventTime)
	}
	vendor["event_time"] = ev.EventTime.String()
	if ev.TradeType != "" {
		vendor["trade_type"] = ev.TradeType
	}
	vendor["is_buyer_maker"] = strconv.FormatBool(*ev.Maker)
	if ev.BestMatch != nil {
		vendor["is_best_match"] = strconv.FormatBool(*ev.BestMatch)
	}
	for _, o := range []struct {
		key, name string
		raw       json.RawMessage
	}{{"buyer_order_id", "b", ev.Bid}, {"seller_order_id", "a", ev.Ask}} {
		if s := text(o.raw); s != "" {
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return t, invalid("vendor_data", "%q = %s is not an integer order id", o.name, o.raw)
			}
			vendor[o.key] = s
		}
	}
	t, err = feed.CryptoTrade(code, id, sym, quote, side(*ev.Maker), ts, price, qty, received, vendor)
	// Prints that are not order-book trades keep their type as a
	// condition, which bars leave out.
	if slices.Contains(marketdata.NonMarketConditions, ev.TradeType) {
		t.TradeConditions = []string{ev.TradeType}
	}
	return t, err
}

func (ev *event) quote(received marketdata.Timestamp, assets *marketdata.Assets) (marketdata.Quote, error) {
	var q marketdata.Quote
	if ev.Symbol == "" {
		return q, invalid("symbol", `bookTicker field "s" is missing`)
	}
	code := ev.market()
	vendor := map[string]string{}
	sym, quote, err := instrument(assets, code, ev.Symbol, vendor)
	if err != nil {
		return q, err
	}
	u, err := strconv.ParseInt(ev.UpdateID.String(), 10, 64)
	if err != nil || u < 0 {
		return q, invalid("quote_id", `bookTicker field "u" = %q is not a non-negative integer`, ev.UpdateID)
	}
	bid, bidQty, err := quoteSide("bid", "b", "B", ev.Bid, ev.BidQty)
	if err != nil {
		return q, err
	}
	ask, askQty, err := quoteSide("ask", "a", "A", ev.Ask, ev.AskQty)
	if err != nil {
		return q, err
	}
	// Spot bookTicker carries no time; futures ones carry the matching
	// engine's T and the event's E. Prefer T, then E, then our receive time.
	ts := received
	for _, c := range []struct {
		key string
		n   json.Number
	}{{"E", ev.EventTime}, {"T", ev.TradeTime}} {
		if c.n == "" {
			continue
		}
		if ts, err = epoch("timestamp", c.key, c.n.String()); err != nil {
			return q, err
		}
		if c.key == "E" {
			vendor["event_time"] = c.n.String()
		}
	}
	if len(vendor) == 0 {
		vendor = nil
	}
	quoteID := code + "-" + strconv.FormatInt(u, 10)
	ex, _ := marketdata.LookupExchange(code)
	q = marketdata.Quote{
		MessageID:          marketdata.MessageID("quote", sym, quoteID),
		QuoteID:            quoteID,
		Symbol:             sym,
		Exchange:           code,
		AssetClass:         ex.AssetClass,
		Timestamp:          ts,
		BidPrice:           bid,
		BidQuantity:        bidQty,
		AskPrice:           ask,
		AskQuantity:        askQty,
		Currency:           quote,
		SourceSequence:     marketdata.SomeInt64(u),
		IngestionTimestamp: received,
		VendorData:         vendor,
	}
	return q, q.Validate()
}

// funding reads a futures markPriceUpdate: mark price "p", index price
// "i", estimated settle price "P", funding rate "r" (empty for delivery
// contracts, which have none) and the next funding time "T".
func (ev *event) funding(received marketdata.Timestamp, assets *marketdata.Assets) (marketdata.FundingRate, error) {
	var f marketdata.FundingRate
	if ev.Symbol == "" {
		return f, invalid("symbol", `markPriceUpdate field "s" is missing`)
	}
	if ev.EventTime == "" {
		return f, invalid("timestamp", `markPriceUpdate field "E" is missing`)
	}
	code := futuresCode(ev.Symbol, ev.Pair)
	vendor := map[string]string{}
	sym, quote, err := instrument(assets, code, ev.Symbol, vendor)
	if err != nil {
		return f, err
	}
	ts, err := epoch("timestamp", "E", ev.EventTime.String())
	if err != nil {
		return f, err
	}
	if absent(ev.Price) {
		return f, invalid("mark_price", `markPriceUpdate field "p" is missing`)
	}
	mark, err := decimal("mark_price", "p", text(ev.Price))
	if err != nil {
		return f, err
	}
	var opt [3]marketdata.NullDecimal
	for i, o := range []struct {
		field, key string
		raw        json.RawMessage
	}{{"index_price", "i", ev.Index}, {"estimated_settle_price", "P", ev.Settle}, {"funding_rate", "r", ev.Rate}} {
		if t := text(o.raw); t != "" {
			d, err := marketdata.ParseSignedDecimal(t) // a funding rate may be negative
			if err != nil {
				return f, invalid(o.field, "%q: %v", o.key, err)
			}
			opt[i] = marketdata.SomeDecimal(d)
		}
	}
	var next marketdata.NullTimestamp
	if t := ev.TradeTime.String(); t != "" && t != "0" {
		n, err := epoch("next_funding_time", "T", t)
		if err != nil {
			return f, err
		}
		next = marketdata.NullTimestamp{Timestamp: n, Valid: true}
	}
	ex, _ := marketdata.LookupExchange(code)
	f = marketdata.FundingRate{
		MessageID: marketdata.FundingMessageID(sym, code, ts), Symbol: sym, Exchange: code, AssetClass: ex.AssetClass,
		Timestamp: ts, MarkPrice: mark, IndexPrice: opt[0], EstimatedSettlePrice: opt[1], FundingRate: opt[2],
		NextFundingTime: next, Currency: quote, IngestionTimestamp: received, VendorData: vendor,
	}
	return f, f.Validate()
}

// quoteSide reads one side of a bookTicker; an empty book side is sent as
// price 0 and size 0 and becomes null rather than a zero price.
func quoteSide(name, priceKey, qtyKey string, rawPrice, rawQty json.RawMessage) (price, qty marketdata.NullDecimal, err error) {
	if absent(rawPrice) {
		return price, qty, invalid(name+"_price", "bookTicker field %q is missing", priceKey)
	}
	if absent(rawQty) {
		return price, qty, invalid(name+"_quantity", "bookTicker field %q is missing", qtyKey)
	}
	p, err := decimal(name+"_price", priceKey, text(rawPrice))
	if err != nil {
		return price, qty, err
	}
	s, err := decimal(name+"_quantity", qtyKey, text(rawQty))
	if err != nil {
		return price, qty, err
	}
	if p.IsZero() && s.IsZero() {
		return price, qty, nil
	}
	return marketdata.SomeDecimal(p), marketdata.SomeDecimal(s), nil
}

// historical is one trade of the REST historicalTrades (or trades) answer.
type historical struct {
	ID           json.Number     `json:"id"`
	Price        json.RawMessage `json:"price"`
	Qty          json.RawMessage `json:"qty"`
	Time         json.Number     `json:"time"`
	IsBuyerMaker *bool           `json:"isBuyerMaker"`
	IsBestMatch  *bool           `json:"isBestMatch"`
}

// ParseHistoricalTrades converts the answer of GET /api/v3/historicalTrades
// for symbol: the trades a live feed missed, as the same records the
// WebSocket would have produced (same ids, so a trade seen both ways is
// stored once).
func ParseHistoricalTrades(body []byte, symbol string, assets *marketdata.Assets, ingested marketdata.Timestamp) ([]marketdata.Trade, error) {
	var rows []historical
	if err := json.Unmarshal(body, &rows); err != nil {
		return nil, fmt.Errorf("historical trades: %w", err)
	}
	sym, quote, err := pairSymbol(assets, symbol)
	if err != nil {
		return nil, err
	}
	out := make([]marketdata.Trade, 0, len(rows))
	for i, r := range rows {
		id, err := strconv.ParseInt(r.ID.String(), 10, 64)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("historical trade %d: %w", i, invalid("trade_id", "id %q is not a non-negative integer", r.ID))
		}
		if absent(r.Price) || absent(r.Qty) || r.IsBuyerMaker == nil {
			return nil, fmt.Errorf("historical trade %d (id %d): price, qty and isBuyerMaker are required", i, id)
		}
		price, err := decimal("price", "price", text(r.Price))
		if err != nil {
			return nil, fmt.Errorf("historical trade %d (id %d): %w", i, id, err)
		}
		qty, err := decimal("quantity", "qty", text(r.Qty))
		if err != nil {
			return nil, fmt.Errorf("historical trade %d (id %d): %w", i, id, err)
		}
		ts, err := epoch("timestamp", "time", r.Time.String())
		if err != nil {
			return nil, fmt.Errorf("historical trade %d (id %d): %w", i, id, err)
		}
		vendor := map[string]string{"is_buyer_maker": strconv.FormatBool(*r.IsBuyerMaker), "source": "rest"}
		if r.IsBestMatch != nil {
			vendor["is_best_match"] = strconv.FormatBool(*r.IsBestMatch)
		}
		t, err := newTrade(id, sym, quote, ts, price, qty, *r.IsBuyerMaker, ingested, vendor)
		if err != nil {
			return nil, fmt.Errorf("historical trade %d (id %d): %w", i, id, err)
		}
		out = append(out, t)
	}
	return out, nil
}
