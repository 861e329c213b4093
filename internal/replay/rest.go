package replay

import (
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// historicalTrades answers GET /api/v3/historicalTrades as Binance does,
// from the @trade frames the cursor has already played (later loops with
// their shifted ids): what a feed backfills a gap from after an outage.
func (s *Server) historicalTrades(w http.ResponseWriter, r *http.Request) {
	s.rest.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fail := func(code int, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"code":%d,"msg":%q}`, code, msg)
	}
	q := r.URL.Query()
	sym := q.Get("symbol")
	if sym == "" {
		fail(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
		return
	}
	list, ok := s.c.trades[strings.ToUpper(sym)]
	if !ok {
		fail(-1121, "Invalid symbol.")
		return
	}
	limit := int64(500)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			fail(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
			return
		}
		if n < 1 || n > 1000 {
			fail(-1130, "Data sent for parameter 'limit' is not valid.")
			return
		}
		limit = n
	}
	from := int64(-1)
	if v := q.Get("fromId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fail(-1100, "Illegal characters found in parameter 'fromId'; legal range is '^[0-9]{1,20}$'.")
			return
		}
		from = n
	}
	span := s.spans[s.c.Frames[list[0].frame].ids[0].series]
	out := s.playedTrades(list, span, from, int(limit))
	b := []byte{'['}
	for i, t := range out {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"id":%d,"price":"%s","qty":"%s","quoteQty":"%s","time":%d,"isBuyerMaker":%t,"isBestMatch":%t}`,
			t.id+t.loop*span, t.price, t.qty, quoteQty(t.price, t.qty), t.time, t.buyerMaker, t.bestMatch)
	}
	w.Write(append(b, ']'))
}

type loopTrade struct {
	*trade
	loop int64
}

// playedTrades are up to limit played trades from id from on, oldest
// first, or the latest limit when from < 0. Trade k of loop l has id
// list[k].id + l*span and plays at l*len(Frames) + list[k].frame.
func (s *Server) playedTrades(list []*trade, span, from int64, limit int) []loopTrade {
	played, n := s.played.Load(), int64(len(s.c.Frames))
	if played == 0 {
		return nil
	}
	isPlayed := func(t *trade, loop int64) bool { return loop*n+int64(t.frame) < played }
	var out []loopTrade
	if from < 0 {
		for loop := (played - 1) / n; loop >= 0 && len(out) < limit; loop-- {
			for k := len(list) - 1; k >= 0 && len(out) < limit; k-- {
				if isPlayed(list[k], loop) {
					out = append(out, loopTrade{list[k], loop})
				}
			}
		}
		slices.Reverse(out)
		return out
	}
	loop := int64(0)
	if from > list[0].id {
		loop = (from - list[0].id) / span
	}
	for ; loop*n < played && len(out) < limit; loop++ {
		base := from - loop*span
		for k := sort.Search(len(list), func(k int) bool { return list[k].id >= base }); k < len(list) && len(out) < limit; k++ {
			if !isPlayed(list[k], loop) {
				return out // trades play in id order: the rest are not played either
			}
			out = append(out, loopTrade{list[k], loop})
		}
	}
	return out
}

// quoteQty is price × qty exactly (math/big, never float64), with 8
// decimal places as Binance writes it.
func quoteQty(price, qty string) string {
	p, ok1 := new(big.Rat).SetString(price)
	q, ok2 := new(big.Rat).SetString(qty)
	if !ok1 || !ok2 {
		return "0.00000000"
	}
	return p.Mul(p, q).FloatString(8)
}
