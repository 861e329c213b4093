package registry

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// Deletes as Confluent's registry answers them, through franz-go's sr
// client and raw HTTP, and the same state after a restart.
func TestDeleteSoftThenPermanent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := start(t, dir)
	ctx := context.Background()
	id1 := e.register(t, "trades-value", tradeV1)
	id2 := e.register(t, "trades-value", tradeV2)
	idQ := e.register(t, "quotes-value", quoteV1)
	wantCall := func(method, path string, status int, body string) {
		t.Helper()
		got, _, v := e.call(t, method, path, "")
		if got != status {
			t.Fatalf("%s %s: HTTP %d %v, want %d %s", method, path, got, v, status, body)
		}
		wantJSON(t, v, body)
	}
	wantCode := func(method, path string, status, code int) {
		t.Helper()
		got, _, v := e.call(t, method, path, "")
		m, _ := v.(map[string]any)
		if got != status || m["error_code"] != float64(code) {
			t.Fatalf("%s %s: HTTP %d %v, want %d with error_code %d", method, path, got, v, status, code)
		}
	}

	// One version: permanent only after soft.
	wantCode("DELETE", "/subjects/trades-value/versions/2?permanent=true", 404, 40407)
	wantCall("DELETE", "/subjects/trades-value/versions/latest", 200, `2`)
	wantCode("DELETE", "/subjects/trades-value/versions/2", 404, 40406)
	wantCall("GET", "/subjects/trades-value/versions", 200, `[1]`)
	wantCall("GET", "/subjects/trades-value/versions?deleted=true", 200, `[1,2]`)
	wantCode("GET", "/subjects/trades-value/versions/2", 404, 40402)
	wantCall("GET", "/subjects/trades-value/versions/2?deleted=true", 200,
		fmt.Sprintf(`{"subject":"trades-value","version":2,"id":%d,"schema":%q}`, id2, tradeV2))
	if ss, err := e.sr.SchemaByVersion(ctx, "trades-value", -1); err != nil || ss.Version != 1 {
		t.Fatalf("latest after deleting version 2: %+v %v", ss, err)
	}
	if s, err := e.sr.SchemaByID(ctx, id2); err != nil || s.Schema != tradeV2 {
		t.Fatalf("a soft-deleted version's id must still resolve for old records: %+v %v", s, err)
	}
	if err := e.sr.DeleteSchema(ctx, "trades-value", 2, sr.HardDelete); err != nil {
		t.Fatal(err)
	}
	wantCall("GET", "/subjects/trades-value/versions?deleted=true", 200, `[1]`)
	_, err := e.sr.SchemaByID(ctx, id2)
	wantAPIError(t, err, 404, 40403)
	// The number is free again; the schema keeps its id.
	if id := e.register(t, "trades-value", tradeV2); id != id2 {
		t.Fatalf("tradeV2 registered again got id %d, want %d", id, id2)
	}
	wantCall("GET", "/subjects/trades-value/versions", 200, `[1,2]`)

	// A whole subject.
	wantCode("DELETE", "/subjects/trades-value?permanent=true", 404, 40405)
	deleted, err := e.sr.DeleteSubject(ctx, "trades-value", sr.SoftDelete)
	if err != nil || !slices.Equal(deleted, []int{1, 2}) {
		t.Fatalf("soft delete of trades-value: %v %v", deleted, err)
	}
	wantCode("DELETE", "/subjects/trades-value", 404, 40404)
	wantCall("GET", "/subjects", 200, `["quotes-value"]`)
	wantCall("GET", "/subjects?deleted=true", 200, `["quotes-value","trades-value"]`)
	wantCode("GET", "/subjects/trades-value/versions", 404, 40401)
	if status, _, v := e.call(t, "POST", "/subjects/trades-value", schemaBody(tradeV1)); status != 404 {
		t.Fatalf("lookup in a soft-deleted subject: %d %v", status, v)
	}
	// Nothing live to be incompatible with: a schema that could not read
	// tradeV1 is taken, as a new version number (soft-deleted ones are kept).
	if id := e.register(t, "trades-value", tradePriceString); id != idQ+1 {
		t.Fatalf("incompatible schema after soft delete: id %d, want %d", id, idQ+1)
	}
	wantCall("GET", "/subjects/trades-value/versions?deleted=true", 200, `[1,2,3]`)

	// Permanent: the subject's own level goes with it.
	if err := e.cl.SetCompatibility(ctx, "quotes-value", CompatNone); err != nil {
		t.Fatal(err)
	}
	wantCall("GET", "/config/quotes-value", 200, `{"compatibilityLevel":"NONE"}`)
	if _, err := e.sr.DeleteSubject(ctx, "quotes-value", sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	wantCall("DELETE", "/subjects/quotes-value?permanent=true", 200, `[1]`)
	wantCode("DELETE", "/subjects/quotes-value?permanent=true", 404, 40401)
	wantCode("GET", "/config/quotes-value", 404, 40408)
	wantCall("GET", "/subjects?deleted=true", 200, `["trades-value"]`)
	_, err = e.sr.SchemaByID(ctx, idQ)
	wantAPIError(t, err, 404, 40403)
	wantCode("DELETE", "/subjects/nope", 404, 40401)
	wantCode("DELETE", "/subjects/trades-value/versions/9", 404, 40402)
	wantCode("DELETE", "/subjects/trades-value/versions/0", 422, 42202)

	// The log holds the deletes: a restart serves the same registry.
	state := func() string {
		var out string
		for _, path := range []string{"/subjects?deleted=true", "/subjects", "/subjects/trades-value/versions?deleted=true",
			"/subjects/trades-value/versions", fmt.Sprintf("/schemas/ids/%d", id1), fmt.Sprintf("/schemas/ids/%d", idQ)} {
			status, _, raw := e.callRaw(t, "GET", path, "")
			out += fmt.Sprintf("%s %d %s\n", path, status, raw)
		}
		return out
	}
	before := state()
	e.stop()
	e = start(t, dir)
	if after := state(); after != before {
		t.Fatalf("after a restart:\n%s\nbefore:\n%s", after, before)
	}
	// Ids continue after the highest ever given.
	if id := e.register(t, "other-value", `{"type":"record","name":"O","fields":[{"name":"a","type":"int"}]}`); id != idQ+2 {
		t.Fatalf("next id %d, want %d", id, idQ+2)
	}
}
