// Package marketdata holds K2's domain model: trades, quotes, reference data
// and bars with exact decimals and UTC-microsecond timestamps, the exchanges
// they come from, and the rules a record must pass before it is stored.
//
// The field set is the v2 model of the original platform (TradeV2, QuoteV2,
// ReferenceDataV2), so the Avro schemas, the Iceberg tables and the API all
// speak the same names.
package marketdata

import (
	"crypto/sha1"
	"strconv"

	"github.com/google/uuid"
)

// AssetClass is the Avro enum com.k2.marketdata.AssetClass.
type AssetClass string

const (
	Equities AssetClass = "equities"
	Crypto   AssetClass = "crypto"
	Futures  AssetClass = "futures"
	Options  AssetClass = "options"
)

// Valid reports whether a is one of the enum's symbols.
func (a AssetClass) Valid() bool {
	switch a {
	case Equities, Crypto, Futures, Options:
		return true
	}
	return false
}

// Side is the aggressor side of a trade (Avro enum com.k2.marketdata.TradeSide).
type Side string

const (
	Buy       Side = "BUY"  // the aggressor bought (lifted the offer)
	Sell      Side = "SELL" // the aggressor sold (hit the bid)
	SellShort Side = "SELL_SHORT"
	Unknown   Side = "UNKNOWN"
)

// Valid reports whether s is one of the enum's symbols.
func (s Side) Valid() bool {
	switch s {
	case Buy, Sell, SellShort, Unknown:
		return true
	}
	return false
}

// NonMarketConditions are the trade conditions of prints that are not
// trades of the order book: Binance futures' liquidations taken over by the
// insurance fund, auto-deleveraging, and type "NA". They are stored; bars
// leave them out unless asked to include them.
var NonMarketConditions = []string{"INSURANCE_FUND", "ADL", "NA"}

// Trade is one execution (TradeV2).
type Trade struct {
	MessageID          uuid.UUID         `json:"message_id"`
	TradeID            string            `json:"trade_id"` // {EXCHANGE}-{native id}
	Symbol             string            `json:"symbol"`
	Exchange           string            `json:"exchange"`
	AssetClass         AssetClass        `json:"asset_class"`
	Timestamp          Timestamp         `json:"timestamp"` // execution time at the exchange
	Price              Decimal           `json:"price"`
	Quantity           Decimal           `json:"quantity"`
	Currency           string            `json:"currency"`
	Side               Side              `json:"side"`
	TradeConditions    []string          `json:"trade_conditions"`
	SourceSequence     NullInt64         `json:"source_sequence"`
	IngestionTimestamp Timestamp         `json:"ingestion_timestamp"`
	PlatformSequence   NullInt64         `json:"platform_sequence"`
	VendorData         map[string]string `json:"vendor_data"`
}

// Quote is a top-of-book update (QuoteV2). An empty side is absent (null), never zero.
type Quote struct {
	MessageID          uuid.UUID         `json:"message_id"`
	QuoteID            string            `json:"quote_id"` // {EXCHANGE}-{native id}
	Symbol             string            `json:"symbol"`
	Exchange           string            `json:"exchange"`
	AssetClass         AssetClass        `json:"asset_class"`
	Timestamp          Timestamp         `json:"timestamp"`
	BidPrice           NullDecimal       `json:"bid_price"`
	BidQuantity        NullDecimal       `json:"bid_quantity"`
	AskPrice           NullDecimal       `json:"ask_price"`
	AskQuantity        NullDecimal       `json:"ask_quantity"`
	Currency           string            `json:"currency"`
	SourceSequence     NullInt64         `json:"source_sequence"`
	IngestionTimestamp Timestamp         `json:"ingestion_timestamp"`
	PlatformSequence   NullInt64         `json:"platform_sequence"`
	VendorData         map[string]string `json:"vendor_data"`
}

// FundingRate is a perpetual future's mark price and funding rate as the
// exchange published them at a moment (Binance's markPriceUpdate).
type FundingRate struct {
	MessageID            uuid.UUID         `json:"message_id"` // derived from symbol, exchange and time: FundingID
	Symbol               string            `json:"symbol"`
	Exchange             string            `json:"exchange"`
	AssetClass           AssetClass        `json:"asset_class"`
	Timestamp            Timestamp         `json:"timestamp"` // event time at the exchange
	MarkPrice            Decimal           `json:"mark_price"`
	IndexPrice           NullDecimal       `json:"index_price"`
	EstimatedSettlePrice NullDecimal       `json:"estimated_settle_price"`
	FundingRate          NullDecimal       `json:"funding_rate"` // per funding interval; null for delivery contracts
	NextFundingTime      NullTimestamp     `json:"next_funding_time"`
	Currency             string            `json:"currency"`
	IngestionTimestamp   Timestamp         `json:"ingestion_timestamp"`
	VendorData           map[string]string `json:"vendor_data"`
}

// FundingMessageID is a funding record's id: one per symbol, exchange and
// event time, so a record seen twice is stored once.
func FundingMessageID(symbol, exchange string, ts Timestamp) uuid.UUID {
	return MessageID("funding", symbol, exchange+"-"+strconv.FormatInt(int64(ts), 10))
}

// ReferenceData describes one listed instrument (ReferenceDataV2).
type ReferenceData struct {
	MessageID          uuid.UUID         `json:"message_id"`
	CompanyID          string            `json:"company_id"`
	Symbol             string            `json:"symbol"`
	Exchange           string            `json:"exchange"`
	AssetClass         AssetClass        `json:"asset_class"`
	CompanyName        string            `json:"company_name"`
	ISIN               string            `json:"isin,omitempty"`
	Currency           string            `json:"currency,omitempty"`
	ListingDate        NullTimestamp     `json:"listing_date"`
	DelistingDate      NullTimestamp     `json:"delisting_date"`
	IsActive           bool              `json:"is_active"`
	IngestionTimestamp Timestamp         `json:"ingestion_timestamp"`
	VendorData         map[string]string `json:"vendor_data"`
}

// Bar is an OHLCV aggregate of the trades in [WindowStart, WindowEnd).
type Bar struct {
	Symbol      string      `json:"symbol"`
	Exchange    string      `json:"exchange"`
	Interval    Interval    `json:"interval"`
	WindowStart Timestamp   `json:"window_start"`
	WindowEnd   Timestamp   `json:"window_end"` // exclusive
	Open        Decimal     `json:"open"`
	High        Decimal     `json:"high"`
	Low         Decimal     `json:"low"`
	Close       Decimal     `json:"close"`
	Volume      WideDecimal `json:"volume"`
	TradeCount  int64       `json:"trade_count"`
	VWAP        Decimal     `json:"vwap"` // Σ(price·quantity)/Σquantity, rounded half-up to 8 decimals
	// Partial says the window reaches outside the time range asked for,
	// so the bar covers only the part inside it.
	Partial bool `json:"partial,omitempty"`
}

// MessageIDNamespace roots the name-based message ids (RFC 9562 UUIDv5).
const MessageIDNamespace = "6f1c7c2e-4b5a-5d8e-9a63-2b0c6e1d4f70"

var idNamespace = uuid.MustParse(MessageIDNamespace)

// MessageID derives a record's message id from its kind, symbol and
// exchange id ("trade", "BTCUSDT", "BINANCE-3735683259"). The original made
// random UUIDs, so every replay minted new ids; a name-based id is the same
// on every load and replay, which is what makes it usable as a
// de-duplication key. The symbol is part of the name because exchanges
// number trades per pair: BINANCE-100 exists for BTCUSDT and ETHUSDT alike.
//
// It is kept as 16 bytes rather than its 36-character text: records are
// created and encoded by the million, and the text form is written straight
// into the output buffers when needed. The lake does not store it (it was
// 78% of a trade's bytes): readers derive it from the row, and other
// engines can with any UUIDv5 function (docs/lake.md).
//
// It hashes in a buffer on the stack, with none of uuid.NewSHA1's four
// allocations: a synthetic market derives one per trade, and NewSHA1 was
// 5% of the ingest benchmark's CPU.
func MessageID(kind, symbol, id string) uuid.UUID {
	var buf [128]byte
	name := append(append(append(append(append(buf[:0], idNamespace[:]...), kind...), '/'), symbol...), '/')
	sum := sha1.Sum(append(name, id...))
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}
