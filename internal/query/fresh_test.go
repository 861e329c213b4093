package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// freshTrades are trades of one symbol over seven minutes: uneven gaps,
// several at one instant, a few non-market prints.
func freshTrades() []md.Trade {
	r := rand.New(rand.NewPCG(1, 2))
	base := int64(1_735_689_600_000_000) // 2025-01-01T00:00:00Z
	t := base + 3_000_000
	var out []md.Trade
	for i := range 600 {
		if r.IntN(4) > 0 { // a quarter share the previous trade's instant
			t += r.Int64N(1_400_000)
		}
		id := fmt.Sprintf("BINANCE-%d", i)
		tr := md.Trade{MessageID: md.MessageID("trade", "AAAUSDT", id), TradeID: id, Symbol: "AAAUSDT", Exchange: "BINANCE",
			AssetClass: md.Crypto, Timestamp: md.Timestamp(t), Price: md.DecimalFromUnits(100_00000000 + r.Int64N(5_00000000)),
			Quantity: md.DecimalFromUnits(1 + r.Int64N(3_00000000)), Currency: "USDT", Side: md.Buy, TradeConditions: []string{},
			SourceSequence: md.SomeInt64(int64(i)), IngestionTimestamp: md.Timestamp(base + 3_600_000_000)}
		if i%97 == 5 {
			tr.TradeConditions = []string{"INSURANCE_FUND"}
		}
		out = append(out, tr)
	}
	return out
}

func commitTrades(t *testing.T, e *Engine, batches ...[]md.Trade) {
	t.Helper()
	w, err := record.Trade.Writer(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if len(b) == 0 {
			continue
		}
		if _, err := w.Commit(context.Background(), b, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Trades after the lake's snapshot merge into bars and TWAPs exactly as
// if the lake held them: whether they follow the lake's trades or fall
// between them within a minute.
func TestExtraTradesMergeExactly(t *testing.T) {
	ctx := context.Background()
	all := freshTrades()
	whole := testEngine(t, Options{})
	commitTrades(t, whole, all[:300], all[300:])
	base := all[0].Timestamp - 3_000_000
	ranges := [][2]md.Timestamp{{0, 0}, {base, base + 3_600_000_000}, {base + 17_000_000, base + 363_000_000}}

	for _, c := range []struct {
		name        string
		lake, extra []md.Trade
	}{
		{"after the lake", nil, nil},
		{"between the lake's", nil, nil},
		{"no lake", nil, all},
	} {
		switch c.name {
		case "after the lake":
			c.lake, c.extra = all[:350], all[350:]
		case "between the lake's":
			for i, tr := range all {
				if i%3 == 0 && i > 100 {
					c.extra = append(c.extra, tr)
				} else {
					c.lake = append(c.lake, tr)
				}
			}
		}
		t.Run(c.name, func(t *testing.T) {
			e := testEngine(t, Options{})
			commitTrades(t, e, c.lake[:len(c.lake)/2], c.lake[len(c.lake)/2:])
			ref, err := e.Pin(ctx, record.Trade.Table.Name, AsOf{})
			if err != nil {
				t.Fatal(err)
			}
			asOf := AsOf{}
			if ref != nil {
				asOf.SnapshotID = ref.ID
			}
			for _, iv := range []md.Interval{md.Interval1m, md.Interval5m, md.Interval1h} {
				for _, r := range ranges {
					for _, twap := range []bool{false, true} {
						q := BarQuery{Filter: Filter{Symbol: "AAAUSDT", From: r[0], To: r[1]}, Interval: iv, TWAP: twap}
						want, err := whole.Aggregates(ctx, q)
						if err != nil || len(want) == 0 {
							t.Fatalf("%s %v: %d bars, %v", iv, r, len(want), err)
						}
						q.AsOf, q.Extra = asOf, append([]md.Trade(nil), c.extra...)
						got, err := e.Aggregates(ctx, q)
						if err != nil || !reflect.DeepEqual(got, want) {
							t.Fatalf("%s %v twap %v: %v\n got %+v\nwant %+v", iv, r, twap, err, got, want)
						}
					}
				}
			}
		})
	}
}
