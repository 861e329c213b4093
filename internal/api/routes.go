package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

func (s *Server) routes() {
	for _, k := range record.All {
		s.kindRoutes(k)
	}
	s.mux.HandleFunc("GET /v1/bars/{interval}", s.bars)
	s.mux.HandleFunc("GET /v1/ohlcv/{interval}", s.bars) // the original's name
	s.mux.HandleFunc("GET /v1/symbols", s.symbols)
	s.mux.HandleFunc("GET /v1/summary/{symbol}/{date}", s.summary)
	s.mux.HandleFunc("GET /v1/stats", s.stats)
	s.mux.HandleFunc("GET /v1/snapshots", s.snapshots)
	s.mux.HandleFunc("POST /v1/snapshots/{id}/query", s.snapshotQuery)
	s.mux.HandleFunc("POST /v1/replay", s.replay)
	s.mux.HandleFunc("POST /v1/sql", s.sql)
}

// bars answers bars of a symbol at an interval (1m … 1d); the 1d bar is
// the exchange-local trading date. Limit defaults to 1,000.
func (s *Server) bars(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	iv, err := md.ParseInterval(r.PathValue("interval"))
	if err != nil {
		p.fail("interval", "%q is not one of 1m, 5m, 15m, 30m, 1h, 1d", r.PathValue("interval"))
	}
	q := query.BarQuery{Filter: p.filter(s.o.MaxSpan), Interval: iv, AsOf: p.asOf(),
		Limit: int(p.integer("limit", 1000, 1, 10_000)), Desc: p.oneOf("order", "asc", "asc", "desc") == "desc",
		IncludeNonMarket: p.oneOf("include_non_market", "false", "true", "false") == "true"}
	if q.Symbol == "" {
		p.fail("symbol", "is required")
	}
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Bars(ctx, q)
		return rows, len(rows), err
	})
}

// symbols lists the instruments with trades as objects, or as the
// original's plain list of names with format=list.
func (s *Server) symbols(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	exchange, asOf := p.exchange(), p.asOf()
	list := p.oneOf("format", "objects", "objects", "list") == "list"
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
func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	symbol := strings.ToUpper(p.checkText("symbol", r.PathValue("symbol"), maxSymbolBytes))
	date := r.PathValue("date")
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		p.fail("date", "%q is not YYYY-MM-DD", date)
	}
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

// stats answers each table's rows, files, bytes and time range, and the
// query pool's statistics.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	asOf := p.asOf()
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		tables, err := s.engine.Stats(ctx, asOf)
		return map[string]any{"tables": tables, "pool": s.engine.PoolStats()}, -1, err
	})
}

// snapshots answers a table's snapshots, newest first (table: trades by
// default; limit 10, at most 100).
func (s *Server) snapshots(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	table := p.text("table", 64)
	if table == "" {
		table = "trades"
	}
	if _, err := record.ByTable(table); err != nil {
		p.fail("table", "%v", err)
	}
	limit := int(p.integer("limit", 10, 1, 100))
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
