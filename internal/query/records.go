package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// MaxLimit bounds the rows one query returns.
const MaxLimit = 100_000

// RecordQuery selects trades or quotes.
type RecordQuery struct {
	Filter
	AsOf  AsOf
	Limit int  // 1 … MaxLimit; 0 means 100
	Desc  bool // newest first
	// After continues a read past the last row of an earlier page: rows
	// after that position in the read's order (keyset pagination).
	After *Position
}

// Position is a row's place in a table's order: time, exchange sequence
// (null sorts last either way) and key.
type Position struct {
	Time md.Timestamp `json:"t"`
	Seq  *int64       `json:"s,omitempty"`
	Key  string       `json:"k"`
}

func (q *RecordQuery) validate() error {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return requestError("limit %d is outside 1 … %d", q.Limit, MaxLimit)
	}
	if q.After != nil && q.After.Key == "" {
		return requestError("a position to continue from needs a key")
	}
	if q.From != 0 && q.To != 0 && q.To <= q.From {
		return requestError("time range is empty: to (%s) is not after from (%s)", q.To, q.From)
	}
	return nil
}

// where collects SQL conditions with their bound arguments.
type where struct {
	clauses []string
	args    []any
}

func (w *where) add(clause string, args ...any) {
	w.clauses = append(w.clauses, clause)
	w.args = append(w.args, args...)
}

// in keeps rows whose col is one of values (no condition when none).
func (w *where) in(col string, values []string) {
	if len(values) == 0 {
		return
	}
	marks := strings.Repeat("?, ", len(values))
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	w.add(col+" IN ("+marks[:len(marks)-2]+")", args...)
}

func (w *where) String() string {
	if len(w.clauses) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.clauses, " AND ")
}

// after keeps rows past p in the order time, sequence (nulls last), key,
// ascending or descending.
func (w *where) after(p Position, timeCol, seqCol, keyCol string, desc bool) {
	cmp, nullSeq := ">", int64(math.MaxInt64)
	if desc {
		cmp, nullSeq = "<", math.MinInt64
	}
	ts := "make_timestamp(?::BIGINT)::TIMESTAMPTZ"
	if seqCol == "" {
		w.add(fmt.Sprintf("(%[1]s %[2]s %[3]s OR %[1]s = %[3]s AND %[4]s %[2]s ?)", timeCol, cmp, ts, keyCol),
			int64(p.Time), int64(p.Time), p.Key)
		return
	}
	s := nullSeq
	if p.Seq != nil {
		s = *p.Seq
	}
	seq := fmt.Sprintf("coalesce(%s, %d)", seqCol, nullSeq)
	w.add(fmt.Sprintf("(%[1]s %[2]s %[3]s OR %[1]s = %[3]s AND (%[4]s %[2]s ? OR %[4]s = ? AND %[5]s %[2]s ?))", timeCol, cmp, ts, seq, keyCol),
		int64(p.Time), int64(p.Time), s, s, p.Key)
}

// holds is filterWhere's test of a row's symbol, exchange and time, for
// rows that are not in the lake (bounds and conditions aside).
func (f *Filter) holds(symbol, exchange string, t md.Timestamp) bool {
	return (f.Symbol == "" || symbol == f.Symbol) && (f.Exchange == "" || exchange == f.Exchange) &&
		(len(f.Symbols) == 0 || slices.Contains(f.Symbols, symbol)) &&
		(len(f.Exchanges) == 0 || slices.Contains(f.Exchanges, exchange)) &&
		(f.From == 0 || t >= f.From) && (f.To == 0 || t < f.To)
}

// filterWhere turns a Filter into SQL conditions on the time column.
func filterWhere(f Filter, timeCol string) *where {
	w := &where{}
	if f.Symbol != "" {
		w.add("symbol = ?", f.Symbol)
	}
	if f.Exchange != "" {
		w.add("exchange = ?", f.Exchange)
	}
	w.in("symbol", f.Symbols)
	w.in("exchange", f.Exchanges)
	for _, b := range f.Bounds {
		if b.Min != nil {
			w.add(quoteIdent(b.Column)+" >= ?::DECIMAL(18,8)", b.Min.String())
		}
		if b.Max != nil {
			w.add(quoteIdent(b.Column)+" <= ?::DECIMAL(18,8)", b.Max.String())
		}
	}
	if f.From != 0 {
		w.add(timeCol+" >= make_timestamp(?::BIGINT)::TIMESTAMPTZ", int64(f.From))
	}
	if f.To != 0 {
		w.add(timeCol+" < make_timestamp(?::BIGINT)::TIMESTAMPTZ", int64(f.To))
	}
	if len(f.ExcludeConditions) > 0 {
		w.add("NOT list_has_any(trade_conditions, [" + sqlList(f.ExcludeConditions) + "])")
	}
	return w
}

// The tables do not store message_id: it is derived from the kind,
// symbol and id (md.MessageID) as the rows are read.
const tradeColumns = `trade_id, symbol, exchange, asset_class, "timestamp", price, quantity,
	currency, side, trade_conditions, source_sequence, ingestion_timestamp, platform_sequence, vendor_data`

const quoteColumns = `quote_id, symbol, exchange, asset_class, "timestamp", bid_price, bid_quantity,
	ask_price, ask_quantity, currency, source_sequence, ingestion_timestamp, platform_sequence, vendor_data`

// Trades returns trades matching q in time order (newest first when Desc).
func (e *Engine) Trades(ctx context.Context, q RecordQuery) ([]md.Trade, error) {
	var out []md.Trade
	_, err := e.topN(ctx, "trades", record.Trade.Table.Name, "trade_id", tradeColumns, q, func(rows *sql.Rows) (md.Timestamp, error) {
		t, err := scanTrade(rows)
		out = append(out, t)
		return t.Timestamp, err
	}, func() { out = out[:0] }, func(rows []fastRow) (err error) {
		out, err = tradesOf(rows)
		return err
	})
	return out, err
}

// Quotes returns quotes matching q in time order (newest first when Desc).
func (e *Engine) Quotes(ctx context.Context, q RecordQuery) ([]md.Quote, error) {
	if len(q.ExcludeConditions) > 0 {
		return nil, fmt.Errorf("condition filters apply to trades, not quotes")
	}
	var out []md.Quote
	_, err := e.topN(ctx, "quotes", record.Quote.Table.Name, "quote_id", quoteColumns, q, func(rows *sql.Rows) (md.Timestamp, error) {
		v, err := scanQuote(rows)
		out = append(out, v)
		return v.Timestamp, err
	}, func() { out = out[:0] }, nil)
	return out, err
}

const fundingColumns = `message_id, symbol, exchange, asset_class, "timestamp", mark_price, index_price,
	estimated_settle_price, funding_rate, next_funding_time, currency, ingestion_timestamp, vendor_data`

// Funding returns mark prices and funding rates matching q in time order
// (newest first when Desc).
func (e *Engine) Funding(ctx context.Context, q RecordQuery) ([]md.FundingRate, error) {
	if len(q.ExcludeConditions) > 0 {
		return nil, fmt.Errorf("condition filters apply to trades, not funding rates")
	}
	var out []md.FundingRate
	_, err := e.topN(ctx, "funding", record.Funding.Table.Name, "message_id", fundingColumns, q, func(rows *sql.Rows) (md.Timestamp, error) {
		v, err := scanFunding(rows)
		out = append(out, v)
		return v.Timestamp, err
	}, func() { out = out[:0] }, nil)
	return out, err
}

// topN reads the first q.Limit rows in time order. Rather than handing
// DuckDB every planned file, it starts with the files whose time bounds
// come first in the requested order and holds enough rows, and it narrows
// the time range to what those files' row density says should hold the
// answer, so DuckDB skips all but the newest row groups. It widens the
// range, then the file set, until no unread data could hold a row that
// belongs in the answer: "the latest 100 trades" reads a row group or two,
// however long the history. Where fast is given and the query allows,
// the rows are read in Go instead (topNInGo) and handed to fast. It
// returns the snapshot it read (nil for an empty table).
func (e *Engine) topN(ctx context.Context, kind, tableName, keyCol, columns string, q RecordQuery,
	scan func(*sql.Rows) (md.Timestamp, error), reset func(), fast func([]fastRow) error) (snap *table.Snapshot, err error) {
	start := time.Now()
	read, n := 0, 0
	defer func() { e.observe(kind, start, read, n, err) }()
	if err := q.validate(); err != nil {
		return nil, err
	}
	st, err := e.loadFor(ctx, tableName, q.AsOf)
	if err != nil {
		return nil, err
	}
	if snap, err = e.snapshot(st, tableName, q.AsOf); err != nil {
		return nil, err
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	if a := q.After; a != nil { // nothing before the position can follow it
		if q.Desc && (q.To == 0 || a.Time+1 < q.To) {
			q.To = a.Time + 1
		} else if !q.Desc && a.Time > q.From {
			q.From = a.Time
		}
		if q.From != 0 && q.To != 0 && q.To <= q.From {
			return snap, nil
		}
	}
	files, err := e.plan(ctx, st, snap, "timestamp", q.Filter)
	if err != nil || len(files) == 0 {
		return snap, err
	}
	files = append([]dataFile(nil), files...)
	desc, err := record.ByTable(tableName)
	if err != nil {
		return snap, err
	}
	def := &desc.Describe().Table
	if fast != nil && !e.duckOnly && servesInGo(def, q) {
		err := e.runInGo(ctx, func(ctx context.Context) error {
			rows, release, err := e.topNInGo(ctx, def, files, q)
			if err != nil {
				return err
			}
			defer release()
			read, n = len(files), len(rows)
			return fast(rows)
		})
		if err == nil {
			e.servedInGo.Add(1)
			return snap, nil
		}
		if !errors.Is(err, errNoFastPath) {
			return snap, err
		}
	}
	seq := def.Sequence // rows of one time, in exchange order
	sortFiles(files, q.Desc)
	k, have := 0, int64(0)
	for k < len(files) && have < int64(q.Limit) {
		have += files[k].rows
		k++
	}
	// window is the time span expected to hold the answer: four times what
	// the first file's density gives for Limit rows. 0 means no bound.
	var window int64
	if f := files[0]; f.hasTime && f.rows > 0 && f.maxT > f.minT {
		window = max(1, 4*int64(q.Limit)*int64(f.maxT-f.minT)/f.rows)
	}
	for attempt := 0; ; attempt++ {
		f := q.Filter
		if window > 0 {
			if q.Desc {
				f.From = max(f.From, files[0].maxT-md.Timestamp(window))
			} else if bound := files[0].minT + md.Timestamp(window) + 1; f.To == 0 || bound < f.To {
				f.To = bound
			}
		}
		paths, err := e.paths(ctx, files[:k])
		if err != nil {
			return snap, err
		}
		w := filterWhere(f, `"timestamp"`)
		if q.After != nil {
			w.after(*q.After, `"timestamp"`, seq, keyCol, q.Desc)
		}
		order := `"timestamp" ` + dir
		if seq != "" {
			order += ", " + seq + " " + dir + " NULLS LAST"
		}
		sqlText := fmt.Sprintf(`SELECT %s FROM %s%s ORDER BY %s, %s %s LIMIT %d`,
			columns, readParquet(paths), w, order, keyCol, dir, q.Limit)
		reset()
		n = 0
		var edge md.Timestamp
		err = e.run(ctx, sqlText, w.args, func(rows *sql.Rows) error {
			for rows.Next() {
				ts, err := scan(rows)
				if err != nil {
					return err
				}
				edge = ts
				n++
			}
			return nil
		})
		read = k
		if err != nil {
			return snap, err
		}
		if n < q.Limit {
			switch {
			case window > 0 && attempt < 3: // the range was too narrow
				window *= 16
			case window > 0:
				window = 0
			case k < len(files): // too few matching rows: read more files
				k = min(len(files), 2*k)
			default:
				return snap, nil
			}
			continue
		}
		// A full answer; unread files whose bounds reach the last row's
		// time could still hold rows that belong in it.
		more := k
		for more < len(files) && (q.Desc && files[more].maxT >= edge || !q.Desc && files[more].minT <= edge) {
			more++
		}
		if more == k {
			return snap, nil
		}
		k = more
	}
}

func decimalOf(v any) (md.Decimal, error) {
	d, ok := v.(duckdb.Decimal)
	if !ok {
		return 0, fmt.Errorf("expected DECIMAL, got %T", v)
	}
	return md.DecimalFromScaled(d.Value, int(d.Scale))
}

func nullDecimalOf(v any) (md.NullDecimal, error) {
	if v == nil {
		return md.NullDecimal{}, nil
	}
	d, err := decimalOf(v)
	return md.SomeDecimal(d), err
}

func nullInt(n sql.NullInt64) md.NullInt64 { return md.NullInt64{Int64: n.Int64, Valid: n.Valid} }

func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func stringMap(v any) map[string]string {
	var keys, values []any
	switch m := v.(type) {
	case duckdb.OrderedMap: // what the driver scans a MAP into
		keys, values = m.Keys(), m.Values()
	case duckdb.Map:
		for k, val := range m {
			keys, values = append(keys, k), append(values, val)
		}
	default:
		return nil
	}
	out := make(map[string]string, len(keys))
	for i, k := range keys {
		ks, _ := k.(string)
		vs, _ := values[i].(string)
		out[ks] = vs
	}
	return out
}

func scanTrade(rows *sql.Rows) (md.Trade, error) {
	var (
		t               md.Trade
		asset, side     string
		ts, ingested    time.Time
		price, qty      any
		conds, vendor   any
		srcSeq, platSeq sql.NullInt64
	)
	if err := rows.Scan(&t.TradeID, &t.Symbol, &t.Exchange, &asset, &ts, &price, &qty,
		&t.Currency, &side, &conds, &srcSeq, &ingested, &platSeq, &vendor); err != nil {
		return t, err
	}
	var err error
	if t.Price, err = decimalOf(price); err != nil {
		return t, err
	}
	if t.Quantity, err = decimalOf(qty); err != nil {
		return t, err
	}
	t.AssetClass, t.Side = md.AssetClass(asset), md.Side(side)
	t.Timestamp, t.IngestionTimestamp = md.TimestampOf(ts), md.TimestampOf(ingested)
	t.TradeConditions = stringList(conds)
	t.SourceSequence, t.PlatformSequence = nullInt(srcSeq), nullInt(platSeq)
	t.VendorData = stringMap(vendor)
	t.MessageID = md.MessageID(record.Trade.Name, t.Symbol, t.TradeID)
	return t, nil
}

func scanQuote(rows *sql.Rows) (md.Quote, error) {
	var (
		q               md.Quote
		asset           string
		ts, ingested    time.Time
		bp, bq, ap, aq  any
		vendor          any
		srcSeq, platSeq sql.NullInt64
	)
	if err := rows.Scan(&q.QuoteID, &q.Symbol, &q.Exchange, &asset, &ts, &bp, &bq, &ap, &aq,
		&q.Currency, &srcSeq, &ingested, &platSeq, &vendor); err != nil {
		return q, err
	}
	var err error
	for _, c := range []struct {
		dst *md.NullDecimal
		src any
	}{{&q.BidPrice, bp}, {&q.BidQuantity, bq}, {&q.AskPrice, ap}, {&q.AskQuantity, aq}} {
		if *c.dst, err = nullDecimalOf(c.src); err != nil {
			return q, err
		}
	}
	q.AssetClass = md.AssetClass(asset)
	q.Timestamp, q.IngestionTimestamp = md.TimestampOf(ts), md.TimestampOf(ingested)
	q.SourceSequence, q.PlatformSequence = nullInt(srcSeq), nullInt(platSeq)
	q.VendorData = stringMap(vendor)
	q.MessageID = md.MessageID(record.Quote.Name, q.Symbol, q.QuoteID)
	return q, nil
}

func scanFunding(rows *sql.Rows) (md.FundingRate, error) {
	var (
		f                   md.FundingRate
		id, asset           string
		ts, ingested        time.Time
		mark, index, settle any
		rate, vendor        any
		next                sql.NullTime
	)
	if err := rows.Scan(&id, &f.Symbol, &f.Exchange, &asset, &ts, &mark, &index, &settle, &rate, &next,
		&f.Currency, &ingested, &vendor); err != nil {
		return f, err
	}
	var err error
	if f.MessageID, err = uuid.Parse(id); err != nil {
		return f, fmt.Errorf("funding message_id %q: %w", id, err)
	}
	if f.MarkPrice, err = decimalOf(mark); err != nil {
		return f, err
	}
	for _, c := range []struct {
		dst *md.NullDecimal
		src any
	}{{&f.IndexPrice, index}, {&f.EstimatedSettlePrice, settle}, {&f.FundingRate, rate}} {
		if *c.dst, err = nullDecimalOf(c.src); err != nil {
			return f, err
		}
	}
	if next.Valid {
		f.NextFundingTime = md.NullTimestamp{Timestamp: md.TimestampOf(next.Time), Valid: true}
	}
	f.AssetClass = md.AssetClass(asset)
	f.Timestamp, f.IngestionTimestamp = md.TimestampOf(ts), md.TimestampOf(ingested)
	f.VendorData = stringMap(vendor)
	return f, nil
}
