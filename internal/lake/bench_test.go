package lake_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

const benchBatch = 500_000

func benchWriter(b *testing.B, dedup bool) *lake.Writer[md.Trade] {
	dir := b.TempDir()
	l, err := lake.Open(context.Background(), lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	w, _ := record.Trade.Writer(l, lake.WithDedup(dedup))
	return w
}

// BenchmarkAppend commits 500,000 synthetic trades of 20 symbols per
// iteration to an embedded lake; rows/s is the append throughput. "plain"
// commits one batch again and again (generation is not timed); "dedup"
// commits a new batch each time through the loader's duplicate check.
// Run with GOGC=400, as the k2 binary does.
func BenchmarkAppend(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		w := benchWriter(b, false)
		batch := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, benchBatch)
		for b.Loop() {
			if _, err := w.Commit(context.Background(), batch, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchBatch*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("dedup", func(b *testing.B) {
		w := benchWriter(b, true)
		gen := synth.New(synth.Config{Seed: 1, Rate: 20})
		batch := make([]md.Trade, 0, benchBatch)
		for b.Loop() {
			b.StopTimer()
			batch = gen.Trades(batch[:0], benchBatch)
			b.StartTimer()
			if _, err := w.Commit(context.Background(), batch, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchBatch*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
