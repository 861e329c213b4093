package api

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/k2-market-data/k2/internal/record"
)

// kindBody reads a POST body naming a table in data_type (the original's
// name; trades by default) and the record parameters that table takes
// but for those leave drops, with more allowed; it answers any error itself.
func (s *Server) kindBody(w http.ResponseWriter, r *http.Request, leave []string, more ...string) (record.Any, *params, bool) {
	body, ok := decodeObject(w, r)
	if !ok {
		return nil, nil, false
	}
	name, _ := body["data_type"].(string)
	if name == "" {
		name = "trades"
	}
	k, err := record.ByTable(name)
	if err != nil {
		p := &params{}
		p.fail("data_type", "%v", err)
		s.answer(w, r, p.err, nil)
		return nil, nil, false
	}
	names := slices.DeleteFunc(recordParams(k), func(n string) bool { return slices.Contains(leave, n) })
	return k, bodyToParams(body, append(append(names, "data_type"), more...)), true
}

// replay answers POST /v1/replay: every record of a table in a time range
// (start_time and end_time required), oldest first, as NDJSON by default
// (json, csv, parquet and arrow too), streamed however many there are. It
// reads one snapshot throughout (snapshot_id or as_of_*, else the current
// one): the lake as it stood, not the stream after it. Every batch_size
// records (1,000; 100–10,000) an NDJSON answer has a checkpoint line
// {"cursor":…,"count":…}; a client cut off sends that cursor with the same
// body to continue after the checkpoint's last record.
func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	k, p, ok := s.kindBody(w, r, []string{"order", "limit", "offset"}, "batch_size", "snapshot_id")
	if !ok {
		return
	}
	if id := p.q.Get("snapshot_id"); id != "" { // the original's name
		if p.q.Get("as_of_snapshot") != "" {
			p.fail("snapshot_id", "give snapshot_id or as_of_snapshot, not both")
		}
		p.q.Set("as_of_snapshot", id)
	}
	for _, need := range []string{"start_time", "end_time"} {
		if p.q.Get(need) == "" {
			p.fail(need, "is required")
		}
	}
	format := p.q.Get("format")
	if format == "" || format == "ndjson" {
		p.q.Del("format")
	}
	batch := int(p.integer("batch_size", 1000, 100, 10_000))
	p.q.Set("order", "asc")
	req := p.recordRequest(k, s.o.MaxSpan, limits{def: 1 << 62, max: 1 << 62})
	if format == "" || format == "ndjson" {
		req.format = "ndjson"
	}
	req.fresh, req.batch = false, batch
	s.readRecords(w, r, k, columnsOf(k), req)
}

// snapshotQuery answers POST /v1/snapshots/{id}/query: a record query
// (data_type, the record routes' parameters, limit 1,000 up to 100,000)
// of the table as it stood at snapshot id; 404 when it has no such
// snapshot.
func (s *Server) snapshotQuery(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		p := &params{}
		p.fail("id", "%q is not a snapshot id", r.PathValue("id"))
		s.answer(w, r, p.err, nil)
		return
	}
	k, p, ok := s.kindBody(w, r, []string{"as_of_snapshot", "as_of_time"})
	if !ok {
		return
	}
	p.q.Set("as_of_snapshot", strconv.FormatInt(id, 10))
	s.readRecords(w, r, k, columnsOf(k), p.recordRequest(k, s.o.MaxSpan, postLimits))
}
