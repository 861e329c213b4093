package lake

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// BenchmarkAppend commits 500,000 synthetic trades of 20 symbols per
// iteration to an embedded lake: rows/s is the lake's append throughput.
func BenchmarkAppend(b *testing.B) {
	for _, dedup := range []bool{false, true} {
		name := "plain"
		if dedup {
			name = "dedup"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			l, err := Open(context.Background(), Options{Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			w, _ := NewTradeWriter(l, WithDedup(dedup))
			gen := synth.New(synth.Config{Seed: 1, Rate: 20})
			const batch = 500_000
			rows := make([]md.Trade, 0, batch)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				rows = gen.Trades(rows[:0], batch)
				b.StartTimer()
				if _, err := w.Commit(context.Background(), rows, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
