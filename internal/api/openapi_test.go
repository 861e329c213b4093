package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	"github.com/pb33f/libopenapi-validator/schema_validation"

	"github.com/k2-market-data/k2/internal/api"
	cfg "github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/record"
)

// The OpenAPI document is held to a real validator twice over: the
// document itself against the OpenAPI 3.1 schema (libopenapi,
// libopenapi-validator), and every route in it against the server over
// the ASX sample: requests built from the document's own examples, and
// values that break each parameter's bounds, each request and its answer
// (status, headers, body) validated against the document.

const oasKey = "oas-5d1e9b7c3a"

// oasServer serves the API over the ASX sample behind a guard that asks
// for a key, with the SQL route on, as k2 up mounts it.
func oasServer(t *testing.T) *httptest.Server {
	t.Helper()
	a := cfg.Default().API
	a.Keys, a.RateLimit = []string{"oas:" + oasKey}, cfg.RateOff // hundreds of requests a route
	g, err := api.NewGuard(api.GuardOptions{API: a, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.New(bhpEngine(t), api.Options{Guard: g, SQL: true}).Register(mux)
	srv := httptest.NewServer(g.Wrap(mux))
	t.Cleanup(srv.Close)
	return srv
}

// loadDocument fetches /openapi.json (without a key: it is public) and
// loads it with libopenapi into a validator.
func loadDocument(t *testing.T, srv *httptest.Server) ([]byte, libopenapi.Document, validator.Validator) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("libopenapi builds no model of the document: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithStandardBodyDecoders(), config.WithFormatAssertions(),
		config.WithBodyDecoder("application/x-ndjson", ndjsonLast))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return b, doc, v
}

// ndjsonLast reads NDJSON for the validator: every line must be JSON, and
// the last (meta and pagination, or the error) is validated against the
// line schema; checkBody validates the others.
var ndjsonLast = content.DecoderFunc(func(in *content.DecodeInput) (any, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	var last any
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			return nil, fmt.Errorf("line %d is not JSON: %v", i+1, err)
		}
	}
	return last, nil
})

// The document is OpenAPI 3.1 that libopenapi loads without an error and
// that the OpenAPI 3.1 schema holds to be valid.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	srv := oasServer(t)
	_, doc, v := loadDocument(t, srv)
	if doc.GetSpecInfo().Version != "3.1.0" {
		t.Errorf("version %q", doc.GetSpecInfo().Version)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("the document is not valid OpenAPI 3.1: %v", e)
		}
	}
	m, _ := doc.BuildV3Model()
	if n := m.Model.Paths.PathItems.Len(); n < 20 {
		t.Errorf("%d paths", n)
	}
	// /docs is the same document for people, and fetches nothing.
	status, page := fetch(t, srv, "/docs")
	for path := range m.Model.Paths.PathItems.KeysFromOldest() {
		if !strings.Contains(string(page), "<code>"+path+"</code>") {
			t.Errorf("/docs does not show %s", path)
		}
	}
	if status != 200 || strings.Contains(string(page), "<script") || strings.Contains(string(page), "src=") || strings.Contains(string(page), "https://") {
		t.Errorf("/docs: %d, or it loads something from elsewhere", status)
	}
}

// oasOp is an operation of the document, as the test reads it (one per
// table where its body takes one table's members).
type oasOp struct {
	method, path string
	variant      string
	params       []oasParam
	body         map[string]oasParam // a JSON body's members
	example      map[string]any      // the body's example
	answers      map[string]any      // the 200's content
	// array: the body is a JSON array of items of body's members, each
	// answered on its own (a bad one in the answer, not with a 400); one
	// of oneOf is required in each.
	array bool
	oneOf []string
	rows  bool // it answers records (a page of rows), not other data
}

type oasBody struct {
	Title      string
	Type       string
	Properties map[string]map[string]any
	Required   []string
	OneOf      []oasBody
	Items      *oasBody
	AnyOf      []struct{ Required []string }
}

type oasParam struct {
	Ref      string         `json:"$ref"`
	Name     string         `json:"name"`
	In       string         `json:"in"`
	Required bool           `json:"required"`
	Schema   map[string]any `json:"schema"`
	Example  any            `json:"example"`
}

// readOps reads the document's operations, and the columns of each
// table's rows (their names, sorted).
func readOps(t *testing.T, b []byte) ([]*oasOp, map[string][]string) {
	t.Helper()
	var d struct {
		Paths      map[string]map[string]map[string]json.RawMessage
		Components struct {
			Parameters map[string]oasParam
			Schemas    map[string]struct{ Properties map[string]any }
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	decode := func(raw json.RawMessage, v any) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var ops []*oasOp
	for _, path := range slices.Sorted(maps.Keys(d.Paths)) {
		for method, raw := range d.Paths[path] {
			op := &oasOp{method: strings.ToUpper(method), path: path}
			var params []oasParam
			if raw["parameters"] != nil {
				decode(raw["parameters"], &params)
			}
			for _, p := range params {
				if p.Ref != "" {
					p = d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				op.params = append(op.params, p)
			}
			var variants []oasBody // the body's schemas: one, or one per table
			if raw["requestBody"] != nil {
				var rb struct {
					Content map[string]struct {
						Schema  oasBody
						Example any
					}
				}
				decode(raw["requestBody"], &rb)
				js := rb.Content["application/json"]
				if js.Schema.Type == "array" { // items of the one schema
					op.array, js.Schema = true, *js.Schema.Items
					js.Example = js.Example.([]any)[0]
					for _, alt := range js.Schema.AnyOf {
						op.oneOf = append(op.oneOf, alt.Required...)
					}
				}
				if variants = js.Schema.OneOf; variants == nil {
					variants = []oasBody{js.Schema}
				}
				op.example, _ = js.Example.(map[string]any)
			}
			var responses map[string]struct{ Content map[string]any }
			decode(raw["responses"], &responses)
			op.answers = responses["200"].Content
			if js, ok := op.answers["application/json"].(map[string]any); ok {
				sc, _ := js["schema"].(map[string]any)
				ref, _ := sc["$ref"].(string)
				op.rows = strings.HasSuffix(ref, "Page") || sc["oneOf"] != nil
			}
			if variants == nil {
				ops = append(ops, op)
			}
			for _, v := range variants {
				op := *op
				op.variant, op.body = v.Title, map[string]oasParam{}
				for name, s := range v.Properties {
					op.body[name] = oasParam{Name: name, In: "body", Required: slices.Contains(v.Required, name),
						Schema: s, Example: s["examples"].([]any)[0]}
				}
				ops = append(ops, &op)
			}
		}
	}
	cols := map[string][]string{}
	for _, table := range record.TableNames() {
		cols[table] = slices.Sorted(maps.Keys(d.Components.Schemas[camel(table)+"Row"].Properties))
		if len(cols[table]) == 0 {
			t.Errorf("the document has no rows of %s", table)
		}
		for name, s := range d.Components.Schemas { // with=JOIN: "trades with quote"
			if join, ok := strings.CutPrefix(name, camel(table)+"With"); ok && strings.HasSuffix(join, "Row") {
				cols[table+" with "+strings.ToLower(strings.TrimSuffix(join, "Row"))] = slices.Sorted(maps.Keys(s.Properties))
			}
		}
	}
	return ops, cols
}

// text is a parameter's example as query text.
func text(v any) string {
	if l, ok := v.([]any); ok {
		parts := make([]string, len(l))
		for i, x := range l {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// oasCall is one request to an operation.
type oasCall struct {
	op     *oasOp
	values map[string]any // by name, of every kind of parameter
	noKey  bool
}

func (c *oasCall) with(name string, v any) *oasCall {
	n := &oasCall{op: c.op, values: maps.Clone(c.values), noKey: c.noKey}
	if v == nil {
		delete(n.values, name)
	} else {
		n.values[name] = v
	}
	return n
}

func (c *oasCall) param(name string) (oasParam, bool) {
	if p, ok := c.op.body[name]; ok {
		return p, true
	}
	for _, p := range c.op.params {
		if p.Name == name {
			return p, true
		}
	}
	return oasParam{}, false
}

// table is the table a call reads: its path's, its data_type, or trades.
func (c *oasCall) table() string {
	if dt, ok := c.values["data_type"].(string); ok {
		return dt
	}
	parts := strings.Split(c.op.path, "/") // "", "v1", table or "stream", table
	for _, t := range record.TableNames() {
		if len(parts) > 2 && parts[2] == t || len(parts) > 3 && parts[2] == "stream" && parts[3] == t {
			return t
		}
	}
	return "trades"
}

func (c *oasCall) request(base string) *http.Request {
	path, q, h := c.op.path, url.Values{}, http.Header{}
	body := map[string]any{}
	for name, v := range c.values {
		p, _ := c.param(name)
		switch p.In {
		case "path":
			path = strings.Replace(path, "{"+name+"}", url.PathEscape(text(v)), 1)
		case "query":
			q.Set(name, text(v))
		case "header":
			h.Set(name, text(v))
		case "body":
			body[name] = v
		}
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var r *http.Request
	if c.op.body != nil {
		b, _ := json.Marshal(body)
		if c.op.array {
			b, _ = json.Marshal([]any{body})
		}
		r, _ = http.NewRequest(c.op.method, u, bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r, _ = http.NewRequest(c.op.method, u, nil)
	}
	for k, v := range h {
		r.Header[k] = v
	}
	if !c.noKey {
		r.Header.Set("X-API-Key", oasKey)
	}
	return r
}

func (c *oasCall) String() string {
	b, _ := json.Marshal(c.values)
	return c.op.method + " " + c.op.path + " " + string(b)
}

// oasRun sends calls and validates them and their answers.
type oasRun struct {
	t     *testing.T
	srv   *httptest.Server
	v     validator.Validator
	doc   libopenapi.Document
	cols  map[string][]string
	snaps map[string]int64 // each table's current snapshot, 0 when it has none
	sent  int
	// failing counts the calls of a route since one failed: a route
	// wrong throughout stops after a few.
	failing int
}

// sendGood makes a call of good values, resolved against the lake.
func (o *oasRun) sendGood(c *oasCall) {
	o.t.Helper()
	c, status := o.resolve(c)
	o.send(c, status, "")
}

// send makes a call that should be answered status (a 400 naming
// parameter, when one is given), and checks the request against the
// document (which refuses it when a parameter is bad or the key missing,
// and allows it else) and the answer.
func (o *oasRun) send(c *oasCall, status int, parameter string) {
	t := o.t
	t.Helper()
	if t.Failed() {
		if o.failing++; o.failing > 5 {
			t.Fatal("and more: the rest of this route is not tried")
		}
	}
	o.sent++
	valid, errs := o.v.ValidateHttpRequest(c.request(o.srv.URL))
	switch {
	case parameter == "" && !valid && !c.noKey:
		t.Errorf("%s: the document refuses the request: %v", c, errs)
	case parameter != "" && valid:
		t.Errorf("%s: the document allows a request the server refuses (%s)", c, parameter)
	case c.noKey && valid:
		t.Errorf("%s: the document allows a request without a key", c)
	}
	req := c.request(o.srv.URL)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ok, errs := o.v.ValidateHttpResponse(c.request(o.srv.URL), resp); !ok {
		for _, e := range errs {
			t.Errorf("%s: the answer (%d) is not as documented: %v", c, resp.StatusCode, e)
		}
	}
	b, _ := io.ReadAll(resp.Body) // the validator keeps a copy for us
	if c.op.array && status == 200 || c.op.array && status == 400 && parameter != "" {
		o.checkItems(c, resp.StatusCode, b, parameter)
		return
	}
	if resp.StatusCode != status {
		t.Errorf("%s: %d, want %d: %.300s", c, resp.StatusCode, status, b)
		return
	}
	if parameter != "" {
		var e struct {
			Error struct{ Details map[string]any }
		}
		json.Unmarshal(b, &e)
		if e.Error.Details["parameter"] != parameter {
			t.Errorf("%s: the 400 names %v, not %s: %s", c, e.Error.Details["parameter"], parameter, b)
		}
	}
	if status == 200 {
		o.checkBody(c, resp, b)
	}
}

// checkItems holds the answer of an array body's one item: a success,
// or its error naming parameter; the answer itself is a 200 either way.
func (o *oasRun) checkItems(c *oasCall, status int, b []byte, parameter string) {
	t := o.t
	t.Helper()
	var a struct {
		Data map[string]struct {
			Success bool
			Error   struct{ Details map[string]any }
		}
	}
	if err := json.Unmarshal(b, &a); status != 200 || err != nil || len(a.Data) != 1 {
		t.Errorf("%s: %d, want 200 with one item: %v %.300s", c, status, err, b)
		return
	}
	for _, item := range a.Data {
		switch {
		case parameter == "" && !item.Success:
			t.Errorf("%s: the item failed: %.300s", c, b)
		case parameter != "" && item.Error.Details["parameter"] != parameter:
			t.Errorf("%s: the item's error names %v, not %s: %.300s", c, item.Error.Details["parameter"], parameter, b)
		}
	}
}

// checkBody holds what the validator reads only by content type to the
// document: rows with the columns of the table's row schema, NDJSON lines
// each of the line schema, Parquet and Arrow with the row's columns.
func (o *oasRun) checkBody(c *oasCall, resp *http.Response, b []byte) {
	t := o.t
	t.Helper()
	want := o.cols[c.table()]
	var joined []string // with=: the join's columns, after the others
	if with, ok := c.values["with"]; ok {
		want = o.cols[c.table()+" with "+text(with)]
		joined = slices.DeleteFunc(slices.Clone(want), func(col string) bool { return slices.Contains(o.cols[c.table()], col) })
		if len(joined) == 0 {
			t.Errorf("%s: the document has no rows with %v", c, with)
		}
	}
	if fields, ok := c.values["fields"]; ok {
		want = append(strings.Split(text(fields), ","), joined...)
		slices.Sort(want)
	}
	same := func(what string, got []string) {
		t.Helper()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s %v, the document's row %v", c, what, got, want)
		}
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	if _, ok := c.op.answers[ct]; !ok {
		t.Errorf("%s: answered %s, which the document does not list", c, ct)
	}
	if !c.op.rows {
		return // the validator holds the answer to its schema
	}
	switch ct {
	case "application/json":
		var page struct {
			Data       []map[string]any
			Pagination map[string]any
		}
		if json.Unmarshal(b, &page) == nil && page.Pagination != nil {
			for _, row := range page.Data {
				same("a row's members", slices.Collect(maps.Keys(row)))
			}
		}
	case "text/csv":
		header, _, _ := strings.Cut(string(b), "\r\n")
		same("the CSV header", strings.Split(header, ","))
	case "application/x-ndjson":
		m, _ := o.doc.BuildV3Model()
		line := m.Model.Paths.PathItems.GetOrZero(c.op.path).Post.Responses.Codes.GetOrZero("200").
			Content.GetOrZero("application/x-ndjson").Schema.Schema()
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) > 51 { // the first 50 and the last
			lines = append(lines[:50], lines[len(lines)-1])
		}
		sv := schema_validation.NewSchemaValidator()
		for i, l := range lines {
			if ok, errs := sv.ValidateSchemaStringWithVersion(line, l, 3.1); !ok {
				t.Errorf("%s: line %d %s is not as documented: %v", c, i+1, l, errs)
			}
			var row map[string]any
			json.Unmarshal([]byte(l), &row)
			if _, mark := row["cursor"]; !mark && row["success"] == nil {
				same("a line's members", slices.Collect(maps.Keys(row)))
			}
		}
	case "application/vnd.apache.parquet":
		tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(b), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Errorf("%s: not Parquet: %v", c, err)
			return
		}
		defer tbl.Release()
		var names []string
		for _, f := range tbl.Schema().Fields() {
			names = append(names, f.Name)
		}
		same("the Parquet columns", names)
	case "application/vnd.apache.arrow.stream":
		r, err := ipc.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: not an Arrow stream: %v", c, err)
			return
		}
		defer r.Release()
		for r.Next() {
		}
		if r.Err() != nil {
			t.Errorf("%s: the Arrow stream is cut: %v", c, r.Err())
		}
		var names []string
		for _, f := range r.Schema().Fields() {
			names = append(names, f.Name)
		}
		same("the Arrow columns", names)
	}
}

// camel is funding_rates as FundingRates, the row schema's name.
func camel(s string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(s, "_") {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// resolve gives the parameters whose good values depend on the lake (a
// snapshot of the call's table, a time after it) such values, and says
// what the call should be answered.
func (o *oasRun) resolve(c *oasCall) (*oasCall, int) {
	snap := o.snaps[c.table()]
	status := 200
	if c.op.path == "/docs" || c.op.path == "/openapi.json" {
		return c, 200
	}
	if strings.HasPrefix(c.op.path, "/v1/stream/") {
		status = 503 // the test's API holds no stream
	}
	for _, name := range []string{"id", "as_of_snapshot", "snapshot_id"} {
		if _, ok := c.values[name]; ok && snap == 0 {
			status = 404
		} else if ok {
			p, _ := c.param(name)
			c = c.with(name, number(p, snap))
		}
	}
	if _, ok := c.values["as_of_time"]; ok {
		c = c.with("as_of_time", time.Now().UTC().Format(time.RFC3339Nano))
		if snap == 0 {
			status = 400 // no snapshot at or before then
		}
	}
	return c, status
}

// number is n as a parameter's value: a JSON number in a body.
func number(p oasParam, n int64) any {
	if p.In == "body" {
		return json.Number(strconv.FormatInt(n, 10))
	}
	return strconv.FormatInt(n, 10)
}

// cursorFor is a cursor the server issued for c's request: its first
// page of one record's next cursor, or a replay's first checkpoint.
func (o *oasRun) cursorFor(c *oasCall) (string, bool) {
	first := c.with("cursor", nil).with("format", nil)
	if p, ok := first.param("limit"); ok {
		first = first.with("limit", number(p, 1))
	}
	if p, ok := first.param("batch_size"); ok { // replay: a checkpoint every 100
		first = first.with("batch_size", number(p, 100))
	}
	first, _ = o.resolve(first)
	resp, err := http.DefaultClient.Do(first.request(o.srv.URL))
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		var v struct {
			Cursor     string
			Pagination struct {
				NextCursor string `json:"next_cursor"`
			}
		}
		if json.Unmarshal([]byte(line), &v) == nil && v.Cursor+v.Pagination.NextCursor != "" {
			return v.Cursor + v.Pagination.NextCursor, true
		}
	}
	return "", false
}

// invalid is a value that breaks a parameter's schema (nil: none is
// known to).
func invalid(s map[string]any) any {
	n := func(k string) (int64, bool) {
		v, ok := s[k].(json.Number)
		if !ok {
			return 0, false
		}
		i, err := v.Int64()
		return i, err == nil
	}
	switch {
	case s["enum"] != nil:
		return "nope"
	case s["format"] == "date-time":
		return "yesterday"
	case s["format"] == "date":
		return "11-03-2014"
	case s["type"] == "integer":
		if max, ok := n("maximum"); ok && max < math.MaxInt64 {
			return json.Number(strconv.FormatInt(max+1, 10))
		}
		min, _ := n("minimum")
		return json.Number(strconv.FormatInt(min-1, 10))
	case s["type"] == "array":
		if items := s["items"].(map[string]any); items["enum"] != nil {
			return []any{"nope"}
		}
		max, _ := n("maxItems")
		var out []any
		for i := range max + 1 {
			out = append(out, fmt.Sprint("A", i))
		}
		return out
	case s["maxLength"] != nil:
		max, _ := n("maxLength")
		return strings.Repeat("A", int(max)+1)
	case s["pattern"] != nil:
		return "abc"
	}
	return nil
}

// Every route of the document answers as the document says: a request
// of its required parameters (their examples), then one of each other
// parameter (its example, or each value it may take), each a request the
// document allows and answered with a documented status, headers and
// body; a value breaking each parameter's bounds, and a request without
// each required one, are refused by the document and by the server (400
// naming the parameter, validated against the error schema); and without
// a key every route but the public ones answers 401 as documented.
func TestEveryRouteAnswersAsDocumented(t *testing.T) {
	srv := oasServer(t)
	b, doc, v := loadDocument(t, srv)
	ops, cols := readOps(t, b)
	o := &oasRun{t: t, srv: srv, v: v, doc: doc, cols: cols, snaps: map[string]int64{}}
	for _, table := range record.TableNames() {
		status, env, _ := get(t, srv, "GET", "/v1/snapshots?limit=1&table="+table, "X-API-Key", oasKey)
		var snaps []struct {
			SnapshotID int64 `json:"snapshot_id"`
		}
		if err := json.Unmarshal(env.Data, &snaps); status != 200 || err != nil {
			t.Fatalf("snapshots of %s: %d %v", table, status, err)
		}
		if len(snaps) > 0 {
			o.snaps[table] = snaps[0].SnapshotID
		}
	}
	if o.snaps["trades"] == 0 || o.snaps["quotes"] == 0 {
		t.Fatalf("snapshots %v", o.snaps)
	}
	for _, op := range ops {
		t.Run(strings.TrimSpace(op.method+" "+op.path+" "+op.variant), func(t *testing.T) {
			o.t, o.failing = t, 0
			all := slices.Clone(op.params)
			for _, name := range slices.Sorted(maps.Keys(op.body)) {
				all = append(all, op.body[name])
			}
			base := &oasCall{op: op, values: map[string]any{}}
			for _, p := range all {
				if p.Required {
					base.values[p.Name] = p.Example
				}
			}
			if len(op.oneOf) > 0 { // the first of those one of which is required
				base.values[op.oneOf[0]] = op.body[op.oneOf[0]].Example
			}
			// alone is c with p's value v and without the others of oneOf.
			alone := func(c *oasCall, name string, v any) *oasCall {
				if slices.Contains(op.oneOf, name) {
					for _, other := range op.oneOf {
						c = c.with(other, nil)
					}
				}
				return c.with(name, v)
			}
			// The body's own example is a request the document allows and
			// the server answers.
			if op.example != nil && (op.variant == "" || op.variant == op.example["data_type"]) {
				ex := base
				for k, v := range op.example {
					ex = ex.with(k, v)
				}
				o.sendGood(ex)
			}
			o.sendGood(base)
			for _, p := range all {
				var values []any
				if enum, ok := p.Schema["enum"].([]any); ok && !p.Required {
					values = enum
				} else if !p.Required {
					values = []any{p.Example}
				}
				for _, v := range values {
					c := alone(base, p.Name, v)
					if p.Name == "cursor" {
						cur, ok := o.cursorFor(c)
						if !ok {
							continue // no rows, no cursor
						}
						c = c.with("cursor", cur)
					}
					o.sendGood(c)
				}
				if bad := invalid(p.Schema); bad != nil {
					c, _ := o.resolve(alone(base, p.Name, bad))
					o.send(c.with(p.Name, bad), 400, p.Name)
				} else {
					t.Errorf("%s: no value breaks %s's schema %v", op.path, p.Name, p.Schema)
				}
				if p.Required && p.In != "path" && !(op.variant != "" && p.Name == "data_type") { // without it: the first table's
					c, _ := o.resolve(base.with(p.Name, nil))
					o.send(c, 400, p.Name)
				}
			}
			if len(op.oneOf) > 0 { // without any of them
				c, _ := o.resolve(base)
				for _, name := range op.oneOf {
					c = c.with(name, nil)
				}
				o.send(c, 400, op.oneOf[0])
			}
			if strings.HasPrefix(op.path, "/v1/") {
				c, _ := o.resolve(base)
				c.noKey = true
				o.send(c, 401, "")
			}
		})
	}
	o.t = t
	t.Logf("%d requests", o.sent)
}
