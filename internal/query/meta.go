package query

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// SymbolInfo describes one instrument's stored trades.
type SymbolInfo struct {
	Symbol   string `json:"symbol"`
	Exchange string `json:"exchange"`
	// Market is the instrument's asset class (equities, crypto, futures).
	Market string `json:"market"`
	// Timezone is the IANA zone of the exchange's trading day ("" for an
	// exchange K2 does not know).
	Timezone string       `json:"timezone"`
	Trades   int64        `json:"trades"`
	Quotes   int64        `json:"quotes"`
	First    md.Timestamp `json:"first_trade,omitzero"`
	Last     md.Timestamp `json:"last_trade,omitzero"`
}

// Symbols lists the instruments with trades or quotes, optionally on one
// exchange, with their counts and the time of their first and last trade.
func (e *Engine) Symbols(ctx context.Context, exchange string, asOf AsOf) (out []SymbolInfo, err error) {
	start := time.Now()
	read := 0
	defer func() { e.observe("symbols", start, read, len(out), err) }()
	type key struct{ symbol, exchange string }
	byKey := map[key]*SymbolInfo{}
	tableAsOf := asOf
	for _, table := range []string{record.Trade.Table.Name, record.Quote.Table.Name} {
		st, err := e.load(ctx, table)
		if err != nil {
			return nil, err
		}
		if table == record.Quote.Table.Name && tableAsOf.Time != 0 && st.tbl.SnapshotAsOf(tableAsOf.Time.Time().UnixMilli(), true) == nil {
			continue // no quotes yet then: the trades' instruments only
		}
		snap, err := e.snapshot(st, table, tableAsOf)
		if err != nil {
			return nil, err
		}
		if asOf.SnapshotID != 0 && snap != nil {
			// A snapshot id is the trades table's: the quotes are read as
			// they stood when it was committed.
			tableAsOf = AsOf{Time: md.Timestamp(snap.TimestampMs * 1000)}
		}
		files, err := e.plan(ctx, st, snap, "timestamp", Filter{Exchange: exchange})
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			continue
		}
		read += len(files)
		paths, err := e.paths(ctx, files)
		if err != nil {
			return nil, err
		}
		w := filterWhere(Filter{Exchange: exchange}, `"timestamp"`)
		sqlText := fmt.Sprintf(`SELECT symbol, exchange, any_value(asset_class), count(*), epoch_us(min("timestamp")), epoch_us(max("timestamp"))
			FROM %s%s GROUP BY symbol, exchange`, readParquet(paths), w)
		err = e.run(ctx, sqlText, w.args, func(rows *sql.Rows) error {
			for rows.Next() {
				var k key
				var market string
				var n, first, last int64
				if err := rows.Scan(&k.symbol, &k.exchange, &market, &n, &first, &last); err != nil {
					return err
				}
				s := byKey[k]
				if s == nil {
					s = &SymbolInfo{Symbol: k.symbol, Exchange: k.exchange, Market: market}
					if ex, err := md.LookupExchange(k.exchange); err == nil {
						s.Timezone = ex.Timezone
					}
					byKey[k] = s
				}
				if table == record.Trade.Table.Name {
					s.Trades, s.First, s.Last = n, md.Timestamp(first), md.Timestamp(last)
				} else {
					s.Quotes = n
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, s := range byKey {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b SymbolInfo) int {
		return cmp.Or(strings.Compare(a.Exchange, b.Exchange), strings.Compare(a.Symbol, b.Symbol))
	})
	return out, nil
}

// TableStats summarises a table at a snapshot from its metadata alone.
type TableStats struct {
	Table      string       `json:"table"`
	SnapshotID int64        `json:"snapshot_id"`
	Rows       int64        `json:"rows"`
	DataFiles  int64        `json:"data_files"`
	Bytes      int64        `json:"bytes"`
	Snapshots  int          `json:"snapshots"`
	Committed  md.Timestamp `json:"committed,omitempty"` // when the snapshot was
	First      md.Timestamp `json:"first_timestamp,omitempty"`
	Last       md.Timestamp `json:"last_timestamp,omitempty"`
}

// tablesAt resolves asOf for every table, in the order of record.All: a
// snapshot id in the table that has it and, in the others, the snapshot
// current when it was committed; a time in each table. A nil snapshot is
// a table that was empty at that point.
func (e *Engine) tablesAt(ctx context.Context, asOf AsOf) ([]string, []*tableState, []*table.Snapshot, error) {
	names := record.TableNames()
	states := make([]*tableState, len(names))
	owner := -1
	for i, name := range names {
		st, err := e.load(ctx, name)
		if err != nil {
			return nil, nil, nil, err
		}
		states[i] = st
		if asOf.SnapshotID != 0 && st.tbl.SnapshotByID(asOf.SnapshotID) != nil {
			owner = i
		}
	}
	if asOf.SnapshotID != 0 && owner < 0 {
		return nil, nil, nil, requestError("no table has snapshot %d (list them with k2 query snapshots)", asOf.SnapshotID)
	}
	snaps := make([]*table.Snapshot, len(names))
	for i, st := range states {
		switch {
		case asOf.SnapshotID != 0 && i == owner:
			snaps[i] = st.tbl.SnapshotByID(asOf.SnapshotID)
		case asOf.SnapshotID != 0:
			ms := states[owner].tbl.SnapshotByID(asOf.SnapshotID).TimestampMs
			snaps[i] = st.tbl.SnapshotAsOf(ms, true)
		case asOf.Time != 0:
			snaps[i] = st.tbl.SnapshotAsOf(asOf.Time.Time().UnixMilli(), true)
		default:
			snaps[i] = st.tbl.CurrentSnapshot()
		}
	}
	return names, states, snaps, nil
}

// Stats returns row counts, file counts, sizes and time ranges of every
// table. Counts come from the snapshot summaries Iceberg keeps, so they are
// exact without reading data.
//
// A snapshot id belongs to one table; the other tables are shown as they
// stood when that snapshot was committed, so the answer is one consistent
// picture of the lake.
func (e *Engine) Stats(ctx context.Context, asOf AsOf) ([]TableStats, error) {
	return e.stats(ctx, asOf, true)
}

// Counts is Stats of the current snapshots without the time ranges, which
// need the files planned: the counts alone are read from the metadata.
func (e *Engine) Counts(ctx context.Context) ([]TableStats, error) {
	return e.stats(ctx, AsOf{}, false)
}

func (e *Engine) stats(ctx context.Context, asOf AsOf, times bool) ([]TableStats, error) {
	names, states, snaps, err := e.tablesAt(ctx, asOf)
	if err != nil {
		return nil, err
	}
	var out []TableStats
	for i, name := range names {
		st, snap := states[i], snaps[i]
		ts := TableStats{Table: lake.Namespace + "." + name, Snapshots: len(st.tbl.Metadata().Snapshots())}
		if snap != nil {
			ts.SnapshotID, ts.Committed = snap.SnapshotID, md.Timestamp(snap.TimestampMs*1000)
			if snap.Summary != nil {
				p := snap.Summary.Properties
				ts.Rows, _ = strconv.ParseInt(p["total-records"], 10, 64)
				ts.DataFiles, _ = strconv.ParseInt(p["total-data-files"], 10, 64)
				ts.Bytes, _ = strconv.ParseInt(p["total-files-size"], 10, 64)
			}
			if !times {
				out = append(out, ts)
				continue
			}
			def, err := e.lake.Def(name)
			if err != nil {
				return nil, err
			}
			files, err := e.plan(ctx, st, snap, def.Time, Filter{})
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				if !f.hasTime {
					continue
				}
				if ts.First == 0 || f.minT < ts.First {
					ts.First = f.minT
				}
				if f.maxT > ts.Last {
					ts.Last = f.maxT
				}
			}
		}
		out = append(out, ts)
	}
	return out, nil
}

// SnapshotInfo describes one table version.
type SnapshotInfo struct {
	SnapshotID     int64             `json:"snapshot_id"`
	ParentID       *int64            `json:"parent_id"`
	SequenceNumber int64             `json:"sequence_number"`
	Timestamp      md.Timestamp      `json:"timestamp"`
	Operation      string            `json:"operation"`
	Current        bool              `json:"current"`
	Summary        map[string]string `json:"summary"`
}

// Snapshots lists a table's snapshots, newest first.
func (e *Engine) Snapshots(ctx context.Context, tableName string) ([]SnapshotInfo, error) {
	st, err := e.load(ctx, tableName)
	if err != nil {
		return nil, err
	}
	cur := st.tbl.CurrentSnapshot()
	var out []SnapshotInfo
	for _, s := range st.tbl.Metadata().Snapshots() {
		si := SnapshotInfo{
			SnapshotID: s.SnapshotID, ParentID: s.ParentSnapshotID, SequenceNumber: s.SequenceNumber,
			Timestamp: md.Timestamp(s.TimestampMs * 1000), Current: cur != nil && cur.SnapshotID == s.SnapshotID,
		}
		if s.Summary != nil {
			si.Operation = string(s.Summary.Operation)
			si.Summary = s.Summary.Properties
		}
		out = append(out, si)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SequenceNumber > out[j].SequenceNumber })
	return out, nil
}
