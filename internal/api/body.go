package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// limitBody holds a request's body to the limit. A Content-Length that
// is not an integer is refused (400: net/http refuses most itself, this
// catches what another server in front lets through), one over the limit
// is refused before anything is read (413); and whatever the header says,
// or without one (chunked), the handler reads at most the limit: past it
// the read fails with *http.MaxBytesError (decodeBody answers 413) and
// the connection is closed after the answer. w is the connection's own
// writer, which MaxBytesReader tells to close.
func (g *Guard) limitBody(w, rec http.ResponseWriter, r *http.Request, st *reqState) bool {
	if cls := r.Header.Values("Content-Length"); len(cls) > 0 {
		n, err := strconv.ParseUint(strings.TrimSpace(cls[0]), 10, 63)
		for _, other := range cls[1:] {
			if strings.TrimSpace(other) != strings.TrimSpace(cls[0]) {
				err = errors.New("two different lengths")
			}
		}
		if err != nil {
			g.m.sizeErrors.WithLabelValues("invalid_content_length").Inc()
			writeError(rec, r, http.StatusBadRequest, codeInvalidContentLength,
				fmt.Sprintf("Content-Length %q is not a length in bytes", strings.Join(cls, ", ")), nil)
			return false
		}
		if int64(n) > g.maxBody {
			g.m.sizeExceeded.WithLabelValues(methodLabel(r.Method), st.route).Inc()
			writeError(rec, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
				fmt.Sprintf("the request body (%s MB) is larger than the limit (%s MB)", mb(int64(n)), mb(g.maxBody)),
				map[string]any{"size_mb": mbValue(int64(n)), "limit_mb": mbValue(g.maxBody)})
			return false
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, g.maxBody), st: st}
	}
	return true
}

// limitedBody notes a read past the limit, so the request is counted in
// k2_http_request_size_limit_exceeded_total whatever the handler does.
type limitedBody struct {
	io.ReadCloser
	st *reqState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			b.st.bodyExceeded.Store(true)
		}
	}
	return n, err
}

// mbValue is a size in MB (MiB, as the original counted), to two places.
func mbValue(n int64) float64 { return math.Round(float64(n)/(1<<20)*100) / 100 }

func mb(n int64) string { return strconv.FormatFloat(mbValue(n), 'f', -1, 64) }

// decodeBody reads a request's JSON body into v, for the POST routes:
// exactly one JSON value, no field v does not have. On failure it answers
// — 413 PAYLOAD_TOO_LARGE past the body limit, 400 INVALID_PARAMETERS for
// JSON that is bad (with the byte offset where it went wrong), empty or
// cut short — and returns the error; the route then returns.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One value: anything after it but space is an error too.
		if _, terr := dec.Token(); terr != io.EOF {
			err = terr
			if err == nil {
				err = errTrailing
			}
		}
	}
	if err == nil {
		return nil
	}
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	details := map[string]any{"offset": dec.InputOffset()}
	switch {
	case errors.As(err, &mbe):
		writeError(w, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
			fmt.Sprintf("the request body is larger than the limit (%s MB)", mb(mbe.Limit)), map[string]any{"limit_mb": mbValue(mbe.Limit)})
		return err
	case errors.Is(err, io.EOF):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the request body is empty: a JSON object is expected", nil)
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the request body ends early: before its Content-Length, or inside its JSON value", details)
		return err
	case errors.As(err, &syntax):
		details["offset"] = syntax.Offset
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("the request body is not JSON at byte %d: %v", syntax.Offset, err), details)
		return err
	case errors.As(err, &typ):
		details["offset"] = typ.Offset
		msg := fmt.Sprintf("the request body is a JSON %s, not an object", typ.Value)
		if typ.Field != "" {
			details["parameter"] = typ.Field
			msg = fmt.Sprintf("%s: a JSON %s where a %s is expected", typ.Field, typ.Value, typ.Type.Kind())
		}
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, msg, details)
		return err
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		details["parameter"] = field
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("the request body has a field %q this route does not take", field), details)
		return err
	case errors.Is(err, errTrailing):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the request body holds more than one JSON value", details)
		return err
	}
	// The body could not be read (the client stopped sending, a timeout).
	writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the request body could not be read: "+err.Error(), details)
	return err
}

var errTrailing = errors.New("more than one JSON value")
