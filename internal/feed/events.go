// Package feed holds what every exchange's package shares: the events a
// parsed line or frame yields, the WebSocket Protocol a live session
// drives, the file Formats a loader reads, and the Exchange that gathers
// them. Each exchange lives in a sub-package (asx, binance, kraken,
// synth) with its parsers, protocol, REST backfill and file formats, and
// feed/exchanges lists them for the commands.
package feed

import (
	"strconv"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Events is what one input line or frame yields. A frame may carry several
// trades (Kraken batches them), a quote, or nothing K2 stores (heartbeats,
// subscription answers, depth updates), in which case Skipped names it.
type Events struct {
	Trades     []marketdata.Trade
	Quotes     []marketdata.Quote
	References []marketdata.ReferenceData
	Funding    []marketdata.FundingRate
	Skipped    string // non-empty when the input was understood and deliberately not stored
}

// Empty reports whether nothing is to be stored.
func (e *Events) Empty() bool { return e.Len() == 0 }

// Len is the number of records.
func (e *Events) Len() int {
	return len(e.Trades) + len(e.Quotes) + len(e.References) + len(e.Funding)
}

// CryptoTrade builds the trade of a crypto venue that numbers its trades:
// the id becomes trade_id {EXCHANGE}-{id} and the source sequence (such ids
// run contiguously per pair, which is what gap detection checks), and the
// message id is derived from symbol and trade id. The record is validated.
func CryptoTrade(exchange string, id int64, symbol, quote string, side marketdata.Side, ts marketdata.Timestamp,
	price, qty marketdata.Decimal, ingested marketdata.Timestamp, vendor map[string]string) (marketdata.Trade, error) {
	tradeID := exchange + "-" + strconv.FormatInt(id, 10)
	ex, _ := marketdata.LookupExchange(exchange) // unknown: Validate says so
	t := marketdata.Trade{
		MessageID:          marketdata.MessageID("trade", symbol, tradeID),
		TradeID:            tradeID,
		Symbol:             symbol,
		Exchange:           exchange,
		AssetClass:         ex.AssetClass,
		Timestamp:          ts,
		Price:              price,
		Quantity:           qty,
		Currency:           quote,
		Side:               side,
		TradeConditions:    []string{},
		SourceSequence:     marketdata.SomeInt64(id),
		IngestionTimestamp: ingested,
		VendorData:         vendor,
	}
	return t, t.Validate()
}
