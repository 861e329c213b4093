package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"time"
)

// The error codes of the seed report, one for each way a request fails.
const (
	codeInvalidParameters = "INVALID_PARAMETERS"
	codeNotFound          = "NOT_FOUND"
	codeMethodNotAllowed  = "METHOD_NOT_ALLOWED"
	codeQueryTimeout      = "QUERY_TIMEOUT"
	codeUnavailable       = "SERVICE_UNAVAILABLE"
	codeInternal          = "INTERNAL_ERROR"
	// The guard's refusals.
	codeUnauthorized         = "UNAUTHORIZED"
	codeForbidden            = "FORBIDDEN"
	codeRateLimited          = "RATE_LIMIT_EXCEEDED"
	codePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	codeInvalidContentLength = "INVALID_CONTENT_LENGTH"
)

// errorCodes are every code an error may have.
var errorCodes = []string{codeInvalidParameters, codeNotFound, codeMethodNotAllowed, codeQueryTimeout, codeUnavailable, codeInternal,
	codeUnauthorized, codeForbidden, codeRateLimited, codePayloadTooLarge, codeInvalidContentLength}

// meta is what every answer says about itself.
type meta struct {
	RequestID  string `json:"request_id"`
	Timestamp  string `json:"timestamp" format:"date-time"`
	SnapshotID int64  `json:"snapshot_id,omitempty"`
	Count      *int   `json:"count,omitempty"`
	// Incomplete: the answer should hold records the API no longer has in
	// memory and the lake does not have yet (the sink is stalled).
	Incomplete bool `json:"incomplete,omitempty"`
	// Query repeats what a route made of its parameters, where it derives
	// some (the recent routes' time window).
	Query map[string]any `json:"query,omitempty"`
	// RequestSummary restates what an aggregation was asked (POST
	// /v1/aggregations).
	RequestSummary any `json:"request_summary,omitempty"`
}

type success struct {
	Success bool `json:"success"`
	Data    any  `json:"data"`
	Meta    meta `json:"meta"`
}

type failure struct {
	Success bool         `json:"success"`
	Error   errorMessage `json:"error"`
	Meta    meta         `json:"meta"`
}

type errorMessage struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func newMeta(r *http.Request) meta {
	return meta{RequestID: requestIDOf(r.Context()), Timestamp: time.Now().UTC().Format(time.RFC3339Nano)}
}

// writeData answers 200 with data in the success shape and meta m; count
// is the number of records when data is a list.
func writeData(w http.ResponseWriter, m meta, data any, count int) {
	if count >= 0 {
		m.Count = &count
	}
	if a, ok := data.(jsonAppender); ok {
		writeAppended(w, m, a)
		return
	}
	if v := reflect.ValueOf(data); v.Kind() == reflect.Slice && v.IsNil() {
		data = []any{} // an empty list is [], never null
	}
	writeJSON(w, http.StatusOK, success{Success: true, Data: data, Meta: m})
}

// writeError answers in the one error shape.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string, details map[string]any) {
	if st := stateOf(r.Context()); st != nil {
		st.code.Store(&code)
	}
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, failure{Error: errorMessage{Code: code, Message: message, Details: details}, Meta: newMeta(r)})
}

// jsonAppender is data that writes its own JSON (barList), exactly as
// encoding/json would.
type jsonAppender interface{ appendJSON(b []byte) []byte }

// writeAppended writes the success shape as writeJSON does, the data
// appended by itself.
func writeAppended(w http.ResponseWriter, m meta, data jsonAppender) {
	var o objects
	b := append(o.take(), `{"success":true,"data":`...)
	b = data.appendJSON(b)
	mb, err := json.Marshal(m)
	if err != nil {
		panic(err) // meta is plain data
	}
	b = append(append(append(b, `,"meta":`...), mb...), '}', '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	o.write(w, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// requestID is the caller's X-Request-ID (or X-Correlation-ID) when it is
// a sane token, else a new one.
func requestID(r *http.Request) string {
	for _, h := range []string{"X-Request-ID", "X-Correlation-ID"} {
		if v := r.Header.Get(h); v != "" && len(v) <= 128 && printableASCII(v) {
			return v
		}
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func requestIDOf(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}
