package marketdata

import (
	"fmt"
	"github.com/google/uuid"
	"strings"
	"time"
)

// Interval is a bar size.
type Interval string

// The bar sizes K2 serves. Intraday bars align to the UTC epoch; 1d bars
// cover the exchange-local trading date.
const (
	Interval1m  Interval = "1m"
	Interval5m  Interval = "5m"
	Interval15m Interval = "15m"
	Interval30m Interval = "30m"
	Interval1h  Interval = "1h"
	Interval1d  Interval = "1d"
)

// Intervals lists the supported bar sizes in increasing order.
var Intervals = []Interval{Interval1m, Interval5m, Interval15m, Interval30m, Interval1h, Interval1d}

// ParseInterval validates a bar size.
func ParseInterval(s string) (Interval, error) {
	for _, i := range Intervals {
		if string(i) == s {
			return i, nil
		}
	}
	return "", fmt.Errorf("interval %q is not one of 1m, 5m, 15m, 30m, 1h, 1d", s)
}

// Duration is the interval's nominal length (a local trading day may be 23 or 25 hours).
func (i Interval) Duration() time.Duration {
	switch i {
	case Interval1m:
		return time.Minute
	case Interval5m:
		return 5 * time.Minute
	case Interval15m:
		return 15 * time.Minute
	case Interval30m:
		return 30 * time.Minute
	case Interval1h:
		return time.Hour
	case Interval1d:
		return 24 * time.Hour
	}
	return 0
}

// Bounds on plausible event times: anything outside is a unit or parse error.
var (
	minEventTime = TimestampOf(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC))
	maxFutureLag = Timestamp(24 * time.Hour / time.Microsecond)
)

// ValidationError names the field that failed and why; loaders and the sink
// use Field as the dead-letter reason code.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func validateCommon(exchange, symbol string, asset AssetClass, ts, ingested Timestamp, currency string) error {
	if !plainSymbol(symbol) { // the checks below, the long way
		if err := validText("symbol", symbol); err != nil {
			return err
		}
		if symbol == "" || strings.TrimSpace(symbol) != symbol || strings.ToUpper(symbol) != symbol {
			return invalid("symbol", "%q must be non-empty upper case without spaces", symbol)
		}
	}
	if _, ok := exchanges[exchange]; !ok { // exactly a code: they are upper case, without spaces
		return invalid("exchange", "%q is not a known upper-case exchange code", exchange)
	}
	if !asset.Valid() {
		return invalid("asset_class", "%q is not equities, crypto, futures or options", asset)
	}
	if ts < minEventTime {
		return invalid("timestamp", "%s is before 1980: wrong unit?", ts)
	}
	if ingested != 0 && ts > ingested+maxFutureLag {
		return invalid("timestamp", "%s is more than a day after ingestion at %s", ts, ingested)
	}
	if currency == "" {
		return invalid("currency", "missing")
	}
	return nil
}

// plainSymbol reports a symbol that passes validateCommon's symbol checks
// on sight: printable ASCII without lower case, not starting or ending
// with a space (the only white space printable ASCII holds).
func plainSymbol(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || 'a' <= c && c <= 'z' {
			return false
		}
	}
	return true
}

func validateID(field, exchange, id string) error {
	if err := validText(field, id); err != nil {
		return err
	}
	if len(id) <= len(exchange)+1 || id[len(exchange)] != '-' || id[:len(exchange)] != exchange {
		return invalid(field, "%q must be %s-{native id}", id, exchange)
	}
	return nil
}

// Validate checks the rules every stored trade obeys.
func (t *Trade) Validate() error {
	if t.MessageID == uuid.Nil {
		return invalid("message_id", "missing")
	}
	if err := validateCommon(t.Exchange, t.Symbol, t.AssetClass, t.Timestamp, t.IngestionTimestamp, t.Currency); err != nil {
		return err
	}
	if err := validateID("trade_id", t.Exchange, t.TradeID); err != nil {
		return err
	}
	if err := validText("trade_conditions", t.TradeConditions...); err != nil {
		return err
	}
	if err := validMap("vendor_data", t.VendorData); err != nil {
		return err
	}
	if t.Price <= 0 || t.Price > MaxDecimalUnits {
		return invalid("price", "%s must be positive and fit decimal(18,8)", t.Price)
	}
	if t.Quantity <= 0 || t.Quantity > MaxDecimalUnits {
		return invalid("quantity", "%s must be positive and fit decimal(18,8)", t.Quantity)
	}
	if !t.Side.Valid() {
		return invalid("side", "%q is not BUY, SELL, SELL_SHORT or UNKNOWN", t.Side)
	}
	return nil
}

// Validate checks the rules every stored quote obeys: each side is either
// wholly absent or a positive price with a non-negative size, and at least
// one side is present. Crossed books are kept: auctions produce them.
func (q *Quote) Validate() error {
	if q.MessageID == uuid.Nil {
		return invalid("message_id", "missing")
	}
	if err := validateCommon(q.Exchange, q.Symbol, q.AssetClass, q.Timestamp, q.IngestionTimestamp, q.Currency); err != nil {
		return err
	}
	if err := validateID("quote_id", q.Exchange, q.QuoteID); err != nil {
		return err
	}
	if err := validMap("vendor_data", q.VendorData); err != nil {
		return err
	}
	if err := validateSide("bid", q.BidPrice, q.BidQuantity); err != nil {
		return err
	}
	if err := validateSide("ask", q.AskPrice, q.AskQuantity); err != nil {
		return err
	}
	if !q.BidPrice.Valid && !q.AskPrice.Valid {
		return invalid("bid_price", "both sides are empty")
	}
	return nil
}

func validateSide(side string, price, qty NullDecimal) error {
	if price.Valid != qty.Valid {
		return invalid(side+"_price", "price and quantity must both be present or both absent")
	}
	if !price.Valid {
		return nil
	}
	if price.Decimal <= 0 {
		return invalid(side+"_price", "%s must be positive", price.Decimal)
	}
	if qty.Decimal < 0 {
		return invalid(side+"_quantity", "%s must not be negative", qty.Decimal)
	}
	return nil
}

// Validate checks a funding record: a positive mark price, and a rate
// that is a plausible fraction (|rate| < 1; exchanges cap it far lower).
func (f *FundingRate) Validate() error {
	if f.MessageID == uuid.Nil {
		return invalid("message_id", "missing")
	}
	if err := validateCommon(f.Exchange, f.Symbol, f.AssetClass, f.Timestamp, f.IngestionTimestamp, f.Currency); err != nil {
		return err
	}
	if f.MarkPrice <= 0 || f.MarkPrice > MaxDecimalUnits {
		return invalid("mark_price", "%s must be positive and fit decimal(18,8)", f.MarkPrice)
	}
	for _, p := range []struct {
		name string
		v    NullDecimal
	}{{"index_price", f.IndexPrice}, {"estimated_settle_price", f.EstimatedSettlePrice}} {
		if p.v.Valid && (p.v.Decimal < 0 || p.v.Decimal > MaxDecimalUnits) {
			return invalid(p.name, "%s must not be negative and fit decimal(18,8)", p.v.Decimal)
		}
	}
	if r := f.FundingRate; r.Valid && (r.Decimal <= -unitsPerOne || r.Decimal >= unitsPerOne) {
		return invalid("funding_rate", "%s is not a fraction between -1 and 1", r.Decimal)
	}
	return validMap("vendor_data", f.VendorData)
}

// Validate checks a reference-data record.
func (r *ReferenceData) Validate() error {
	switch {
	case r.MessageID == uuid.Nil:
		return invalid("message_id", "missing")
	case r.CompanyID == "":
		return invalid("company_id", "missing")
	case r.CompanyName == "":
		return invalid("company_name", "missing")
	}
	for _, f := range []struct{ name, text string }{{"company_id", r.CompanyID}, {"symbol", r.Symbol}, {"company_name", r.CompanyName}, {"isin", r.ISIN}} {
		if err := validText(f.name, f.text); err != nil {
			return err
		}
	}
	if err := validMap("vendor_data", r.VendorData); err != nil {
		return err
	}
	if r.Symbol == "" || strings.ToUpper(r.Symbol) != r.Symbol {
		return invalid("symbol", "%q must be non-empty upper case", r.Symbol)
	}
	if _, err := LookupExchange(r.Exchange); err != nil {
		return invalid("exchange", "%q is not a known exchange", r.Exchange)
	}
	if !r.AssetClass.Valid() {
		return invalid("asset_class", "%q is not valid", r.AssetClass)
	}
	return nil
}
