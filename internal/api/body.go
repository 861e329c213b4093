package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// maxBody bounds a request body.
const maxBody = 10 << 20

// decodeBody reads a JSON request body into v, answering the error itself
// when it cannot: 413 past the size limit, 400 for anything but one JSON
// value.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "the request body is larger than the limit", map[string]any{"limit_bytes": tooBig.Limit})
	case errors.Is(err, io.EOF):
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the request needs a JSON body", nil)
	case err != nil:
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the body is not valid JSON: "+err.Error(), map[string]any{"offset": dec.InputOffset()})
	default:
		return true
	}
	return false
}
