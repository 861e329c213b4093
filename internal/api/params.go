package api

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

// maxSymbolBytes bounds a symbol parameter: K2 stores any symbol, so a
// parameter is checked as UTF-8 of bounded length, never against a pattern.
const maxSymbolBytes = 256

// paramError is a request parameter that cannot be used, with its name.
type paramError struct {
	Param, Message string
}

func (e *paramError) Error() string { return e.Param + ": " + e.Message }

// params reads a request's query parameters, collecting the first error.
type params struct {
	q   url.Values
	err error
	// whole: list values are items as they are (a JSON body's lists),
	// not comma-separated text.
	whole bool
}

func (p *params) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = &paramError{name, fmt.Sprintf(format, args...)}
	}
}

// text is an optional text parameter: UTF-8, no control characters, at
// most max bytes.
func (p *params) text(name string, max int) string { return p.checkText(name, p.q.Get(name), max) }

// checkText holds any text value (a query or path parameter) to the rules
// of text.
func (p *params) checkText(name, v string, max int) string {
	switch {
	case len(v) > max:
		p.fail(name, "longer than %d bytes", max)
	case !utf8.ValidString(v):
		p.fail(name, "not UTF-8")
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		p.fail(name, "holds a control character")
	default:
		return v
	}
	return ""
}

func (p *params) symbol() string   { return strings.ToUpper(p.text("symbol", maxSymbolBytes)) }
func (p *params) exchange() string { return strings.ToUpper(p.text("exchange", 64)) }

// time is an optional RFC 3339 instant.
func (p *params) time(name string) md.Timestamp {
	v := p.q.Get(name)
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(name, "%q is not an RFC 3339 time such as 2024-08-09T00:00:00Z", v)
		return 0
	}
	return md.TimestampOf(t)
}

// integer is an optional integer in [lo, hi], def when absent.
func (p *params) integer(name string, def, lo, hi int64) int64 {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.fail(name, "%q is not an integer from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// oneOf is an optional choice among values, def when absent.
func (p *params) oneOf(name, def string, values ...string) string {
	v := p.q.Get(name)
	if v == "" {
		return def
	}
	for _, ok := range values {
		if v == ok {
			return v
		}
	}
	p.fail(name, "%q is not one of %s", v, strings.Join(values, ", "))
	return def
}

// asOf reads as_of_snapshot or as_of_time (not both).
func (p *params) asOf() query.AsOf {
	a := query.AsOf{SnapshotID: p.integer("as_of_snapshot", 0, 1, 1<<63-1), Time: p.time("as_of_time")}
	if a.SnapshotID != 0 && a.Time != 0 {
		p.fail("as_of_snapshot", "give as_of_snapshot or as_of_time, not both")
	}
	return a
}

// filter reads symbol, exchange, start_time and end_time, the range no
// longer than maxSpan when both ends are given.
func (p *params) filter(maxSpan time.Duration) query.Filter {
	f := query.Filter{Symbol: p.symbol(), Exchange: p.exchange(), From: p.time("start_time"), To: p.time("end_time")}
	if f.From != 0 && f.To != 0 {
		switch {
		case f.To <= f.From:
			p.fail("end_time", "is not after start_time")
		case time.Duration(f.To-f.From)*time.Microsecond > maxSpan:
			p.fail("end_time", "the range is longer than %s", maxSpan)
		}
	}
	return f
}
