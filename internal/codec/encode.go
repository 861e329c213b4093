package codec

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// The encoders write Avro binary by hand, in the field order of the
// embedded schemas: that is all Avro binary is (no tags, no names), and it
// keeps a trade at tens of nanoseconds with no allocation when dst has
// room. The hamba tests pin every byte to hamba/avro's output.

// AppendTrade appends t as a wire-format TradeV2 message under schemaID.
//
// It does not validate: run t.Validate first. Values Validate rejects but
// Avro can carry (a negative price, an empty symbol) are written as they
// are. An AssetClass or Side outside its enum cannot be written at all:
// substituting a symbol would silently corrupt the record, so it is an
// error (an *EnumError), and dst comes back as it was.
func AppendTrade(dst []byte, schemaID uint32, t *marketdata.Trade) ([]byte, error) {
	asset, err := assetClassIndex(t.AssetClass)
	if err != nil {
		return dst, err
	}
	side, err := sideIndex(t.Side)
	if err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, schemaID)
	dst = appendUUID(dst, t.MessageID)
	dst = appendString(dst, t.TradeID)
	dst = appendString(dst, t.Symbol)
	dst = appendString(dst, t.Exchange)
	dst = appendLong(dst, asset)
	dst = appendLong(dst, int64(t.Timestamp))
	dst = appendDecimal(dst, t.Price)
	dst = appendDecimal(dst, t.Quantity)
	dst = appendString(dst, t.Currency)
	dst = appendLong(dst, side)
	if n := len(t.TradeConditions); n > 0 {
		dst = appendLong(dst, int64(n))
		for _, c := range t.TradeConditions {
			dst = appendString(dst, c)
		}
	}
	dst = append(dst, 0) // end of array
	dst = appendNullLong(dst, t.SourceSequence)
	dst = appendLong(dst, int64(t.IngestionTimestamp))
	dst = appendNullLong(dst, t.PlatformSequence)
	return appendVendorData(dst, t.VendorData), nil
}

// AppendQuote appends q as a wire-format QuoteV2 message under schemaID.
// Absent book values are written as null. Like AppendTrade it does not
// validate, and refuses an AssetClass outside its enum.
func AppendQuote(dst []byte, schemaID uint32, q *marketdata.Quote) ([]byte, error) {
	asset, err := assetClassIndex(q.AssetClass)
	if err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, schemaID)
	dst = appendUUID(dst, q.MessageID)
	dst = appendString(dst, q.QuoteID)
	dst = appendString(dst, q.Symbol)
	dst = appendString(dst, q.Exchange)
	dst = appendLong(dst, asset)
	dst = appendLong(dst, int64(q.Timestamp))
	dst = appendNullDecimal(dst, q.BidPrice)
	dst = appendNullDecimal(dst, q.BidQuantity)
	dst = appendNullDecimal(dst, q.AskPrice)
	dst = appendNullDecimal(dst, q.AskQuantity)
	dst = appendString(dst, q.Currency)
	dst = appendNullLong(dst, q.SourceSequence)
	dst = appendLong(dst, int64(q.IngestionTimestamp))
	dst = appendNullLong(dst, q.PlatformSequence)
	return appendVendorData(dst, q.VendorData), nil
}

// AppendReference appends r as a wire-format ReferenceDataV2 message under
// schemaID. An empty ISIN or Currency is written as null: the Go record has
// no other way to say "absent". Like AppendTrade it does not validate, and
// refuses an AssetClass outside its enum.
func AppendReference(dst []byte, schemaID uint32, r *marketdata.ReferenceData) ([]byte, error) {
	asset, err := assetClassIndex(r.AssetClass)
	if err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, schemaID)
	dst = appendUUID(dst, r.MessageID)
	dst = appendString(dst, r.CompanyID)
	dst = appendString(dst, r.Symbol)
	dst = appendString(dst, r.Exchange)
	dst = appendLong(dst, asset)
	dst = appendString(dst, r.CompanyName)
	dst = appendNullString(dst, r.ISIN)
	dst = appendNullString(dst, r.Currency)
	dst = appendNullTimestamp(dst, r.ListingDate)
	dst = appendNullTimestamp(dst, r.DelistingDate)
	if r.IsActive {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = appendLong(dst, int64(r.IngestionTimestamp))
	return appendVendorData(dst, r.VendorData), nil
}

// AppendFunding appends f as a wire-format FundingRateV1 message under
// schemaID. Like AppendTrade it does not validate, and refuses an
// AssetClass outside its enum.
func AppendFunding(dst []byte, schemaID uint32, f *marketdata.FundingRate) ([]byte, error) {
	asset, err := assetClassIndex(f.AssetClass)
	if err != nil {
		return dst, err
	}
	dst = AppendHeader(dst, schemaID)
	dst = appendUUID(dst, f.MessageID)
	dst = appendString(dst, f.Symbol)
	dst = appendString(dst, f.Exchange)
	dst = appendLong(dst, asset)
	dst = appendLong(dst, int64(f.Timestamp))
	dst = appendDecimal(dst, f.MarkPrice)
	dst = appendNullDecimal(dst, f.IndexPrice)
	dst = appendNullDecimal(dst, f.EstimatedSettlePrice)
	dst = appendNullDecimal(dst, f.FundingRate)
	dst = appendNullTimestamp(dst, f.NextFundingTime)
	dst = appendString(dst, f.Currency)
	dst = appendLong(dst, int64(f.IngestionTimestamp))
	return appendVendorData(dst, f.VendorData), nil
}

// Enum symbols in schema order: the Avro encoding is the index.
var (
	assetClassSymbols = [...]marketdata.AssetClass{marketdata.Equities, marketdata.Crypto, marketdata.Futures, marketdata.Options}
	sideSymbols       = [...]marketdata.Side{marketdata.Buy, marketdata.Sell, marketdata.SellShort, marketdata.Unknown}
)

// EnumError refuses a value outside an Avro enum's symbols. It is an
// invalid_<field> validation error too, so it is dead-lettered like one.
type EnumError struct {
	Field, Enum, Value string
}

func (e *EnumError) Error() string {
	return fmt.Sprintf("codec: %s %q is not a symbol of %s", e.Field, e.Value, e.Enum)
}

// ReasonCode names the field, as validation does.
func (e *EnumError) ReasonCode() string { return marketdata.InvalidReason(e.Field) }

func assetClassIndex(a marketdata.AssetClass) (int64, error) {
	for i, s := range assetClassSymbols {
		if a == s {
			return int64(i), nil
		}
	}
	return 0, &EnumError{Field: "asset_class", Enum: "com.k2.marketdata.AssetClass", Value: string(a)}
}

func sideIndex(s marketdata.Side) (int64, error) {
	for i, sym := range sideSymbols {
		if s == sym {
			return int64(i), nil
		}
	}
	return 0, &EnumError{Field: "side", Enum: "com.k2.marketdata.TradeSide", Value: string(s)}
}

// appendLong writes an Avro long: zig-zag, then a little-endian base-128 varint.
func appendLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func appendString(dst []byte, s string) []byte {
	dst = appendLong(dst, int64(len(s)))
	return append(dst, s...)
}

const hexDigits = "0123456789abcdef"

// appendUUID writes the canonical 36-character lower-case form as an Avro
// string, without going through uuid.String's allocation.
func appendUUID(dst []byte, id uuid.UUID) []byte {
	dst = append(dst, 36<<1) // the length 36, zig-zag encoded
	for i, b := range id {
		switch i {
		case 4, 6, 8, 10:
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0x0f])
	}
	return dst
}

// appendDecimal writes a decimal(18,8) as Avro bytes: the unscaled value
// (the Decimal's units) in the fewest big-endian two's-complement bytes
// that hold it, as Java's BigInteger.toByteArray does.
func appendDecimal(dst []byte, d marketdata.Decimal) []byte {
	v := int64(d)
	mag := uint64(v)
	if v < 0 {
		mag = ^mag
	}
	n := (bits.Len64(mag) + 8) >> 3 // magnitude bits plus a sign bit, in whole bytes
	dst = append(dst, byte(n<<1))   // the length 1..8, zig-zag encoded
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

// Union branches: K2's optional fields are all ["null", T].
const (
	branchNull  = 0
	branchValue = 2 // the index 1, zig-zag encoded
)

func appendNullDecimal(dst []byte, d marketdata.NullDecimal) []byte {
	if !d.Valid {
		return append(dst, branchNull)
	}
	return appendDecimal(append(dst, branchValue), d.Decimal)
}

func appendNullLong(dst []byte, v marketdata.NullInt64) []byte {
	if !v.Valid {
		return append(dst, branchNull)
	}
	return appendLong(append(dst, branchValue), v.Int64)
}

func appendNullTimestamp(dst []byte, t marketdata.NullTimestamp) []byte {
	if !t.Valid {
		return append(dst, branchNull)
	}
	return appendLong(append(dst, branchValue), int64(t.Timestamp))
}

func appendNullString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, branchNull)
	}
	return appendString(append(dst, branchValue), s)
}

// appendVendorData writes ["null", map<string>]: a nil map is null, an
// empty one an empty map. Keys are written in sorted order so a record
// always encodes to the same bytes (Go's map order is random), which keeps
// re-sent messages byte-identical.
func appendVendorData(dst []byte, m map[string]string) []byte {
	if m == nil {
		return append(dst, branchNull)
	}
	dst = append(dst, branchValue)
	if len(m) == 0 {
		return append(dst, 0)
	}
	var stack [16]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = appendLong(dst, int64(len(keys)))
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, m[k])
	}
	return append(dst, 0) // end of map
}
