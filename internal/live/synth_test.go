package live

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// The synthetic market produces at its rate with live timestamps, prices
// from its seed, and ids that are the run's own.
func TestSynthProducesALiveMarket(t *testing.T) {
	k := newKafka(t)
	run := func(stored int) []md.Trade {
		s, err := NewSynth(k.Prod, SynthConfig{Seed: 7, Symbols: []string{"BTCUSD", "ETHUSD"}, Rate: 20_000, Limit: 2_000})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 90*time.Millisecond {
			t.Fatalf("2,000 trades at 20,000/s took %v: the rate is not kept", took)
		}
		trades, quotes := s.Counts()
		if trades != 2_000 || quotes < 900 || quotes > 1_100 {
			t.Fatalf("%d trades, %d quotes", trades, quotes)
		}
		var out []md.Trade
		for _, r := range k.read(t, "market.crypto.trades.synth", stored) {
			tr, _, err := decoder.Trade(context.Background(), r.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, tr)
		}
		// Partitions interleave symbols in any order: compare per symbol.
		slices.SortStableFunc(out, func(a, b md.Trade) int {
			return cmp.Or(strings.Compare(a.Symbol, b.Symbol), cmp.Compare(a.SourceSequence.Int64, b.SourceSequence.Int64))
		})
		return out
	}
	first := run(2_000)
	time.Sleep(2 * time.Millisecond) // the next run starts another millisecond: other ids
	var second []md.Trade
	for _, tr := range run(4_000) {
		if !slices.ContainsFunc(first, func(f md.Trade) bool { return f.TradeID == tr.TradeID }) {
			second = append(second, tr)
		}
	}
	if len(second) != 2_000 {
		t.Fatalf("the second run shares %d ids with the first", 2_000-len(second))
	}
	for i := range first {
		a, b := first[i], second[i]
		if a.Price != b.Price || a.Quantity != b.Quantity || a.Symbol != b.Symbol {
			t.Fatalf("trade %d differs between runs of one seed: %+v vs %+v", i, a, b)
		}
		if age := time.Since(time.UnixMicro(int64(b.Timestamp))); age < 0 || age > time.Minute {
			t.Fatalf("trade %d is stamped %v, not now", i, b.Timestamp)
		}
		if i > 0 && b.Symbol == second[i-1].Symbol && b.Timestamp <= second[i-1].Timestamp {
			t.Fatalf("trade %d of %s is stamped %v, not after the one before (%v)", i, b.Symbol, b.Timestamp, second[i-1].Timestamp)
		}
		if a.Exchange != synth.Code || a.Price <= 0 {
			t.Fatalf("trade %d: %+v", i, a)
		}
	}
}
