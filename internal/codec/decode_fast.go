package codec

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// The fast decoders read bodies written with exactly K2's schemas, the
// mirror of encode.go. They check every length, count and index against
// the bytes left, so no input makes them panic or allocate more than the
// input's size.

// Causes of a malformed body, wrapped into ErrMalformed with the field.
var (
	errTruncated     = errors.New("truncated")
	errVarint        = errors.New("varint longer than 64 bits")
	errLength        = errors.New("length out of range")
	errUnionIndex    = errors.New("union index out of range")
	errEnumIndex     = errors.New("enum index out of range")
	errBool          = errors.New("boolean byte is neither 0 nor 1")
	errDecimalRange  = errors.New("decimal does not fit 64 bits")
	errUUID          = errors.New("not a UUID")
	errTrailingBytes = errors.New("bytes left after the record")
)

// reader walks an Avro body. The first failure is kept in err (with the
// field and offset) and moves pos to the end, so later reads fail fast and
// return zero values.
type reader struct {
	buf []byte
	// str is buf as one string: string fields are cut from it, so a record
	// costs one allocation for all its strings instead of one each (they
	// share, and keep alive, that one copy of the body).
	str string
	// a, when set, holds the record's strings instead of str: each is
	// copied there, and the few that repeat across records are interned.
	a     *Arena
	pos   int
	err   error
	field string
	at    int
}

func newReader(body []byte) reader {
	return reader{buf: body, str: string(body)}
}

// newReaderIn is newReader with the strings held in a (nil: newReader).
func newReaderIn(body []byte, a *Arena) reader {
	if a == nil {
		return newReader(body)
	}
	return reader{buf: body, a: a}
}

func (r *reader) fail(field string, cause error) {
	if r.err == nil {
		r.err, r.field, r.at = cause, field, r.pos
	}
	r.pos = len(r.buf)
}

// finish returns the first failure, or a failure for unread bytes.
func (r *reader) finish() error {
	if r.err == nil && r.pos != len(r.buf) {
		r.fail("(end)", errTrailingBytes)
	}
	if r.err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s at byte %d: %v", ErrMalformed, r.field, r.at, r.err)
}

// long reads an Avro long. The one-byte case (lengths, indexes, union
// branches, small values) is kept small enough to inline.
func (r *reader) long(field string) int64 {
	if i := r.pos; uint(i) < uint(len(r.buf)) {
		if c := r.buf[i]; c < 0x80 {
			r.pos++
			return int64(c>>1) ^ -int64(c&1)
		}
	}
	return r.longSlow(field)
}

func (r *reader) longSlow(field string) int64 {
	if rest := r.buf[r.pos:]; len(rest) >= 10 {
		// Room for the longest varint: no bounds check per byte.
		// Timestamps (8 bytes) and sequence numbers come this way.
		b := rest[:10]
		var u uint64
		for i := range 9 {
			c := b[i]
			u |= uint64(c&0x7f) << (7 * i)
			if c < 0x80 {
				r.pos += i + 1
				return int64(u>>1) ^ -int64(u&1)
			}
		}
		if b[9] > 1 {
			r.fail(field, errVarint)
			return 0
		}
		u |= uint64(b[9]) << 63
		r.pos += 10
		return int64(u>>1) ^ -int64(u&1)
	}
	b, i := r.buf, r.pos
	var u uint64
	for shift := uint(0); ; shift += 7 {
		if i >= len(b) {
			r.fail(field, errTruncated)
			return 0
		}
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			r.fail(field, errVarint)
			return 0
		}
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	r.pos = i
	return int64(u>>1) ^ -int64(u&1)
}

// length reads a byte or string length and checks it against what is left.
func (r *reader) length(field string) int {
	n := r.long(field)
	if r.err != nil {
		return 0
	}
	if n < 0 || n > int64(len(r.buf)-r.pos) {
		if n < 0 {
			r.fail(field, errLength)
		} else {
			r.fail(field, errTruncated)
		}
		return 0
	}
	return int(n)
}

func (r *reader) string(field string) string {
	n := r.length(field)
	var s string
	if r.a != nil {
		s = r.a.String(r.buf[r.pos : r.pos+n])
	} else {
		s = r.str[r.pos : r.pos+n]
	}
	r.pos += n
	return s
}

// common reads a string most records share with others (a symbol, an
// exchange, a currency): interned when there is an arena.
func (r *reader) common(field string) string {
	if r.a == nil {
		return r.string(field)
	}
	n := r.length(field)
	s := r.a.Intern(r.buf[r.pos : r.pos+n])
	r.pos += n
	return s
}

func (r *reader) uuid(field string) uuid.UUID {
	n := r.length(field)
	if r.err != nil {
		return uuid.Nil
	}
	text := r.buf[r.pos : r.pos+n]
	id, ok := parseCanonicalUUID(text)
	if !ok {
		// Other forms uuid accepts (braces, urn:uuid:, no hyphens).
		var err error
		if id, err = uuid.ParseBytes(text); err != nil {
			r.fail(field, errUUID)
			return uuid.Nil
		}
	}
	r.pos += n
	return id
}

// hexValue maps an ASCII byte to its hex digit value, or 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = byte(10 + i)
	}
	return t
}()

// uuidHexAt are the offsets of the 16 byte pairs in the 36-character form.
var uuidHexAt = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// parseCanonicalUUID reads xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, the form
// every K2 message carries, without uuid.ParseBytes's generality.
func parseCanonicalUUID(s []byte) (id uuid.UUID, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	for i, at := range uuidHexAt {
		hi, lo := hexValue[s[at]], hexValue[s[at+1]]
		if hi|lo == 0xff {
			return uuid.UUID{}, false
		}
		id[i] = hi<<4 | lo
	}
	return id, true
}

// decimal reads the big-endian two's complement of a decimal(18,8)'s
// unscaled value. Writers may pad it (fixed-width encoders do), so longer
// forms are accepted when the extra bytes only extend the sign.
func (r *reader) decimal(field string) marketdata.Decimal {
	n := r.length(field)
	if r.err != nil || n == 0 {
		return 0 // hamba also reads empty bytes as zero
	}
	b := r.buf[r.pos : r.pos+n]
	if n > 8 {
		ext := byte(0)
		if b[n-8]&0x80 != 0 {
			ext = 0xff
		}
		for _, c := range b[:n-8] {
			if c != ext {
				r.fail(field, errDecimalRange)
				return 0
			}
		}
		b = b[n-8:]
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	r.pos += n
	return marketdata.Decimal(v)
}

// union reads the branch of a ["null", T] union: false for null.
func (r *reader) union(field string) bool {
	switch r.long(field) {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail(field, errUnionIndex)
	return false
}

func (r *reader) enum(field string, symbols int) int {
	i := r.long(field)
	if i < 0 || i >= int64(symbols) {
		r.fail(field, errEnumIndex)
		return 0
	}
	return int(i)
}

func (r *reader) assetClass() marketdata.AssetClass {
	return assetClassSymbols[r.enum("asset_class", len(assetClassSymbols))]
}

func (r *reader) boolean(field string) bool {
	if r.pos >= len(r.buf) {
		r.fail(field, errTruncated)
		return false
	}
	c := r.buf[r.pos]
	if c > 1 {
		r.fail(field, errBool)
		return false
	}
	r.pos++
	return c == 1
}

// blockCount reads the item count of the next array or map block. A
// negative count is followed by the block's size in bytes, which is
// skipped. minSize is the fewest bytes one item takes, to bound the count
// by what is left before anything is allocated.
func (r *reader) blockCount(field string, minSize int) int {
	n := r.long(field)
	if n < 0 {
		n = -n
		r.long(field)
		if n < 0 { // -MinInt64
			r.fail(field, errLength)
		}
	}
	if r.err != nil {
		return 0
	}
	if n > int64((len(r.buf)-r.pos)/minSize) {
		r.fail(field, errTruncated)
		return 0
	}
	return int(n)
}

// strings reads array<string>. An empty array is an empty, non-nil slice:
// the field is never null.
func (r *reader) strings(field string) []string {
	var out []string
	for {
		n := r.blockCount(field, 1)
		if n == 0 {
			break
		}
		if out == nil {
			out = make([]string, 0, n)
		}
		for range n {
			out = append(out, r.string(field))
		}
	}
	if r.err != nil {
		return nil
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// vendorData reads ["null", map<string>]: nil for null, a non-nil map
// otherwise, so an empty map survives a round trip.
func (r *reader) vendorData() map[string]string {
	const field = "vendor_data"
	if !r.union(field) {
		return nil
	}
	var m map[string]string
	for {
		n := r.blockCount(field, 2)
		if n == 0 {
			break
		}
		if m == nil {
			m = make(map[string]string, n)
		}
		for range n {
			k := r.string(field)
			m[k] = r.string(field)
		}
	}
	if r.err != nil {
		return nil
	}
	if m == nil {
		m = map[string]string{}
	}
	return m
}

func (r *reader) nullLong(field string) marketdata.NullInt64 {
	if !r.union(field) {
		return marketdata.NullInt64{}
	}
	return marketdata.SomeInt64(r.long(field))
}

func (r *reader) nullDecimal(field string) marketdata.NullDecimal {
	if !r.union(field) {
		return marketdata.NullDecimal{}
	}
	return marketdata.SomeDecimal(r.decimal(field))
}

func (r *reader) nullTimestamp(field string) marketdata.NullTimestamp {
	if !r.union(field) {
		return marketdata.NullTimestamp{}
	}
	return marketdata.NullTimestamp{Timestamp: marketdata.Timestamp(r.long(field)), Valid: true}
}

func (r *reader) nullString(field string) string {
	if !r.union(field) {
		return ""
	}
	return r.string(field)
}

// decodeTrade reads a TradeV2 body into t (a pointer, so the ~250-byte
// record is not copied on the way out); on failure t is zeroed.
func decodeTrade(body []byte, t *marketdata.Trade, a *Arena) error {
	r := newReaderIn(body, a)
	t.MessageID = r.uuid("message_id")
	t.TradeID = r.string("trade_id")
	t.Symbol = r.common("symbol")
	t.Exchange = r.common("exchange")
	t.AssetClass = r.assetClass()
	t.Timestamp = marketdata.Timestamp(r.long("timestamp"))
	t.Price = r.decimal("price")
	t.Quantity = r.decimal("quantity")
	t.Currency = r.common("currency")
	t.Side = sideSymbols[r.enum("side", len(sideSymbols))]
	t.TradeConditions = r.strings("trade_conditions")
	t.SourceSequence = r.nullLong("source_sequence")
	t.IngestionTimestamp = marketdata.Timestamp(r.long("ingestion_timestamp"))
	t.PlatformSequence = r.nullLong("platform_sequence")
	t.VendorData = r.vendorData()
	if err := r.finish(); err != nil {
		*t = marketdata.Trade{}
		return err
	}
	return nil
}

// decodeQuote reads a QuoteV2 body.
func decodeQuote(body []byte, q *marketdata.Quote, a *Arena) error {
	r := newReaderIn(body, a)
	q.MessageID = r.uuid("message_id")
	q.QuoteID = r.string("quote_id")
	q.Symbol = r.common("symbol")
	q.Exchange = r.common("exchange")
	q.AssetClass = r.assetClass()
	q.Timestamp = marketdata.Timestamp(r.long("timestamp"))
	q.BidPrice = r.nullDecimal("bid_price")
	q.BidQuantity = r.nullDecimal("bid_quantity")
	q.AskPrice = r.nullDecimal("ask_price")
	q.AskQuantity = r.nullDecimal("ask_quantity")
	q.Currency = r.common("currency")
	q.SourceSequence = r.nullLong("source_sequence")
	q.IngestionTimestamp = marketdata.Timestamp(r.long("ingestion_timestamp"))
	q.PlatformSequence = r.nullLong("platform_sequence")
	q.VendorData = r.vendorData()
	if err := r.finish(); err != nil {
		*q = marketdata.Quote{}
		return err
	}
	return nil
}

// decodeFunding reads a FundingRateV1 body.
func decodeFunding(body []byte, d *marketdata.FundingRate, a *Arena) error {
	r := newReaderIn(body, a)
	d.MessageID = r.uuid("message_id")
	d.Symbol = r.common("symbol")
	d.Exchange = r.common("exchange")
	d.AssetClass = r.assetClass()
	d.Timestamp = marketdata.Timestamp(r.long("timestamp"))
	d.MarkPrice = r.decimal("mark_price")
	d.IndexPrice = r.nullDecimal("index_price")
	d.EstimatedSettlePrice = r.nullDecimal("estimated_settle_price")
	d.FundingRate = r.nullDecimal("funding_rate")
	d.NextFundingTime = r.nullTimestamp("next_funding_time")
	d.Currency = r.common("currency")
	d.IngestionTimestamp = marketdata.Timestamp(r.long("ingestion_timestamp"))
	d.VendorData = r.vendorData()
	if err := r.finish(); err != nil {
		*d = marketdata.FundingRate{}
		return err
	}
	return nil
}

// decodeReference reads a ReferenceDataV2 body.
func decodeReference(body []byte, d *marketdata.ReferenceData, a *Arena) error {
	r := newReaderIn(body, a)
	d.MessageID = r.uuid("message_id")
	d.CompanyID = r.string("company_id")
	d.Symbol = r.common("symbol")
	d.Exchange = r.common("exchange")
	d.AssetClass = r.assetClass()
	d.CompanyName = r.string("company_name")
	d.ISIN = r.nullString("isin")
	d.Currency = r.nullString("currency")
	d.ListingDate = r.nullTimestamp("listing_date")
	d.DelistingDate = r.nullTimestamp("delisting_date")
	d.IsActive = r.boolean("is_active")
	d.IngestionTimestamp = marketdata.Timestamp(r.long("ingestion_timestamp"))
	d.VendorData = r.vendorData()
	if err := r.finish(); err != nil {
		*d = marketdata.ReferenceData{}
		return err
	}
	return nil
}
