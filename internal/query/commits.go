package query

import (
	"cmp"
	"context"
	"slices"
	"strconv"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Commit is one snapshot of a table as the transaction log tells it: what
// the commit added and how long it took.
type Commit struct {
	Table      string       `json:"table"`
	SnapshotID int64        `json:"snapshot_id"`
	Timestamp  md.Timestamp `json:"timestamp"`
	Operation  string       `json:"operation"`
	// Writer is who committed it, where the summary says: the command
	// (k2 load), the maintenance task (compact…) or the source (a sink's
	// group: sink:k2-sink).
	Writer     string `json:"writer,omitempty"`
	Rows       int64  `json:"rows"`
	Files      int64  `json:"files"`
	Bytes      int64  `json:"bytes"`
	TotalRows  int64  `json:"total_rows"`
	TotalFiles int64  `json:"total_files"`
	// DurationMs runs from the writer's start to the snapshot (keys read,
	// files written); nil where the summary does not record the start
	// (commits by other engines, maintenance, earlier K2).
	DurationMs *float64 `json:"duration_ms"`
}

// Commits are the last limit commits of the tables named (every table
// when none is), newest first.
func (e *Engine) Commits(ctx context.Context, tables []string, limit int) ([]Commit, error) {
	var out []Commit
	for _, name := range tables {
		snaps, err := e.Snapshots(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, s := range snaps[:min(limit, len(snaps))] {
			out = append(out, commitOf(name, s))
		}
	}
	slices.SortStableFunc(out, func(a, b Commit) int { return cmp.Compare(b.Timestamp, a.Timestamp) })
	return out[:min(limit, len(out))], nil
}

func commitOf(table string, s SnapshotInfo) Commit {
	p := s.Summary
	num := func(k string) int64 { n, _ := strconv.ParseInt(p[k], 10, 64); return n }
	c := Commit{Table: table, SnapshotID: s.SnapshotID, Timestamp: s.Timestamp, Operation: s.Operation,
		Writer: cmp.Or(p["k2.writer"], p["k2.operation"], p["k2.source"]),
		Rows:   num("added-records"), Files: num("added-data-files"), Bytes: num("added-files-size"),
		TotalRows: num("total-records"), TotalFiles: num("total-data-files")}
	if started, err := strconv.ParseInt(p[lake.StartedProperty], 10, 64); err == nil {
		d := float64(s.Timestamp.Time().UnixMilli() - started)
		c.DurationMs = &d
	}
	return c
}
