package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
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

// param declares a parameter a route takes, once: the route's handler
// reads it through params, which holds it to these bounds, and the OpenAPI
// document (openapi.go) describes it from the same declaration. A POST
// route's JSON body members are params too.
type param struct {
	name string
	in   string // "query" (the default), "path" or "header"
	doc  string
	kind paramKind
	// required: a request without it is refused (routes check this
	// before the handler runs).
	required bool
	// An integer's default and range.
	def, min, max int64
	// maxBytes bounds text, and each item of a list; maxItems a list.
	maxBytes, maxItems int
	// values are a choice's, the first its default (a list's: what its
	// items may be, checked by the handler).
	values []string
	// none: a choice without a default, absent when not given.
	none bool
	// example is a value that works against the ASX sample; sample puts
	// it in the route's example request (the /docs page's curl).
	example string
	sample  bool
}

// paramKind is what a parameter's text is read as.
type paramKind int

const (
	textKind    paramKind = iota // UTF-8 without control characters, at most maxBytes
	rawTextKind                  // any JSON string of at most maxBytes (a body's SQL)
	intKind                      // an integer in [min, max], def when absent
	choiceKind                   // one of values, values[0] when absent
	timeKind                     // an RFC 3339 instant
	dateKind                     // YYYY-MM-DD
	decimalKind                  // an exact decimal (md.ParseDecimal)
	listKind                     // comma separated or repeated; a JSON body's list of strings
)

// The parameters several routes share.
var (
	symbolParam = param{name: "symbol", maxBytes: maxSymbolBytes, example: "BHP", sample: true,
		doc: "An instrument's symbol, as the exchange lists it (any UTF-8 text of at most 256 bytes), matched exactly once upper-cased"}
	exchangeParam = param{name: "exchange", maxBytes: 64, example: "ASX", sample: true,
		doc: "An exchange code, matched exactly once upper-cased"}
	symbolsParam = param{name: "symbols", kind: listKind, maxItems: 100, maxBytes: maxSymbolBytes, example: "BHP,RIO",
		doc: "Any of these symbols (comma separated, at most 100)"}
	exchangesParam = param{name: "exchanges", kind: listKind, maxItems: 20, maxBytes: 64, example: "ASX",
		doc: "Any of these exchanges (comma separated, at most 20)"}
	startParam = param{name: "start_time", kind: timeKind, example: "2014-03-10T00:00:00Z",
		doc: "The first instant of the range (RFC 3339, inclusive); with end_time, at most the server's longest span apart (31 days by default)"}
	endParam = param{name: "end_time", kind: timeKind, example: "2014-03-12T00:00:00Z",
		doc: "The end of the range (RFC 3339, exclusive), after start_time"}
	asOfSnapshotParam = param{name: "as_of_snapshot", kind: intKind, min: 1, max: 1<<63 - 1, example: "6744829185633487123",
		doc: "Read the table as it stood at this snapshot (GET /v1/snapshots lists them; the example is no real one); not with as_of_time"}
	asOfTimeParam = param{name: "as_of_time", kind: timeKind, example: "2026-01-01T00:00:00Z",
		doc: "Read the tables as they stood at this instant (RFC 3339): the latest snapshot committed at or before it; not with as_of_snapshot"}
	formatParam = param{name: "format", kind: choiceKind, values: formats, example: "json",
		doc: "The answer's format: the JSON envelope, CSV, Parquet or an Arrow IPC stream, each streamed as it is read"}
	cursorParam = param{name: "cursor", maxBytes: 4096, example: "eyJ0YiI6InRyYWRlcyJ9",
		doc: "Continue after an earlier page: its pagination.next_cursor (or the K2-Next-Cursor trailer), with the same filters"}
	asOfParams = []param{asOfSnapshotParam, asOfTimeParam}
)

// limitParam is a route's limit: def when absent, at most max.
func limitParam(def, max int64) param {
	return param{name: "limit", kind: intKind, def: def, min: 1, max: max, example: "5", sample: true,
		doc: "The most records to answer"}
}

// orderParam is the order of an answer, first the default.
func orderParam(first string) param {
	values := []string{"desc", "asc"}
	if first == "asc" {
		slices.Reverse(values)
	}
	return param{name: "order", kind: choiceKind, values: values, example: "asc",
		doc: "desc: newest first; asc: oldest first"}
}

// path is d read from the request's path.
func (d param) path() param { d.in, d.required = "path", true; return d }

// need is d required.
func (d param) need() param { d.required = true; return d }

// paramError is a request parameter that cannot be used, with its name.
type paramError struct {
	Param, Message string
}

func (e *paramError) Error() string { return e.Param + ": " + e.Message }

// params reads a request's parameters, collecting the first error.
type params struct {
	q url.Values
	// pathValue reads the route's path parameters (r.PathValue), header
	// its header parameters.
	pathValue func(string) string
	header    http.Header
	err       error
	// whole: list values are items as they are (a JSON body's lists),
	// not comma-separated text.
	whole bool
}

// requestParams reads r's query, path and header parameters.
func requestParams(r *http.Request) *params {
	return &params{q: r.URL.Query(), pathValue: r.PathValue, header: r.Header}
}

func (p *params) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = &paramError{name, fmt.Sprintf(format, args...)}
	}
}

// value is d's text as the request gives it, "" when absent.
func (p *params) value(d param) string {
	switch {
	case d.in == "path" && p.pathValue != nil:
		return p.pathValue(d.name)
	case d.in == "header":
		return p.header.Get(d.name)
	case d.in == "path":
		return ""
	}
	return p.q.Get(d.name)
}

// require fails on the first of decls that is required and absent or
// empty (symbol= is no symbol).
func (p *params) require(decls []param) {
	for _, d := range decls {
		if d.required && p.value(d) == "" && !slices.ContainsFunc(p.q[d.name], func(v string) bool { return v != "" }) {
			p.fail(d.name, "is required")
		}
	}
}

// only fails on a parameter given that is not one of decls: a route whose
// members depend on another (data_type) takes only that one's.
func (p *params) only(decls []param, what string) {
	for _, name := range slices.Sorted(maps.Keys(p.q)) {
		if !slices.ContainsFunc(decls, func(d param) bool { return d.name == name }) {
			p.fail(name, "is not a parameter of %s", what)
		}
	}
}

// text is an optional text parameter: UTF-8, no control characters, at
// most maxBytes.
func (p *params) text(d param) string { return p.checkText(d.name, p.value(d), d.maxBytes) }

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

func (p *params) symbol() string   { return strings.ToUpper(p.text(symbolParam)) }
func (p *params) exchange() string { return strings.ToUpper(p.text(exchangeParam)) }

// time is an optional RFC 3339 instant.
func (p *params) time(d param) md.Timestamp {
	v := p.value(d)
	if v == "" {
		return 0
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(d.name, "%q is not an RFC 3339 time such as 2024-08-09T00:00:00Z", v)
		return 0
	}
	return md.TimestampOf(t)
}

// date is a YYYY-MM-DD date, as given.
func (p *params) date(d param) string {
	v := p.value(d)
	if _, err := time.Parse(time.DateOnly, v); err != nil && v != "" {
		p.fail(d.name, "%q is not YYYY-MM-DD", v)
	}
	return v
}

// integer is an optional integer in [d.min, d.max], d.def when absent.
func (p *params) integer(d param) int64 {
	v := p.value(d)
	if v == "" {
		return d.def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < d.min || n > d.max {
		p.fail(d.name, "%q is not an integer from %d to %d", v, d.min, d.max)
		return d.def
	}
	return n
}

// oneOf is an optional choice among d.values, the first when absent (""
// for a choice of none).
func (p *params) oneOf(d param) string {
	v := p.value(d)
	def := d.values[0]
	if d.none {
		def = ""
	}
	if v == "" {
		return def
	}
	if slices.Contains(d.values, v) {
		return v
	}
	p.fail(d.name, "%q is not one of %s", v, strings.Join(d.values, ", "))
	return def
}

// decimal reads an optional exact decimal parameter.
func (p *params) decimal(d param) *md.Decimal {
	v := p.value(d)
	if v == "" {
		return nil
	}
	n, err := md.ParseDecimal(v)
	if err != nil {
		p.fail(d.name, "%q is not a decimal: %v", v, err)
		return nil
	}
	return &n
}

// list reads a list parameter: repeated, or comma separated; at most
// d.maxItems items of at most d.maxBytes each.
func (p *params) list(d param) []string {
	var out []string
	for _, v := range p.q[d.name] {
		if p.whole {
			out = append(out, p.checkText(d.name, v, d.maxBytes))
			continue
		}
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, p.checkText(d.name, item, d.maxBytes))
			}
		}
	}
	if len(out) > d.maxItems {
		p.fail(d.name, "more than %d items", d.maxItems)
	}
	return out
}

// asOf reads as_of_snapshot or as_of_time (not both).
func (p *params) asOf() query.AsOf {
	a := query.AsOf{SnapshotID: p.integer(asOfSnapshotParam), Time: p.time(asOfTimeParam)}
	if a.SnapshotID != 0 && a.Time != 0 {
		p.fail("as_of_snapshot", "give as_of_snapshot or as_of_time, not both")
	}
	return a
}

// filter reads symbol, exchange, start_time and end_time, the range no
// longer than maxSpan when both ends are given.
func (p *params) filter(maxSpan time.Duration) query.Filter {
	f := query.Filter{Symbol: p.symbol(), Exchange: p.exchange(), From: p.time(startParam), To: p.time(endParam)}
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
