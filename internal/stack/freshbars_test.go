package stack

import (
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/testutil"
)

// barTrade is trade i of a stream over two symbols, 50 ms apart (five
// minutes in all), at prices that wander.
func barTrade(i int) md.Trade {
	tr := freshTrade(i)
	tr.Timestamp = md.Timestamp(1723161255342000 + int64(i)*50_000)
	tr.Price = md.DecimalFromUnits(6183763000000 + int64(i*7919%100_003)*1000)
	tr.Quantity = md.DecimalFromUnits(1_000_000 + int64(i%17)*250_000)
	return tr
}

// wantBars computes 1m bars of a symbol's trades by hand: open, high,
// low, close, volume, count, VWAP and TWAP, exact.
func wantBars(trades []md.Trade, symbol string) map[string][8]string {
	type acc struct {
		trades []md.Trade
	}
	byMinute := map[int64]*acc{}
	for _, tr := range trades {
		if tr.Symbol != symbol {
			continue
		}
		m := int64(tr.Timestamp) / 60_000_000
		if byMinute[m] == nil {
			byMinute[m] = &acc{}
		}
		byMinute[m].trades = append(byMinute[m].trades, tr) // produced in time order
	}
	out := map[string][8]string{}
	for m, a := range byMinute {
		high, low := a.trades[0].Price, a.trades[0].Price
		vol, notional, area := new(big.Rat), new(big.Rat), new(big.Rat)
		end := md.Timestamp((m + 1) * 60_000_000)
		for i, tr := range a.trades {
			high, low = max(high, tr.Price), min(low, tr.Price)
			vol.Add(vol, tr.Quantity.Rat())
			notional.Add(notional, new(big.Rat).Mul(tr.Price.Rat(), tr.Quantity.Rat()))
			next := end
			if i+1 < len(a.trades) {
				next = a.trades[i+1].Timestamp
			}
			area.Add(area, new(big.Rat).Mul(tr.Price.Rat(), big.NewRat(int64(next-tr.Timestamp), 1)))
		}
		vwap, _ := md.RoundRat(new(big.Rat).Quo(notional, vol))
		twap, _ := md.RoundRat(new(big.Rat).Quo(area, big.NewRat(int64(end-a.trades[0].Timestamp), 1)))
		out[md.Timestamp(m*60_000_000).String()] = [8]string{a.trades[0].Price.String(), high.String(), low.String(),
			a.trades[len(a.trades)-1].Price.String(), strings.TrimRight(strings.TrimRight(vol.FloatString(8), "0"), "."),
			fmt.Sprint(len(a.trades)), vwap.String(), twap.String()}
	}
	return out
}

type barsAnswer struct {
	Data []map[string]any `json:"data"`
	Meta struct {
		SnapshotID int64 `json:"snapshot_id"`
		Incomplete bool  `json:"incomplete"`
	} `json:"meta"`
}

func (r *running) barsOf(t *testing.T, method, path string, body any) barsAnswer {
	t.Helper()
	var a barsAnswer
	r.call(t, method, path, body, &a)
	return a
}

// countOf adds up the bars' trade counts.
func countOf(a barsAnswer) int {
	n := 0
	for _, b := range a.Data {
		n += int(b["trade_count"].(float64))
	}
	return n
}

// Bars and aggregations not as of a snapshot combine the lake with the
// stream's trades after its snapshot: with the sink stopped mid-stream,
// 1m bars through the API equal bars computed from every produced trade.
func TestFreshBarsCrossTheLakeAndTail(t *testing.T) {
	t.Parallel()
	b := newBoundary(t)
	api := b.api
	const n = 6000
	var produced []md.Trade
	inLake := b.produce(t, n, func(i int) md.Trade {
		produced = append(produced, barTrade(i))
		return produced[i]
	})

	const path = "/v1/bars/1m?symbol=BTCUSDT&exchange=BINANCE&limit=10000"
	var got barsAnswer
	testutil.WaitFor(t, "every trade through the API", 30*time.Second, func() bool {
		got = api.barsOf(t, "GET", path, nil)
		return countOf(got) >= n/2
	})
	want := wantBars(produced, "BTCUSDT")
	if len(got.Data) != len(want) || got.Meta.SnapshotID == 0 || got.Meta.Incomplete {
		t.Fatalf("%d bars, want %d; meta %+v", len(got.Data), len(want), got.Meta)
	}
	for _, b := range got.Data {
		w := want[b["window_start"].(string)]
		g := [8]string{b["open"].(string), b["high"].(string), b["low"].(string), b["close"].(string), b["volume"].(string),
			fmt.Sprint(b["trade_count"]), b["vwap"].(string), w[7]}
		if g != w {
			t.Errorf("bar %s: %v, from the produced trades %v", b["window_start"], g, w)
		}
	}
	// The pinned snapshot alone is the lake's part, no more.
	lakeOnly := api.barsOf(t, "GET", fmt.Sprintf("%s&as_of_snapshot=%d", path, got.Meta.SnapshotID), nil)
	if c := countOf(lakeOnly); c >= n/2 || c == 0 {
		t.Errorf("as of snapshot %d: %d of BTCUSDT's trades; the sink wrote %d of both symbols'", got.Meta.SnapshotID, c, inLake)
	}
	// Aggregations read the same way, TWAP included.
	first, last := produced[0].Timestamp.Time().Truncate(time.Minute), produced[n-1].Timestamp.Time().Add(time.Minute)
	agg := api.barsOf(t, "POST", "/v1/aggregations", map[string]any{"symbols": []string{"BTCUSDT"}, "metrics": []string{"vwap", "twap", "trade_count"},
		"interval": "1min", "start_time": first.Format(time.RFC3339), "end_time": last.Format(time.RFC3339)})
	if len(agg.Data) != len(want) || countOf(agg) != n/2 {
		t.Fatalf("aggregations: %d buckets of %d trades", len(agg.Data), countOf(agg))
	}
	for _, b := range agg.Data {
		w := want[b["interval_start"].(string)]
		if b["vwap"] != w[6] || b["twap"] != w[7] {
			t.Errorf("bucket %s: vwap %v twap %v, from the produced trades %s %s", b["interval_start"], b["vwap"], b["twap"], w[6], w[7])
		}
	}
}
