package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// Every route the server's mux serves is in the OpenAPI document, and
// every operation of the document is served: a request to its path (the
// placeholders filled with their examples) reaches exactly that route on
// the server's mux, and the server on a listener's mux that Register
// mounted it on. A route put on the mux without a declaration in the
// route table fails here.
func TestEveryRouteIsDocumented(t *testing.T) {
	s := New(nil, Options{})
	b, _ := s.spec()
	var d struct {
		Paths      map[string]map[string]struct{ Parameters []map[string]any }
		Components struct{ Parameters map[string]map[string]any }
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	listener := http.NewServeMux()
	s.Register(listener)
	var documented []string
	for path, item := range d.Paths {
		for method, op := range item {
			pattern := strings.ToUpper(method) + " " + path
			documented = append(documented, pattern)
			url := path
			for _, p := range op.Parameters {
				if ref, ok := p["$ref"].(string); ok {
					p = d.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")]
				}
				if p["in"] == "path" {
					url = strings.Replace(url, "{"+p["name"].(string)+"}", fmt.Sprint(p["example"]), 1)
				}
			}
			if strings.Contains(url, "{") {
				t.Errorf("%s: a path parameter is not declared: %s", pattern, url)
			}
			r := httptest.NewRequest(strings.ToUpper(method), url, nil)
			if _, got := s.mux.Handler(r); got != pattern {
				t.Errorf("%s %s reaches %q, not %q", r.Method, url, got, pattern)
			}
			if h, _ := listener.Handler(r); h != http.Handler(s) {
				t.Errorf("%s %s: Register does not mount it", r.Method, url)
			}
		}
	}
	slices.Sort(documented)
	served := slices.Sorted(slices.Values(s.mux.patterns))
	if !slices.Equal(served, documented) {
		t.Errorf("the mux serves\n%s\nthe document has\n%s", strings.Join(served, "\n"), strings.Join(documented, "\n"))
	}
	if len(served) < 20 {
		t.Errorf("only %d routes", len(served))
	}
	// Each parameter has an example, which the document carries and the
	// tests of the document send.
	for _, rt := range s.routeTable {
		for _, d := range append(slices.Clone(rt.params), rt.body...) {
			if d.example == "" || d.doc == "" {
				t.Errorf("%s: parameter %s has no example or no description", rt.pattern(), d.name)
			}
		}
	}
}
