package query

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Pin returns the snapshot a read of table as of asOf sees, nil while
// the table is empty. Reading AsOf{SnapshotID: ref.ID} reads exactly it,
// and the stream from ref.Offsets on holds what came after: a fresh read
// pins the lake first, then takes the rest from the stream.
func (e *Engine) Pin(ctx context.Context, table string, asOf AsOf) (*SnapshotRef, error) {
	st, err := e.load(ctx, table)
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(st, table, asOf)
	if err != nil {
		return nil, err
	}
	return refOf(st, snap), nil
}

// Timeout is a query's deadline (--query-timeout): a request that runs
// several queries at once may wait this long for them.
func (e *Engine) Timeout() time.Duration { return e.opts.Timeout }

// excluded reports whether a trade carries a condition of excl.
func excluded(t *md.Trade, excl []string) bool {
	return slices.ContainsFunc(t.TradeConditions, func(c string) bool { return slices.Contains(excl, c) })
}

// withExtra merges q.Extra, the trades after the lake's snapshot, into
// the lake's minutes; f is the query's filter with the conditions it
// leaves out. Open, close, high, low and the sums merge in any order. A
// minute's TWAP area merges only when one part's trades all come before
// the other's; a minute where the stream's trades fall between the
// lake's is computed again from both, with one read of the lake's trades
// per symbol.
func (e *Engine) withExtra(ctx context.Context, mins []minute, q BarQuery, f Filter) ([]minute, error) {
	var kept []md.Trade
	for i := range q.Extra {
		t := &q.Extra[i]
		if f.holds(t.Symbol, t.Exchange, t.Timestamp) && !excluded(t, f.ExcludeConditions) {
			kept = append(kept, *t)
		}
	}
	extra, err := tradeMinutes(kept, q.TWAP)
	if err != nil {
		return nil, err
	}
	if !q.TWAP {
		return append(mins, extra...), nil
	}
	type key struct {
		exchange, symbol string
		m                int64
	}
	lake := make(map[key]*minute, len(mins))
	for i := range mins {
		lake[key{mins[i].exchange, mins[i].symbol, mins[i].m}] = &mins[i]
	}
	redo := map[key]bool{}
	span := map[[2]string][2]int64{} // first and last minute to read again
	for _, x := range extra {
		k := key{x.exchange, x.symbol, x.m}
		if l := lake[k]; l != nil && !l.closeKey.less(x.openKey) && !x.closeKey.less(l.openKey) {
			redo[k] = true
			s, ok := span[[2]string{k.exchange, k.symbol}]
			if !ok {
				s = [2]int64{k.m, k.m}
			}
			span[[2]string{k.exchange, k.symbol}] = [2]int64{min(s[0], k.m), max(s[1], k.m)}
		}
	}
	if len(redo) == 0 {
		return append(mins, extra...), nil
	}
	var again []md.Trade
	for es, s := range span {
		rf := Filter{Symbol: es[1], Exchange: es[0], ExcludeConditions: f.ExcludeConditions,
			From: max(f.From, md.Timestamp(s[0]*microsPerMinute)), To: md.Timestamp((s[1] + 1) * microsPerMinute)}
		if f.To != 0 {
			rf.To = min(rf.To, f.To)
		}
		trades, err := e.Trades(ctx, RecordQuery{Filter: rf, AsOf: q.AsOf, Limit: MaxLimit})
		if err != nil {
			return nil, err
		}
		if len(trades) == MaxLimit {
			return nil, requestError("a TWAP of %s needs more than %d of its trades in %s–%s read again; narrow the range",
				es[1], MaxLimit, rf.From, rf.To)
		}
		again = append(again, trades...)
	}
	inRedo := func(t *md.Trade) bool { return redo[key{t.Exchange, t.Symbol, minuteOf(t.Timestamp)}] }
	out := slices.DeleteFunc(append(mins, extra...), func(mn minute) bool { return redo[key{mn.exchange, mn.symbol, mn.m}] })
	again = slices.DeleteFunc(again, func(t md.Trade) bool { return !inRedo(&t) })
	for i := range kept {
		if inRedo(&kept[i]) {
			again = append(again, kept[i])
		}
	}
	redone, err := tradeMinutes(again, true)
	return append(out, redone...), err
}

func minuteOf(t md.Timestamp) int64 {
	m := int64(t) / microsPerMinute
	if int64(t)%microsPerMinute < 0 {
		m--
	}
	return m
}

func keyOf(t *md.Trade) tradeKey {
	seq := int64(-1) // absent sequences first, as minuteSQL orders them
	if t.SourceSequence.Valid {
		seq = t.SourceSequence.Int64
	}
	return tradeKey{int64(t.Timestamp), seq}
}

// tradeMinutes aggregates trades per (exchange, symbol, minute) as
// minuteSQL does, with the TWAP area when twap is set.
func tradeMinutes(trades []md.Trade, twap bool) ([]minute, error) {
	slices.SortFunc(trades, func(a, b md.Trade) int {
		if c := strings.Compare(a.Exchange, b.Exchange); c != 0 {
			return c
		}
		if c := strings.Compare(a.Symbol, b.Symbol); c != 0 {
			return c
		}
		ka, kb := keyOf(&a), keyOf(&b)
		switch {
		case ka.less(kb):
			return -1
		case kb.less(ka):
			return 1
		}
		return 0
	})
	var out []minute
	for i := 0; i < len(trades); {
		first := &trades[i]
		mn := minute{exchange: first.Exchange, symbol: first.Symbol, m: minuteOf(first.Timestamp),
			openKey: keyOf(first), open: first.Price, high: first.Price, low: first.Price}
		if twap {
			mn.area = new(big.Int)
		}
		j := i
		for ; j < len(trades) && trades[j].Exchange == mn.exchange && trades[j].Symbol == mn.symbol && minuteOf(trades[j].Timestamp) == mn.m; j++ {
			t := &trades[j]
			price := big.NewInt(t.Price.Units())
			mn.closeKey, mn.close = keyOf(t), t.Price
			mn.high, mn.low = max(mn.high, t.Price), min(mn.low, t.Price)
			mn.count++
			if !mn.volume.add(int128Of(t.Quantity.Units())) || !mn.notional.add(mul128(t.Price.Units(), t.Quantity.Units())) {
				return nil, fmt.Errorf("the volume of %s's minute %s is past 128 bits", mn.symbol, md.Timestamp(mn.m*microsPerMinute))
			}
			if twap {
				next := (mn.m + 1) * microsPerMinute
				if k := j + 1; k < len(trades) && trades[k].Exchange == mn.exchange && trades[k].Symbol == mn.symbol &&
					minuteOf(trades[k].Timestamp) == mn.m {
					next = int64(trades[k].Timestamp)
				}
				mn.area.Add(mn.area, price.Mul(price, big.NewInt(next-int64(t.Timestamp))))
			}
		}
		out = append(out, mn)
		i = j
	}
	return out, nil
}

// twapOf is the TWAP of a bar's minutes up to end. Each minute's area
// runs to the minute's end; its close holds instead until the next
// minute's first trade, or end.
func twapOf(parts []*minute, end md.Timestamp) (md.Decimal, error) {
	slices.SortFunc(parts, func(a, b *minute) int {
		switch {
		case a.openKey.less(b.openKey):
			return -1
		case b.openKey.less(a.openKey):
			return 1
		}
		return 0
	})
	area := new(big.Int)
	for i, p := range parts {
		if p.area == nil {
			return 0, fmt.Errorf("the minute %s of %s has no TWAP area", md.Timestamp(p.m*microsPerMinute), p.symbol)
		}
		next := int64(end)
		if i+1 < len(parts) {
			if !p.closeKey.less(parts[i+1].openKey) {
				return 0, fmt.Errorf("the trades of %s's minute %s overlap", p.symbol, md.Timestamp(p.m*microsPerMinute))
			}
			next = parts[i+1].openKey.ts
		}
		area.Add(area, p.area)
		area.Add(area, new(big.Int).Mul(big.NewInt(p.close.Units()), big.NewInt(next-(p.m+1)*microsPerMinute)))
	}
	held := int64(end) - parts[0].openKey.ts
	return md.RoundRat(new(big.Rat).SetFrac(area, new(big.Int).Mul(big.NewInt(held), big.NewInt(100_000_000))))
}

// Head is a table's current snapshot and the earlier snapshots it extends
// with the stream's records alone: a reader holding rows of one of those
// brings them up to date from the stream, without the lake.
type Head struct {
	*SnapshotRef // nil while the table is empty
	// streamed are the current snapshot and its ancestors back to the
	// newest one a load (or anything but the stream) changed after.
	streamed map[int64]bool
}

// Extends reports whether the table now is the table at snapshot id plus
// the stream's records from id's offsets to the head's: every commit
// since was the stream's, or a compaction.
func (h *Head) Extends(id int64) bool { return h.streamed[id] }

// headRecheck is how often Head asks the catalog again. Readers of the
// head (the latest records kept in memory) take what the stream brought
// after it from the stream, so a head a moment old loses them nothing;
// only a load by another writer is seen later, by this and the time to
// read the new metadata.
const headRecheck = 100 * time.Millisecond

// Head returns table's current snapshot as the catalog last named it,
// worked out once per metadata version. It never waits for the catalog
// but the first time: past headRecheck it answers what it has while one
// refresh reads the new metadata in the background (a table with many
// snapshots takes tens of milliseconds to read, which every read arriving
// meanwhile would otherwise wait for).
func (e *Engine) Head(ctx context.Context, table string) (*Head, error) {
	e.mu.Lock()
	st := e.tables[table]
	e.mu.Unlock()
	switch {
	case st == nil:
		var err error
		if st, err = e.load(ctx, table); err != nil {
			return nil, err
		}
	case time.Since(time.Unix(0, st.checked.Load())) >= headRecheck && st.refreshing.CompareAndSwap(false, true):
		e.background.Go(func() {
			defer st.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
			defer cancel()
			fresh, err := e.load(ctx, table)
			if err != nil {
				e.log.Warn("reading the table's metadata failed", "table", table, "error", err)
				return
			}
			// Worked out here too, not by the next reader: the head, and
			// the files of its snapshot (a compaction's new manifests
			// take tens of milliseconds to decode).
			h := fresh.headOf()
			if k, err := record.ByTable(table); err == nil && h.SnapshotRef != nil {
				if snap := fresh.tbl.SnapshotByID(h.ID); snap != nil {
					e.snapshotFiles(ctx, fresh, snap, k.Describe().Table.Time)
				}
			}
		})
	}
	return st.headOf(), nil
}

// headOf works out the table's head once.
func (st *tableState) headOf() *Head {
	st.headOnce.Do(func() {
		snap := st.tbl.CurrentSnapshot()
		h := &Head{SnapshotRef: refOf(st, snap), streamed: map[int64]bool{}}
		md := st.tbl.Metadata()
		for s := snap; s != nil; {
			h.streamed[s.SnapshotID] = true
			if !lake.Streamed(st.tbl, s) {
				break
			}
			s = md.SnapshotByID(*s.ParentSnapshotID)
		}
		st.head = h
	})
	return st.head
}
