package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/k2-market-data/k2/internal/query"
)

// cursor is where a paged read continues: after a row's position, in
// the same snapshot (so pages do not shift while the sink commits), for
// the same request. It travels as opaque URL-safe base64.
type cursor struct {
	Table    string         `json:"tb"`
	Snapshot int64          `json:"sn,omitempty"`
	Request  string         `json:"rq"` // fingerprint of the request's filters
	After    query.Position `json:"a"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor reads a cursor K2 issued for this table and request.
func parseCursor(s, table, request string) (*cursor, string) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || len(s) > 4096 || json.Unmarshal(b, &c) != nil || c.After.Key == "" {
		return nil, "is not a cursor K2 issued"
	}
	if c.Table != table {
		return nil, "belongs to " + c.Table + ", not " + table
	}
	if c.Request != request {
		return nil, "was issued for a request with other filters; repeat them unchanged with the cursor"
	}
	return &c, ""
}

// fingerprint names a request's filters, so a cursor is used only with
// the request that issued it.
func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}
