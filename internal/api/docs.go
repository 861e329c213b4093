package api

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// GET /docs: the API's page for people, generated from the OpenAPI
// document: a section per route with its parameters, body, answers and
// a curl example. It is one self-contained page (inline CSS, no script):
// nothing is fetched from anywhere else.

type docsRoute struct {
	ID, Method, Path, Summary, Doc string
	Params, Body                   []docsParam
	Answers                        []string
	Errors                         []string
	Curl                           string
	Public                         bool
}

type docsParam struct {
	Name, In, Bounds, Doc string
	Required              bool
}

// docsPage renders the page of document d; host and keyed shape the
// curl examples.
func docsPage(d *document, host string, keyed bool) *docsView {
	v := &docsView{Info: d.Info, Keyed: keyed}
	for _, op := range d.ops {
		rt := op.route
		r := docsRoute{ID: op.OperationID, Method: rt.method, Path: rt.path, Summary: op.Summary, Doc: op.Description, Public: rt.public}
		for _, d := range rt.params {
			p := docParam(d)
			r.Params = append(r.Params, docsParam{Name: p.Name, In: p.In, Bounds: bounds(p.Schema), Doc: p.Description, Required: p.Required})
		}
		for _, d := range rt.body {
			r.Body = append(r.Body, docsParam{Name: d.name, In: "body", Bounds: bounds(paramSchema(d)), Doc: d.doc, Required: d.required})
		}
		if rt.byKind != nil {
			r.Doc += " Members of one table: data_type chooses it (min_ and max_ name its decimal columns)."
		}
		for ct := range op.Responses["200"].Content {
			r.Answers = append(r.Answers, ct)
		}
		slices.Sort(r.Answers)
		for status, resp := range op.Responses {
			if status != "200" {
				r.Errors = append(r.Errors, status+" "+strings.TrimPrefix(resp.Ref, "#/components/responses/"))
			}
		}
		slices.Sort(r.Errors)
		r.Curl = curl(op, host, keyed && !rt.public)
		v.Routes = append(v.Routes, r)
	}
	return v
}

type docsView struct {
	Info   docInfo
	Keyed  bool
	Routes []docsRoute
}

// bounds says in a few words what a parameter's schema allows.
func bounds(s schema) string {
	var parts []string
	switch t, _ := s["type"].(string); {
	case s["enum"] != nil:
		parts = append(parts, "one of "+strings.Join(s["enum"].([]string), ", "))
	case s["format"] == "date-time":
		parts = append(parts, "RFC 3339 time")
	case s["format"] == "date":
		parts = append(parts, "YYYY-MM-DD")
	case t == "integer":
		parts = append(parts, fmt.Sprintf("integer %v–%v", s["minimum"], s["maximum"]))
	case t == "array":
		parts = append(parts, fmt.Sprintf("list of at most %v: %s", s["maxItems"], bounds(s["items"].(schema))))
	case s["pattern"] == decimalParamPattern:
		parts = append(parts, "decimal")
	case s["maxLength"] != nil:
		parts = append(parts, fmt.Sprintf("text, at most %v bytes", s["maxLength"]))
	default:
		parts = append(parts, t)
	}
	if d, ok := s["default"]; ok {
		parts = append(parts, fmt.Sprintf("default %v", d))
	}
	return strings.Join(parts, "; ")
}

// curl is a route's example request: its required parameters, and those
// its example shows.
func curl(op *operation, host string, keyed bool) string {
	rt := op.route
	path, query := rt.path, []string{}
	for _, d := range rt.params {
		switch {
		case d.in == "path":
			path = strings.Replace(path, "{"+d.name+"}", escape(d.example), 1)
		case d.in != "header" && (d.required || d.sample):
			query = append(query, d.name+"="+escape(d.example))
		}
	}
	if len(query) > 0 {
		path += "?" + strings.Join(query, "&")
	}
	cmd := "curl -s"
	if _, ok := op.Responses["200"].Content["text/event-stream"]; ok {
		cmd = "curl -sN" // events as they come
	}
	if keyed {
		cmd += ` -H "X-API-Key: $K2_KEY"`
	}
	cmd += " 'http://" + host + path + "'"
	if op.RequestBody != nil {
		b, _ := json.Marshal(op.RequestBody.Content["application/json"].Example)
		cmd += " -H 'Content-Type: application/json' -d '" + strings.ReplaceAll(string(b), "'", `'\''`) + "'"
	}
	return cmd
}

// escape escapes a query value, keeping what a shell and a URL take as it is.
func escape(v string) string {
	var b strings.Builder
	for _, c := range []byte(v) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~:,", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// docs answers GET /docs.
func (s *Server) docs(w http.ResponseWriter, r *http.Request, _ *params) {
	_, d := s.spec()
	host := r.Host
	if host == "" || strings.ContainsAny(host, "'\"\\ <>") {
		host = "127.0.0.1:8000"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := docsTemplate.Execute(w, docsPage(d, host, s.guard.keys != nil)); err != nil {
		s.log.Warn("writing /docs failed", "error", err)
	}
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Info.Title}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:1em 2em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:2em;font-size:1.1em;border-top:1px solid #ccc;padding-top:1em}
code,pre{font:13px ui-monospace,monospace}pre{background:#f4f4f4;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.m{display:inline-block;min-width:3.5em;padding:0 .4em;border-radius:3px;color:#fff;text-align:center}
.GET{background:#2a7}.POST{background:#27a}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border-bottom:1px solid #e4e4e4;padding:.25em .5em;text-align:left;vertical-align:top}
th{font-weight:600}.req{color:#b30}.small{color:#666;font-size:.9em}
nav a{margin-right:1em;white-space:nowrap}
</style></head><body>
<h1>{{.Info.Title}}</h1>
<p class="small">version {{.Info.Version}} · the machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1)</p>
<p>{{.Info.Description}}</p>
{{if .Keyed}}<p>This API asks for a key: send it as <code>X-API-Key: &lt;key&gt;</code> or <code>Authorization: Bearer &lt;key&gt;</code>
(the examples read it from <code>$K2_KEY</code>).</p>{{end}}
<nav>{{range .Routes}}<a href="#{{.ID}}"><code>{{.Method}} {{.Path}}</code></a> {{end}}</nav>
{{range .Routes}}
<h2 id="{{.ID}}"><span class="m {{.Method}}">{{.Method}}</span> <code>{{.Path}}</code></h2>
<p>{{.Summary}}.{{if .Doc}} {{.Doc}}{{end}}{{if .Public}} <em>Public: no key needed.</em>{{end}}</p>
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>values</th><th></th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Bounds}}</td><td>{{.Doc}}</td></tr>
{{end}}</table>{{end}}
{{if .Body}}<p>A JSON object of:</p><table><tr><th>member</th><th>values</th><th></th></tr>
{{range .Body}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.Bounds}}</td><td>{{.Doc}}</td></tr>
{{end}}</table>{{end}}
<p class="small">Answers {{range $i, $a := .Answers}}{{if $i}}, {{end}}<code>{{$a}}</code>{{end}}{{if .Errors}}; errors {{range $i, $e := .Errors}}{{if $i}}, {{end}}{{$e}}{{end}}{{end}}.</p>
<pre>{{.Curl}}</pre>
{{end}}
</body></html>
`))
