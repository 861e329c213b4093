package lake

import (
	"testing"

	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

func BenchmarkBuildTrades(b *testing.B) {
	rows := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, 100_000)
	sc := arrowSchema(TradesTable(SymbolPartition{}).Schema)
	order, _ := tradeCodec.partitions(rows)
	for b.Loop() {
		rec := tradeCodec.record(sc, rows, order)
		rec.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

func BenchmarkBuildTradesGathered(b *testing.B) {
	rows := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, 100_000)
	sc := arrowSchema(TradesTable(SymbolPartition{}).Schema)
	order, _ := tradeCodec.partitions(rows)
	seq := make([]int, len(rows))
	for i := range seq {
		seq[i] = i
	}
	sorted := make([]md.Trade, len(rows))
	for b.Loop() {
		for j, i := range order {
			sorted[j] = rows[i]
		}
		rec := tradeCodec.record(sc, sorted, seq)
		rec.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}
