package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
)

// The OpenAPI 3.1 document of the server's routes (GET /openapi.json),
// generated from the route table (routes.go): each route's path, method,
// parameters with the bounds its handler holds them to, body, answers and
// errors. Nothing of it is written by hand beside the code.

type document struct {
	OpenAPI    string                           `json:"openapi"`
	Info       docInfo                          `json:"info"`
	Servers    []map[string]string              `json:"servers"`
	Security   []map[string][]string            `json:"security"`
	Paths      map[string]map[string]*operation `json:"paths"`
	Components components                       `json:"components"`
	ops        []*operation                     // in the route table's order
}

type docInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description"`
}

type components struct {
	Schemas         map[string]schema         `json:"schemas"`
	Parameters      map[string]*docParameter  `json:"parameters"`
	Headers         map[string]*docHeader     `json:"headers"`
	Responses       map[string]*docResponse   `json:"responses"`
	SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
}

type operation struct {
	OperationID string                  `json:"operationId"`
	Summary     string                  `json:"summary"`
	Description string                  `json:"description,omitempty"`
	Security    *[]map[string][]string  `json:"security,omitempty"` // public: none
	Parameters  []*docParameter         `json:"parameters,omitempty"`
	RequestBody *requestBody            `json:"requestBody,omitempty"`
	Responses   map[string]*docResponse `json:"responses"`
	route       *route
}

type docParameter struct {
	Ref         string `json:"$ref,omitempty"`
	Name        string `json:"name,omitempty"`
	In          string `json:"in,omitempty"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Style       string `json:"style,omitempty"`
	Explode     *bool  `json:"explode,omitempty"`
	Schema      schema `json:"schema,omitempty"`
	Example     any    `json:"example,omitempty"`
}

type requestBody struct {
	Required bool                 `json:"required"`
	Content  map[string]mediaType `json:"content"`
}

type mediaType struct {
	Schema  schema `json:"schema,omitempty"`
	Example any    `json:"example,omitempty"`
}

type docResponse struct {
	Ref         string                `json:"$ref,omitempty"`
	Description string                `json:"description,omitempty"`
	Headers     map[string]*docHeader `json:"headers,omitempty"`
	Content     map[string]mediaType  `json:"content,omitempty"`
}

type docHeader struct {
	Ref         string `json:"$ref,omitempty"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Schema      schema `json:"schema,omitempty"`
}

// reply is what a route's 200 holds: the schema of each content type it
// may take (none for a binary format).
type reply func(c *schemas) map[string]mediaType

// jsonReply is the success envelope with data of the type of one of
// values (a Go value of each type the route may answer).
func jsonReply(values ...any) reply {
	return func(c *schemas) map[string]mediaType {
		var data []schema
		for _, v := range values {
			data = append(data, c.goSchema(reflect.TypeOf(v), false))
		}
		d := data[0]
		if len(data) > 1 {
			d = schema{"anyOf": data}
		}
		return envelope(c, d)
	}
}

// envelope is the success envelope holding data.
func envelope(c *schemas, data schema) map[string]mediaType {
	return map[string]mediaType{"application/json": {Schema: schema{
		"type": "object", "additionalProperties": false, "required": []string{"success", "data", "meta"},
		"properties": schema{"success": schema{"const": true}, "data": data, "meta": c.goSchema(reflect.TypeFor[meta](), false)}}}}
}

// bodyReply is a JSON body of v's type, written whole (not the envelope).
func bodyReply(v any) reply {
	return func(c *schemas) map[string]mediaType {
		return map[string]mediaType{"application/json": {Schema: c.goSchema(reflect.TypeOf(v), false)}}
	}
}

// contentTypes are the formats' content types.
var contentTypes = map[string]string{"json": "application/json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet",
	"arrow": "application/vnd.apache.arrow.stream", "ndjson": "application/x-ndjson"}

// rowsReply is a record read's answer in each of formats, its rows those
// of one of kinds (format.go).
func rowsReply(kinds []record.Any, formats ...string) reply {
	return func(c *schemas) map[string]mediaType {
		var rows []schema
		for _, k := range kinds {
			rows = append(rows, c.rowSchemas(k)...)
		}
		row, name := rows[0], camel(kinds[0].Describe().Table.Name)
		if len(rows) > 1 {
			row, name = schema{"anyOf": rows}, ""
		}
		data := schema{"type": "array", "items": row}
		named := func(suffix string, s schema) schema { // a single kind's, once
			if name == "" {
				return s
			}
			return c.ref(name+suffix, func() schema { return s })
		}
		meta, failure := c.goSchema(reflect.TypeFor[meta](), false), c.goSchema(reflect.TypeFor[failure](), false)
		errMessage := c.goSchema(reflect.TypeFor[errorMessage](), false)
		pg := c.goSchema(reflect.TypeFor[pagination](), false)
		out := map[string]mediaType{}
		for _, f := range formats {
			var s schema
			switch f {
			case "json":
				s = schema{"oneOf": []schema{
					{"type": "object", "additionalProperties": false, "required": []string{"data", "meta", "pagination", "success"},
						"properties": schema{"data": data, "meta": meta, "pagination": pg, "success": schema{"const": true}}},
					{"type": "object", "additionalProperties": false, "required": []string{"data", "meta", "error", "success"},
						"description": "An answer cut short by an error after its first rows (the status was sent already)",
						"properties":  schema{"data": data, "meta": meta, "error": errMessage, "success": schema{"const": false}}},
				}}
				s = named("Page", s)
			case "csv":
				s = schema{"type": "string", "description": "A header row of the columns, then a row per record (RFC 4180; lists and maps as JSON). " +
					"An answer cut short by an error ends with a line #error,CODE,message."}
			case "ndjson":
				s = schema{"description": "Each line is one of these: a record, a checkpoint, the last line (meta and pagination), or an error that cut the answer short",
					"anyOf": append(slices.Clone(rows),
						schema{"type": "object", "additionalProperties": false, "required": []string{"cursor", "count"},
							"properties": schema{"cursor": schema{"type": "string"}, "count": schema{"type": "integer"}}},
						schema{"type": "object", "additionalProperties": false, "required": []string{"meta", "pagination", "success"},
							"properties": schema{"meta": meta, "pagination": pg, "success": schema{"const": true}}},
						failure)}
				s = named("Line", s)
			}
			out[contentTypes[f]] = mediaType{Schema: s} // parquet and arrow: binary, no schema
		}
		return out
	}
}

// eventsReply is an event stream of a kind's records.
func eventsReply(k record.Any) reply {
	return func(c *schemas) map[string]mediaType {
		c.rowSchema(k)
		return map[string]mediaType{"text/event-stream": {Schema: schema{"type": "string", "description": fmt.Sprintf(
			"Server-sent events: each record an event %q (id: the stream's position after it; data: the record as JSON, "+
				"#/components/schemas/%sRow); an event gap when records were missed, an event end when the server stops; "+
				"a comment every 15 s while idle", k.Describe().Name, camel(k.Describe().Table.Name))}}}
	}
}

var (
	documentReply reply = func(*schemas) map[string]mediaType {
		return map[string]mediaType{"application/json": {Schema: schema{"type": "object", "required": []string{"openapi", "info", "paths"},
			"description": "An OpenAPI 3.1 document", "properties": schema{"openapi": schema{"type": "string", "pattern": `^3\.1\.`}}}}}
	}
	pageReply reply = func(*schemas) map[string]mediaType {
		return map[string]mediaType{"text/html": {Schema: schema{"type": "string"}}}
	}
)

// errorResponses name each error status's response (components/responses).
var errorResponses = map[int]struct{ name, doc string }{
	400: {"BadRequest", "A parameter or body that cannot be used (details.parameter names it), or a Content-Length that is not a length"},
	401: {"Unauthorized", "No API key (the API asks for one when keys are configured)"},
	403: {"Forbidden", "An API key that is not configured"},
	404: {"NotFound", "No such snapshot, or nothing to answer (the route says which)"},
	413: {"PayloadTooLarge", "A body over the limit (--api-max-body)"},
	429: {"TooManyRequests", "Over the caller's rate limit on the route"},
	500: {"InternalError", "A failure of K2's, logged with the request id"},
	503: {"Unavailable", "The query engine's circuit breaker is open, or its pool saturated and the route shed; an event stream on an API without a tail"},
	504: {"Timeout", "The query took longer than its limit"},
}

// docErrors are the statuses a route may answer besides 200.
func docErrors(rt *route) []int {
	if rt.public {
		return nil
	}
	out := append([]int{400, 401, 403, 429, 500, 503}, rt.errors...)
	if engineRoute(rt.pattern()) {
		out = append(out, 504)
	}
	if rt.method == http.MethodPost {
		out = append(out, 413)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// openAPIDocument generates the document of the server's routes.
func (s *Server) openAPIDocument() *document {
	c := &schemas{named: map[string]schema{}, types: map[string]reflect.Type{}}
	d := &document{OpenAPI: "3.1.0",
		Info: docInfo{Title: "K2 market-data API", Version: ops.BuildInfo().Version, Description: fmt.Sprintf(
			"K2's REST API over its lake of trades, quotes, reference data and funding rates (docs/api.md). "+
				"Answers are in one shape: {\"success\":true,\"data\":…,\"meta\":…}, errors {\"success\":false,\"error\":{\"code\",\"message\",\"details\"},\"meta\":…}. "+
				"Decimals are strings of their exact value, times RFC 3339 UTC. A time range is at most %s days. "+
				"Without API keys configured the API is open (on a loopback address only); with them, every route but the public ones needs one.",
			fmt.Sprint(s.o.MaxSpan.Hours()/24))},
		Servers:  []map[string]string{{"url": "/"}},
		Security: []map[string][]string{{"ApiKey": {}}, {"Bearer": {}}},
		Paths:    map[string]map[string]*operation{},
		Components: components{Schemas: c.named, Responses: map[string]*docResponse{},
			Parameters: map[string]*docParameter{}, Headers: map[string]*docHeader{},
			SecuritySchemes: map[string]map[string]any{
				"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A key of --api-keys"},
				"Bearer": {"type": "http", "scheme": "bearer", "description": "A key of --api-keys, as Authorization: Bearer <key>"},
			}},
	}
	for name, h := range docHeaders {
		d.Components.Headers[name] = h
	}
	errSchema := c.goSchema(reflect.TypeFor[failure](), false)
	c.named["Failure"]["properties"].(schema)["success"] = schema{"const": false}
	c.named["ErrorMessage"]["properties"].(schema)["code"] = schema{"type": "string", "enum": errorCodes}
	for status, e := range errorResponses {
		h := headerRefs("X-Request-ID", "Cache-Control")
		switch status {
		case 401:
			h["WWW-Authenticate"] = &docHeader{Description: "Bearer realm=\"k2\"", Required: true, Schema: schema{"type": "string"}}
		case 429, 503:
			h["Retry-After"] = &docHeader{Description: "Seconds until a request may succeed", Required: true, Schema: schema{"type": "integer"}}
		}
		d.Components.Responses[e.name] = &docResponse{Description: e.doc, Headers: h,
			Content: map[string]mediaType{"application/json": {Schema: errSchema}}}
	}
	var ops []*operation
	for i := range s.routeTable {
		rt := &s.routeTable[i]
		op := &operation{route: rt, OperationID: operationID(rt), Summary: rt.summary, Description: rt.doc,
			Responses: map[string]*docResponse{}}
		if rt.public {
			op.Security = &[]map[string][]string{}
		}
		for _, p := range rt.params {
			op.Parameters = append(op.Parameters, docParam(p))
		}
		ops = append(ops, op)
		if len(rt.body) > 0 {
			op.RequestBody = bodyDoc(rt)
		}
		ok := &docResponse{Description: "The answer", Content: rt.ok(c), Headers: headerRefs("X-Request-ID")}
		if strings.HasPrefix(rt.path, "/v1/") {
			ok.Headers = headerRefs("X-Request-ID", "Cache-Control", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
		}
		if len(ok.Content) > 1 {
			ok.Description = "The answer, in the format asked for; a read's count, next cursor and any error are trailers too " +
				"(X-Record-Count, K2-Next-Cursor, K2-Error)"
			ok.Headers["Content-Disposition"] = &docHeader{Description: "attachment; filename=… (CSV, Parquet, Arrow)", Schema: schema{"type": "string"}}
		}
		op.Responses["200"] = ok
		for _, status := range docErrors(rt) {
			op.Responses[strconv.Itoa(status)] = &docResponse{Ref: "#/components/responses/" + errorResponses[status].name}
		}
		if d.Paths[rt.path] == nil {
			d.Paths[rt.path] = map[string]*operation{}
		}
		d.Paths[rt.path][strings.ToLower(rt.method)] = op
	}
	shareParameters(ops, d.Components.Parameters)
	d.ops = ops
	return d
}

// docHeaders are the headers of many answers (components/headers).
var docHeaders = map[string]*docHeader{
	"X-Request-ID": {Description: "The request's id: the caller's X-Request-ID when sane, else a new one; in the access log too",
		Required: true, Schema: schema{"type": "string"}},
	"Cache-Control": {Description: "How long the client may keep the answer: private, max-age=N, or no-store",
		Required: true, Schema: schema{"type": "string"}},
	"X-RateLimit-Limit":     {Description: "The size of the caller's bucket on the route (when rate limits are on)", Schema: schema{"type": "integer"}},
	"X-RateLimit-Remaining": {Description: "Requests the caller may make now (when rate limits are on)", Schema: schema{"type": "integer"}},
	"X-RateLimit-Reset":     {Description: "Seconds until the caller's bucket is full again (when rate limits are on)", Schema: schema{"type": "integer"}},
}

func headerRefs(names ...string) map[string]*docHeader {
	out := map[string]*docHeader{}
	for _, n := range names {
		out[n] = &docHeader{Ref: "#/components/headers/" + n}
	}
	return out
}

// shareParameters moves a parameter that several operations declare
// alike to components/parameters, each operation referring to it: of a
// name's variants (limit has several), the one most used.
func shareParameters(ops []*operation, shared map[string]*docParameter) {
	uses := map[string]map[string]int{} // name → its JSON → operations
	for _, op := range ops {
		for _, p := range op.Parameters {
			b, _ := json.Marshal(p)
			if uses[p.Name] == nil {
				uses[p.Name] = map[string]int{}
			}
			uses[p.Name][string(b)]++
		}
	}
	chosen := map[string]string{}
	for name, variants := range uses {
		for _, v := range slices.Sorted(maps.Keys(variants)) {
			if n := variants[v]; n > 1 && n > variants[chosen[name]] {
				chosen[name] = v
			}
		}
	}
	for _, op := range ops {
		for i, p := range op.Parameters {
			if b, _ := json.Marshal(p); chosen[p.Name] == string(b) {
				shared[p.Name] = p
				op.Parameters[i] = &docParameter{Ref: "#/components/parameters/" + p.Name}
			}
		}
	}
}

// operationID is a route's method and path as a name.
func operationID(rt *route) string {
	id := strings.ToLower(rt.method)
	for part := range strings.FieldsFuncSeq(rt.path, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '.' }) {
		id += camel(part)
	}
	return id
}

// textPattern is text without control characters (params.checkText).
const textPattern = `^[^\x00-\x1f\x7f]*$`

// decimalParamPattern is what md.ParseDecimal reads: digits with an
// optional point, an optional exponent; never negative.
const decimalParamPattern = `^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$`

// paramSchema is the schema of a parameter's value: in a query, path or
// header, or as a JSON body's member.
func paramSchema(d param) schema {
	bytes := fmt.Sprintf(" (at most %d bytes)", d.maxBytes)
	switch d.kind {
	case textKind:
		return schema{"type": "string", "maxLength": d.maxBytes, "pattern": textPattern, "description": "UTF-8 without control characters" + bytes}
	case rawTextKind:
		return schema{"type": "string", "maxLength": d.maxBytes, "description": "Text" + bytes}
	case intKind:
		s := schema{"type": "integer", "minimum": d.min, "maximum": d.max}
		if d.def >= d.min && d.def <= d.max {
			s["default"] = d.def
		}
		return s
	case choiceKind:
		if d.none {
			return schema{"type": "string", "enum": d.values}
		}
		return schema{"type": "string", "enum": d.values, "default": d.values[0]}
	case timeKind:
		return schema{"type": "string", "format": "date-time"}
	case dateKind:
		return schema{"type": "string", "format": "date", "pattern": `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`}
	case decimalKind:
		return schema{"type": "string", "pattern": decimalParamPattern,
			"description": "An exact decimal: at most 10 digits before the point and 8 after it"}
	case listKind:
		item := schema{"type": "string", "maxLength": d.maxBytes, "pattern": textPattern}
		if len(d.values) > 0 {
			item = schema{"type": "string", "enum": d.values}
		}
		return schema{"type": "array", "items": item, "maxItems": d.maxItems}
	}
	panic(fmt.Sprintf("api: parameter %s has no kind", d.name))
}

// example is a parameter's example as its schema's type.
func (d param) exampleValue() any {
	switch d.kind {
	case intKind:
		n, err := strconv.ParseInt(d.example, 10, 64)
		if err != nil {
			panic("api: parameter " + d.name + " has an example that is not an integer")
		}
		return n
	case listKind:
		return strings.Split(d.example, ",")
	}
	return d.example
}

func docParam(d param) *docParameter {
	in := d.in
	if in == "" {
		in = "query"
	}
	p := &docParameter{Name: d.name, In: in, Description: d.doc, Required: d.required, Schema: paramSchema(d), Example: d.exampleValue()}
	if d.kind == listKind {
		no := false
		p.Style, p.Explode = "form", &no // symbols=A,B
	}
	return p
}

// bodyDoc is a POST route's JSON body: an object of its members, or of
// one kind's members when data_type chooses the kind; with an example of
// the required members and those the route's example request shows.
func bodyDoc(rt *route) *requestBody {
	if rt.items > 0 {
		item, example := bodySchema(rt.body)
		var alternatives []schema
		for _, name := range rt.oneRequired {
			alternatives = append(alternatives, schema{"required": []string{name}})
		}
		if alternatives != nil {
			item["anyOf"] = alternatives
			example[rt.oneRequired[0]] = named(rt.body, rt.oneRequired[0]).exampleValue()
		}
		s := schema{"type": "array", "items": item, "minItems": 1, "maxItems": rt.items}
		return &requestBody{Required: true, Content: map[string]mediaType{"application/json": {Schema: s, Example: []any{example}}}}
	}
	if rt.byKind == nil {
		s, example := bodySchema(rt.body)
		return &requestBody{Required: true, Content: map[string]mediaType{"application/json": {Schema: s, Example: example}}}
	}
	var variants []schema
	var example map[string]any
	for i, k := range rt.kinds {
		table := k.Describe().Table.Name
		members := slices.Clone(rt.byKind(k))
		for j, d := range members {
			if d.name == "data_type" { // this kind's; required but for the default
				d.values, d.example, d.required = []string{table}, table, i > 0
				members[j] = d
			}
		}
		s, ex := bodySchema(members)
		s["title"] = table
		if i > 0 {
			delete(s["properties"].(schema)["data_type"].(schema), "default")
		}
		variants = append(variants, s)
		if i == 0 {
			example = ex
		}
	}
	return &requestBody{Required: true, Content: map[string]mediaType{"application/json": {
		Schema: schema{"oneOf": variants}, Example: example}}}
}

// bodySchema is an object of members, and its example.
func bodySchema(members []param) (schema, map[string]any) {
	props, example := schema{}, map[string]any{}
	required := []string{}
	for _, d := range members {
		s := paramSchema(d)
		if s["description"] != nil {
			s["description"] = d.doc + ". " + s["description"].(string)
		} else {
			s["description"] = d.doc
		}
		s["examples"] = []any{d.exampleValue()}
		props[d.name] = s
		if d.required {
			required = append(required, d.name)
		}
		if d.required || d.sample {
			example[d.name] = d.exampleValue()
		}
	}
	return schema{"type": "object", "properties": props, "required": required, "additionalProperties": false}, example
}

// openAPI answers GET /openapi.json.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ *params) {
	b, _ := s.spec()
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// spec is the server's document, generated once, and its JSON.
func (s *Server) spec() ([]byte, *document) {
	s.specOnce.Do(func() {
		s.specDoc = s.openAPIDocument()
		var err error
		if s.specJSON, err = json.MarshalIndent(s.specDoc, "", "  "); err != nil {
			panic(err) // maps and strings: it always encodes
		}
	})
	return s.specJSON, s.specDoc
}
