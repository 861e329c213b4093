package codec

import (
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// The resolving path lets hamba decode with the resolved schema into its
// generic form and converts that here. hamba applies the resolution: field
// order, defaults for fields the writer lacks, skipped extra fields, enum
// symbols by name, int→long promotion, a writer's required field read into
// K2's nullable one. (Typed Go structs cannot take that last case: hamba
// will not decode a plain "string" into a *string.) It runs only for
// writer schemas other than K2's, so it favours being obviously right over
// being fast.
//
// The generic form: records are map[string]any, decimals *big.Rat,
// timestamps time.Time, longs int64, arrays []any, maps map[string]any. A
// union's value is nil for null, the bare value for a primitive or logical
// branch, and {"<type>": value} for other branches (K2's vendor_data map).

// generic reads the fields of one decoded record, keeping the first failure.
type generic struct {
	m   map[string]any
	err error
}

func (g *generic) fail(field string, v any) {
	if g.err == nil {
		g.err = fmt.Errorf("%w: %s: unexpected value %v (%T)", ErrMalformed, field, v, v)
	}
}

// get returns a field's value with a union wrapper removed. Only
// vendor_data's values are maps, so a one-entry map anywhere else is a
// wrapper; for vendor_data it is one when its entry is itself a map (the
// vendor map's own values are strings).
func (g *generic) get(field string) any {
	v := g.m[field]
	w, ok := v.(map[string]any)
	if !ok || len(w) != 1 {
		return v
	}
	for _, inner := range w {
		if _, isMap := inner.(map[string]any); isMap || field != "vendor_data" {
			return inner
		}
	}
	return v
}

func (g *generic) string(field string) string {
	s, ok := g.get(field).(string)
	if !ok {
		g.fail(field, g.m[field])
	}
	return s
}

// nullString reads ["null", string]; null is "".
func (g *generic) nullString(field string) string {
	if g.get(field) == nil {
		return ""
	}
	return g.string(field)
}

func (g *generic) uuid(field string) uuid.UUID {
	s := g.string(field)
	id, err := uuid.Parse(s)
	if err != nil && g.err == nil {
		g.err = fmt.Errorf("%w: %s: %q: %v", ErrMalformed, field, s, errUUID)
	}
	return id
}

func (g *generic) nullLong(field string) marketdata.NullInt64 {
	switch v := g.get(field).(type) {
	case nil:
		return marketdata.NullInt64{}
	case int64:
		return marketdata.SomeInt64(v)
	case int:
		return marketdata.SomeInt64(int64(v))
	case int32:
		return marketdata.SomeInt64(int64(v))
	default:
		g.fail(field, v)
		return marketdata.NullInt64{}
	}
}

func (g *generic) nullTimestamp(field string) marketdata.NullTimestamp {
	switch v := g.get(field).(type) {
	case nil:
		return marketdata.NullTimestamp{}
	case time.Time:
		return marketdata.NullTimestamp{Timestamp: marketdata.TimestampOf(v), Valid: true}
	default:
		g.fail(field, v)
		return marketdata.NullTimestamp{}
	}
}

func (g *generic) timestamp(field string) marketdata.Timestamp {
	t := g.nullTimestamp(field)
	if !t.Valid {
		g.fail(field, nil)
	}
	return t.Timestamp
}

var unitsPerOne = big.NewInt(100_000_000)

// nullDecimal converts hamba's exact value. The writer's scale was checked
// to be 8, so the value is a whole number of units; only a wide writer
// (decimal(38,8)) can overflow an int64.
func (g *generic) nullDecimal(field string) marketdata.NullDecimal {
	switch v := g.get(field).(type) {
	case nil:
		return marketdata.NullDecimal{}
	case *big.Rat:
		n := new(big.Int).Mul(v.Num(), unitsPerOne)
		q, rem := n.QuoRem(n, v.Denom(), new(big.Int))
		if rem.Sign() != 0 || !q.IsInt64() {
			if g.err == nil {
				g.err = fmt.Errorf("%w: %s: %s: %v", ErrMalformed, field, v.FloatString(8), errDecimalRange)
			}
			return marketdata.NullDecimal{}
		}
		return marketdata.SomeDecimal(marketdata.Decimal(q.Int64()))
	default:
		g.fail(field, v)
		return marketdata.NullDecimal{}
	}
}

func (g *generic) decimal(field string) marketdata.Decimal {
	d := g.nullDecimal(field)
	if !d.Valid {
		g.fail(field, nil)
	}
	return d.Decimal
}

func (g *generic) boolean(field string) bool {
	b, ok := g.get(field).(bool)
	if !ok {
		g.fail(field, g.m[field])
	}
	return b
}

// strings reads array<string>; empty is a non-nil empty slice, as on the
// fast path.
func (g *generic) strings(field string) []string {
	items, ok := g.get(field).([]any)
	if !ok {
		g.fail(field, g.m[field])
		return nil
	}
	out := make([]string, len(items))
	for i, item := range items {
		if out[i], ok = item.(string); !ok {
			g.fail(field, item)
			return nil
		}
	}
	return out
}

// vendorData reads ["null", map<string>]: nil for null, else a non-nil map.
func (g *generic) vendorData() map[string]string {
	const field = "vendor_data"
	v := g.get(field)
	if v == nil {
		return nil
	}
	entries, ok := v.(map[string]any)
	if !ok {
		g.fail(field, v)
		return nil
	}
	out := make(map[string]string, len(entries))
	for k, e := range entries {
		s, ok := e.(string)
		if !ok {
			g.fail(field, e)
			return nil
		}
		out[k] = s
	}
	return out
}

func (g *generic) assetClass() marketdata.AssetClass {
	return marketdata.AssetClass(g.string("asset_class"))
}

func tradeFromGeneric(m map[string]any) (marketdata.Trade, error) {
	g := generic{m: m}
	t := marketdata.Trade{
		MessageID:          g.uuid("message_id"),
		TradeID:            g.string("trade_id"),
		Symbol:             g.string("symbol"),
		Exchange:           g.string("exchange"),
		AssetClass:         g.assetClass(),
		Timestamp:          g.timestamp("timestamp"),
		Price:              g.decimal("price"),
		Quantity:           g.decimal("quantity"),
		Currency:           g.string("currency"),
		Side:               marketdata.Side(g.string("side")),
		TradeConditions:    g.strings("trade_conditions"),
		SourceSequence:     g.nullLong("source_sequence"),
		IngestionTimestamp: g.timestamp("ingestion_timestamp"),
		PlatformSequence:   g.nullLong("platform_sequence"),
		VendorData:         g.vendorData(),
	}
	if g.err != nil {
		return marketdata.Trade{}, g.err
	}
	return t, nil
}

func quoteFromGeneric(m map[string]any) (marketdata.Quote, error) {
	g := generic{m: m}
	q := marketdata.Quote{
		MessageID:          g.uuid("message_id"),
		QuoteID:            g.string("quote_id"),
		Symbol:             g.string("symbol"),
		Exchange:           g.string("exchange"),
		AssetClass:         g.assetClass(),
		Timestamp:          g.timestamp("timestamp"),
		BidPrice:           g.nullDecimal("bid_price"),
		BidQuantity:        g.nullDecimal("bid_quantity"),
		AskPrice:           g.nullDecimal("ask_price"),
		AskQuantity:        g.nullDecimal("ask_quantity"),
		Currency:           g.string("currency"),
		SourceSequence:     g.nullLong("source_sequence"),
		IngestionTimestamp: g.timestamp("ingestion_timestamp"),
		PlatformSequence:   g.nullLong("platform_sequence"),
		VendorData:         g.vendorData(),
	}
	if g.err != nil {
		return marketdata.Quote{}, g.err
	}
	return q, nil
}

func referenceFromGeneric(m map[string]any) (marketdata.ReferenceData, error) {
	g := generic{m: m}
	r := marketdata.ReferenceData{
		MessageID:          g.uuid("message_id"),
		CompanyID:          g.string("company_id"),
		Symbol:             g.string("symbol"),
		Exchange:           g.string("exchange"),
		AssetClass:         g.assetClass(),
		CompanyName:        g.string("company_name"),
		ISIN:               g.nullString("isin"),
		Currency:           g.nullString("currency"),
		ListingDate:        g.nullTimestamp("listing_date"),
		DelistingDate:      g.nullTimestamp("delisting_date"),
		IsActive:           g.boolean("is_active"),
		IngestionTimestamp: g.timestamp("ingestion_timestamp"),
		VendorData:         g.vendorData(),
	}
	if g.err != nil {
		return marketdata.ReferenceData{}, g.err
	}
	return r, nil
}

func fundingFromGeneric(m map[string]any) (marketdata.FundingRate, error) {
	g := generic{m: m}
	f := marketdata.FundingRate{
		MessageID:            g.uuid("message_id"),
		Symbol:               g.string("symbol"),
		Exchange:             g.string("exchange"),
		AssetClass:           g.assetClass(),
		Timestamp:            g.timestamp("timestamp"),
		MarkPrice:            g.decimal("mark_price"),
		IndexPrice:           g.nullDecimal("index_price"),
		EstimatedSettlePrice: g.nullDecimal("estimated_settle_price"),
		FundingRate:          g.nullDecimal("funding_rate"),
		NextFundingTime:      g.nullTimestamp("next_funding_time"),
		Currency:             g.string("currency"),
		IngestionTimestamp:   g.timestamp("ingestion_timestamp"),
		VendorData:           g.vendorData(),
	}
	if g.err != nil {
		return marketdata.FundingRate{}, g.err
	}
	return f, nil
}
