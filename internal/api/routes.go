package api

import (
	"context"
	"errors"
	"net/http"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

func (s *Server) routes() {
	s.mux.HandleFunc("GET /v1/trades", s.trades)
	s.mux.HandleFunc("GET /v1/quotes", s.quotes)
	s.mux.HandleFunc("GET /v1/funding_rates", s.funding)
	s.mux.HandleFunc("GET /v1/bars/{interval}", s.bars)
	s.mux.HandleFunc("GET /v1/ohlcv/{interval}", s.bars) // the original's name
	s.mux.HandleFunc("GET /v1/symbols", s.symbols)
}

func (s *Server) trades(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	q := p.records(s.o.MaxSpan)
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Trades(ctx, q)
		return rows, len(rows), err
	})
}

func (s *Server) quotes(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	q := p.records(s.o.MaxSpan)
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Quotes(ctx, q)
		return rows, len(rows), err
	})
}

func (s *Server) funding(w http.ResponseWriter, r *http.Request) {
	p := params{q: r.URL.Query()}
	q := p.records(s.o.MaxSpan)
	s.answer(w, r, p.err, func(ctx context.Context) (any, int, error) {
		rows, err := s.engine.Funding(ctx, q)
		return rows, len(rows), err
	})
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
	switch {
	case err == nil:
		writeData(w, r, data, n)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, r, http.StatusGatewayTimeout, codeQueryTimeout, "the query took too long", nil)
	case isBadRequest(err):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, err.Error(), nil)
	default:
		s.log.Error("API query failed", "request_id", requestIDOf(r.Context()), "path", r.URL.Path, "error", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal, "the query failed", nil)
	}
}

// isBadRequest tells the engine's refusals of a request (an unknown
// snapshot, an empty range) from its failures.
func isBadRequest(err error) bool {
	var re *query.RequestError
	return errors.As(err, &re)
}
