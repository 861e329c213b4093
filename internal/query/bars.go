package query

import (
	"cmp"
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
)

// BarQuery asks for OHLCV bars of one symbol, or of several.
type BarQuery struct {
	Filter   // Symbol or Symbols is required
	Interval md.Interval
	AsOf     AsOf
	Limit    int  // 0: every bar in range (at most MaxLimit)
	Desc     bool // newest bar first
	// IncludeNonMarket counts the prints that are not order-book trades
	// (md.NonMarketConditions), which bars leave out by default.
	IncludeNonMarket bool
	// TWAP asks Aggregates for each bar's time-weighted average price.
	TWAP bool
	// Extra are trades the lake does not hold yet: the stream's records
	// after the snapshot AsOf pins (Pin gives its offsets). They are
	// filtered as the lake's trades are and merged into the same minutes,
	// exactly.
	Extra []md.Trade
	// TradesOnly computes the bars from the trades even where a bar table
	// holds them (the rollup that keeps the bar tables).
	TradesOnly bool
}

const microsPerMinute = 60_000_000

// minute aggregates one symbol's trades in one UTC minute. Every bar is
// merged from minutes: intraday windows are whole minutes of the UTC
// epoch, and a trading day in any zone K2 knows starts on a whole minute.
type minute struct {
	exchange, symbol string
	m                int64 // minutes since the epoch
	// Open and close are the first and last trade by (time, exchange
	// sequence); their keys order minutes of different files.
	openKey, closeKey tradeKey
	open, close       md.Decimal
	high, low         md.Decimal
	count             int64
	// Fixed-width sums: the minute cache holds millions of minutes, and
	// big.Int's pointers made the collector scan them all.
	volume   int128 // units of 10⁻⁸
	notional int128 // Σ price·quantity in units of 10⁻¹⁶
	// area is Σ price·held in units of 10⁻⁸·µs, where a trade's price is
	// held until the minute's next trade or the minute's end (TWAP only).
	area *big.Int
}

// absorb takes b's trades into a's open, close, high, low and count
// (the sums are the caller's: their types differ).
func (a *minute) absorb(b *minute) {
	if b.openKey.less(a.openKey) {
		a.openKey, a.open = b.openKey, b.open
	}
	if a.closeKey.less(b.closeKey) {
		a.closeKey, a.close = b.closeKey, b.close
	}
	a.high, a.low = max(a.high, b.high), min(a.low, b.low)
	a.count += b.count
}

// tradeKey orders trades by time, then sequence (absent sequences first).
type tradeKey struct{ ts, seq int64 }

func (a tradeKey) less(b tradeKey) bool { return a.ts < b.ts || a.ts == b.ts && a.seq < b.seq }

// minuteSQL aggregates trades per (exchange, symbol, minute). The order key
// packs the microsecond time and the sequence into one HUGEINT so DuckDB's
// arg_min/arg_max find the first and last trade in one pass. Sums are exact
// DECIMALs, returned as text and read without float. The last column is
// the minute's time-weighted price area, or NULL (minuteArea).
const minuteSQL = `SELECT exchange, symbol, m,
	min(k), arg_min(price, k)::VARCHAR, max(k), arg_max(price, k)::VARCHAR,
	max(price)::VARCHAR, min(price)::VARCHAR, count(*), sum(quantity)::VARCHAR,
	sum(price::DECIMAL(38, 8) * quantity::DECIMAL(38, 8))::VARCHAR, %s
FROM (%s)
GROUP BY exchange, symbol, m`

// minuteTrades is each trade with its time t, minute m and order key k.
const minuteTrades = `SELECT exchange, symbol, price, quantity, epoch_us("timestamp") AS t, epoch_us("timestamp") // 60000000 AS m,
	epoch_us("timestamp")::HUGEINT * 10000000000000000000 + coalesce(source_sequence + 1, 0) AS k
	FROM %s%s`

// minuteHeld adds how long each trade's price held within its minute:
// until the next trade by (time, sequence), or the minute's end.
const minuteHeld = `SELECT *, coalesce(lead(t) OVER (PARTITION BY exchange, symbol, m ORDER BY k), (m + 1) * 60000000) - t AS held
	FROM (%s)`

// minuteArea is minuteSQL's last column with and without the TWAP area.
var minuteArea = map[bool]string{false: "NULL::VARCHAR", true: "sum(price::DECIMAL(38, 8) * held)::VARCHAR"}

var keyBase = new(big.Int).Exp(big.NewInt(10), big.NewInt(19), nil)

// minutes aggregates the trades of the files that w keeps per minute,
// with each minute's TWAP area when twap is set.
func (e *Engine) minutes(ctx context.Context, paths []string, w *where, twap bool) ([]minute, error) {
	from := fmt.Sprintf(minuteTrades, readParquet(paths), w)
	if twap {
		from = fmt.Sprintf(minuteHeld, from)
	}
	var out []minute
	err := e.run(ctx, fmt.Sprintf(minuteSQL, minuteArea[twap], from), w.args, func(rows *sql.Rows) error {
		for rows.Next() {
			var (
				mn                                 minute
				okey, ckey                         *big.Int
				open, close, high, low, vol, notnl string
				area                               sql.NullString
			)
			if err := rows.Scan(&mn.exchange, &mn.symbol, &mn.m, &okey, &open, &ckey, &close, &high, &low, &mn.count, &vol, &notnl, &area); err != nil {
				return err
			}
			mn.openKey, mn.closeKey = splitKey(okey), splitKey(ckey)
			var err error
			for _, d := range []struct {
				dst  *md.Decimal
				text string
			}{{&mn.open, open}, {&mn.close, close}, {&mn.high, high}, {&mn.low, low}} {
				if *d.dst, err = md.ParseDecimal(d.text); err != nil {
					return err
				}
			}
			if mn.volume, err = scaledInt128(vol, md.DecimalScale); err != nil {
				return err
			}
			if mn.notional, err = scaledInt128(notnl, 2*md.DecimalScale); err != nil {
				return err
			}
			if area.Valid {
				if mn.area, err = scaledInt(area.String, md.DecimalScale); err != nil {
					return err
				}
			}
			out = append(out, mn)
		}
		return nil
	})
	return out, err
}

func splitKey(k *big.Int) tradeKey {
	ts, seq := new(big.Int).QuoRem(k, keyBase, new(big.Int))
	return tradeKey{ts.Int64(), seq.Int64() - 1}
}

// scaledInt128 reads a decimal's text as a 128-bit integer of units of
// 10^-scale.
func scaledInt128(text string, scale int) (int128, error) {
	v, err := scaledInt(text, scale)
	if err != nil {
		return int128{}, err
	}
	if v.BitLen() > 126 {
		return int128{}, fmt.Errorf("decimal %q is past 128 bits", text)
	}
	return int128Of(0).plusBig(v), nil
}

// scaledInt reads a decimal's text as an integer of units of 10^-scale.
func scaledInt(text string, scale int) (*big.Int, error) {
	whole, frac, _ := strings.Cut(text, ".")
	if len(frac) > scale {
		return nil, fmt.Errorf("decimal %q has more than %d decimals", text, scale)
	}
	v, ok := new(big.Int).SetString(whole+frac+strings.Repeat("0", scale-len(frac)), 10)
	if !ok {
		return nil, fmt.Errorf("decimal %q is not a number", text)
	}
	return v, nil
}

// Bars aggregates trades into bars. Intraday windows align to the UTC
// epoch; a 1d bar covers one exchange-local trading date (Sydney's day for
// ASX, a 23- or 25-hour day across a DST change). Open and close are the
// first and last trade by time, then exchange sequence; volume and VWAP are
// exact: Σ(price·quantity)/Σquantity, rounded half-up to 8 decimals.
//
// Bars leave out prints that are not order-book trades
// (md.NonMarketConditions) unless IncludeNonMarket says otherwise.
//
// Bars are merged from per-minute aggregates. For whole-minute ranges
// without condition filters those come from the minute cache, computed
// once per immutable data file; otherwise from one query over the files.
// The trades of q.Extra are merged into the same minutes.
func (e *Engine) Bars(ctx context.Context, q BarQuery) ([]md.Bar, error) {
	q.TWAP = false
	aggs, err := e.Aggregates(ctx, q)
	return BarsOf(aggs), err
}

// BarsOf are the aggregates' bars (nil for none).
func BarsOf(aggs []Aggregate) []md.Bar {
	if len(aggs) == 0 {
		return nil
	}
	bars := make([]md.Bar, len(aggs))
	for i := range aggs {
		bars[i] = aggs[i].Bar
	}
	return bars
}

// Aggregate is a bar with its time-weighted average price.
type Aggregate struct {
	md.Bar
	// TWAP (with BarQuery.TWAP) is the time-weighted average price: each
	// trade's price holds from its time until the bar's next trade (by
	// time, then sequence), the last one's until the bar's end or the
	// query's end, whichever comes first; Σ price·held / Σ held, rounded
	// half-up to 8 decimals. The time before the bar's first trade does
	// not count.
	TWAP md.Decimal
}

// Aggregates are Bars with, when q.TWAP asks, each bar's TWAP. A TWAP
// needs each minute's trades in order, so it is computed by one query
// over the files rather than from the minute cache.
func (e *Engine) Aggregates(ctx context.Context, q BarQuery) (out []Aggregate, err error) {
	start := time.Now()
	read := 0
	defer func() { e.observe("bars", start, read, len(out), err) }()
	if q.Symbol == "" && len(q.Symbols) == 0 {
		return nil, errors.New("bars need a symbol")
	}
	width := q.Interval.Duration()
	if width == 0 {
		return nil, fmt.Errorf("interval %q is not one of 1m, 5m, 15m, 30m, 1h, 1d", q.Interval)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return nil, fmt.Errorf("limit %d is outside 1 … %d", q.Limit, MaxLimit)
	}
	if q.From != 0 && q.To != 0 && q.To <= q.From {
		return nil, fmt.Errorf("time range is empty: to (%s) is not after from (%s)", q.To, q.From)
	}
	st, err := e.loadFor(ctx, record.Trade.Table.Name, q.AsOf)
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(st, record.Trade.Table.Name, q.AsOf)
	if err != nil {
		return nil, err
	}
	if bars, ok, err := e.fromBarTable(ctx, q, st, snap); ok {
		e.m.barsFrom.WithLabelValues("table").Inc()
		return bars, nil
	} else if err != nil {
		e.log.Debug("bars: the bar table could not answer; computing from the trades", "interval", q.Interval, "error", err)
	}
	if !q.TradesOnly { // the rollup's own reads, and a split query's edges, are not asked for
		e.m.barsFrom.WithLabelValues("trades").Inc()
	}
	files, err := e.plan(ctx, st, snap, "timestamp", q.Filter)
	if err != nil {
		return nil, err
	}
	read = len(files)
	f := q.Filter
	if !q.IncludeNonMarket {
		f.ExcludeConditions = append(slices.Clone(f.ExcludeConditions), md.NonMarketConditions...)
	}
	var mins []minute
	switch {
	case len(files) == 0:
	case !q.TWAP && q.From%microsPerMinute == 0 && q.To%microsPerMinute == 0 && len(q.ExcludeConditions) == 0 && !q.IncludeNonMarket:
		mins, err = e.cachedMinutes(ctx, files, q.Filter)
	default:
		var paths []string
		if paths, err = e.paths(ctx, files); err == nil {
			mins, err = e.minutes(ctx, paths, filterWhere(f, `"timestamp"`), q.TWAP)
		}
	}
	if err == nil && len(q.Extra) > 0 {
		mins, err = e.withExtra(ctx, mins, q, f)
	}
	if err != nil {
		return nil, err
	}
	return mergeBars(mins, q)
}

// mergeBars folds minutes into the requested windows.
func mergeBars(mins []minute, q BarQuery) ([]Aggregate, error) {
	type acc struct {
		minute
		start, end md.Timestamp
		parts      []*minute // for the TWAP
	}
	per := int64(q.Interval.Duration() / time.Minute)
	windows := map[[2]string]map[int64]*acc{}
	for i := range mins {
		mn := &mins[i]
		var key int64
		var start, end md.Timestamp
		if q.Interval == md.Interval1d {
			start, end = localDay(mn.exchange, mn.m)
			key = int64(start)
		} else {
			key = mn.m / per
			start = md.Timestamp(key * per * microsPerMinute)
			end = start + md.Timestamp(per*microsPerMinute)
		}
		byKey := windows[[2]string{mn.exchange, mn.symbol}]
		if byKey == nil {
			byKey = map[int64]*acc{}
			windows[[2]string{mn.exchange, mn.symbol}] = byKey
		}
		a := byKey[key]
		if a == nil {
			a = &acc{minute: *mn, start: start, end: end}
			byKey[key] = a
		} else {
			a.absorb(mn)
			if !a.volume.add(mn.volume) || !a.notional.add(mn.notional) {
				return nil, fmt.Errorf("the volume of %s's bar at %s is past 128 bits", a.symbol, start)
			}
		}
		if q.TWAP {
			a.parts = append(a.parts, mn)
		}
	}
	var bars []Aggregate
	for _, byKey := range windows {
		for _, a := range byKey {
			bar := Aggregate{Bar: md.Bar{
				Symbol: a.symbol, Exchange: a.exchange, Interval: q.Interval,
				WindowStart: a.start, WindowEnd: a.end,
				Open: a.open, High: a.high, Low: a.low, Close: a.close,
				Volume: md.WideDecimal{Units: a.volume.big()}, TradeCount: a.count,
				Partial: q.From != 0 && a.start < q.From || q.To != 0 && a.end > q.To,
			}}
			if bar.Volume.Units.Sign() > 0 {
				// notional is in 10⁻¹⁶, volume in 10⁻⁸: the ratio is in units.
				v, err := md.RoundQuo(a.notional.big(), bar.Volume.Units)
				if err != nil {
					return nil, err
				}
				bar.VWAP = v
			}
			if q.TWAP {
				end := a.end
				if q.To != 0 && q.To < end {
					end = q.To
				}
				v, err := twapOf(a.parts, end)
				if err != nil {
					return nil, err
				}
				bar.TWAP = v
			}
			bars = append(bars, bar)
		}
	}
	return limitBars(bars, q), nil
}

func sortBars(bars []Aggregate, desc bool) {
	less := func(a, b Aggregate) int {
		switch {
		case a.WindowStart != b.WindowStart:
			if (a.WindowStart < b.WindowStart) != desc {
				return -1
			}
			return 1
		case a.Exchange != b.Exchange:
			return strings.Compare(a.Exchange, b.Exchange)
		}
		return strings.Compare(a.Symbol, b.Symbol)
	}
	slices.SortFunc(bars, less)
}

// localDay returns the exchange-local trading date holding minute m as the
// UTC instants of its local midnights.
func localDay(exchange string, m int64) (start, end md.Timestamp) {
	loc := time.UTC
	if ex, err := md.LookupExchange(exchange); err == nil {
		loc = ex.Location()
	}
	y, mo, d := time.Unix(m*60, 0).In(loc).Date()
	return md.TimestampOf(md.DayStart(y, mo, d, loc)), md.TimestampOf(md.DayStart(y, mo, d+1, loc))
}

// minuteCache keeps the per-minute aggregates of data files. Data files
// never change once committed, so an entry is valid for as long as the file
// is in any snapshot; entries are evicted least recently used.
type minuteCache struct {
	mu      sync.Mutex
	entries map[string]*list.Element
	lru     list.List // of *minuteEntry, most recent at the front
	size    int       // minutes held
	flight  singleflight.Group
}

type minuteEntry struct {
	location string
	minutes  []minute
}

// maxCachedMinutes bounds the cache: about 150 MB.
const maxCachedMinutes = 1_000_000

func (c *minuteCache) get(location string) ([]minute, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[location]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*minuteEntry).minutes, true
}

func (c *minuteCache) put(location string, mins []minute) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*list.Element{}
	}
	if _, ok := c.entries[location]; ok {
		return
	}
	c.entries[location] = c.lru.PushFront(&minuteEntry{location, mins})
	c.size += len(mins)
	for c.size > maxCachedMinutes && c.lru.Len() > 1 {
		old := c.lru.Remove(c.lru.Back()).(*minuteEntry)
		delete(c.entries, old.location)
		c.size -= len(old.minutes)
	}
}

// computeMinutes computes a data file's minute aggregates once, however
// many ask at the same time, and caches them.
func (e *Engine) computeMinutes(ctx context.Context, f dataFile) ([]minute, error) {
	if m, ok := e.minuteCache.get(f.location); ok {
		return m, nil
	}
	v, err, _ := e.minuteCache.flight.Do(f.location, func() (any, error) {
		paths, err := e.paths(ctx, []dataFile{f})
		if err != nil {
			return nil, err
		}
		// The cache holds the default bars: without non-market prints.
		var m []minute
		err = e.runInGo(ctx, func(ctx context.Context) (err error) {
			m, err = e.minutesInGo(ctx, f, paths[0], md.NonMarketConditions)
			return err
		})
		if errors.Is(err, errNoFastPath) {
			m, err = e.minutes(ctx, paths, filterWhere(Filter{ExcludeConditions: md.NonMarketConditions}, `"timestamp"`), false)
		}
		if err == nil {
			slices.SortFunc(m, func(a, b minute) int { // for cachedMinutes' search
				return cmp.Or(strings.Compare(a.symbol, b.symbol), strings.Compare(a.exchange, b.exchange), cmp.Compare(a.m, b.m))
			})
			e.minuteCache.put(f.location, m)
		}
		return m, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]minute), nil
}

// cachedMinutes collects the minutes of files inside f's whole-minute range.
// The files not cached yet are aggregated at once, one per core.
func (e *Engine) cachedMinutes(ctx context.Context, files []dataFile, f Filter) ([]minute, error) {
	per := make([][]minute, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, file := range files {
		if m, ok := e.minuteCache.get(file.location); ok {
			e.m.barHits.Inc()
			per[i] = m
			continue
		}
		g.Go(func() error {
			e.m.barMisses.Inc()
			m, err := e.computeMinutes(gctx, file)
			per[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []minute
	for _, mins := range per {
		if f.Symbol == "" {
			for _, mn := range mins {
				if f.holds(mn.symbol, mn.exchange, md.Timestamp(mn.m*microsPerMinute)) {
					out = append(out, mn)
				}
			}
			continue
		}
		out = appendSymbolMinutes(out, mins, f)
	}
	return out, nil
}

// appendSymbolMinutes appends the minutes of f's symbol that f holds,
// found by binary search in mins (sorted by symbol, exchange, minute):
// a symbol-day's file holds 1,440 minutes, an hour's bars want 60.
func appendSymbolMinutes(out, mins []minute, f Filter) []minute {
	n := len(mins)
	i := sort.Search(n, func(i int) bool { return mins[i].symbol >= f.Symbol })
	for i < n && mins[i].symbol == f.Symbol {
		ex := mins[i].exchange
		end := i + sort.Search(n-i, func(k int) bool { return mins[i+k].symbol != f.Symbol || mins[i+k].exchange != ex })
		k := i
		if f.From != 0 {
			k += sort.Search(end-i, func(k int) bool { return md.Timestamp(mins[i+k].m*microsPerMinute) >= f.From })
		}
		for ; k < end; k++ {
			t := md.Timestamp(mins[k].m * microsPerMinute)
			if f.To != 0 && t >= f.To {
				break
			}
			if f.holds(mins[k].symbol, mins[k].exchange, t) {
				out = append(out, mins[k])
			}
		}
		i = end
	}
	return out
}

// WarmBars computes the minute aggregates of the current trades
// snapshot's data files that are not cached yet, newest first, so bar
// queries are answered from memory. A long-running server calls it often:
// it returns at once while the snapshot is the one it last warmed.
func (e *Engine) WarmBars(ctx context.Context) error {
	st, err := e.load(ctx, record.Trade.Table.Name)
	if err != nil {
		return err
	}
	snap := st.tbl.CurrentSnapshot()
	if snap == nil || e.warmed.Load() == snap.SnapshotID {
		return nil
	}
	files, err := e.plan(ctx, st, snap, "timestamp", Filter{})
	if err != nil {
		return err
	}
	files = append([]dataFile(nil), files...)
	sortFiles(files, true) // the cache keeps the newest when it cannot keep all
	held := 0
	for _, f := range files {
		_, cached := e.minuteCache.get(f.location)
		begun := time.Now()
		mins, err := e.computeMinutes(ctx, f)
		if err != nil {
			return err
		}
		if !cached { // DuckDB's threads were all busy meanwhile
			busy := time.Since(begun) * time.Duration(e.opts.Threads)
			if err := ops.Rest(ctx, busy, e.opts.WarmShare); err != nil {
				return err
			}
		}
		// Warming more than half the cache would evict what it just warmed.
		if held += len(mins); held > maxCachedMinutes/2 {
			break
		}
	}
	e.warmed.Store(snap.SnapshotID)
	return nil
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
	day, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return nil, fmt.Errorf("date %q is not YYYY-MM-DD", date)
	}
	y, mo, d := day.Date()
	bars, err := e.Bars(ctx, BarQuery{
		Filter: Filter{Symbol: symbol, Exchange: ex.Code,
			From: md.TimestampOf(md.DayStart(y, mo, d, ex.Location())), To: md.TimestampOf(md.DayStart(y, mo, d+1, ex.Location()))},
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
