// Package asx parses the ASX equities sample (10–14 March 2014): the
// company list and the per-company trade and quote files. The files have no
// header, CRLF line endings, and MM/DD/YYYY dates with HH:MM:SS.mmm times in
// Sydney local time; see ../shared/data/README.md.
package asx

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/marketdata"
)

const (
	exchangeCode = "ASX"
	currency     = "AUD"
)

// sydney is the zone the files' dates and times are written in.
var sydney = func() *time.Location {
	e, err := marketdata.LookupExchange(exchangeCode)
	if err != nil {
		panic(err)
	}
	return e.Location()
}()

var companyHeader = []string{"company_id", "symbol", "company_name", "isin", "start_date", "end_date"}

// ReadCompanies parses reference-data/company_info.csv. Its start and end
// dates are the data vendor's coverage window (every end date is the day the
// sample was cut), not listing and delisting dates, so they go to vendor_data
// as coverage_start/coverage_end and the listing dates stay null.
func ReadCompanies(r io.Reader, ingested marketdata.Timestamp) ([]marketdata.ReferenceData, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(companyHeader)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("company_info line 1: %w", err)
	}
	for i, want := range companyHeader {
		if !strings.EqualFold(strings.TrimSpace(header[i]), want) {
			return nil, fmt.Errorf("company_info line 1: header %q, want %s", strings.Join(header, ","), strings.Join(companyHeader, ","))
		}
	}
	var out []marketdata.ReferenceData
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("company_info: %w", err) // csv errors carry the line
		}
		line, _ := cr.FieldPos(0)
		// The directory reader dead-letters such rows first; a caller
		// of its own still gets no "R\uFFFDO".
		if err := marketdata.CheckUTF8("the row", []byte(strings.Join(rec, ","))); err != nil {
			return nil, fmt.Errorf("company_info line %d: %w", line, err)
		}
		ref, err := company(rec, ingested)
		if err != nil {
			return nil, fmt.Errorf("company_info line %d: %w", line, err)
		}
		out = append(out, ref)
	}
}

func company(rec []string, ingested marketdata.Timestamp) (marketdata.ReferenceData, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	id, symbol, name, isin := rec[0], strings.ToUpper(rec[1]), rec[2], rec[3]
	vendor := map[string]string{}
	for _, d := range []struct{ key, text string }{{"coverage_start", rec[4]}, {"coverage_end", rec[5]}} {
		if d.text == "" {
			continue
		}
		t, err := time.Parse("01/02/2006", d.text)
		if err != nil {
			return marketdata.ReferenceData{}, &marketdata.ValidationError{Field: "vendor_data", Reason: fmt.Sprintf("%s %q is not MM/DD/YYYY", d.key, d.text)}
		}
		vendor[d.key] = t.Format(time.DateOnly)
	}
	ref := marketdata.ReferenceData{
		// A version of the record is identified by its content, so a
		// re-load adds nothing and a changed name or ISIN adds a new version.
		MessageID:          marketdata.MessageID("reference_data", symbol, strings.Join([]string{exchangeCode, id, name, isin, currency, vendor["coverage_start"], vendor["coverage_end"]}, "|")),
		CompanyID:          id,
		Symbol:             symbol,
		Exchange:           exchangeCode,
		AssetClass:         marketdata.Equities,
		CompanyName:        name,
		ISIN:               isin,
		Currency:           currency,
		IsActive:           true,
		IngestionTimestamp: ingested,
		VendorData:         vendor,
	}
	return ref, ref.Validate()
}

// rowParser holds what trade and quote rows share: the company and the
// per-date row counter that gives rows without a native id a stable one.
type rowParser struct {
	symbol    string
	companyID string
	ingested  marketdata.Timestamp
	rows      map[string]int64 // local date YYYYMMDD → rows seen
	// The last row whose date parsed, and the times of the rows since
	// then whose date did not: each still takes its place in its date's
	// numbering, once the next good row shows which date that is.
	lastDay   string
	lastClock time.Duration
	undated   []time.Duration
}

func newRowParser(company marketdata.ReferenceData, ingested marketdata.Timestamp) rowParser {
	return rowParser{symbol: company.Symbol, companyID: company.CompanyID, ingested: ingested, rows: map[string]int64{}}
}

// row splits a line into between min and max comma-separated fields,
// numbers it within its local date and converts its date and time to UTC.
//
// A row's number is its place among its date's rows in the file, so that
// loading a corrected file again gives every row the id it had: a row is
// counted whatever is wrong with it, as long as it is a row (it has the
// fields, or its date parses). A row whose date does not parse is counted
// in the date of the rows around it (files are in time order); between
// two dates, its time decides: not earlier than the last row's, it ends
// the earlier date, otherwise it opens the later one.
func (p *rowParser) row(line string, min, max int) (f []string, ts marketdata.Timestamp, day string, n int64, err error) {
	f = strings.Split(strings.TrimRight(line, "\r\n"), ",")
	var fieldsErr error
	if len(f) < min || len(f) > max {
		fieldsErr = fmt.Errorf("%d to %d fields expected, got %d", min, max, len(f))
		if min == max {
			fieldsErr = fmt.Errorf("%d fields expected, got %d", min, len(f))
		}
	}
	d, err := time.Parse("01/02/2006", f[0])
	if err != nil {
		if fieldsErr != nil {
			return nil, 0, "", 0, fieldsErr // not a row at all
		}
		p.undated = append(p.undated, clockOf(f[1]))
		return nil, 0, "", 0, &marketdata.ValidationError{Field: "timestamp", Reason: fmt.Sprintf("date %q is not MM/DD/YYYY", f[0])}
	}
	day = d.Format("20060102")
	for _, clock := range p.undated {
		switch {
		case p.lastDay == "" || p.lastDay != day && clock < p.lastClock:
			p.rows[day]++
		default:
			p.rows[p.lastDay]++
		}
	}
	p.undated = p.undated[:0]
	p.rows[day]++
	n = p.rows[day]
	p.lastDay = day
	if len(f) > 1 {
		p.lastClock = clockOf(f[1])
	}
	if fieldsErr != nil {
		return nil, 0, "", 0, fieldsErr
	}
	// Without a date in the layout, Parse accepts any fraction after the seconds.
	c, err := time.Parse("15:04:05", f[1])
	if err != nil {
		return nil, 0, "", 0, &marketdata.ValidationError{Field: "timestamp", Reason: fmt.Sprintf("time %q is not HH:MM:SS.mmm", f[1])}
	}
	wall := time.Date(d.Year(), d.Month(), d.Day(), c.Hour(), c.Minute(), c.Second(), c.Nanosecond(), time.UTC)
	local, err := marketdata.LocalInstant(wall, sydney)
	if err != nil {
		return nil, 0, "", 0, &marketdata.ValidationError{Field: "timestamp", Reason: err.Error()}
	}
	return f, marketdata.TimestampOf(local), day, n, nil
}

// clockOf is a time of day HH:MM:SS[.fff] since midnight, or -1.
func clockOf(s string) time.Duration {
	c, err := time.Parse("15:04:05", s)
	if err != nil {
		return -1
	}
	return c.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))
}

func (p *rowParser) id(day string, n int64) string {
	return exchangeCode + "-" + p.symbol + "-" + day + "-" + strconv.FormatInt(n, 10)
}

// decimal parses a price or size exactly; float64 would turn 36.667 into a
// neighbouring binary value.
func decimal(field, text string) (marketdata.Decimal, error) {
	d, err := marketdata.ParseDecimal(strings.TrimSpace(text))
	if err != nil {
		return 0, &marketdata.ValidationError{Field: field, Reason: err.Error()}
	}
	return d, nil
}

// TradeParser parses the rows of one company's trade file in order.
type TradeParser struct{ rowParser }

// NewTradeParser returns a parser for the trades of company.
func NewTradeParser(company marketdata.ReferenceData, ingested marketdata.Timestamp) *TradeParser {
	return &TradeParser{newRowParser(company, ingested)}
}

// Parse converts one line `Date,Time,Price,Volume,Qualifiers[,Venue[,BuyerID]]`.
// The file has no trade id, so the n-th row of a local date gets
// TradeID ASX-{SYMBOL}-{YYYYMMDD}-{n}: lines must be given in file order.
func (p *TradeParser) Parse(line string) (marketdata.Trade, error) {
	f, ts, day, n, err := p.row(line, 5, 7)
	if err != nil {
		return marketdata.Trade{}, err
	}
	price, err := decimal("price", f[2])
	if err != nil {
		return marketdata.Trade{}, err
	}
	qty, err := decimal("quantity", f[3])
	if err != nil {
		return marketdata.Trade{}, err
	}
	conditions := []string{}
	if q := strings.TrimSpace(f[4]); q != "" {
		if _, err := strconv.ParseUint(q, 10, 32); err != nil {
			return marketdata.Trade{}, &marketdata.ValidationError{Field: "trade_conditions", Reason: fmt.Sprintf("qualifier %q is not an integer code", q)}
		}
		conditions = append(conditions, q)
	}
	vendor := map[string]string{"company_id": p.companyID}
	if len(f) > 5 && strings.TrimSpace(f[5]) != "" {
		vendor["venue"] = strings.TrimSpace(f[5])
	}
	if len(f) > 6 && strings.TrimSpace(f[6]) != "" {
		vendor["buyer_id"] = strings.TrimSpace(f[6])
	}
	id := p.id(day, n)
	t := marketdata.Trade{
		MessageID:          marketdata.MessageID("trade", p.symbol, id),
		TradeID:            id,
		Symbol:             p.symbol,
		Exchange:           exchangeCode,
		AssetClass:         marketdata.Equities,
		Timestamp:          ts,
		Price:              price,
		Quantity:           qty,
		Currency:           currency,
		Side:               marketdata.Unknown,
		TradeConditions:    conditions,
		SourceSequence:     marketdata.SomeInt64(n),
		IngestionTimestamp: p.ingested,
		VendorData:         vendor,
	}
	return t, t.Validate()
}

// QuoteParser parses the rows of one company's quote file in order.
type QuoteParser struct{ rowParser }

// NewQuoteParser returns a parser for the quotes of company.
func NewQuoteParser(company marketdata.ReferenceData, ingested marketdata.Timestamp) *QuoteParser {
	return &QuoteParser{newRowParser(company, ingested)}
}

// Parse converts one line `Date,Time,BidPrice,AskPrice,BidVolume,AskVolume`:
// the order the values show, not the one the original project documented.
// An empty side is written as price 0 with size 0 and becomes null. Rows are
// numbered per local date like trades: QuoteID ASX-{SYMBOL}-{YYYYMMDD}-{n}.
func (p *QuoteParser) Parse(line string) (marketdata.Quote, error) {
	f, ts, day, n, err := p.row(line, 6, 6)
	if err != nil {
		return marketdata.Quote{}, err
	}
	bidPrice, bidQty, err := side("bid", f[2], f[4])
	if err != nil {
		return marketdata.Quote{}, err
	}
	askPrice, askQty, err := side("ask", f[3], f[5])
	if err != nil {
		return marketdata.Quote{}, err
	}
	id := p.id(day, n)
	q := marketdata.Quote{
		MessageID:          marketdata.MessageID("quote", p.symbol, id),
		QuoteID:            id,
		Symbol:             p.symbol,
		Exchange:           exchangeCode,
		AssetClass:         marketdata.Equities,
		Timestamp:          ts,
		BidPrice:           bidPrice,
		BidQuantity:        bidQty,
		AskPrice:           askPrice,
		AskQuantity:        askQty,
		Currency:           currency,
		SourceSequence:     marketdata.SomeInt64(n),
		IngestionTimestamp: p.ingested,
		VendorData:         map[string]string{"company_id": p.companyID},
	}
	return q, q.Validate()
}

// side reads one side of a quote; price 0 with size 0 is an empty side.
func side(name, priceText, sizeText string) (price, size marketdata.NullDecimal, err error) {
	pr, err := decimal(name+"_price", priceText)
	if err != nil {
		return price, size, err
	}
	sz, err := decimal(name+"_quantity", sizeText)
	if err != nil {
		return price, size, err
	}
	if pr.IsZero() {
		if !sz.IsZero() {
			return price, size, &marketdata.ValidationError{Field: name + "_price", Reason: fmt.Sprintf("zero price with size %s", sz)}
		}
		return price, size, nil
	}
	return marketdata.SomeDecimal(pr), marketdata.SomeDecimal(sz), nil
}
