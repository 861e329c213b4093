package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// route declares one of the server's routes: routes serves it on the mux
// and the OpenAPI document (openapi.go) describes it, both from this one
// declaration. Adding a route is adding it to table (or to kindTable, for
// a route of every record kind).
type route struct {
	method, path string
	summary      string
	doc          string  // more, where one line is not enough
	params       []param // path, query and header parameters
	// body are a POST route's JSON body members, which it reads as its
	// parameters; unless rawBody, when its handler reads the body itself.
	body    []param
	rawBody bool
	// byKind, when set, are the body members of each of kinds, whose
	// data_type chooses one (the first when absent); body is all of them.
	byKind func(record.Any) []param
	kinds  []record.Any
	ok     reply // what a 200 holds
	// errors are the statuses it answers besides those of every /v1 route
	// (docErrors).
	errors []int
	public bool // answered without a key (a public path of the guard)
	serve  func(w http.ResponseWriter, r *http.Request, p *params)
}

func (rt *route) pattern() string { return rt.method + " " + rt.path }

// handler reads a request's parameters (query and path, or the JSON
// body's members), refuses it without a required one, and runs the route.
func (rt *route) handler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := requestParams(r)
		if len(rt.body) > 0 && !rt.rawBody {
			body, ok := decodeObject(w, r)
			if !ok {
				return
			}
			p = bodyToParams(body, rt.body)
			p.pathValue, p.header = r.PathValue, r.Header
			p.require(rt.body)
		}
		p.require(rt.params)
		rt.serve(w, r, p)
	}
}

// table is every route of the server.
func (s *Server) table() []route {
	var t []route
	for _, k := range record.All {
		t = append(t, s.kindTable(k)...)
	}
	bars := route{method: "GET", path: "/v1/bars/{interval}", summary: "Bars (OHLCV) of a symbol at an interval, with exact VWAP",
		doc:    "A bar is partial when the range asked for cuts its window.",
		params: append([]param{intervalParam, symbolParam.need(), exchangeParam, startParam, endParam, barLimit, orderParam("asc"), nonMarketParam}, asOfParams...),
		ok:     jsonReply([]md.Bar{}), errors: []int{404}, serve: s.bars}
	ohlcv := bars
	ohlcv.path, ohlcv.summary = "/v1/ohlcv/{interval}", "Bars of a symbol at an interval (the original's name for /v1/bars/{interval})"
	return append(t, bars, ohlcv,
		route{method: "GET", path: "/v1/symbols", summary: "The instruments with trades: symbol, exchange, count, first and last trade",
			params: append([]param{exchangeParam, symbolsFormatParam}, asOfParams...),
			ok:     jsonReply([]query.SymbolInfo{}, []string{}), errors: []int{404}, serve: s.symbols},
		route{method: "GET", path: "/v1/summary/{symbol}/{date}", summary: "The daily bar of a symbol on an exchange-local trading date",
			doc:    "404 when the symbol did not trade that day.",
			params: append([]param{symbolPathParam, dateParam, exchangeParam}, asOfParams...),
			ok:     jsonReply(md.Bar{}), errors: []int{404}, serve: s.summary},
		route{method: "GET", path: "/v1/stats", summary: "Each table's snapshot, rows, files, bytes and time range, and the query pool's statistics",
			params: asOfParams, ok: jsonReply(statsAnswer{}), errors: []int{404}, serve: s.stats},
		route{method: "GET", path: "/v1/snapshots", summary: "A table's snapshots, newest first, with their summaries",
			params: []param{tableParam, snapshotsLimit}, ok: jsonReply([]query.SnapshotInfo{}), serve: s.snapshots},
		s.snapshotQueryRoute(), s.replayRoute(), s.sqlRoute(),
		route{method: "GET", path: "/openapi.json", summary: "This document: the API in OpenAPI 3.1", public: true,
			ok: documentReply, serve: s.openAPI},
		route{method: "GET", path: "/docs", summary: "The API's page for people: every route, its parameters and a curl example", public: true,
			ok: pageReply, serve: s.docs},
	)
}

// routes serves every route of the table on the server's mux.
func (s *Server) routes() {
	for _, rt := range s.routeTable {
		s.mux.HandleFunc(rt.pattern(), rt.handler())
	}
}

// The parameters of the routes here.
var (
	intervalParam = param{name: "interval", kind: choiceKind, values: intervals(), example: "1d",
		doc: "The bars' size; a 1d bar is the exchange-local trading date"}.path()
	barLimit       = limitParam(1000, 10_000)
	nonMarketParam = param{name: "include_non_market", kind: choiceKind, values: []string{"false", "true"}, example: "true",
		doc: "Count the trades whose conditions put them outside the market (auctions, off-market reports) too"}
	symbolsFormatParam = param{name: "format", kind: choiceKind, values: []string{"objects", "list"}, example: "list",
		doc: "objects, or list for the original's plain list of names"}
	symbolPathParam = symbolParam.path()
	dateParam       = param{name: "date", kind: dateKind, example: "2014-03-11",
		doc: "The exchange-local trading date, YYYY-MM-DD"}.path()
	tableParam     = param{name: "table", kind: choiceKind, values: record.TableNames(), example: "quotes", doc: "The table"}
	snapshotsLimit = limitParam(10, 100)
)

func intervals() []string {
	out := make([]string, len(md.Intervals))
	for i, iv := range md.Intervals {
		out[i] = string(iv)
	}
	return out
}

// bars answers bars of a symbol at an interval (1m … 1d); the 1d bar is
// the exchange-local trading date. Limit defaults to 1,000.
func (s *Server) bars(w http.ResponseWriter, r *http.Request, p *params) {
	q := query.BarQuery{Filter: p.filter(s.o.MaxSpan), Interval: md.Interval(p.oneOf(intervalParam)), AsOf: p.asOf(),
		Limit: int(p.integer(barLimit)), Desc: p.oneOf(orderParam("asc")) == "desc",
		IncludeNonMarket: p.oneOf(nonMarketParam) == "true"}
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Bars(ctx, q)
		return rows, len(rows), err
	})
}

// symbols lists the instruments with trades as objects, or as the
// original's plain list of names with format=list.
func (s *Server) symbols(w http.ResponseWriter, r *http.Request, p *params) {
	exchange, asOf := p.exchange(), p.asOf()
	list := p.oneOf(symbolsFormatParam) == "list"
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Symbols(ctx, exchange, asOf)
		if err != nil || !list {
			return rows, len(rows), err
		}
		names := make([]string, len(rows))
		for i, r := range rows {
			names[i] = r.Symbol
		}
		return names, len(names), nil
	})
}

// summary answers the daily bar of a symbol on an exchange-local date
// (YYYY-MM-DD), 404 when nothing traded.
func (s *Server) summary(w http.ResponseWriter, r *http.Request, p *params) {
	symbol := strings.ToUpper(p.text(symbolPathParam))
	date := p.date(dateParam)
	exchange, asOf := p.exchange(), p.asOf()
	var bar *md.Bar
	var err error
	if p.err == nil {
		if bar, err = s.engine.Summary(r.Context(), symbol, exchange, date, asOf); err == nil && bar == nil {
			writeError(w, r, http.StatusNotFound, codeNotFound, symbol+" did not trade on "+date, nil)
			return
		}
	}
	s.answer(w, r, p.err, func(context.Context) (any, int, error) { return bar, -1, err })
}

// statsAnswer is what GET /v1/stats answers.
type statsAnswer struct {
	Tables []query.TableStats `json:"tables"`
	Pool   query.PoolStats    `json:"pool"`
}

// stats answers each table's rows, files, bytes and time range, and the
// query pool's statistics.
func (s *Server) stats(w http.ResponseWriter, r *http.Request, p *params) {
	asOf := p.asOf()
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		tables, err := s.engine.Stats(ctx, asOf)
		return statsAnswer{Tables: tables, Pool: s.engine.PoolStats()}, -1, err
	})
}

// snapshots answers a table's snapshots, newest first (table: trades by
// default; limit 10, at most 100).
func (s *Server) snapshots(w http.ResponseWriter, r *http.Request, p *params) {
	table := p.oneOf(tableParam)
	limit := int(p.integer(snapshotsLimit))
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		snaps, err := s.engine.Snapshots(ctx, table)
		if len(snaps) > limit {
			snaps = snaps[:limit]
		}
		return snaps, len(snaps), err
	})
}

// answer runs a read once the parameters are good, and writes its data or
// the error in the one shape.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, paramErr error, read func(context.Context) (any, int, error)) {
	if paramErr != nil {
		var pe *paramError
		errors.As(paramErr, &pe)
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, paramErr.Error(), map[string]any{"parameter": pe.Param})
		return
	}
	data, n, err := read(r.Context())
	if err != nil {
		status, code, msg := s.classify(r, err)
		writeError(w, r, status, code, msg, nil)
		return
	}
	writeData(w, r, data, n)
}

// classify maps a read's error to its status, code and message; K2's own
// failures are logged with the request id and not described to the client.
func (s *Server) classify(r *http.Request, err error) (int, string, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, query.ErrTimeout):
		return http.StatusGatewayTimeout, codeQueryTimeout, "the query took too long"
	case errors.Is(err, query.ErrPoolExhausted):
		return http.StatusServiceUnavailable, codeUnavailable, err.Error()
	case isBadRequest(err):
		var re *query.RequestError
		if errors.As(err, &re) && re.NotFound {
			return http.StatusNotFound, codeNotFound, err.Error()
		}
		return http.StatusBadRequest, codeInvalidParameters, err.Error()
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return 499, codeInternal, "the client went away" // never seen by it
	}
	s.log.Error("API query failed", "request_id", requestIDOf(r.Context()), "path", r.URL.Path, "error", err)
	return http.StatusInternalServerError, codeInternal, "the query failed"
}

// isBadRequest tells the engine's refusals of a request (an unknown
// snapshot, an empty range) from its failures.
func isBadRequest(err error) bool {
	var re *query.RequestError
	return errors.As(err, &re)
}
