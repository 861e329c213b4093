package api

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/k2-market-data/k2/internal/record"
)

// dataTypeParam is the table a POST route reads (the original's name for
// it), the first of tables by default.
func dataTypeParam(tables []string) param {
	return param{name: "data_type", kind: choiceKind, values: tables, example: tables[0], sample: true,
		doc: "The table to read"}
}

// unlimited is replay's limit: every record in the range.
var unlimited = limits{def: 1 << 62, max: 1 << 62}

// The parameters replay takes besides a kind's record parameters.
var (
	batchSizeParam = param{name: "batch_size", kind: intKind, def: 1000, min: 100, max: 10_000, example: "500",
		doc: "Records between two checkpoint lines of an NDJSON answer"}
	snapshotIDParam = param{name: "snapshot_id", kind: intKind, min: 1, max: 1<<63 - 1, example: asOfSnapshotParam.example,
		doc: "The snapshot to read (the original's name for as_of_snapshot)"}
	replayFormatParam = param{name: "format", kind: choiceKind, values: append([]string{"ndjson"}, formats...), example: "ndjson",
		doc: "NDJSON (a line per record, checkpoint lines, a last line with meta), or a record route's format"}
)

// replayParams are what POST /v1/replay takes of a kind with a time
// column: its record parameters but order, limit and offset, start_time
// and end_time required, and data_type, batch_size and snapshot_id.
func replayParams(k record.Any) []param {
	out := []param{dataTypeParam(timedTables()), batchSizeParam, snapshotIDParam}
	for _, d := range recordParams(k, unlimited) {
		switch d.name {
		case "order", "limit", "offset":
		case "start_time", "end_time": // an hour of the sample's trades
			d.sample, d.example = true, map[string]string{"start_time": "2014-03-10T23:00:00Z", "end_time": "2014-03-11T00:00:00Z"}[d.name]
			out = append(out, d.need())
		case "format":
			out = append(out, replayFormatParam)
		default:
			out = append(out, d)
		}
	}
	return out
}

// timedKinds are the kinds with a time column.
func timedKinds() []record.Any {
	return slices.DeleteFunc(slices.Clone(record.All), func(k record.Any) bool { return k.Describe().Table.Time == "" })
}

func timedTables() []string {
	var out []string
	for _, k := range timedKinds() {
		out = append(out, k.Describe().Table.Name)
	}
	return out
}

// eachKind is the parameters of every one of kinds as one list: a route whose data_type chooses the kind takes
// any of them in its body, and then only the chosen kind's.
func eachKind(kinds []record.Any, of func(record.Any) []param) []param {
	var out []param
	for _, k := range kinds {
		for _, d := range of(k) {
			i := slices.IndexFunc(out, func(o param) bool { return o.name == d.name })
			switch {
			case i < 0:
				out = append(out, d)
			case d.kind == listKind: // fields: any kind's columns
				for _, v := range d.values {
					if !slices.Contains(out[i].values, v) {
						out[i].values = append(out[i].values, v)
					}
				}
			}
		}
	}
	return out
}

// kindOf is the kind a POST route's data_type names, and the parameters
// it takes of that kind; a member the kind does not take is refused.
func kindOf(p *params, tables []string, of func(record.Any) []param) (record.Any, []param) {
	k, err := record.ByTable(p.oneOf(dataTypeParam(tables)))
	if err != nil {
		return nil, nil // oneOf has failed
	}
	decls := of(k)
	p.only(decls, "table "+k.Describe().Table.Name)
	return k, decls
}

// replayRoute answers POST /v1/replay: every record of a table in a time
// range (start_time and end_time required), oldest first, as NDJSON by
// default (json, csv, parquet and arrow too), streamed however many there
// are. It reads one snapshot throughout (snapshot_id or as_of_*, else the
// current one): the lake as it stood, not the stream after it. Every
// batch_size records (1,000; 100–10,000) an NDJSON answer has a checkpoint
// line {"cursor":…,"count":…}; a client cut off sends that cursor with the
// same body to continue after the checkpoint's last record.
func (s *Server) replayRoute() route {
	return route{method: "POST", path: "/v1/replay", summary: "Every record of a table in a time range, oldest first, streamed",
		doc: "It reads one snapshot throughout: the lake as it stood, not the stream after it. Every batch_size records an NDJSON " +
			"answer has a checkpoint line {\"cursor\":…,\"count\":…}; a client cut off sends that cursor with the same body to " +
			"continue after the checkpoint's last record.",
		body: eachKind(timedKinds(), replayParams), byKind: replayParams, kinds: timedKinds(),
		ok: rowsReply(timedKinds(), replayFormatParam.values...), errors: []int{404}, serve: s.replay}
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request, p *params) {
	k, _ := kindOf(p, timedTables(), replayParams)
	if p.err != nil {
		s.answer(w, r, p.err, nil)
		return
	}
	if id := p.integer(snapshotIDParam); id != 0 { // the original's name
		if p.q.Get("as_of_snapshot") != "" {
			p.fail("snapshot_id", "give snapshot_id or as_of_snapshot, not both")
		}
		p.q.Set("as_of_snapshot", strconv.FormatInt(id, 10))
	}
	format := p.oneOf(replayFormatParam)
	p.q.Del("format")
	batch := int(p.integer(batchSizeParam))
	p.q.Set("order", "asc")
	req := p.recordRequest(k, s.o.MaxSpan, unlimited)
	req.format, req.fresh, req.batch = format, false, batch
	s.readRecords(w, r, k, columnsOf(k), req)
}

// snapshotParams are what POST /v1/snapshots/{id}/query takes of a kind:
// data_type and its record routes' parameters (limit 1,000 up to
// 100,000), but as_of_*.
func snapshotParams(k record.Any) []param {
	out := []param{dataTypeParam(record.TableNames())}
	for _, d := range recordParams(k, postLimits) {
		if d.name != "as_of_snapshot" && d.name != "as_of_time" {
			out = append(out, d)
		}
	}
	return out
}

// snapshotIDPath is the snapshot of POST /v1/snapshots/{id}/query.
var snapshotIDPath = param{name: "id", kind: intKind, min: 1, max: 1<<63 - 1, example: asOfSnapshotParam.example,
	doc: "The snapshot (GET /v1/snapshots lists them; the example is no real one)"}.path()

// snapshotQueryRoute answers POST /v1/snapshots/{id}/query: a record
// query of the table as it stood at snapshot id; 404 when it has no such
// snapshot.
func (s *Server) snapshotQueryRoute() route {
	return route{method: "POST", path: "/v1/snapshots/{id}/query", summary: "Records of a table as it stood at a snapshot",
		doc: "The record routes' parameters in a JSON body; 404 when the table has no such snapshot.", params: []param{snapshotIDPath},
		body: eachKind(record.All, snapshotParams), byKind: snapshotParams, kinds: record.All,
		ok: rowsReply(record.All, formats...), errors: []int{404},
		serve: func(w http.ResponseWriter, r *http.Request, p *params) {
			id := p.integer(snapshotIDPath)
			k, _ := kindOf(p, record.TableNames(), snapshotParams)
			if p.err != nil {
				s.answer(w, r, p.err, nil)
				return
			}
			p.q.Set("as_of_snapshot", strconv.FormatInt(id, 10))
			s.readRecords(w, r, k, columnsOf(k), p.recordRequest(k, s.o.MaxSpan, postLimits))
		}}
}
