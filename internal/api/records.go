package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/tail"
)

// pageRows bounds the rows read from the lake at once: a large answer is
// read and written page by page, never held whole.
const pageRows = 10_000

// kindTable is a record kind's read routes, from its descriptor: GET
// /v1/{table} and POST /v1/{table}/query, and for a kind with a time
// column GET /v1/{table}/recent and the event stream GET
// /v1/stream/{table}.
func (s *Server) kindTable(k record.Any) []route {
	table := k.Describe().Table.Name
	cols := columnsOf(k)
	s.cacheFor["GET /v1/"+table] = 5 * time.Second
	t := []route{{method: "GET", path: "/v1/" + table, summary: "Records of " + table + ", newest first, filtered and paged",
		params: recordParams(k, getLimits), ok: rowsReply([]record.Any{k}, formats...), errors: []int{404},
		serve: func(w http.ResponseWriter, r *http.Request, p *params) {
			s.readRecords(w, r, k, cols, p.recordRequest(k, s.o.MaxSpan, getLimits))
		}}}
	if k.Describe().Table.Time != "" {
		t = append(t, route{method: "GET", path: "/v1/" + table + "/recent",
			summary: "A symbol's latest " + table + " of the last minutes, from the lake and the stream after it",
			params:  recentParams, ok: rowsReply([]record.Any{k}, formats...),
			serve: func(w http.ResponseWriter, r *http.Request, p *params) {
				s.readRecords(w, r, k, cols, p.recentRequest(k, time.Now()))
			}},
			route{method: "GET", path: "/v1/stream/" + table, summary: "Server-sent events of " + table + " as the stream brings them",
				doc: "Each event's id is the stream's position after it: reconnecting with Last-Event-ID gets what followed, " +
					"exactly once, while the API's tail still holds it; past that an event gap says so. " +
					"503 on an API without a tail (--api-tail-age 0).",
				params: streamParams, ok: eventsReply(k), serve: s.streamRoute(k, cols)})
	}
	return append(t, route{method: "POST", path: "/v1/" + table + "/query", summary: "Records of " + table + ", the GET route's parameters in a JSON body",
		body: recordParams(k, postLimits), ok: rowsReply([]record.Any{k}, formats...), errors: []int{404},
		serve: func(w http.ResponseWriter, r *http.Request, p *params) {
			s.readRecords(w, r, k, cols, p.recordRequest(k, s.o.MaxSpan, postLimits))
		}})
}

// limits are a route's default and largest limit.
type limits struct{ def, max int64 }

var (
	getLimits  = limits{100, 10_000}    // the original's GET routes
	postLimits = limits{1_000, 100_000} // and its POST query routes
)

// recordParams are the parameters a kind's record routes take, declared
// once per kind and limits (each request reads its own by them).
func recordParams(k record.Any, lim limits) []param {
	key := paramsKey{k.Describe().Table.Name, lim}
	if ps, ok := kindParams.Load(key); ok {
		return ps.([]param)
	}
	ps := makeRecordParams(k, lim)
	kindParams.Store(key, ps)
	return ps
}

type paramsKey struct {
	table string
	lim   limits
}

var kindParams sync.Map // paramsKey → []param

func makeRecordParams(k record.Any, lim limits) []param {
	out := []param{symbolParam, symbolsParam, exchangeParam, exchangesParam}
	if k.Describe().Table.Time != "" {
		out = append(out, startParam, endParam)
	}
	out = append(out, limitParam(lim.def, lim.max),
		param{name: "offset", kind: intKind, max: lim.max, example: "1", doc: "Records to skip before the first answered"},
		orderParam("desc"), formatParam, fieldsParam(k), cursorParam, asOfSnapshotParam, asOfTimeParam)
	for _, c := range decimalColumns(k) {
		out = append(out,
			param{name: "min_" + c, kind: decimalKind, example: "1", doc: "Only records whose " + c + " is at least this"},
			param{name: "max_" + c, kind: decimalKind, example: "1000000", doc: "Only records whose " + c + " is at most this"})
	}
	if names := joinNames(k.Describe().Table.Name); len(names) > 0 {
		out = append(out, withParam(names))
	}
	return out
}

// withParam asks for a join (join.go) of a kind that declares some.
func withParam(names []string) param {
	return param{name: "with", kind: choiceKind, values: names, none: true, example: names[0],
		doc: "Add another table's values to each record, as columns after its own (and after fields): quote, the quote " +
			"prevailing at each trade's time (quote_bid_price, quote_bid_quantity, quote_ask_price, quote_ask_quantity, quote_timestamp)"}
}

// fieldsParam chooses a kind's columns to answer.
func fieldsParam(k record.Any) param {
	def := &k.Describe().Table
	return param{name: "fields", kind: listKind, maxItems: 64, maxBytes: 64, values: columnsOf(k).names(),
		example: def.Key + "," + def.Symbol, doc: "Answer only these columns, in this order (comma separated)"}
}

// named finds the parameter of decls called name.
func named(decls []param, name string) param {
	for _, d := range decls {
		if d.name == name {
			return d
		}
	}
	panic("no parameter " + name) // a declaration of this package
}

func decimalColumns(k record.Any) []string { return columnsOf(k).decimals }

// The parameters of the recent routes, and of the event streams.
var (
	recentParams = []param{symbolParam.need(), exchangeParam,
		{name: "window_minutes", kind: intKind, def: 15, min: 1, max: 60, example: "30", doc: "How many minutes back from now"},
		limitParam(1000, 10_000), formatParam, orderParam("asc")}
	streamParams = []param{symbolsParam,
		{name: "Last-Event-ID", in: "header", maxBytes: 64 << 10, example: "0:1-42",
			doc: "The id of the last event received: the stream continues after it (browsers send it by themselves)"},
		{name: "last_event_id", maxBytes: 64 << 10, example: "0:1-42", doc: "Last-Event-ID, for a client that cannot set headers"}}
)

// recordRequest is a parsed read of a kind's records.
type recordRequest struct {
	q      query.RecordQuery
	limit  int
	offset int
	format string
	fields []string
	cursor string
	// fresh reads combine the lake with the stream after it; a read as of
	// a snapshot or time is the table as it stood, no more.
	fresh bool
	// reverse answers the rows read in the opposite order: the latest N
	// (read newest first), oldest first.
	reverse bool
	// batch, when set, pages the lake by this many rows and marks each
	// page's end with a checkpoint (replay's resumable cursor).
	batch int
	// echo is the request as the answer's meta.query repeats it.
	echo map[string]any
	join *join // with=, when the kind declares joins
	p    *params
	key  string // the request's fingerprint
}

// recentRequest reads the parameters of a recent route (the original's
// /v1/trades/recent): a symbol's latest records of the last
// window_minutes (15; 1–60), at most limit (1,000; 1–10,000), oldest
// first unless order=desc. They come from the lake and the stream after it.
func (p *params) recentRequest(k record.Any, now time.Time) recordRequest {
	symbol, exchange := p.symbol(), p.exchange()
	window := p.integer(named(recentParams, "window_minutes"))
	from := md.TimestampOf(now.Add(-time.Duration(window) * time.Minute))
	req := recordRequest{
		q:       query.RecordQuery{Filter: query.Filter{Symbol: symbol, Exchange: exchange, From: from}, Desc: true},
		limit:   int(p.integer(named(recentParams, "limit"))),
		format:  p.oneOf(formatParam),
		reverse: p.oneOf(named(recentParams, "order")) == "asc",
		fresh:   true,
		p:       p,
		echo: map[string]any{"symbol": symbol, "exchange": exchange, "window_minutes": window,
			"start_time": from, "end_time": md.TimestampOf(now)},
	}
	return req
}

// recordRequest reads the parameters of a record route: the filter (one
// symbol and exchange, or lists of them), price-like bounds (min_price,
// max_quantity, … for each decimal column), limit, offset, order (desc,
// newest first, by default), format, the columns to answer (fields), a
// cursor from an earlier page, and the snapshot to read.
func (p *params) recordRequest(k record.Any, maxSpan time.Duration, lim limits) recordRequest {
	def := &k.Describe().Table
	decls := recordParams(k, lim)
	q := query.RecordQuery{
		Filter: p.filter(maxSpan),
		Desc:   p.oneOf(orderParam("desc")) == "desc",
		AsOf:   p.asOf(),
	}
	q.Symbols = upper(p.list(symbolsParam))
	q.Exchanges = upper(p.list(exchangesParam))
	for _, c := range decimalColumns(k) {
		lo, hi := p.decimal(named(decls, "min_"+c)), p.decimal(named(decls, "max_"+c))
		if lo != nil || hi != nil {
			q.Bounds = append(q.Bounds, query.Bound{Column: c, Min: lo, Max: hi})
		}
	}
	req := recordRequest{
		limit:  int(p.integer(named(decls, "limit"))),
		offset: int(p.integer(named(decls, "offset"))),
		format: p.oneOf(formatParam),
		cursor: p.text(cursorParam),
		fresh:  q.AsOf == (query.AsOf{}),
		p:      p,
	}
	if req.fields = p.list(named(decls, "fields")); len(req.fields) > 0 {
		known := columnsOf(k).schema
		for _, f := range req.fields {
			if len(known.FieldIndices(f)) == 0 {
				p.fail("fields", "%q is not a column of %s", f, def.Name)
				break
			}
		}
	}
	if names := joinNames(def.Name); len(names) == 0 && p.q.Get("with") != "" { // a GET route's undeclared with
		p.fail("with", "%s takes no join", def.Name)
	} else if len(names) > 0 {
		req.join = joins[def.Name][p.oneOf(named(decls, "with"))]
	}
	if def.Time == "" && (q.From != 0 || q.To != 0) {
		p.fail("start_time", "%s has no time column", def.Name)
	}
	req.key = fingerprint(def.Name, q.Symbol, q.Exchange, strings.Join(q.Symbols, ","), strings.Join(q.Exchanges, ","),
		q.From.String(), q.To.String(), fmt.Sprint(q.Desc), fmt.Sprint(q.Bounds), q.AsOf.String())
	if req.cursor != "" && req.offset > 0 {
		p.fail("offset", "give offset or cursor, not both: a cursor already continues after the rows skipped")
	}
	if req.cursor != "" && p.err == nil {
		c, msg := parseCursor(req.cursor, def.Name, req.key)
		if c == nil {
			p.fail("cursor", "%s", msg)
		} else {
			q.After = &c.After
			if c.Snapshot != 0 {
				q.AsOf = query.AsOf{SnapshotID: c.Snapshot}
			}
		}
	}
	req.q = q
	return req
}

// readRecords answers a record read: pages from the lake, merged with the
// stream's records after the lake's snapshot when the read is fresh,
// written as they are read.
func (s *Server) readRecords(w http.ResponseWriter, r *http.Request, k record.Any, cols *columns, req recordRequest) {
	if req.p.err != nil {
		s.answer(w, r, req.p.err, nil)
		return
	}
	def := &k.Describe().Table
	out := cols
	fields := req.fields
	if j := req.join; j != nil {
		out = cols.with(j.fields)
		for _, f := range j.fields {
			fields = append(slices.Clip(fields), f.Name)
		}
	}
	if len(req.fields) > 0 {
		out = out.project(fields)
	}
	var joinRows joiner
	joinIncomplete := false
	st := newStream(w, r, out, req.format)
	ctx := r.Context()
	q := req.q
	m := newMeta(r)
	src := &merger{def: def, desc: q.Desc}
	defer src.release()
	first := true
	var held []arrow.RecordBatch // a reversed answer's rows, newest first
	var last *query.Position
	want, skip := req.limit, req.offset
	more := false
	for want > 0 {
		if src.lakeDone() && !src.lakeEnd {
			q.Limit = min(want+skip, pageRows)
			if req.batch > 0 {
				q.Limit = min(q.Limit, req.batch)
			}
			var page *query.Page
			var err error
			var mem *latestPage // the lake and the stream, from memory
			if first && s.latest.serves(def, &req, want+skip) {
				if mem, err = s.latest.page(ctx, k, q, want+skip); mem != nil {
					page = mem.Page
				}
			}
			if page == nil && err == nil {
				page, err = s.engine.Records(ctx, def.Name, q)
			}
			if err != nil {
				s.fail(st, r, err)
				return
			}
			if first {
				first = false
				offsets := lake.Offsets{}
				if ref := page.Snapshot; ref != nil { // every page reads this snapshot
					q.AsOf = query.AsOf{SnapshotID: ref.ID}
					m.SnapshotID, offsets = ref.ID, ref.Offsets
				}
				switch {
				case mem != nil:
					src.incomplete = mem.incomplete
				case req.fresh && s.tail != nil:
					rows, complete := s.tail.Since(ctx, k, offsets, tailQuery(def, req.q, want+skip))
					src.setTail(k, rows, complete)
				}
				if req.join != nil {
					joinRows = req.join.open(s, req.fresh, page.Snapshot, req.q.AsOf)
				}
			}
			end := page.Rows // the page's last record, where the next begins
			if mem != nil {
				src.setLake(page, mem.rest...)
				if len(mem.rest) > 0 {
					end = mem.rest[len(mem.rest)-1]
				}
			} else {
				src.setLake(page)
			}
			if n := end.NumRows(); n > 0 {
				p := query.PositionOf(def, end, int(n-1))
				q.After = &p
			}
			if !page.Full {
				src.lakeEnd = true
			}
		}
		rec, pos, ok := src.next(want + skip)
		if !ok {
			break
		}
		if skip > 0 {
			n := min(int64(skip), rec.NumRows())
			skip -= int(n)
			rest := rec.NewSlice(n, rec.NumRows())
			rec.Release()
			rec = rest
		}
		if joinRows != nil {
			cols, complete, err := joinRows(ctx, rec)
			if err != nil {
				rec.Release()
				s.fail(st, r, err)
				return
			}
			joined := withJoin(rec, req.join, cols)
			for _, c := range cols {
				c.Release()
			}
			rec.Release()
			rec = joined
			joinIncomplete = joinIncomplete || !complete
		}
		want -= int(rec.NumRows())
		last = &pos
		if req.reverse {
			held = append(held, rec)
			continue
		}
		err := st.write(rec)
		rec.Release()
		if err == nil && req.batch > 0 && src.lakeDone() {
			err = st.checkpoint(cursor{Table: def.Name, Snapshot: q.AsOf.SnapshotID, Request: req.key, After: pos}.String())
		}
		if err != nil {
			return // the client went away
		}
	}
	if rec := reversed(held); rec != nil { // a reversed answer: at most a route's limit of rows
		err := st.write(rec)
		rec.Release()
		if err != nil {
			return
		}
	}
	more = want == 0 && !(src.lakeEnd && src.lakeDone() && src.tailDone())
	m.Incomplete, m.Query = src.incomplete || joinIncomplete, req.echo
	pg := &pagination{Limit: req.limit, Count: st.count, HasMore: more}
	if more && last != nil {
		pg.NextCursor = cursor{Table: def.Name, Snapshot: q.AsOf.SnapshotID, Request: req.key, After: *last}.String()
	}
	st.finish(m, pg)
}

// fail answers err from a read, in the error shape or as the stream's
// final record.
func (s *Server) fail(st *stream, r *http.Request, err error) {
	status, code, msg := s.classify(r, err)
	st.fail(status, code, msg, nil)
}

// tailQuery selects the stream's records that belong in a read's answer:
// the first limit of them in the read's order.
func tailQuery(def *lake.TableDef, q query.RecordQuery, limit int) tail.Query {
	tq := tail.Query{Symbols: q.Symbols, Exchanges: q.Exchanges, Desc: q.Desc, Limit: limit, Keep: keep(def, q)}
	if q.Symbol != "" {
		tq.Symbols = append(slices.Clip(tq.Symbols), q.Symbol)
	}
	if q.Exchange != "" {
		tq.Exchanges = append(slices.Clip(tq.Exchanges), q.Exchange)
	}
	if def.Time != "" {
		tq.From, tq.To = q.From, q.To
	}
	if a := q.After; a != nil {
		tq.After, tq.AfterAt, tq.AfterSeq = true, a.Time, a.Seq
	}
	return tq
}

// keep is the exact test of a read on one of the stream's records.
func keep(def *lake.TableDef, q query.RecordQuery) func(*record.Row) bool {
	return func(row *record.Row) bool {
		switch {
		case q.Symbol != "" && row.Symbol != q.Symbol,
			q.Exchange != "" && row.Exchange != q.Exchange,
			len(q.Symbols) > 0 && !slices.Contains(q.Symbols, row.Symbol),
			len(q.Exchanges) > 0 && !slices.Contains(q.Exchanges, row.Exchange),
			def.Time != "" && q.From != 0 && row.Time < q.From,
			def.Time != "" && q.To != 0 && row.Time >= q.To:
			return false
		}
		return q.After == nil || after(positionOfRow(row), *q.After, q.Desc)
	}
}

func positionOfRow(r *record.Row) query.Position {
	p := query.Position{Time: r.Time, Key: r.Key}
	if r.Seq.Valid {
		s := r.Seq.Int64
		p.Seq = &s
	}
	return p
}

// after reports whether a comes after b in the read's order: time,
// sequence (null last), key.
func after(a, b query.Position, desc bool) bool {
	c := comparePositions(a, b, desc)
	if desc {
		return c < 0
	}
	return c > 0
}

// comparePositions orders positions ascending; a null sequence sorts last
// in either direction, as the engine sorts it.
func comparePositions(a, b query.Position, desc bool) int {
	if a.Time != b.Time {
		if a.Time < b.Time {
			return -1
		}
		return 1
	}
	null := int64(1<<63 - 1)
	if desc {
		null = -1 << 63
	}
	sa, sb := null, null
	if a.Seq != nil {
		sa = *a.Seq
	}
	if b.Seq != nil {
		sb = *b.Seq
	}
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Key, b.Key)
}

// upper upper-cases a list of symbols or exchanges, as they are stored.
func upper(v []string) []string {
	for i := range v {
		v[i] = strings.ToUpper(v[i])
	}
	return v
}

// decodeObject reads a JSON object body (decodeBody answers what it
// cannot read), its numbers kept as written: a snapshot id has more digits
// than a float64 holds.
func decodeObject(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var raw map[string]json.RawMessage
	if decodeBody(w, r, &raw) != nil {
		return nil, false
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		out[k] = exactJSON(v)
	}
	return out, true
}

// decodeAny reads a JSON body of any shape, numbers kept as written.
func decodeAny(w http.ResponseWriter, r *http.Request) (any, bool) {
	var raw json.RawMessage
	if decodeBody(w, r, &raw) != nil {
		return nil, false
	}
	return exactJSON(raw), true
}

// exactJSON decodes valid JSON with numbers as json.Number.
func exactJSON(b []byte) any {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	d.Decode(&x) // valid: decodeBody read it
	return x
}

// bodyToParams turns a JSON object's members into the parameters decls
// declare: each member a parameter of the same name as the GET routes
// take (a string, number, or list of strings). An unknown member is an
// error.
func bodyToParams(body map[string]any, decls []param) *params {
	v := url.Values{}
	p := &params{q: v, whole: true}
	names := make([]string, len(decls))
	for i, d := range decls {
		names[i] = d.name
	}
	for _, name := range slices.Sorted(maps.Keys(body)) {
		val := body[name]
		if !slices.Contains(names, name) {
			p.fail(name, "is not a parameter of this route (it takes %s)", strings.Join(names, ", "))
			continue
		}
		switch x := val.(type) {
		case nil:
		case string:
			v.Set(name, x)
		case json.Number:
			v.Set(name, x.String())
		case bool:
			v.Set(name, fmt.Sprint(x))
		case []any:
			for _, it := range x {
				sv, ok := it.(string)
				if !ok {
					p.fail(name, "must be a list of strings")
					break
				}
				v.Add(name, sv)
			}
		default:
			p.fail(name, "must be a string, number or list of strings")
		}
	}
	return p
}
