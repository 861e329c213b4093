package api

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/tail"
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
	// items, when set: the body is a JSON array of 1 to items objects of
	// body's members (which the handler reads: rawBody).
	items int
	// oneRequired: of these body members, at least one is required.
	oneRequired []string
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
		params: append([]param{intervalParam}, barParams...),
		ok:     jsonReply([]md.Bar{}), errors: []int{404}, serve: s.bars}
	ohlcv := bars
	ohlcv.path, ohlcv.summary = "/v1/ohlcv/{interval}", "Bars of a symbol at an interval (the original's name for /v1/bars/{interval})"
	t = append(t, bars, ohlcv, s.batchRoute(), s.aggregationsRoute(),
		route{method: "GET", path: "/v1/symbols", summary: "The instruments: symbol, exchange, market, counts of trades and quotes, first and last trade",
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
	)
	t = append(t, s.pipelineRoutes()...)
	return append(t,
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
	intervalParam = param{name: "interval", kind: choiceKind, values: append(intervals(), slices.Sorted(maps.Keys(originalIntervals))...),
		example: "1d", doc: "The bars' size (K2's name, or the original's: 1min … 1day); a 1d bar is the exchange-local trading date"}.path()
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
	q := p.barQuery(intervalParam.name, p.value(intervalParam), s.o.MaxSpan)
	s.answer(w, r, p.err, func(ctx context.Context, m *meta) (any, int, error) {
		rows, err := s.freshBars(ctx, q, m)
		return barList(query.BarsOf(rows)), len(rows), err
	})
}

// barParams are the parameters of a bars read besides its interval.
var barParams = append([]param{symbolParam.need(), exchangeParam, startParam, endParam, barLimit, orderParam("asc"), nonMarketParam},
	asOfParams...)

// barQuery reads a bars read: its interval (the path value, or a batch
// item's member, named so errors say which) and barParams.
func (p *params) barQuery(name, interval string, maxSpan time.Duration) query.BarQuery {
	iv := p.interval(name, interval)
	q := query.BarQuery{Filter: p.filter(maxSpan), Interval: iv, AsOf: p.asOf(),
		Limit: int(p.integer(barLimit)), Desc: p.oneOf(orderParam("asc")) == "desc",
		IncludeNonMarket: p.oneOf(nonMarketParam) == "true"}
	if q.Symbol == "" {
		p.fail("symbol", "is required")
	}
	return q
}

// originalIntervals are the original's names of the bar sizes (its
// aggregation route's), accepted beside K2's.
var originalIntervals = map[string]md.Interval{"1min": md.Interval1m, "5min": md.Interval5m, "15min": md.Interval15m,
	"30min": md.Interval30m, "1hour": md.Interval1h, "1day": md.Interval1d}

// interval reads a bar size: K2's name or the original's.
func (p *params) interval(name, v string) md.Interval {
	if iv, ok := originalIntervals[v]; ok {
		return iv
	}
	iv, err := md.ParseInterval(v)
	if err != nil {
		p.fail(name, "%q is not one of 1m, 5m, 15m, 30m, 1h, 1d (or 1min, 5min, 15min, 30min, 1hour, 1day)", v)
	}
	return iv
}

// freshBars reads bars (with TWAPs when q asks): of the lake and, for a
// read not as of a snapshot or time, of the stream's trades after the
// lake's snapshot, pinned so that neither overlaps the other.
func (s *Server) freshBars(ctx context.Context, q query.BarQuery, m *meta) ([]query.Aggregate, error) {
	if q.AsOf != (query.AsOf{}) || s.tail == nil {
		// The answer names the snapshot it read (a time's, or the current
		// one), pinned so that the name and the bars agree.
		id, err := s.engine.SnapshotAt(ctx, record.Trade.Table.Name, q.AsOf)
		if err != nil {
			return nil, err
		}
		if id != 0 {
			q.AsOf, m.SnapshotID = query.AsOf{SnapshotID: id}, id
		}
		return s.engine.Aggregates(ctx, q)
	}
	tq := tail.Query{Symbols: q.Symbols, From: q.From, To: q.To}
	if q.Symbol != "" {
		tq.Symbols = append(slices.Clip(tq.Symbols), q.Symbol)
	}
	if q.Exchange != "" {
		tq.Exchanges = []string{q.Exchange}
	}
	for {
		// The head as last seen: a moment old loses nothing, since the
		// stream's trades after it come from the tail.
		head, err := s.engine.Head(ctx, record.Trade.Table.Name)
		if err != nil {
			return nil, err
		}
		ref := head.SnapshotRef
		pinned, offsets := q, lake.Offsets{}
		if ref != nil {
			pinned.AsOf, offsets, m.SnapshotID = query.AsOf{SnapshotID: ref.ID}, ref.Offsets, ref.ID
		}
		rows, complete := s.tail.Since(ctx, record.Trade, offsets, tq)
		pinned.Extra = make([]md.Trade, len(rows))
		for i := range rows {
			pinned.Extra[i] = rows[i].Value.(md.Trade)
		}
		m.Incomplete = !complete
		out, err := s.engine.Aggregates(ctx, pinned)
		if err != nil || ref != nil {
			return out, err
		}
		// The table was empty, so nothing pinned it: unless it still is,
		// the lake may now hold some of the stream's trades too.
		if again, err := s.engine.Pin(ctx, record.Trade.Table.Name, query.AsOf{}); err != nil || again == nil {
			return out, err
		}
	}
}

// symbols lists the instruments with trades as objects, or as the
// original's plain list of names with format=list.
func (s *Server) symbols(w http.ResponseWriter, r *http.Request, p *params) {
	exchange, asOf := p.exchange(), p.asOf()
	list := p.oneOf(symbolsFormatParam) == "list"
	s.answer(w, r, p.err, func(ctx context.Context, _ *meta) (any, int, error) {
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
	s.answer(w, r, p.err, func(context.Context, *meta) (any, int, error) { return bar, -1, err })
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
	s.answer(w, r, p.err, func(ctx context.Context, _ *meta) (any, int, error) {
		tables, err := s.engine.Stats(ctx, asOf)
		return statsAnswer{Tables: tables, Pool: s.engine.PoolStats()}, -1, err
	})
}

// snapshots answers a table's snapshots, newest first (table: trades by
// default; limit 10, at most 100).
func (s *Server) snapshots(w http.ResponseWriter, r *http.Request, p *params) {
	table := p.oneOf(tableParam)
	limit := int(p.integer(snapshotsLimit))
	s.answer(w, r, p.err, func(ctx context.Context, _ *meta) (any, int, error) {
		snaps, err := s.engine.Snapshots(ctx, table)
		if len(snaps) > limit {
			snaps = snaps[:limit]
		}
		return snaps, len(snaps), err
	})
}

// answer runs a read once the parameters are good, and writes its data or
// the error in the one shape; the read may add to the answer's meta.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, paramErr error, read func(context.Context, *meta) (any, int, error)) {
	if paramErr != nil {
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, paramErr.Error(), paramDetails(paramErr))
		return
	}
	m := newMeta(r)
	data, n, err := read(r.Context(), &m)
	if err != nil {
		status, code, msg := s.classify(r, err)
		writeError(w, r, status, code, msg, nil)
		return
	}
	writeData(w, m, data, n)
}

// paramDetails names the parameter of a parameter error.
func paramDetails(err error) map[string]any {
	var pe *paramError
	errors.As(err, &pe)
	return map[string]any{"parameter": pe.Param}
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
