package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ContentType is the media type of Confluent's REST API, which this
// registry answers with and which clients send.
const ContentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds a request body: schemas are kilobytes, and an unbounded
// read would let one request exhaust memory.
const maxBody = 8 << 20

// Handler returns the registry's HTTP API, to be mounted at the root of a
// server (Confluent clients join their paths to the URL they are given).
func (r *Registry) Handler() http.Handler { return r.handler }

func (r *Registry) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, req, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, req, http.StatusOK, []string{"AVRO"})
	})
	mux.HandleFunc("GET /mode", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, req, http.StatusOK, map[string]string{"mode": "READWRITE"})
	})

	mux.HandleFunc("GET /subjects", r.getSubjects)
	mux.HandleFunc("GET /subjects/{subject}/versions", r.getVersions)
	mux.HandleFunc("POST /subjects/{subject}/versions", r.postVersion)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", r.getVersion)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", r.getVersionSchema)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}/referencedby", r.getReferencedBy)
	mux.HandleFunc("POST /subjects/{subject}", r.postLookup)
	mux.HandleFunc("DELETE /subjects/{subject}", r.deleteSubject)
	mux.HandleFunc("DELETE /subjects/{subject}/versions/{version}", r.deleteVersion)

	mux.HandleFunc("GET /schemas/ids/{id}", r.getSchemaByID)
	mux.HandleFunc("GET /schemas/ids/{id}/schema", r.getSchemaTextByID)
	mux.HandleFunc("GET /schemas/ids/{id}/subjects", r.getSubjectsByID)
	mux.HandleFunc("GET /schemas/ids/{id}/versions", r.getVersionsByID)

	mux.HandleFunc("GET /config", r.getConfig)
	mux.HandleFunc("PUT /config", r.putConfig)
	mux.HandleFunc("GET /config/{subject}", r.getConfig)
	mux.HandleFunc("PUT /config/{subject}", r.putConfig)

	mux.HandleFunc("POST /compatibility/subjects/{subject}/versions/{version}", r.postCompatibility)
	mux.HandleFunc("POST /compatibility/subjects/{subject}/versions", r.postCompatibility)

	return jsonErrors(mux)
}

// apiError is Confluent's error body; status is the HTTP status it goes
// with.
type apiError struct {
	status  int
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func errSubjectNotFound(subject string) *apiError {
	return &apiError{status: 404, Code: 40401, Message: fmt.Sprintf("Subject '%s' not found.", subject)}
}

func errSchemaIDNotFound(id int) *apiError {
	return &apiError{status: 404, Code: 40403, Message: fmt.Sprintf("Schema %d not found", id)}
}

func errInvalidSchema(err error) *apiError {
	return &apiError{status: 422, Code: 42201, Message: "Invalid schema: " + err.Error()}
}

func errIncompatible(subject string, msgs []string) *apiError {
	return &apiError{status: 409, Code: 409, Message: fmt.Sprintf(
		"Schema being registered is incompatible with an earlier schema for subject %q, details: [%s]",
		subject, strings.Join(msgs, "; "))}
}

func errStore(what string, err error) *apiError {
	return &apiError{status: 500, Code: 50001, Message: fmt.Sprintf("Error while %s: %v", what, err)}
}

var errInvalidLevel = &apiError{status: 422, Code: 42203, Message: "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"}

// writeJSON answers in Confluent's media type unless the client asked for
// plain JSON only.
func writeJSON(w http.ResponseWriter, req *http.Request, status int, v any) {
	ct := ContentType
	if accept := req.Header.Get("Accept"); accept != "" &&
		!strings.Contains(accept, "application/vnd.schemaregistry") &&
		!strings.Contains(accept, "*/*") && strings.Contains(accept, "application/json") {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // schema text goes back as it came
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, req *http.Request, e *apiError) {
	writeJSON(w, req, e.status, e)
}

// decodeBody reads a JSON request body in one of the media types
// Confluent accepts.
func decodeBody(req *http.Request, into any) *apiError {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return &apiError{status: 415, Code: 415, Message: "HTTP 415 Unsupported Media Type"}
		case mt == ContentType, mt == "application/vnd.schemaregistry+json", mt == "application/json", mt == "application/octet-stream":
		default:
			return &apiError{status: 415, Code: 415, Message: "HTTP 415 Unsupported Media Type: " + mt}
		}
	}
	body := http.MaxBytesReader(nil, req.Body, maxBody)
	if err := json.NewDecoder(body).Decode(into); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{status: 422, Code: 42209, Message: fmt.Sprintf("Request body exceeds %d bytes", maxBody)}
		}
		return &apiError{status: 400, Code: 400, Message: "Malformed JSON request body: " + err.Error()}
	}
	return nil
}

// schemaRequest is the body of register, lookup and compatibility
// requests.
type schemaRequest struct {
	Schema     *string           `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
	ID         int               `json:"id"`
	Version    int               `json:"version"`
}

// readSchemaRequest decodes a schema body and refuses what this registry
// does not implement rather than silently ignoring it.
// The returned body's Schema is non-nil.
func readSchemaRequest(req *http.Request) (schemaRequest, *apiError) {
	var body schemaRequest
	if e := decodeBody(req, &body); e != nil {
		return body, e
	}
	if body.Schema == nil || strings.TrimSpace(*body.Schema) == "" {
		return body, &apiError{status: 422, Code: 42201, Message: "Empty schema"}
	}
	if t := strings.ToUpper(body.SchemaType); t != "" && t != "AVRO" {
		return body, &apiError{status: 422, Code: 42201, Message: fmt.Sprintf("Invalid schema: schemaType %s is not supported; this registry serves AVRO only", body.SchemaType)}
	}
	if len(body.References) > 0 {
		return body, &apiError{status: 422, Code: 42201, Message: "Invalid schema: schema references are not supported by this registry"}
	}
	return body, nil
}

// subjectOf returns the {subject} path value, checked as Confluent checks
// subject names: non-empty, valid UTF-8, no control characters.
func subjectOf(req *http.Request) (string, *apiError) {
	s := req.PathValue("subject")
	if s == "" || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", &apiError{status: 422, Code: 42208, Message: fmt.Sprintf("Invalid subject %q", s)}
	}
	return s, nil
}

// versionOf parses {version}: a positive number, or "latest" / -1 as
// Confluent allows, returned as -1.
func versionOf(req *http.Request) (int, *apiError) {
	s := req.PathValue("version")
	if s == "latest" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n == 0 || n < -1 {
		return 0, &apiError{status: 422, Code: 42202, Message: fmt.Sprintf(
			"The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", s)}
	}
	return n, nil
}

func idOf(req *http.Request) (int, *apiError) {
	s := req.PathValue("id")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, &apiError{status: 404, Code: 40403, Message: fmt.Sprintf("Schema %s not found", s)}
	}
	return n, nil
}

// flag reads a boolean query parameter (deleted=true, permanent=true...).
func flag(req *http.Request, name string) bool {
	b, _ := strconv.ParseBool(req.URL.Query().Get(name))
	return b
}

func (r *Registry) getSubjects(w http.ResponseWriter, req *http.Request) {
	names := r.subjectNames(flag(req, "deleted"))
	if prefix := req.URL.Query().Get("subjectPrefix"); prefix != "" {
		kept := names[:0]
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				kept = append(kept, n)
			}
		}
		names = kept
	}
	writeJSON(w, req, http.StatusOK, names)
}

func (r *Registry) getVersions(w http.ResponseWriter, req *http.Request) {
	vs, e := r.versionNumbers(req.PathValue("subject"), flag(req, "deleted"))
	if e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, vs)
}

// versionResponse is Confluent's subject-version body. SchemaType is
// omitted for AVRO, as Confluent omits it.
type versionResponse struct {
	Subject    string `json:"subject"`
	Version    int    `json:"version"`
	ID         int    `json:"id"`
	SchemaType string `json:"schemaType,omitempty"`
	Schema     string `json:"schema"`
}

func (r *Registry) entry(w http.ResponseWriter, req *http.Request) (*schemaEntry, bool) {
	n, e := versionOf(req)
	if e == nil {
		var v *schemaEntry
		if v, e = r.version(req.PathValue("subject"), n, flag(req, "deleted")); e == nil {
			return v, true
		}
	}
	writeError(w, req, e)
	return nil, false
}

func (r *Registry) getVersion(w http.ResponseWriter, req *http.Request) {
	if v, ok := r.entry(w, req); ok {
		writeJSON(w, req, http.StatusOK, versionResponse{Subject: req.PathValue("subject"), Version: v.version, ID: v.id, Schema: v.text})
	}
}

// getVersionSchema returns the schema itself as the body, unwrapped, which
// is what tools piping a schema to a file want.
func (r *Registry) getVersionSchema(w http.ResponseWriter, req *http.Request) {
	if v, ok := r.entry(w, req); ok {
		writeRaw(w, v.text)
	}
}

func (r *Registry) getReferencedBy(w http.ResponseWriter, req *http.Request) {
	if _, ok := r.entry(w, req); ok {
		writeJSON(w, req, http.StatusOK, []int{}) // references are not supported, so nothing refers
	}
}

func writeRaw(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}

func (r *Registry) postVersion(w http.ResponseWriter, req *http.Request) {
	subject, e := subjectOf(req)
	if e != nil {
		writeError(w, req, e)
		return
	}
	body, e := readSchemaRequest(req)
	if e != nil {
		writeError(w, req, e)
		return
	}
	if body.ID > 0 || body.Version > 0 {
		// Confluent allows choosing the id and version only in IMPORT
		// mode, for migrating registries; this one has no modes.
		writeError(w, req, &apiError{status: 422, Code: 42205, Message: fmt.Sprintf("Subject '%s' is not in import mode: an explicit id or version cannot be registered", subject)})
		return
	}
	id, e := r.register(subject, *body.Schema)
	if e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, map[string]int{"id": id})
}

func (r *Registry) postLookup(w http.ResponseWriter, req *http.Request) {
	body, e := readSchemaRequest(req)
	if e != nil {
		writeError(w, req, e)
		return
	}
	subject := req.PathValue("subject")
	v, e := r.lookup(subject, *body.Schema)
	if e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, versionResponse{Subject: subject, Version: v.version, ID: v.id, Schema: v.text})
}

// deleteSubject soft-deletes every version of a subject, or with
// permanent=true drops a soft-deleted subject, and answers the version
// numbers deleted, as Confluent does.
func (r *Registry) deleteSubject(w http.ResponseWriter, req *http.Request) {
	subject, e := subjectOf(req)
	var deleted []int
	if e == nil {
		deleted, e = r.deleteVersions(subject, 0, flag(req, "permanent"))
	}
	if e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, deleted)
}

// deleteVersion soft-deletes one version (or "latest"), or with
// permanent=true drops a soft-deleted one, and answers its number.
func (r *Registry) deleteVersion(w http.ResponseWriter, req *http.Request) {
	subject, e := subjectOf(req)
	n := 0
	if e == nil {
		n, e = versionOf(req)
	}
	var deleted []int
	if e == nil {
		deleted, e = r.deleteVersions(subject, n, flag(req, "permanent"))
	}
	if e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, deleted[0])
}

func (r *Registry) schemaEntryByID(w http.ResponseWriter, req *http.Request) (*schemaEntry, bool) {
	id, e := idOf(req)
	if e == nil {
		var s *schemaEntry
		if s, e = r.schemaByID(id); e == nil {
			return s, true
		}
	}
	writeError(w, req, e)
	return nil, false
}

func (r *Registry) getSchemaByID(w http.ResponseWriter, req *http.Request) {
	if s, ok := r.schemaEntryByID(w, req); ok {
		writeJSON(w, req, http.StatusOK, map[string]string{"schema": s.text})
	}
}

func (r *Registry) getSchemaTextByID(w http.ResponseWriter, req *http.Request) {
	if s, ok := r.schemaEntryByID(w, req); ok {
		writeRaw(w, s.text)
	}
}

// usagesByID is where the schema of the request's id is registered, or
// false once the error has been written.
func (r *Registry) usagesByID(w http.ResponseWriter, req *http.Request) ([]subjectVersion, bool) {
	id, e := idOf(req)
	if e == nil {
		var uses []subjectVersion
		if uses, e = r.usages(id); e == nil {
			return uses, true
		}
	}
	writeError(w, req, e)
	return nil, false
}

func (r *Registry) getSubjectsByID(w http.ResponseWriter, req *http.Request) {
	uses, ok := r.usagesByID(w, req)
	if !ok {
		return
	}
	names := []string{}
	for _, u := range uses {
		if len(names) == 0 || names[len(names)-1] != u.Subject {
			names = append(names, u.Subject)
		}
	}
	writeJSON(w, req, http.StatusOK, names)
}

func (r *Registry) getVersionsByID(w http.ResponseWriter, req *http.Request) {
	if uses, ok := r.usagesByID(w, req); ok {
		writeJSON(w, req, http.StatusOK, uses)
	}
}

// getConfig answers {"compatibilityLevel": …}. For a subject without its
// own level Confluent answers 40408 unless defaultToGlobal=true, so a
// client can tell "inherits" from "set to the same value".
func (r *Registry) getConfig(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	global, own := r.levels(subject)
	level := global
	if subject != "" {
		level = own
		if level == "" {
			if !flag(req, "defaultToGlobal") {
				writeError(w, req, &apiError{status: 404, Code: 40408, Message: fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", subject)})
				return
			}
			level = global
		}
	}
	writeJSON(w, req, http.StatusOK, map[string]string{"compatibilityLevel": level})
}

// putConfig takes and answers {"compatibility": …}: Confluent names the
// field differently on PUT than on GET, and clients depend on both.
func (r *Registry) putConfig(w http.ResponseWriter, req *http.Request) {
	subject := ""
	if req.PathValue("subject") != "" {
		var e *apiError
		if subject, e = subjectOf(req); e != nil {
			writeError(w, req, e)
			return
		}
	}
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	if e := decodeBody(req, &body); e != nil {
		writeError(w, req, e)
		return
	}
	level, ok := parseLevel(body.Compatibility)
	if !ok {
		writeError(w, req, errInvalidLevel)
		return
	}
	if e := r.setLevel(subject, level); e != nil {
		writeError(w, req, e)
		return
	}
	writeJSON(w, req, http.StatusOK, map[string]string{"compatibility": level})
}

// postCompatibility answers {"is_compatible": bool}, adding the reasons
// under "messages" when verbose=true, as Confluent does.
func (r *Registry) postCompatibility(w http.ResponseWriter, req *http.Request) {
	all := req.PathValue("version") == ""
	n := 0
	if !all {
		var e *apiError
		if n, e = versionOf(req); e != nil {
			writeError(w, req, e)
			return
		}
	}
	body, e := readSchemaRequest(req)
	if e != nil {
		writeError(w, req, e)
		return
	}
	msgs, e := r.compatibility(req.PathValue("subject"), n, all, *body.Schema)
	if e != nil {
		writeError(w, req, e)
		return
	}
	resp := struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages,omitempty"`
	}{IsCompatible: len(msgs) == 0}
	if flag(req, "verbose") {
		resp.Messages = msgs
	}
	writeJSON(w, req, http.StatusOK, resp)
}

// jsonErrors turns the mux's own plain-text 404 and 405 answers into
// Confluent's JSON error body, so clients that decode every error body get
// one here too.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		next.ServeHTTP(&errorRewriter{ResponseWriter: w}, req)
	})
}

type errorRewriter struct {
	http.ResponseWriter
	swallow bool // the mux's plain-text body is being replaced
}

func (e *errorRewriter) WriteHeader(status int) {
	h := e.Header()
	if status >= 400 && strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		h.Del("X-Content-Type-Options")
		h.Set("Content-Type", ContentType)
		e.ResponseWriter.WriteHeader(status)
		msg := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
		b, _ := json.Marshal(apiError{Code: status, Message: msg})
		_, _ = e.ResponseWriter.Write(append(b, '\n'))
		e.swallow = true
		return
	}
	e.ResponseWriter.WriteHeader(status)
}

func (e *errorRewriter) Write(b []byte) (int, error) {
	if e.swallow {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}
