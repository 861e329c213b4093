// Package kraken parses Kraken WebSocket v2 messages: every trade of a
// batched trade message, ticker quotes, and the control traffic around them.
package kraken

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/marketdata"
)

const exchangeCode = "KRAKEN"

// message is the v2 envelope. Data stays raw until the channel is known:
// the status channel's connection_id does not fit an int64 and is never read.
type message struct {
	Channel string          `json:"channel"`
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	Method  string          `json:"method"`
	Success *bool           `json:"success"`
	Error   string          `json:"error"`
}

// trade is one element of a trade message. Prices and sizes are JSON
// numbers; they stay raw text so they reach ParseDecimal exactly as sent
// (0.00027625 through a float64 is 0.000276249999…).
type trade struct {
	Symbol    string          `json:"symbol"`
	Side      string          `json:"side"`
	Price     json.RawMessage `json:"price"`
	Qty       json.RawMessage `json:"qty"`
	OrdType   string          `json:"ord_type"`
	TradeID   json.RawMessage `json:"trade_id"`
	Timestamp string          `json:"timestamp"`
}

// ticker is one element of a ticker message; only the top of book is read.
type ticker struct {
	Symbol    string          `json:"symbol"`
	Bid       json.RawMessage `json:"bid"`
	BidQty    json.RawMessage `json:"bid_qty"`
	Ask       json.RawMessage `json:"ask"`
	AskQty    json.RawMessage `json:"ask_qty"`
	Timestamp string          `json:"timestamp"`
}

func invalid(field, format string, args ...any) error {
	return &marketdata.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ParseMessage converts one v2 message. A trade message yields one Trade per
// element, a ticker message one Quote per element; heartbeats, status and
// method answers are skipped, and a failed method answer is an error carrying
// Kraken's text. A bad element fails the whole message, naming the element.
func ParseMessage(msg []byte, received marketdata.Timestamp, assets *marketdata.Assets) (feed.Events, error) {
	var m message
	if err := json.Unmarshal(msg, &m); err != nil {
		return feed.Events{}, fmt.Errorf("message: %w", err)
	}
	switch {
	case m.Method != "":
		if m.Success != nil && !*m.Success {
			return feed.Events{}, fmt.Errorf("kraken %s failed: %s", m.Method, m.Error)
		}
		return feed.Events{Skipped: "control"}, nil
	case m.Channel == "trade" || m.Channel == "ticker":
		if m.Type != "snapshot" && m.Type != "update" {
			return feed.Events{}, fmt.Errorf("%s message type %q is neither snapshot nor update", m.Channel, m.Type)
		}
		var elems []json.RawMessage
		if m.Data == nil || json.Unmarshal(m.Data, &elems) != nil || elems == nil {
			return feed.Events{}, fmt.Errorf("%s message data is not an array: %.80s", m.Channel, m.Data)
		}
		var ev feed.Events
		for i, raw := range elems {
			var err error
			if m.Channel == "trade" {
				var t marketdata.Trade
				if t, err = parseTrade(raw, received, assets); err == nil {
					ev.Trades = append(ev.Trades, t)
				}
			} else {
				var q marketdata.Quote
				if q, err = parseTicker(raw, received, assets); err == nil {
					ev.Quotes = append(ev.Quotes, q)
				}
			}
			if err != nil {
				return feed.Events{}, fmt.Errorf("%s data[%d]: %w", m.Channel, i, err)
			}
		}
		return ev, nil
	case m.Channel != "":
		return feed.Events{Skipped: m.Channel}, nil
	}
	return feed.Events{}, fmt.Errorf("message has neither channel nor method: %.80s", msg)
}

// number returns a JSON number's text (a quoted one is accepted too).
func number(field, key string, raw json.RawMessage) (string, error) {
	s := string(raw)
	if s == "" || s == "null" {
		return "", invalid(field, "%q is missing", key)
	}
	return strings.Trim(s, `"`), nil
}

func decimal(field, key string, raw json.RawMessage) (marketdata.Decimal, error) {
	s, err := number(field, key, raw)
	if err != nil {
		return 0, err
	}
	d, err := marketdata.ParseDecimal(s)
	if err != nil {
		return 0, invalid(field, "%q: %v", key, err)
	}
	return d, nil
}

func timestamp(text string) (marketdata.Timestamp, error) {
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return 0, invalid("timestamp", "%q is not RFC 3339", text)
	}
	return marketdata.TimestampOf(t), nil
}

func pairSymbol(assets *marketdata.Assets, pair string) (symbol, quote string, err error) {
	if pair == "" {
		return "", "", invalid("symbol", `"symbol" is missing`)
	}
	symbol, quote, err = assets.Symbol(pair)
	if err != nil {
		return "", "", invalid("symbol", "%v", err)
	}
	return symbol, quote, nil
}

func parseTrade(raw json.RawMessage, received marketdata.Timestamp, assets *marketdata.Assets) (marketdata.Trade, error) {
	var e trade
	if err := json.Unmarshal(raw, &e); err != nil {
		return marketdata.Trade{}, err
	}
	symbol, quote, err := pairSymbol(assets, e.Symbol)
	if err != nil {
		return marketdata.Trade{}, err
	}
	var side marketdata.Side
	switch e.Side {
	case "buy":
		side = marketdata.Buy
	case "sell":
		side = marketdata.Sell
	default:
		return marketdata.Trade{}, invalid("side", "%q is neither buy nor sell", e.Side)
	}
	price, err := decimal("price", "price", e.Price)
	if err != nil {
		return marketdata.Trade{}, err
	}
	qty, err := decimal("quantity", "qty", e.Qty)
	if err != nil {
		return marketdata.Trade{}, err
	}
	idText, err := number("trade_id", "trade_id", e.TradeID)
	if err != nil {
		return marketdata.Trade{}, err
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id < 0 {
		return marketdata.Trade{}, invalid("trade_id", "%s is not a non-negative integer", e.TradeID)
	}
	ts, err := timestamp(e.Timestamp)
	if err != nil {
		return marketdata.Trade{}, err
	}
	vendor := map[string]string{"pair": e.Symbol}
	if e.OrdType != "" {
		vendor["ord_type"] = e.OrdType
	}
	return feed.CryptoTrade(exchangeCode, id, symbol, quote, side, ts, price, qty, received, vendor)
}

// parseTicker reads the top of book. The ticker has no sequence number, so
// the quote is named by symbol and time: KRAKEN-{SYMBOL}-{µs}.
func parseTicker(raw json.RawMessage, received marketdata.Timestamp, assets *marketdata.Assets) (marketdata.Quote, error) {
	var e ticker
	if err := json.Unmarshal(raw, &e); err != nil {
		return marketdata.Quote{}, err
	}
	symbol, quote, err := pairSymbol(assets, e.Symbol)
	if err != nil {
		return marketdata.Quote{}, err
	}
	bid, bidQty, err := quoteSide("bid", e.Bid, e.BidQty)
	if err != nil {
		return marketdata.Quote{}, err
	}
	ask, askQty, err := quoteSide("ask", e.Ask, e.AskQty)
	if err != nil {
		return marketdata.Quote{}, err
	}
	ts := received
	if e.Timestamp != "" {
		if ts, err = timestamp(e.Timestamp); err != nil {
			return marketdata.Quote{}, err
		}
	}
	quoteID := exchangeCode + "-" + symbol + "-" + strconv.FormatInt(int64(ts), 10)
	q := marketdata.Quote{
		MessageID:          marketdata.MessageID("quote", symbol, quoteID),
		QuoteID:            quoteID,
		Symbol:             symbol,
		Exchange:           exchangeCode,
		AssetClass:         marketdata.Crypto,
		Timestamp:          ts,
		BidPrice:           bid,
		BidQuantity:        bidQty,
		AskPrice:           ask,
		AskQuantity:        askQty,
		Currency:           quote,
		IngestionTimestamp: received,
		VendorData:         map[string]string{"pair": e.Symbol},
	}
	return q, q.Validate()
}

// quoteSide reads one side; price 0 with size 0 is an empty side (null).
func quoteSide(name string, rawPrice, rawQty json.RawMessage) (price, qty marketdata.NullDecimal, err error) {
	p, err := decimal(name+"_price", name, rawPrice)
	if err != nil {
		return price, qty, err
	}
	s, err := decimal(name+"_quantity", name+"_qty", rawQty)
	if err != nil {
		return price, qty, err
	}
	if p.IsZero() && s.IsZero() {
		return price, qty, nil
	}
	return marketdata.SomeDecimal(p), marketdata.SomeDecimal(s), nil
}
