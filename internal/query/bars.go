package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// BarQuery asks for OHLCV bars of one symbol.
type BarQuery struct {
	Filter   // Symbol is required
	Interval md.Interval
	AsOf     AsOf
	Limit    int  // 0: every bar in range (at most MaxLimit)
	Desc     bool // newest bar first
}

const microsPerDay = 86_400_000_000

// Bars aggregates trades into bars. Intraday windows align to the UTC
// epoch; a 1d bar covers one exchange-local trading date (Sydney's day for
// ASX, a 23- or 25-hour day across a DST change). Open and close are the
// first and last trade by time, then exchange sequence; volume and the
// VWAP are exact: Σ(price·quantity)/Σquantity is summed in DECIMAL(38,16)
// by DuckDB and divided in Go, rounded half-up to 8 decimals.
func (e *Engine) Bars(ctx context.Context, q BarQuery) (bars []md.Bar, err error) {
	start := time.Now()
	read := 0
	defer func() { observe("bars", start, read, len(bars), err) }()
	if q.Symbol == "" {
		return nil, errors.New("bars need a symbol")
	}
	width := q.Interval.Duration()
	if width == 0 {
		return nil, fmt.Errorf("interval %q is not one of 1m, 5m, 15m, 30m, 1h, 1d", q.Interval)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return nil, fmt.Errorf("limit %d is outside 1 … %d", q.Limit, MaxLimit)
	}
	if q.Limit == 0 {
		q.Limit = MaxLimit
	}
	st, err := e.load(ctx, lake.Trades)
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(st, lake.Trades, q.AsOf)
	if err != nil {
		return nil, err
	}
	files, err := e.plan(ctx, st, snap, "timestamp", q.Filter)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	read = len(files)
	paths, err := e.paths(ctx, files)
	if err != nil {
		return nil, err
	}
	bucket := fmt.Sprintf(`epoch_us("timestamp") // %d`, width.Microseconds())
	daily := q.Interval == md.Interval1d
	if daily {
		lo, hi := files[0].minT, files[0].maxT
		for _, f := range files[1:] {
			lo, hi = min(lo, f.minT), max(hi, f.maxT)
		}
		bucket = fmt.Sprintf(`(epoch_us("timestamp") + %s) // %d`, localOffsetSQL(lo, hi), int64(microsPerDay))
	}
	dir := "ASC"
	if q.Desc {
		dir = "DESC"
	}
	w := filterWhere(q.Filter, `"timestamp"`)
	sqlText := fmt.Sprintf(`SELECT exchange, %s AS b,
		first(price ORDER BY "timestamp", source_sequence NULLS FIRST, trade_id),
		max(price), min(price),
		last(price ORDER BY "timestamp", source_sequence NULLS FIRST, trade_id),
		sum(quantity), count(*), sum(price::DECIMAL(38, 8) * quantity::DECIMAL(38, 8))
		FROM %s%s GROUP BY exchange, b ORDER BY b %s, exchange LIMIT %d`,
		bucket, readParquet(paths), w, dir, q.Limit)
	err = e.run(ctx, sqlText, w.args, func(rows *sql.Rows) error {
		for rows.Next() {
			var (
				exchange              string
				b, count              int64
				o, h, l, c, vol, pqty any
			)
			if err := rows.Scan(&exchange, &b, &o, &h, &l, &c, &vol, &count, &pqty); err != nil {
				return err
			}
			bar := md.Bar{Symbol: q.Symbol, Exchange: exchange, Interval: q.Interval, TradeCount: count}
			if daily {
				bar.WindowStart, bar.WindowEnd = localDay(exchange, b)
			} else {
				bar.WindowStart = md.Timestamp(b * width.Microseconds())
				bar.WindowEnd = bar.WindowStart + md.Timestamp(width.Microseconds())
			}
			var err error
			for _, f := range []struct {
				dst *md.Decimal
				src any
			}{{&bar.Open, o}, {&bar.High, h}, {&bar.Low, l}, {&bar.Close, c}, {&bar.Volume, vol}} {
				if *f.dst, err = decimalOf(f.src); err != nil {
					return err
				}
			}
			if bar.VWAP, err = vwap(pqty, vol); err != nil {
				return err
			}
			bars = append(bars, bar)
		}
		return nil
	})
	return bars, err
}

// Summary is the daily bar of symbol on an exchange-local date
// (YYYY-MM-DD), or nil when nothing traded. Without an exchange, the one
// exchange the symbol trades on is used.
func (e *Engine) Summary(ctx context.Context, symbol, exchange, date string, asOf AsOf) (*md.Bar, error) {
	if symbol == "" {
		return nil, errors.New("a summary needs a symbol")
	}
	if exchange == "" {
		ex, err := e.exchangeOf(ctx, symbol, asOf)
		if err != nil {
			return nil, err
		}
		exchange = ex
	}
	ex, err := md.LookupExchange(exchange)
	if err != nil {
		return nil, err
	}
	day, err := time.ParseInLocation(time.DateOnly, date, ex.Location())
	if err != nil {
		return nil, fmt.Errorf("date %q is not YYYY-MM-DD", date)
	}
	bars, err := e.Bars(ctx, BarQuery{
		Filter:   Filter{Symbol: symbol, Exchange: ex.Code, From: md.TimestampOf(day), To: md.TimestampOf(day.AddDate(0, 0, 1))},
		Interval: md.Interval1d, AsOf: asOf,
	})
	if err != nil || len(bars) == 0 {
		return nil, err
	}
	return &bars[0], nil
}

// exchangeOf finds the single exchange a symbol's trades come from.
func (e *Engine) exchangeOf(ctx context.Context, symbol string, asOf AsOf) (string, error) {
	syms, err := e.Symbols(ctx, "", asOf)
	if err != nil {
		return "", err
	}
	var found []string
	for _, s := range syms {
		if s.Symbol == symbol {
			found = append(found, s.Exchange)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("unknown symbol %q: no trades stored (list them with k2 query symbols)", symbol)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("symbol %s trades on %s: choose one with --exchange", symbol, strings.Join(found, " and "))
}

// vwap divides Σ(price·quantity) by Σquantity exactly.
func vwap(pq, vol any) (md.Decimal, error) {
	num, err := ratOf(pq)
	if err != nil {
		return 0, err
	}
	den, err := ratOf(vol)
	if err != nil {
		return 0, err
	}
	if den.Sign() == 0 {
		return 0, nil
	}
	return md.RoundRat(num.Quo(num, den))
}

// localOffsetSQL is a SQL expression giving, per row, the UTC offset in
// microseconds of the row's exchange at the row's time, for the exchanges
// whose day is not UTC. Offsets come from Go's embedded zone database and
// change at each DST transition between lo and hi.
func localOffsetSQL(lo, hi md.Timestamp) string {
	var cases []string
	for _, code := range md.ExchangeCodes() {
		ex, _ := md.LookupExchange(code)
		segs := zoneSegments(ex.Location(), lo.Time(), hi.Time())
		if len(segs) == 1 && segs[0].offset == 0 {
			continue
		}
		offset := fmt.Sprint(segs[0].offset)
		if len(segs) > 1 {
			var b strings.Builder
			b.WriteString("CASE")
			for _, s := range segs[:len(segs)-1] {
				fmt.Fprintf(&b, ` WHEN epoch_us("timestamp") < %d THEN %d`, s.until, s.offset)
			}
			fmt.Fprintf(&b, " ELSE %d END", segs[len(segs)-1].offset)
			offset = b.String()
		}
		cases = append(cases, fmt.Sprintf("WHEN %s THEN %s", sqlString(code), offset))
	}
	if len(cases) == 0 {
		return "0"
	}
	return "(CASE exchange " + strings.Join(cases, " ") + " ELSE 0 END)"
}

type zoneSegment struct {
	until  int64 // µs; the offset applies before this instant
	offset int64 // µs east of UTC
}

func zoneSegments(loc *time.Location, lo, hi time.Time) []zoneSegment {
	var segs []zoneSegment
	t := lo
	for {
		_, off := t.In(loc).Zone()
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() || end.After(hi) {
			return append(segs, zoneSegment{offset: int64(off) * 1_000_000})
		}
		segs = append(segs, zoneSegment{until: end.UnixMicro(), offset: int64(off) * 1_000_000})
		t = end
	}
}

// localDay turns a local day number (days since 1970-01-01 on the
// exchange's calendar) into the UTC instants of its local midnights.
func localDay(exchange string, day int64) (start, end md.Timestamp) {
	loc := time.UTC
	if ex, err := md.LookupExchange(exchange); err == nil {
		loc = ex.Location()
	}
	d := time.Unix(day*86400, 0).UTC()
	midnight := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	return md.TimestampOf(midnight), md.TimestampOf(midnight.AddDate(0, 0, 1))
}

func ratOf(v any) (*big.Rat, error) {
	d, ok := v.(duckdb.Decimal)
	if !ok {
		return nil, fmt.Errorf("expected DECIMAL, got %T", v)
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil)
	return new(big.Rat).SetFrac(d.Value, scale), nil
}
