package query

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Finding a symbol's minutes by binary search keeps exactly the minutes
// the filter holds, whatever the exchanges, bounds and gaps.
func TestSymbolMinutesAreTheFiltersMinutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 500 {
		var mins []minute
		for _, sym := range []string{"AAA", "BHP", "BHPX", "ZZZ"} {
			for _, ex := range []string{"ASX", "BINANCE", "CHIA"} {
				for m := int64(0); m < 120; m++ {
					if rng.IntN(3) > 0 {
						mins = append(mins, minute{symbol: sym, exchange: ex, m: 28_000_000 + m})
					}
				}
			}
		}
		slices.SortFunc(mins, func(a, b minute) int {
			return cmp.Or(strings.Compare(a.symbol, b.symbol), strings.Compare(a.exchange, b.exchange), cmp.Compare(a.m, b.m))
		})
		at := func(m int64) md.Timestamp { return md.Timestamp((28_000_000 + m) * microsPerMinute) }
		f := Filter{Symbol: []string{"BHP", "BHPX", "AAA", "NONE"}[rng.IntN(4)]}
		if rng.IntN(2) == 0 {
			f.Exchange = []string{"ASX", "CHIA", "NYSE"}[rng.IntN(3)]
		}
		if rng.IntN(3) > 0 {
			f.From = at(int64(rng.IntN(130))) + md.Timestamp(rng.IntN(2))*30_000_000
		}
		if rng.IntN(3) > 0 {
			f.To = at(int64(rng.IntN(130)))
		}
		var want []minute
		for _, mn := range mins {
			if f.holds(mn.symbol, mn.exchange, md.Timestamp(mn.m*microsPerMinute)) {
				want = append(want, mn)
			}
		}
		got := appendSymbolMinutes(nil, mins, f)
		if !slices.EqualFunc(got, want, func(a, b minute) bool { return a.symbol == b.symbol && a.exchange == b.exchange && a.m == b.m }) {
			t.Fatalf("round %d, %+v: %d minutes, the filter holds %d", round, f, len(got), len(want))
		}
	}
}
