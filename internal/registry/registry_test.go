package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// Small record schemas; K2's real ones live in internal/codec.
const (
	tradeV1 = `{"type":"record","name":"Trade","namespace":"k2.test","fields":[{"name":"symbol","type":"string"},{"name":"price","type":"double"}]}`
	// tradeV1Spaced is tradeV1 with other whitespace, attribute order and
	// the long form of a primitive type: the same schema.
	tradeV1Spaced = `{
	  "namespace": "k2.test", "type": "record", "name": "Trade",
	  "fields": [ {"type": {"type": "string"}, "name": "symbol"}, {"name": "price", "type": "double"} ]
	}`
	// tradeV2 adds an optional field with a default: BACKWARD and FORWARD
	// compatible with tradeV1.
	tradeV2 = `{"type":"record","name":"Trade","namespace":"k2.test","fields":[{"name":"symbol","type":"string"},{"name":"price","type":"double"},{"name":"venue","type":["null","string"],"default":null}]}`
	// tradeQtyNoDefault adds a required field: the new schema cannot read
	// old data.
	tradeQtyNoDefault = `{"type":"record","name":"Trade","namespace":"k2.test","fields":[{"name":"symbol","type":"string"},{"name":"price","type":"double"},{"name":"qty","type":"long"}]}`
	// tradePriceString changes a field's type.
	tradePriceString = `{"type":"record","name":"Trade","namespace":"k2.test","fields":[{"name":"symbol","type":"string"},{"name":"price","type":"string"}]}`
	// tradeNoPrice removes a field that has no default: BACKWARD (new
	// reads old, ignoring price) but not FORWARD (old needs price).
	tradeNoPrice = `{"type":"record","name":"Trade","namespace":"k2.test","fields":[{"name":"symbol","type":"string"}]}`
	quoteV1      = `{"type":"record","name":"Quote","namespace":"k2.test","fields":[{"name":"bid","type":"double"},{"name":"ask","type":"double"}]}`
)

type env struct {
	reg *Registry
	srv *httptest.Server
	sr  *sr.Client
	cl  *Client
	dir string
}

// start serves a registry in dir over httptest, with franz-go's sr client
// (an ordinary Confluent client) and ours pointed at it.
func start(t *testing.T, dir string, opts ...Option) *env {
	t.Helper()
	reg, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	srv := httptest.NewServer(reg.Handler())
	srcl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{reg: reg, srv: srv, sr: srcl, cl: cl, dir: dir}
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if err := e.reg.Close(); err != nil {
		panic(err)
	}
}

func avroSchema(text string) sr.Schema { return sr.Schema{Schema: text} }

func (e *env) register(t *testing.T, subject, text string) int {
	t.Helper()
	id, err := e.sr.RegisterSchema(context.Background(), subject, avroSchema(text), -1, -1)
	if err != nil {
		t.Fatalf("register %s: %v", subject, err)
	}
	return id
}

// call makes a raw request and decodes the JSON answer into a generic
// value, so tests check Confluent's exact shapes, not our structs.
func (e *env) call(t *testing.T, method, path, body string) (int, http.Header, any) {
	t.Helper()
	status, h, raw := e.callRaw(t, method, path, body)
	var v any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
		}
	}
	return status, h, v
}

func (e *env) callRaw(t *testing.T, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", ContentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, bytes.TrimSpace(raw)
}

func schemaBody(text string) string {
	b, _ := json.Marshal(map[string]string{"schema": text})
	return string(b)
}

// wantAPIError checks that err is Confluent's error with the given code.
func wantAPIError(t *testing.T, err error, status, code int) *sr.ResponseError {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a registry response", err, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got HTTP %d error_code %d (%s), want %d / %d", re.StatusCode, re.ErrorCode, re.Message, status, code)
	}
	return re
}

func wantJSON(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Fatalf("got %s, want %s", g, want)
	}
}

func TestRegisterIsIdempotentAndIDsAreShared(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()

	id := e.register(t, "trades-value", tradeV1)
	if id != 1 {
		t.Fatalf("first id %d, want 1", id)
	}
	if again := e.register(t, "trades-value", tradeV1); again != id {
		t.Fatalf("re-registering gave id %d, want %d", again, id)
	}
	if spaced := e.register(t, "trades-value", tradeV1Spaced); spaced != id {
		t.Fatalf("same schema with other whitespace gave id %d, want %d", spaced, id)
	}
	if vs, _ := e.sr.SubjectVersions(ctx, "trades-value"); !slices.Equal(vs, []int{1}) {
		t.Fatalf("versions %v after idempotent registrations, want [1]", vs)
	}
	// The same schema under another subject keeps its global id, as a
	// new version 1 of that subject.
	if other := e.register(t, "trades-archive-value", tradeV1Spaced); other != id {
		t.Fatalf("same schema under another subject got id %d, want %d", other, id)
	}
	ss, err := e.sr.SchemaByVersion(ctx, "trades-archive-value", -1)
	if err != nil {
		t.Fatal(err)
	}
	if ss.ID != id || ss.Version != 1 || ss.Schema.Schema != tradeV1 {
		t.Fatalf("trades-archive-value latest = %+v, want id %d version 1 with the text first registered", ss, id)
	}
	if q := e.register(t, "quotes-value", quoteV1); q != 2 {
		t.Fatalf("a new schema got id %d, want 2", q)
	}
	subjects, err := e.sr.Subjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"quotes-value", "trades-archive-value", "trades-value"}; !slices.Equal(subjects, want) {
		t.Fatalf("subjects %v, want %v", subjects, want)
	}
	// franz-go's CreateSchema goes through /schemas/ids/{id}/versions.
	created, err := e.sr.CreateSchema(ctx, "trades-value", avroSchema(tradeV1))
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != id || created.Version != 1 || created.Subject != "trades-value" {
		t.Fatalf("CreateSchema = %+v", created)
	}
	uses, err := e.sr.SchemaVersionsByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := []sr.SubjectVersion{{Subject: "trades-archive-value", Version: 1}, {Subject: "trades-value", Version: 1}}; !slices.Equal(uses, want) {
		t.Fatalf("versions of id %d: %v, want %v", id, uses, want)
	}
	names, err := e.sr.SubjectsByID(ctx, id)
	if err != nil || !slices.Equal(names, []string{"trades-archive-value", "trades-value"}) {
		t.Fatalf("subjects of id %d: %v %v", id, names, err)
	}

	// Our client agrees.
	cid, err := e.cl.Register(ctx, "trades-value", tradeV1Spaced)
	if err != nil || cid != uint32(id) {
		t.Fatalf("Client.Register = %d, %v; want %d", cid, err, id)
	}
	cid, err = e.cl.Register(ctx, "quotes-value", quoteV1)
	if err != nil || cid != 2 {
		t.Fatalf("Client.Register quotes = %d, %v; want 2", cid, err)
	}
}

func TestVersionsLatestAndShapes(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	id1 := e.register(t, "trades-value", tradeV1)
	id2 := e.register(t, "trades-value", tradeV2)
	if id2 != id1+1 {
		t.Fatalf("v2 id %d, want %d", id2, id1+1)
	}
	vs, err := e.sr.SubjectVersions(ctx, "trades-value")
	if err != nil || !slices.Equal(vs, []int{1, 2}) {
		t.Fatalf("versions %v %v, want [1 2]", vs, err)
	}
	latest, err := e.sr.SchemaByVersion(ctx, "trades-value", -1)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 2 || latest.ID != id2 || latest.Schema.Schema != tradeV2 || latest.Subject != "trades-value" {
		t.Fatalf("latest = %+v", latest)
	}
	text, err := e.sr.SchemaTextByVersion(ctx, "trades-value", 1)
	if err != nil || text != tradeV1 {
		t.Fatalf("raw schema of version 1 = %q, %v", text, err)
	}

	// Exact JSON shapes and media type, as a non-franz client sees them.
	status, h, v := e.call(t, "GET", "/subjects/trades-value/versions/1", "")
	if status != 200 || h.Get("Content-Type") != ContentType {
		t.Fatalf("GET version: %d %s", status, h.Get("Content-Type"))
	}
	wantJSON(t, v, `{"subject":"trades-value","version":1,"id":1,"schema":`+strings.TrimSpace(mustJSON(tradeV1))+`}`)
	_, _, v = e.call(t, "GET", "/subjects/trades-value/versions/latest", "")
	wantJSON(t, v, `{"subject":"trades-value","version":2,"id":2,"schema":`+mustJSON(tradeV2)+`}`)
	_, _, v = e.call(t, "GET", "/subjects/trades-value/versions/-1", "")
	wantJSON(t, v, `{"subject":"trades-value","version":2,"id":2,"schema":`+mustJSON(tradeV2)+`}`)
	_, _, v = e.call(t, "GET", "/subjects/trades-value/versions", "")
	wantJSON(t, v, `[1,2]`)
	_, _, raw := e.callRaw(t, "GET", "/subjects/trades-value/versions/2/schema", "")
	if string(raw) != tradeV2 {
		t.Fatalf("raw schema %s", raw)
	}
	status, _, v = e.call(t, "POST", "/subjects/trades-value/versions", schemaBody(tradeV2))
	if status != 200 {
		t.Fatalf("register status %d", status)
	}
	wantJSON(t, v, `{"id":2}`)
	// Plain JSON is accepted as a request type too.
	req, _ := http.NewRequest("POST", e.srv.URL+"/subjects/trades-value/versions", strings.NewReader(`{"schema":`+mustJSON(tradeV1)+`,"schemaType":"AVRO"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("application/json register: %d", resp.StatusCode)
	}

	// Errors.
	_, err = e.sr.SchemaByVersion(ctx, "trades-value", 3)
	wantAPIError(t, err, 404, 40402)
	_, err = e.sr.SchemaByVersion(ctx, "nope", -1)
	wantAPIError(t, err, 404, 40401)
	_, err = e.sr.SubjectVersions(ctx, "nope")
	wantAPIError(t, err, 404, 40401)
	status, _, v = e.call(t, "GET", "/subjects/trades-value/versions/zero", "")
	if status != 422 || v.(map[string]any)["error_code"].(float64) != 42202 {
		t.Fatalf("bad version: %d %v", status, v)
	}
	status, _, v = e.call(t, "GET", "/no/such/route", "")
	if status != 404 {
		t.Fatalf("unknown route: %d %v", status, v)
	}
	wantJSON(t, v, `{"error_code":404,"message":"HTTP 404 Not Found"}`)
	status, _, v = e.call(t, "PUT", "/subjects/trades-value/versions/1", "")
	if status != 405 {
		t.Fatalf("PUT: %d %v", status, v)
	}
	wantJSON(t, v, `{"error_code":405,"message":"HTTP 405 Method Not Allowed"}`)
	_, _, v = e.call(t, "GET", "/", "")
	wantJSON(t, v, `{}`)
}

func mustJSON(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestLookupAndSchemasByID(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	e.register(t, "trades-value", tradeV1)
	id2 := e.register(t, "trades-value", tradeV2)

	ss, err := e.sr.LookupSchema(ctx, "trades-value", avroSchema(tradeV1Spaced))
	if err != nil {
		t.Fatal(err)
	}
	if ss.Subject != "trades-value" || ss.ID != 1 || ss.Version != 1 || ss.Schema.Schema != tradeV1 {
		t.Fatalf("lookup = %+v", ss)
	}
	_, _, v := e.call(t, "POST", "/subjects/trades-value", schemaBody(tradeV2))
	wantJSON(t, v, `{"subject":"trades-value","version":2,"id":2,"schema":`+mustJSON(tradeV2)+`}`)

	_, err = e.sr.LookupSchema(ctx, "trades-value", avroSchema(quoteV1))
	re := wantAPIError(t, err, 404, 40403)
	if re.Message != "Schema not found" {
		t.Fatalf("message %q", re.Message)
	}
	_, err = e.sr.LookupSchema(ctx, "quotes-value", avroSchema(quoteV1))
	wantAPIError(t, err, 404, 40401)

	s, err := e.sr.SchemaByID(ctx, id2)
	if err != nil || s.Schema != tradeV2 {
		t.Fatalf("schema %d = %q, %v", id2, s.Schema, err)
	}
	_, _, v = e.call(t, "GET", "/schemas/ids/1", "")
	wantJSON(t, v, `{"schema":`+mustJSON(tradeV1)+`}`)
	text, err := e.sr.SchemaTextByID(ctx, 1)
	if err != nil || text != tradeV1 {
		t.Fatalf("raw schema 1 = %q %v", text, err)
	}
	_, err = e.sr.SchemaByID(ctx, 99)
	wantAPIError(t, err, 404, 40403)
	status, _, _ := e.call(t, "GET", "/schemas/ids/x", "")
	if status != 404 {
		t.Fatalf("non-numeric id: %d", status)
	}
	types, err := e.sr.SupportedTypes(ctx)
	if err != nil || !slices.Equal(types, []sr.SchemaType{sr.TypeAvro}) {
		t.Fatalf("types %v %v", types, err)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	for name, text := range map[string]string{
		"not JSON":         `{"type": "record"`,
		"bare word":        `string`,
		"unknown type":     `{"type":"record","name":"T","fields":[{"name":"a","type":"decimalish"}]}`,
		"record no fields": `{"type":"record","name":"T"}`,
	} {
		_, err := e.sr.RegisterSchema(ctx, "s", avroSchema(text), -1, -1)
		re := wantAPIError(t, err, 422, 42201)
		if !strings.HasPrefix(re.Message, "Invalid schema") {
			t.Errorf("%s: message %q", name, re.Message)
		}
	}
	_, err := e.sr.RegisterSchema(ctx, "s", sr.Schema{Schema: `{"type":"string"}`, Type: sr.TypeProtobuf}, -1, -1)
	wantAPIError(t, err, 422, 42201)
	_, err = e.sr.RegisterSchema(ctx, "s", sr.Schema{Schema: tradeV1, References: []sr.SchemaReference{{Name: "x", Subject: "y", Version: 1}}}, -1, -1)
	wantAPIError(t, err, 422, 42201)
	_, err = e.sr.RegisterSchema(ctx, "s", avroSchema(tradeV1), 7, -1)
	wantAPIError(t, err, 422, 42205)

	status, _, v := e.call(t, "POST", "/subjects/s/versions", `{"schema": `)
	if status != 400 || v.(map[string]any)["error_code"].(float64) != 400 {
		t.Fatalf("malformed body: %d %v", status, v)
	}
	status, _, v = e.call(t, "POST", "/subjects/s/versions", `{}`)
	if status != 422 {
		t.Fatalf("no schema: %d %v", status, v)
	}
	wantJSON(t, v, `{"error_code":42201,"message":"Empty schema"}`)
	req, _ := http.NewRequest("POST", e.srv.URL+"/subjects/s/versions", strings.NewReader(schemaBody(tradeV1)))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Fatalf("text/plain body: %d", resp.StatusCode)
	}
	if subjects, _ := e.sr.Subjects(ctx); len(subjects) != 0 {
		t.Fatalf("failed registrations left subjects %v", subjects)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()

	_, _, v := e.call(t, "GET", "/config", "")
	wantJSON(t, v, `{"compatibilityLevel":"BACKWARD"}`)
	global := e.sr.Compatibility(ctx)
	if global[0].Err != nil || global[0].Level != sr.CompatBackward {
		t.Fatalf("global = %+v", global[0])
	}

	// A subject without its own level: 40408, or the global one on request.
	status, _, v := e.call(t, "GET", "/config/trades-value", "")
	if status != 404 || v.(map[string]any)["error_code"].(float64) != 40408 {
		t.Fatalf("unset subject config: %d %v", status, v)
	}
	_, _, v = e.call(t, "GET", "/config/trades-value?defaultToGlobal=true", "")
	wantJSON(t, v, `{"compatibilityLevel":"BACKWARD"}`)

	status, _, v = e.call(t, "PUT", "/config/trades-value", `{"compatibility":"full"}`)
	if status != 200 {
		t.Fatalf("PUT: %d %v", status, v)
	}
	wantJSON(t, v, `{"compatibility":"FULL"}`)
	_, _, v = e.call(t, "GET", "/config/trades-value", "")
	wantJSON(t, v, `{"compatibilityLevel":"FULL"}`)

	res := e.sr.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatForwardTransitive}, "quotes-value")
	if res[0].Err != nil || res[0].Level != sr.CompatForwardTransitive {
		t.Fatalf("sr SetCompatibility = %+v", res[0])
	}
	got := e.sr.Compatibility(ctx, "quotes-value")
	if got[0].Err != nil || got[0].Level != sr.CompatForwardTransitive {
		t.Fatalf("sr Compatibility = %+v", got[0])
	}
	// Setting a level does not create a subject.
	if subjects, _ := e.sr.Subjects(ctx); len(subjects) != 0 {
		t.Fatalf("subjects %v", subjects)
	}

	if err := e.cl.SetCompatibility(ctx, "", CompatNone); err != nil {
		t.Fatal(err)
	}
	_, _, v = e.call(t, "GET", "/config", "")
	wantJSON(t, v, `{"compatibilityLevel":"NONE"}`)
	_, _, v = e.call(t, "GET", "/config/trades-value", "")
	wantJSON(t, v, `{"compatibilityLevel":"FULL"}`)

	status, _, v = e.call(t, "PUT", "/config", `{"compatibility":"SIDEWAYS"}`)
	if status != 422 || v.(map[string]any)["error_code"].(float64) != 42203 {
		t.Fatalf("bad level: %d %v", status, v)
	}
	status, _, v = e.call(t, "PUT", "/config/x", `{}`)
	if status != 422 || v.(map[string]any)["error_code"].(float64) != 42203 {
		t.Fatalf("missing level: %d %v", status, v)
	}
	err := e.cl.SetCompatibility(ctx, "trades-value", "SIDEWAYS")
	if err == nil || !strings.Contains(err.Error(), e.srv.URL) || !strings.Contains(err.Error(), `"trades-value"`) {
		t.Fatalf("bad level through the client: %v", err)
	}
}

func TestBackwardCompatibility(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	e.register(t, "trades-value", tradeV1)

	// An optional field with a default can be added.
	if id := e.register(t, "trades-value", tradeV2); id != 2 {
		t.Fatalf("v2 id %d", id)
	}

	// A required field cannot: the new schema cannot read old data.
	_, err := e.sr.RegisterSchema(ctx, "trades-value", avroSchema(tradeQtyNoDefault), -1, -1)
	re := wantAPIError(t, err, 409, 409)
	for _, want := range []string{
		`Schema being registered is incompatible with an earlier schema for subject "trades-value", details: `,
		`BACKWARD`, `version 2`, `"qty"`,
	} {
		if !strings.Contains(re.Message, want) {
			t.Errorf("message %q lacks %q", re.Message, want)
		}
	}

	// Nor can a type change that is not a promotion.
	_, err = e.sr.RegisterSchema(ctx, "trades-value", avroSchema(tradePriceString), -1, -1)
	re = wantAPIError(t, err, 409, 409)
	if !strings.Contains(re.Message, `field "price"`) || !strings.Contains(re.Message, "string") || !strings.Contains(re.Message, "double") {
		t.Errorf("type change message %q does not name the field and types", re.Message)
	}

	// Removing a field is BACKWARD compatible (the new reader ignores it),
	// as in Confluent; FORWARD refuses it because old readers need it.
	if err := e.cl.SetCompatibility(ctx, "trades-value", CompatForward); err != nil {
		t.Fatal(err)
	}
	_, err = e.cl.Register(ctx, "trades-value", tradeNoPrice)
	if !errors.Is(err, ErrIncompatible) {
		t.Fatalf("FORWARD removal: %v, want ErrIncompatible", err)
	}
	for _, want := range []string{e.srv.URL, `"trades-value"`, `"price"`, "FORWARD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("client error %q lacks %q", err, want)
		}
	}
	if err := e.cl.SetCompatibility(ctx, "trades-value", CompatBackward); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Register(ctx, "trades-value", tradeNoPrice); err != nil {
		t.Fatalf("BACKWARD removal refused: %v", err)
	}

	// Refusals created nothing.
	vs, _ := e.sr.SubjectVersions(ctx, "trades-value")
	if !slices.Equal(vs, []int{1, 2, 3}) {
		t.Fatalf("versions %v", vs)
	}
	// A schema only ever refused did not consume an id.
	if id := e.register(t, "quotes-value", quoteV1); id != 4 {
		t.Fatalf("next id %d, want 4", id)
	}
}

func TestPromotionAndDefaultsAreDistinct(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	intV := `{"type":"record","name":"N","fields":[{"name":"n","type":"int"}]}`
	longV := `{"type":"record","name":"N","fields":[{"name":"n","type":"long"}]}`
	e.register(t, "n", intV)
	if id := e.register(t, "n", longV); id != 2 {
		t.Fatalf("int→long promotion refused or reused: %d", id)
	}
	// Schemas differing only in a default are different schemas with
	// different compatibility; the Parsing Canonical Form (and hamba's
	// fingerprint-keyed compatibility cache) would conflate them.
	withDefault := `{"type":"record","name":"N","fields":[{"name":"n","type":"long"},{"name":"m","type":"long","default":0}]}`
	noDefault := `{"type":"record","name":"N","fields":[{"name":"n","type":"long"},{"name":"m","type":"long"}]}`
	if id := e.register(t, "n", withDefault); id != 3 {
		t.Fatalf("with default: id %d", id)
	}
	e.register(t, "k", longV)
	_, err := e.sr.RegisterSchema(context.Background(), "k", avroSchema(noDefault), -1, -1)
	wantAPIError(t, err, 409, 409)
	if err := e.cl.SetCompatibility(context.Background(), "k", CompatNone); err != nil {
		t.Fatal(err)
	}
	if id := e.register(t, "k", noDefault); id != 4 {
		t.Fatalf("without default: id %d, want a new id 4", id)
	}
}

func TestTransitiveAndFull(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	v1 := `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
	v2 := `{"type":"record","name":"R","fields":[]}`
	v3 := `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":0}]}`
	for _, s := range []string{"plain", "transitive"} {
		e.register(t, s, v1)
		e.register(t, s, v2)
	}
	if err := e.cl.SetCompatibility(ctx, "transitive", CompatBackwardTransitive); err != nil {
		t.Fatal(err)
	}
	// v3 reads v2 data (a defaults) but not v1 data (a is a string).
	if _, err := e.cl.Register(ctx, "plain", v3); err != nil {
		t.Fatalf("BACKWARD against latest only: %v", err)
	}
	_, err := e.cl.Register(ctx, "transitive", v3)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("BACKWARD_TRANSITIVE: %v", err)
	}

	// FULL checks both directions.
	e.register(t, "full", tradeV1)
	if err := e.cl.SetCompatibility(ctx, "full", CompatFull); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{tradeQtyNoDefault, tradeNoPrice} {
		if _, err := e.cl.Register(ctx, "full", bad); !errors.Is(err, ErrIncompatible) {
			t.Fatalf("FULL accepted an incompatible schema: %v", err)
		}
	}
	if _, err := e.cl.Register(ctx, "full", tradeV2); err != nil {
		t.Fatalf("FULL refused an optional field: %v", err)
	}

	// NONE accepts anything Avro.
	if err := e.cl.SetCompatibility(ctx, "full", CompatNone); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Register(ctx, "full", quoteV1); err != nil {
		t.Fatalf("NONE: %v", err)
	}
}

func TestCompatibilityEndpoint(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	e.register(t, "trades-value", tradeV1)
	e.register(t, "trades-value", tradeV2)

	res, err := e.sr.CheckCompatibility(ctx, "trades-value", -1, avroSchema(tradeV2))
	if err != nil || !res.Is {
		t.Fatalf("latest vs itself: %+v %v", res, err)
	}
	res, err = e.sr.CheckCompatibility(ctx, "trades-value", 1, avroSchema(tradeQtyNoDefault))
	if err != nil || res.Is {
		t.Fatalf("required field vs v1: %+v %v", res, err)
	}
	res, err = e.sr.CheckCompatibility(ctx, "trades-value", -2, avroSchema(tradePriceString))
	if err != nil || res.Is {
		t.Fatalf("type change vs all: %+v %v", res, err)
	}
	_, _, v := e.call(t, "POST", "/compatibility/subjects/trades-value/versions/latest", schemaBody(tradeV1))
	wantJSON(t, v, `{"is_compatible":true}`)
	_, _, v = e.call(t, "POST", "/compatibility/subjects/trades-value/versions/latest", schemaBody(tradeQtyNoDefault))
	wantJSON(t, v, `{"is_compatible":false}`)
	_, _, v = e.call(t, "POST", "/compatibility/subjects/trades-value/versions/latest?verbose=true", schemaBody(tradeQtyNoDefault))
	msgs := v.(map[string]any)["messages"].([]any)
	if len(msgs) != 1 || !strings.Contains(msgs[0].(string), `"qty"`) {
		t.Fatalf("verbose messages %v", msgs)
	}
	_, err = e.sr.CheckCompatibility(ctx, "nope", -1, avroSchema(tradeV1))
	wantAPIError(t, err, 404, 40401)
	_, err = e.sr.CheckCompatibility(ctx, "trades-value", 9, avroSchema(tradeV1))
	wantAPIError(t, err, 404, 40402)
	_, err = e.sr.CheckCompatibility(ctx, "trades-value", 1, avroSchema(`{"type":`))
	wantAPIError(t, err, 422, 42201)
	// Checking registers nothing.
	if vs, _ := e.sr.SubjectVersions(ctx, "trades-value"); !slices.Equal(vs, []int{1, 2}) {
		t.Fatalf("versions %v", vs)
	}
}

func TestSubjectNamesNeedingEscapes(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	ctx := context.Background()
	subject := "market/crypto trades?value"
	id := e.register(t, subject, tradeV1)
	ss, err := e.sr.SchemaByVersion(ctx, subject, -1)
	if err != nil || ss.ID != id || ss.Subject != subject {
		t.Fatalf("escaped subject: %+v %v", ss, err)
	}
	subjects, _ := e.sr.Subjects(ctx)
	if !slices.Equal(subjects, []string{subject}) {
		t.Fatalf("subjects %q", subjects)
	}
}
