package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// kindRoutes gives a record kind its read routes, from its descriptor:
// GET /v1/{table} and POST /v1/{table}/query.
func (s *Server) kindRoutes(k record.Any) {
	table := k.Describe().Table.Name
	cols := columnsOf(k)
	s.cacheFor["GET /v1/"+table] = 5 * time.Second
	s.mux.HandleFunc("GET /v1/"+table, func(w http.ResponseWriter, r *http.Request) {
		p := params{q: r.URL.Query()}
		s.readRecords(w, r, k, cols, p.recordRequest(k, s.o.MaxSpan, getLimits))
	})
	if k.Describe().Table.Time != "" {
		s.mux.HandleFunc("GET /v1/stream/"+table, s.streamRoute(k, cols))
		s.mux.HandleFunc("GET /v1/"+table+"/recent", func(w http.ResponseWriter, r *http.Request) {
			p := params{q: r.URL.Query()}
			s.readRecords(w, r, k, cols, p.recentRequest(k, time.Now()))
		})
	}
	s.mux.HandleFunc("POST /v1/"+table+"/query", func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.bodyParams(w, r, recordParams(k))
		if !ok {
			return
		}
		s.readRecords(w, r, k, cols, p.recordRequest(k, s.o.MaxSpan, postLimits))
	})
}

// limits are a route's default and largest limit.
type limits struct{ def, max int64 }

var (
	getLimits  = limits{100, 10_000}    // the original's GET routes
	postLimits = limits{1_000, 100_000} // and its POST query routes
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
	if symbol == "" {
		p.fail("symbol", "is required")
	}
	window := p.integer("window_minutes", 15, 1, 60)
	from := md.TimestampOf(now.Add(-time.Duration(window) * time.Minute))
	req := recordRequest{
		q:       query.RecordQuery{Filter: query.Filter{Symbol: symbol, Exchange: exchange, From: from}, Desc: true},
		limit:   int(p.integer("limit", 1000, 1, 10_000)),
		format:  p.oneOf("format", "json", formats...),
		reverse: p.oneOf("order", "asc", "asc", "desc") == "asc",
		fresh:   true,
		p:       p,
		echo: map[string]any{"symbol": symbol, "exchange": exchange, "window_minutes": window,
			"start_time": from, "end_time": md.TimestampOf(now)},
	}
	return req
}

// recordParams are the parameter names a kind's record routes take.
func recordParams(k record.Any) []string {
	names := []string{"symbol", "symbols", "exchange", "exchanges", "start_time", "end_time", "limit", "offset",
		"order", "format", "fields", "cursor", "as_of_snapshot", "as_of_time"}
	for _, c := range decimalColumns(k) {
		names = append(names, "min_"+c, "max_"+c)
	}
	if joins[k.Describe().Table.Name] != nil {
		names = append(names, "with")
	}
	return names
}

func decimalColumns(k record.Any) []string {
	var out []string
	for _, f := range columnsOf(k).schema.Fields() {
		if f.Type.ID() == arrow.DECIMAL128 {
			out = append(out, f.Name)
		}
	}
	return out
}

// recordRequest reads the parameters of a record route: the filter (one
// symbol and exchange, or lists of them), price-like bounds (min_price,
// max_quantity, … for each decimal column), limit, offset, order (desc,
// newest first, by default), format, the columns to answer (fields), a
// cursor from an earlier page, and the snapshot to read.
func (p *params) recordRequest(k record.Any, maxSpan time.Duration, lim limits) recordRequest {
	def := &k.Describe().Table
	q := query.RecordQuery{
		Filter: p.filter(maxSpan),
		Desc:   p.oneOf("order", "desc", "desc", "asc") == "desc",
		AsOf:   p.asOf(),
	}
	q.Symbols = upper(p.list("symbols", 100, maxSymbolBytes))
	q.Exchanges = upper(p.list("exchanges", 20, 64))
	for _, c := range decimalColumns(k) {
		lo, hi := p.decimal("min_"+c), p.decimal("max_"+c)
		if lo != nil || hi != nil {
			q.Bounds = append(q.Bounds, query.Bound{Column: c, Min: lo, Max: hi})
		}
	}
	req := recordRequest{
		limit:  int(p.integer("limit", lim.def, 1, lim.max)),
		offset: int(p.integer("offset", 0, 0, lim.max)),
		format: p.oneOf("format", "json", formats...),
		cursor: p.text("cursor", 4096),
		fresh:  q.AsOf == (query.AsOf{}),
		p:      p,
	}
	if req.fields = p.list("fields", 64, 64); len(req.fields) > 0 {
		known := columnsOf(k).schema
		for _, f := range req.fields {
			if len(known.FieldIndices(f)) == 0 {
				p.fail("fields", "%q is not a column of %s", f, def.Name)
				break
			}
		}
	}
	if with := p.q.Get("with"); with != "" && joins[def.Name] == nil {
		p.fail("with", "%s takes no join", def.Name)
	} else if with != "" {
		req.join = joins[def.Name][p.oneOf("with", "", joinNames(def.Name)...)]
	}
	if def.Time == "" && (q.From != 0 || q.To != 0) {
		p.fail("start_time", "%s has no time column", def.Name)
	}
	req.key = fingerprint(def.Name, q.Symbol, q.Exchange, strings.Join(q.Symbols, ","), strings.Join(q.Exchanges, ","),
		q.From.String(), q.To.String(), fmt.Sprint(q.Desc), fmt.Sprint(q.Bounds), q.AsOf.String())
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
			page, err := s.engine.Records(ctx, def.Name, q)
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
				if req.fresh && s.tail != nil {
					rows, complete := s.tail.Since(ctx, k, offsets, tailQuery(def, req.q, want+skip))
					src.setTail(k, rows, complete)
				}
				if req.join != nil {
					joinRows = req.join.open(s, req.fresh, page.Snapshot, req.q.AsOf)
				}
			}
			src.setLake(page)
			if n := page.Rows.NumRows(); n > 0 {
				p := query.PositionOf(def, page.Rows, int(n-1))
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
	if req.reverse { // at most a route's limit of rows
		rec := reversed(held)
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

// bodyParams reads a POST route's JSON body as the route's parameters:
// each member a parameter of the same name as the GET routes take (a
// string, number, or list of strings). An unknown member is an error.
func (s *Server) bodyParams(w http.ResponseWriter, r *http.Request, names []string) (*params, bool) {
	body, ok := decodeObject(w, r)
	if !ok {
		return nil, false
	}
	return bodyToParams(body, names), true
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

// bodyToParams turns a JSON object's members into parameters.
func bodyToParams(body map[string]any, names []string) *params {
	v := url.Values{}
	p := &params{q: v, whole: true}
	for name, val := range body {
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

// decimal reads an optional exact decimal parameter.
func (p *params) decimal(name string) *md.Decimal {
	v := p.q.Get(name)
	if v == "" {
		return nil
	}
	d, err := md.ParseDecimal(v)
	if err != nil {
		p.fail(name, "%q is not a decimal: %v", v, err)
		return nil
	}
	return &d
}

// list reads a list parameter: repeated, or comma separated; at most max
// items of at most maxBytes each.
func (p *params) list(name string, max, maxBytes int) []string {
	var out []string
	for _, v := range p.q[name] {
		if p.whole {
			out = append(out, p.checkText(name, v, maxBytes))
			continue
		}
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, p.checkText(name, item, maxBytes))
			}
		}
	}
	if len(out) > max {
		p.fail(name, "more than %d items", max)
	}
	return out
}
