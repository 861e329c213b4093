package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

// codeSQLTooLarge answers a /v1/sql body over maxSQLBody (413).
const codeSQLTooLarge = "PAYLOAD_TOO_LARGE"

// maxSQLBody bounds a /v1/sql request body: the SQL (at most
// query.MaxSQLBytes) escaped as JSON, and the other fields.
const maxSQLBody = 1 << 20

// sqlRequest is the body of POST /v1/sql.
type sqlRequest struct {
	SQL          string `json:"sql"`
	AsOfSnapshot int64  `json:"as_of_snapshot"`
	AsOfTime     string `json:"as_of_time"`
	Limit        int    `json:"limit"`
}

// sqlMeta is meta with what a SQL answer says besides: whether the rows
// were cut at the limit, and the snapshot each view read.
type sqlMeta struct {
	meta
	Truncated bool             `json:"truncated"`
	Limit     int              `json:"limit"`
	Snapshots map[string]int64 `json:"snapshots"`
}

// sqlText is the body's query.
var sqlText = param{name: "sql", kind: rawTextKind, maxBytes: query.MaxSQLBytes, required: true, sample: true,
	example: "SELECT symbol, count(*) AS trades, sum(quantity) AS volume FROM trades GROUP BY symbol ORDER BY trades DESC",
	doc:     "One read-only DuckDB query (a SELECT) over the views trades, quotes, reference_data and funding_rates"}

// sqlRoute is POST /v1/sql, whose handler reads its body itself (at most
// maxSQLBody, its members typed).
func (s *Server) sqlRoute() route {
	return route{method: "POST", path: "/v1/sql", summary: "One read-only DuckDB SQL query over views of the tables",
		doc: "Off unless the API runs with --api-sql (then 404 saying so). DECIMAL and other exact numbers are strings " +
			"of their exact value, timestamps RFC 3339 UTC, lists and structs JSON arrays and objects, BLOBs base64.",
		rawBody: true, body: []param{sqlText, sqlSnapshot, asOfTimeParam, s.sqlLimit()},
		ok: bodyReply(sqlAnswer{}), errors: []int{404}, serve: s.sql}
}

// sqlSnapshot is as_of_snapshot in a SQL body, where 0 is none.
var sqlSnapshot = func() param {
	d := asOfSnapshotParam
	d.min, d.doc = 0, d.doc+"; 0 is none"
	return d
}()

// sqlLimit is the rows a SQL answer holds at most (0, a JSON body's
// zero, is as absent).
func (s *Server) sqlLimit() param {
	return param{name: "limit", kind: intKind, def: int64(s.o.SQLRows), min: 1, max: int64(s.o.SQLRows), example: "5", sample: true,
		doc: "The most rows to answer (more: meta.truncated)"}
}

// sqlAnswer is what POST /v1/sql answers.
type sqlAnswer struct {
	Success bool             `json:"success"`
	Data    *query.SQLResult `json:"data"`
	Meta    sqlMeta          `json:"meta"`
}

// sql answers POST /v1/sql: one read-only DuckDB query over views of the
// tables (docs/api.md, "SQL"). Off unless Options.SQL: then 404 saying
// how to turn it on.
func (s *Server) sql(w http.ResponseWriter, r *http.Request, _ *params) {
	if !s.o.SQL {
		writeError(w, r, http.StatusNotFound, codeNotFound,
			"POST /v1/sql is off: start k2 up or k2 api with --api-sql (or K2_API_SQL=true) to enable it", nil)
		return
	}
	var req sqlRequest
	if status, err := sqlDecodeBody(w, r, maxSQLBody, &req); err != nil {
		code := codeInvalidParameters
		if status == http.StatusRequestEntityTooLarge {
			code = codeSQLTooLarge
		}
		writeError(w, r, status, code, err.Error(), map[string]any{"parameter": "body"})
		return
	}
	p := params{}
	switch {
	case req.SQL == "":
		p.fail("sql", "is required")
	case len(req.SQL) > sqlText.maxBytes:
		p.fail("sql", "longer than %d bytes", sqlText.maxBytes)
	}
	if lim := s.sqlLimit(); req.Limit == 0 {
		req.Limit = int(lim.def)
	} else if req.Limit < int(lim.min) || req.Limit > int(lim.max) {
		p.fail("limit", "%d is not an integer from %d to %d", req.Limit, lim.min, lim.max)
	}
	asOf := query.AsOf{SnapshotID: req.AsOfSnapshot}
	if req.AsOfSnapshot < sqlSnapshot.min {
		p.fail("as_of_snapshot", "%d is not a snapshot id", req.AsOfSnapshot)
	}
	if req.AsOfTime != "" {
		t, err := time.Parse(time.RFC3339Nano, req.AsOfTime)
		if err != nil {
			p.fail("as_of_time", "%q is not an RFC 3339 time such as 2024-08-09T00:00:00Z", req.AsOfTime)
		}
		asOf.Time = md.TimestampOf(t)
		if req.AsOfSnapshot != 0 {
			p.fail("as_of_snapshot", "give as_of_snapshot or as_of_time, not both")
		}
	}
	if p.err != nil {
		var pe *paramError
		errors.As(p.err, &pe)
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, p.err.Error(), map[string]any{"parameter": pe.Param})
		return
	}
	res, err := s.engine.SQL(r.Context(), query.SQLQuery{
		Text: req.SQL, AsOf: asOf, Limit: req.Limit, Timeout: s.o.SQLTimeout, MemoryLimit: s.o.SQLMemory,
	})
	var sqlErr *query.SQLError
	switch {
	case err == nil:
		n := len(res.Rows)
		m := sqlMeta{meta: newMeta(r), Truncated: res.Truncated, Limit: req.Limit, Snapshots: res.Snapshots}
		m.Count = &n
		writeJSON(w, http.StatusOK, sqlAnswer{true, res, m})
	case errors.Is(err, query.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		writeError(w, r, http.StatusGatewayTimeout, codeQueryTimeout,
			fmt.Sprintf("the query took longer than %s (--api-sql-timeout)", s.o.SQLTimeout), nil)
	case errors.As(err, &sqlErr):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, err.Error(), map[string]any{"parameter": "sql"})
	case isBadRequest(err):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, err.Error(), nil)
	default:
		s.log.Error("API SQL query failed", "request_id", requestIDOf(r.Context()), "error", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal, "the query failed", nil)
	}
}

// sqlDecodeBody reads r's body, at most max bytes, as one JSON object
// into v, refusing fields v does not have. It stands in for a general
// body helper of the package; swap it for that one when there is one.
func sqlDecodeBody(w http.ResponseWriter, r *http.Request, max int64, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", max)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("the body is empty: send a JSON object such as {\"sql\": \"SELECT 1\"}")
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("the body is not a JSON object of sql, as_of_snapshot, as_of_time and limit: %v", err)
	}
	return 0, nil
}
