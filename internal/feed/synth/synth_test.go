package synth

import (
	"math"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

func TestDeterministicAndValid(t *testing.T) {
	t.Parallel()
	a := New(Config{Seed: 7, QuoteEvery: 2})
	b := New(Config{Seed: 7, QuoteEvery: 2})
	var ta, tb []marketdata.Trade
	var qa, qb []marketdata.Quote
	for range 20000 {
		a.Next(&ta, &qa)
		b.Next(&tb, &qb)
	}
	if len(ta) != len(tb) || len(qa) != len(qb) || len(qa) == 0 {
		t.Fatalf("lengths differ: %d/%d trades, %d/%d quotes", len(ta), len(tb), len(qa), len(qb))
	}
	lastSeq := map[string]int64{}
	for i := range ta {
		if ta[i].TradeID != tb[i].TradeID || ta[i].Price != tb[i].Price || ta[i].Timestamp != tb[i].Timestamp || ta[i].Quantity != tb[i].Quantity {
			t.Fatalf("trade %d differs between runs with one seed", i)
		}
		if err := ta[i].Validate(); err != nil {
			t.Fatalf("trade %d invalid: %v", i, err)
		}
		if i > 0 && ta[i].Timestamp <= ta[i-1].Timestamp {
			t.Fatalf("time does not advance at %d", i)
		}
		if s := ta[i].SourceSequence.Int64; s != lastSeq[ta[i].Symbol]+1 {
			t.Fatalf("%s sequence jumps to %d", ta[i].Symbol, s)
		}
		lastSeq[ta[i].Symbol] = ta[i].SourceSequence.Int64
	}
	for i := range qa {
		if err := qa[i].Validate(); err != nil {
			t.Fatalf("quote %d invalid: %v", i, err)
		}
		if qa[i].BidPrice.Decimal >= qa[i].AskPrice.Decimal {
			t.Fatalf("quote %d crossed: %s/%s", i, qa[i].BidPrice, qa[i].AskPrice)
		}
	}
	if c := New(Config{Seed: 8}).Trades(nil, 10); c[5].Price == ta[5].Price && c[5].Symbol == ta[5].Symbol && c[9].Price == ta[9].Price {
		t.Fatal("another seed gives the same market")
	}
}

// Volatility clusters: squared returns are positively autocorrelated, as
// in real markets, unlike a plain random walk.
func TestVolatilityClusters(t *testing.T) {
	t.Parallel()
	g := New(Config{Seed: 1, Symbols: []string{"BTCUSD"}})
	tr := g.Trades(nil, 50000)
	var sq []float64
	for i := 1; i < len(tr); i++ {
		r := math.Log(float64(tr[i].Price) / float64(tr[i-1].Price))
		sq = append(sq, r*r)
	}
	mean := 0.0
	for _, v := range sq {
		mean += v
	}
	mean /= float64(len(sq))
	var num, den float64
	for i := range sq {
		den += (sq[i] - mean) * (sq[i] - mean)
		if i > 0 {
			num += (sq[i] - mean) * (sq[i-1] - mean)
		}
	}
	if ac := num / den; ac < 0.05 {
		t.Fatalf("lag-1 autocorrelation of squared returns %.3f: no volatility clustering", ac)
	}
}

func BenchmarkNext(b *testing.B) {
	g := New(Config{Seed: 1})
	buf := make([]marketdata.Trade, 0, 1024)
	for b.Loop() {
		buf = buf[:0]
		g.Next(&buf, nil)
	}
}

// Ids are the symbol's event number, zero-padded, after the run's name.
func TestIDs(t *testing.T) {
	t.Parallel()
	for run, want := range map[string]string{"": "SYNTH-000000000001", "tp3bdp": "SYNTH-tp3bdp-000000000001"} {
		trades := New(Config{Seed: 1, Run: run}).Trades(nil, 1)
		if trades[0].TradeID != want {
			t.Errorf("run %q: first id %s, want %s", run, trades[0].TradeID, want)
		}
	}
	if id := New(Config{}).id(1234567890123); id != "SYNTH-1234567890123" {
		t.Errorf("a long number: %s", id)
	}
}
