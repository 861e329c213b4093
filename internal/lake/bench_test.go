package lake

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

const benchBatch = 500_000

func benchWriter(b *testing.B, dedup bool) *Writer[md.Trade] {
	dir := b.TempDir()
	l, err := Open(context.Background(), Options{Catalog: filepath.Join(dir, "c.db"), Warehouse: filepath.Join(dir, "w")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	w, _ := NewTradeWriter(l, WithDedup(dedup))
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

// BenchmarkEncodeTrades measures turning rows into Arrow columns in
// partition order, the writer's own share of an append.
func BenchmarkEncodeTrades(b *testing.B) {
	rows := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, 100_000)
	sc := arrowSchema(TradesTable(SymbolPartition{}).Schema)
	order, _ := tradeCodec.partitions(rows)
	for b.Loop() {
		rec := tradeCodec.record(sc, rows, order)
		rec.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

// The hand-written trade encoder must produce what the generic column
// encoders do.
func TestEncodeTradesMatchesGeneric(t *testing.T) {
	rows := synth.New(synth.Config{Seed: 3, Rate: 20}).Trades(nil, 5000)
	rows[7].TradeConditions = []string{"25", "X"}
	rows[8].VendorData = map[string]string{"b": "2", "a": "1"}
	rows[9].SourceSequence = md.NullInt64{}
	rows[10].PlatformSequence = md.SomeInt64(42)
	sc := arrowSchema(TradesTable(SymbolPartition{}).Schema)
	order, _ := tradeCodec.partitions(rows)
	fast := array.NewRecordBatch(sc, encodeTrades(sc, rows, order), int64(len(order)))
	cols := make([]arrow.Array, len(tradeCodec.columns))
	for i, enc := range tradeCodec.columns {
		cols[i] = enc(sc.Field(i).Type, rows, order)
	}
	generic := array.NewRecordBatch(sc, cols, int64(len(order)))
	if !array.RecordEqual(fast, generic) {
		t.Fatal("encodeTrades differs from the generic encoders")
	}
}
