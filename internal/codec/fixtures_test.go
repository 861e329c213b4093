package codec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// allSchemas are K2's schemas.
var allSchemas = []Schema{Trade, Quote, Reference}

// must returns an encoder's message; the fixtures are valid records.
func must(msg []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return msg
}

// Schema ids the test registry serves.
const (
	idTrade     = 101
	idQuote     = 102
	idReference = 103
	idFunding   = 104
)

var errNotFound = errors.New("subject not found (40403)")

// registry is a fake Schema Registry: id → schema text, counting lookups.
type registry struct {
	schemas map[uint32]string
	calls   atomic.Int64
	fail    error // returned for every lookup when set
}

func newRegistry(extra map[uint32]string) *registry {
	r := &registry{schemas: map[uint32]string{
		idTrade:     Trade.Text,
		idQuote:     Quote.Text,
		idReference: Reference.Text,
		idFunding:   Funding.Text,
	}}
	for id, s := range extra {
		r.schemas[id] = s
	}
	return r
}

func (r *registry) lookup(_ context.Context, id uint32) (string, error) {
	r.calls.Add(1)
	if r.fail != nil {
		return "", r.fail
	}
	s, ok := r.schemas[id]
	if !ok {
		return "", fmt.Errorf("schema %d: %w", id, errNotFound)
	}
	return s, nil
}

func newTestDecoder(extra map[uint32]string) (*Decoder, *registry) {
	r := newRegistry(extra)
	return NewDecoder(r.lookup), r
}

// Interesting decimals: boundaries of each two's-complement byte length,
// the extremes of decimal(18,8) and of int64, and 1e-8.
var edgeDecimals = []marketdata.Decimal{
	0, 1, 127, 128, 255, 256, 32767, 32768, 1 << 23, 1<<31 - 1, 1 << 31, 1 << 55, 1<<63 - 1,
	-1, -127, -128, -129, -255, -256, -32768, -32769, -(1 << 31), math.MinInt64,
	marketdata.MaxDecimalUnits, -marketdata.MaxDecimalUnits,
	marketdata.MustDecimal("105433.6"), marketdata.MustDecimal("0.00027625"), marketdata.MustDecimal("0.00000001"),
}

func fullTrade() marketdata.Trade {
	return marketdata.Trade{
		MessageID:          marketdata.MessageID("trade", "BTCUSDT", "BINANCE-3735683259"),
		TradeID:            "BINANCE-3735683259",
		Symbol:             "BTCUSDT",
		Exchange:           "BINANCE",
		AssetClass:         marketdata.Crypto,
		Timestamp:          1_738_368_000_123_456,
		Price:              marketdata.MustDecimal("105433.6"),
		Quantity:           marketdata.MustDecimal("0.00027625"),
		Currency:           "USDT",
		Side:               marketdata.Sell,
		TradeConditions:    []string{"@", "X", "Ünïcødé"},
		SourceSequence:     marketdata.SomeInt64(3735683259),
		IngestionTimestamp: 1_738_368_000_125_000,
		PlatformSequence:   marketdata.SomeInt64(42),
		VendorData:         map[string]string{"is_best_match": "true", "buyer_order_id": "123", "": "empty key"},
	}
}

// minimalTrade has every optional field null and nothing in the collections.
func minimalTrade() marketdata.Trade {
	t := fullTrade()
	t.TradeConditions = nil
	t.SourceSequence = marketdata.NullInt64{}
	t.PlatformSequence = marketdata.NullInt64{}
	t.VendorData = nil
	return t
}

func tradeCases() map[string]marketdata.Trade {
	cases := map[string]marketdata.Trade{
		"full":    fullTrade(),
		"minimal": minimalTrade(),
	}
	t := fullTrade()
	t.TradeConditions = []string{}
	t.VendorData = map[string]string{}
	t.SourceSequence = marketdata.SomeInt64(0)
	t.PlatformSequence = marketdata.SomeInt64(math.MinInt64)
	cases["empty collections, zero and min sequences"] = t

	t = minimalTrade()
	t.Price, t.Quantity = marketdata.MaxDecimalUnits, 1
	t.AssetClass, t.Side = marketdata.Equities, marketdata.SellShort
	t.Timestamp, t.IngestionTimestamp = 0, math.MaxInt64
	t.SourceSequence = marketdata.SomeInt64(math.MaxInt64)
	cases["max price, 1e-8 quantity, extreme times"] = t

	t = minimalTrade()
	t.TradeID, t.Symbol, t.Exchange, t.Currency = "", "", "", ""
	t.AssetClass, t.Side = marketdata.Options, marketdata.Unknown
	t.Price, t.Quantity = 0, math.MinInt64
	cases["empty strings, zero and min int64 decimals"] = t

	t = minimalTrade()
	t.AssetClass, t.Side = marketdata.Futures, marketdata.Buy
	for i := range 300 { // longer than one hamba block (100)
		t.TradeConditions = append(t.TradeConditions, fmt.Sprint("c", i))
	}
	t.VendorData = map[string]string{}
	for i := range 40 { // more keys than the encoder sorts on the stack
		t.VendorData[fmt.Sprint("k", i)] = fmt.Sprint("v", i)
	}
	cases["many conditions and vendor keys"] = t
	for i, d := range edgeDecimals {
		t := minimalTrade()
		t.Price, t.Quantity = d, -d
		cases[fmt.Sprintf("decimal %02d %d", i, d)] = t
	}
	return cases
}

func fullQuote() marketdata.Quote {
	return marketdata.Quote{
		MessageID:          marketdata.MessageID("quote", "BHP", "ASX-77"),
		QuoteID:            "ASX-77",
		Symbol:             "BHP",
		Exchange:           "ASX",
		AssetClass:         marketdata.Equities,
		Timestamp:          1_394_402_400_000_000,
		BidPrice:           marketdata.SomeDecimal(marketdata.MustDecimal("36.46")),
		BidQuantity:        marketdata.SomeDecimal(marketdata.MustDecimal("1200")),
		AskPrice:           marketdata.SomeDecimal(marketdata.MustDecimal("36.47")),
		AskQuantity:        marketdata.SomeDecimal(0),
		Currency:           "AUD",
		SourceSequence:     marketdata.SomeInt64(9),
		IngestionTimestamp: 1_394_402_400_001_000,
		PlatformSequence:   marketdata.SomeInt64(10),
		VendorData:         map[string]string{"venue": "XASX"},
	}
}

func quoteCases() map[string]marketdata.Quote {
	cases := map[string]marketdata.Quote{"full": fullQuote()}
	q := fullQuote()
	q.BidPrice, q.BidQuantity = marketdata.NullDecimal{}, marketdata.NullDecimal{}
	q.SourceSequence, q.PlatformSequence, q.VendorData = marketdata.NullInt64{}, marketdata.NullInt64{}, nil
	cases["empty bid side, nulls"] = q
	q = fullQuote()
	q.AskPrice, q.AskQuantity = marketdata.NullDecimal{}, marketdata.NullDecimal{}
	q.VendorData = map[string]string{}
	cases["empty ask side, empty vendor map"] = q
	q = fullQuote()
	q.BidPrice = marketdata.SomeDecimal(marketdata.MaxDecimalUnits)
	q.BidQuantity = marketdata.SomeDecimal(1)
	q.AskPrice = marketdata.SomeDecimal(-1)
	q.AskQuantity = marketdata.SomeDecimal(math.MinInt64)
	cases["extreme decimals"] = q
	q = marketdata.Quote{AssetClass: marketdata.Crypto}
	cases["zero value"] = q
	return cases
}

func fullReference() marketdata.ReferenceData {
	return marketdata.ReferenceData{
		MessageID:          marketdata.MessageID("reference", "BHP", "7078"),
		CompanyID:          "7078",
		Symbol:             "BHP",
		Exchange:           "ASX",
		AssetClass:         marketdata.Equities,
		CompanyName:        "BHP Group Limited",
		ISIN:               "AU000000BHP4",
		Currency:           "AUD",
		ListingDate:        marketdata.NullTimestamp{Timestamp: 201_052_800_000_000, Valid: true},
		DelistingDate:      marketdata.NullTimestamp{Timestamp: 1_900_000_000_000_000, Valid: true},
		IsActive:           true,
		IngestionTimestamp: 1_738_368_000_000_000,
		VendorData:         map[string]string{"gics": "Materials", "sector": "Mining"},
	}
}

func referenceCases() map[string]marketdata.ReferenceData {
	cases := map[string]marketdata.ReferenceData{"full": fullReference()}
	r := fullReference()
	r.ISIN, r.Currency = "", ""
	r.ListingDate, r.DelistingDate = marketdata.NullTimestamp{}, marketdata.NullTimestamp{}
	r.IsActive = false
	r.VendorData = nil
	cases["nulls, inactive"] = r
	r = fullReference()
	r.AssetClass = marketdata.Crypto
	r.ListingDate = marketdata.NullTimestamp{Timestamp: 0, Valid: true}
	r.VendorData = map[string]string{}
	cases["epoch listing, empty vendor map"] = r
	return cases
}

// normTrade is what a decoded trade looks like: an empty conditions array
// is never nil (the field is not nullable).
func normTrade(t marketdata.Trade) marketdata.Trade {
	if t.TradeConditions == nil {
		t.TradeConditions = []string{}
	}
	return t
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func fullFunding() marketdata.FundingRate {
	return marketdata.FundingRate{
		MessageID: marketdata.FundingMessageID("ETHUSDT", "BINANCE_USDM", 1_721_347_202_000_000),
		Symbol:    "ETHUSDT", Exchange: "BINANCE_USDM", AssetClass: marketdata.Futures,
		Timestamp:            1_721_347_202_000_000,
		MarkPrice:            marketdata.MustDecimal("3424.98500000"),
		IndexPrice:           marketdata.SomeDecimal(marketdata.MustDecimal("3426.11")),
		EstimatedSettlePrice: marketdata.SomeDecimal(marketdata.MustDecimal("3425.9")),
		FundingRate:          marketdata.SomeDecimal(-marketdata.MustDecimal("0.00012345")),
		NextFundingTime:      marketdata.NullTimestamp{Timestamp: 1_721_376_000_000_000, Valid: true},
		Currency:             "USDT",
		IngestionTimestamp:   1_721_347_201_288_432,
		VendorData:           map[string]string{"contract_type": "PERPETUAL"},
	}
}

func fundingCases() map[string]marketdata.FundingRate {
	cases := map[string]marketdata.FundingRate{"full": fullFunding()}
	f := fullFunding()
	f.IndexPrice, f.EstimatedSettlePrice, f.FundingRate = marketdata.NullDecimal{}, marketdata.NullDecimal{}, marketdata.NullDecimal{}
	f.NextFundingTime, f.VendorData = marketdata.NullTimestamp{}, nil
	cases["delivery contract: no rate, nulls"] = f
	return cases
}
