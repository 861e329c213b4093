package tail

import (
	"cmp"
	"context"
	"slices"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Query selects a kind's records after a lake snapshot.
type Query struct {
	Symbols   []string // none: every symbol
	Exchanges []string // none: every exchange
	From, To  md.Timestamp
	Desc      bool
	// After, when set, keeps records after this time and sequence in the
	// read's order (records at exactly that time and sequence are decoded
	// and left to Keep, which knows the key).
	After    bool
	AfterAt  md.Timestamp
	AfterSeq *int64
	// Limit keeps the first Limit records in the read's order (by time
	// and sequence, ties kept); 0 keeps all.
	Limit int
	// Keep is the exact test on a decoded record.
	Keep func(*record.Row) bool
}

type candidate struct {
	s *series
	i int
}

// Since returns k's records from the offsets from (a lake snapshot's) on
// that q selects, and whether the tail still holds every record from
// those offsets: false when it evicted some the lake does not have yet.
func (t *Tail) Since(ctx context.Context, k record.Any, from lake.Offsets, q Query) ([]record.Row, bool) {
	return t.SinceTo(ctx, k, from, q, nil)
}

// SinceTo is Since, and moves to (when not nil; it may be from itself)
// to where the records read end: reading again from there returns only
// what arrived after.
func (t *Tail) SinceTo(ctx context.Context, k record.Any, from lake.Offsets, q Query, to lake.Offsets) ([]record.Row, bool) {
	kt := t.kinds[k.Describe().Index()]
	if kt == nil {
		return nil, true
	}
	kt.mu.RLock()
	defer kt.mu.RUnlock()
	groups := kt.of(q.Symbols)
	complete := true
	t.mu.Lock()
	for _, pt := range t.parts {
		if pt.kind != kt || len(q.Exchanges) > 0 && !slices.Contains(q.Exchanges, pt.exchange) {
			continue
		}
		if off, _ := from.Get(pt.topic, pt.partition); pt.low > off {
			complete = false
		}
	}
	t.mu.Unlock()
	if to != nil {
		// After every read of from; next changes under kt.mu only.
		defer func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			for _, pt := range t.parts {
				if pt.kind == kt {
					to.Set(pt.topic, pt.partition, pt.next)
				}
			}
		}()
	}
	var cands []candidate
	var ties []record.Row
	for _, g := range groups {
		for _, s := range g {
			if len(q.Exchanges) > 0 && !slices.Contains(q.Exchanges, s.part.exchange) {
				continue
			}
			off, _ := from.Get(s.part.topic, s.part.partition)
			i, _ := slices.BinarySearchFunc(s.entries, off, func(e entry, off int64) int { return cmp.Compare(e.off, off) })
			for ; i < len(s.entries); i++ {
				e := &s.entries[i]
				if q.From != 0 && e.time < int64(q.From) || q.To != 0 && e.time >= int64(q.To) {
					continue
				}
				if q.After {
					switch c := q.order(e.time, e.seq, e.hasSeq, int64(q.AfterAt), q.AfterSeq); {
					case c < 0:
						continue
					case c == 0: // decided by the key
						if row, ok := t.decode(ctx, kt, e); ok && q.keep(&row) {
							ties = append(ties, row)
						}
						continue
					}
				}
				cands = append(cands, candidate{s, i})
			}
		}
	}
	if q.Limit > 0 && len(ties)+len(cands) > q.Limit {
		slices.SortFunc(cands, func(a, b candidate) int {
			x, y := &a.s.entries[a.i], &b.s.entries[b.i]
			return q.order(x.time, x.seq, x.hasSeq, y.time, seqPtr(y))
		})
		n := max(q.Limit-len(ties), 0)
		for n > 0 && n < len(cands) { // keep records tied with the last one
			x, y := &cands[n-1].s.entries[cands[n-1].i], &cands[n].s.entries[cands[n].i]
			if q.order(y.time, y.seq, y.hasSeq, x.time, seqPtr(x)) != 0 {
				break
			}
			n++
		}
		cands = cands[:n]
	}
	out := ties
	for _, c := range cands {
		if row, ok := t.decode(ctx, kt, &c.s.entries[c.i]); ok && q.keep(&row) {
			out = append(out, row)
		}
	}
	return out, complete
}

// of is the series of symbols (none: all). The caller holds kt.mu.
func (kt *kindTail) of(symbols []string) [][]*series {
	var groups [][]*series
	if len(symbols) > 0 {
		for _, sym := range symbols {
			groups = append(groups, kt.series[sym])
		}
	} else {
		for _, g := range kt.series {
			groups = append(groups, g)
		}
	}
	return groups
}

func (q *Query) keep(r *record.Row) bool { return q.Keep == nil || q.Keep(r) }

// order compares a record's (time, sequence) with another's in the read's
// direction: negative when it comes first. A null sequence sorts last.
func (q *Query) order(t int64, seq int64, hasSeq bool, t2 int64, seq2 *int64) int {
	c := cmp.Compare(t, t2)
	if c == 0 {
		null := int64(1<<63 - 1)
		if q.Desc {
			null = -1 << 63
		}
		a, b := null, null
		if hasSeq {
			a = seq
		}
		if seq2 != nil {
			b = *seq2
		}
		c = cmp.Compare(a, b)
	}
	if q.Desc {
		return -c
	}
	return c
}

func seqPtr(e *entry) *int64 {
	if !e.hasSeq {
		return nil
	}
	s := e.seq
	return &s
}

func (t *Tail) decode(ctx context.Context, kt *kindTail, e *entry) (record.Row, bool) {
	row, err := kt.kind.DecodeRow(t.dec, ctx, e.msg)
	return row, err == nil
}
