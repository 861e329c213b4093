package query

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// QuoteProbe asks for the quote of a symbol on an exchange that prevailed
// at an instant (a trade's).
type QuoteProbe struct {
	Symbol, Exchange string
	Time             md.Timestamp
}

// QuoteJoin asks for the quotes prevailing at several instants: the
// as-of join of trades with quotes that transaction-cost analysis needs.
type QuoteJoin struct {
	Probes []QuoteProbe
	// AsOf is the quotes table's state; pin it (Pin) when Extra is given.
	AsOf AsOf
	// Extra are quotes after that snapshot (the stream's).
	Extra []md.Quote
}

// PrevailingQuotes returns, for each probe, the latest quote of its symbol
// and exchange at or before its time (by time, then exchange sequence), or
// nil. A quote prevails only on its own exchange-local trading date (the
// date of 1d bars): the book of an earlier session says nothing of this
// one's, so a probe before its day's first quote has none.
//
// The work is bounded per symbol, not per probe: one read of the quotes
// between the symbol's first and last probe, and one of the latest quote
// before the first. A symbol whose probes span more than MaxLimit-1
// quotes is refused as asked (a RequestError): ask for fewer trades.
func (e *Engine) PrevailingQuotes(ctx context.Context, q QuoteJoin) ([]*md.Quote, error) {
	out := make([]*md.Quote, len(q.Probes))
	if len(q.Probes) == 0 {
		return out, nil
	}
	table := record.Quote.Table.Name
	st, err := e.loadFor(ctx, table, q.AsOf)
	if err != nil {
		return nil, err
	}
	snap, err := e.snapshot(st, table, q.AsOf)
	var re *RequestError
	if errors.As(err, &re) && q.AsOf.Time != 0 {
		snap, err = nil, nil // no quotes yet at that time
	}
	if err != nil {
		return nil, err
	}
	groups := map[[2]string][]int{}
	for i, p := range q.Probes {
		k := [2]string{p.Exchange, p.Symbol}
		groups[k] = append(groups[k], i)
	}
	for k, idx := range groups {
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(q.Probes[a].Time, q.Probes[b].Time) })
		lo, hi := q.Probes[idx[0]].Time, q.Probes[idx[len(idx)-1]].Time
		day, _ := localDay(k[0], minuteOf(lo))
		var quotes []md.Quote
		if snap != nil {
			pinned := AsOf{SnapshotID: snap.SnapshotID}
			f := Filter{Symbol: k[1], Exchange: k[0], From: day, To: lo}
			if day < lo {
				before, err := e.Quotes(ctx, RecordQuery{Filter: f, AsOf: pinned, Desc: true, Limit: 1})
				if err != nil {
					return nil, err
				}
				quotes = before
			}
			f.From, f.To = lo, hi+1
			during, err := e.Quotes(ctx, RecordQuery{Filter: f, AsOf: pinned, Limit: MaxLimit})
			if err != nil {
				return nil, err
			}
			if len(during) == MaxLimit {
				return nil, requestError("%s's trades from %s to %s span more than %d quotes: ask for fewer trades or a narrower range",
					k[1], lo, hi, MaxLimit-1)
			}
			quotes = append(quotes, during...)
		}
		n := len(quotes)
		for _, x := range q.Extra {
			if x.Symbol == k[1] && x.Exchange == k[0] && x.Timestamp >= day && x.Timestamp <= hi {
				quotes = append(quotes, x)
			}
		}
		if len(quotes) > n {
			slices.SortFunc(quotes, compareQuotes)
		}
		j := 0
		var start, end md.Timestamp // the local day of the probes, in time order
		for _, i := range idx {
			t := q.Probes[i].Time
			for j < len(quotes) && quotes[j].Timestamp <= t {
				j++
			}
			if j == 0 {
				continue
			}
			if t >= end {
				start, end = localDay(k[0], minuteOf(t))
			}
			if quotes[j-1].Timestamp >= start {
				out[i] = &quotes[j-1]
			}
		}
	}
	return out, nil
}

// compareQuotes orders quotes as the lake reads them: time, exchange
// sequence (null last), id.
func compareQuotes(a, b md.Quote) int {
	if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
		return c
	}
	switch {
	case a.SourceSequence.Valid && b.SourceSequence.Valid:
		if c := cmp.Compare(a.SourceSequence.Int64, b.SourceSequence.Int64); c != 0 {
			return c
		}
	case a.SourceSequence.Valid:
		return -1
	case b.SourceSequence.Valid:
		return 1
	}
	return strings.Compare(a.QuoteID, b.QuoteID)
}
