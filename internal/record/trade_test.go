package record

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// BenchmarkEncodeTrades measures turning rows into Arrow columns in
// partition order, the writer's own share of an append.
func BenchmarkEncodeTrades(b *testing.B) {
	rows := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, 100_000)
	sc := lake.ArrowSchema(Trade.Table.Schema)
	order, _ := Trade.Rows.Partitions(rows)
	for b.Loop() {
		rec := Trade.Rows.Record(sc, rows, order)
		rec.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

// The hand-written trade encoder must produce what the generic column
// encoders do.
func TestEncodeTradesMatchesGeneric(t *testing.T) {
	t.Parallel()
	rows := synth.New(synth.Config{Seed: 3, Rate: 20}).Trades(nil, 5000)
	rows[7].TradeConditions = []string{"25", "X"}
	rows[8].VendorData = map[string]string{"b": "2", "a": "1"}
	rows[9].SourceSequence = md.NullInt64{}
	rows[10].PlatformSequence = md.SomeInt64(42)
	sc := lake.ArrowSchema(Trade.Table.Schema)
	order, _ := Trade.Rows.Partitions(rows)
	fast := array.NewRecordBatch(sc, encodeTrades(sc, rows, order), int64(len(order)))
	cols := make([]arrow.Array, len(Trade.Rows.Columns))
	for i, enc := range Trade.Rows.Columns {
		cols[i] = enc(sc.Field(i).Type, rows, order)
	}
	generic := array.NewRecordBatch(sc, cols, int64(len(order)))
	if !array.RecordEqual(fast, generic) {
		t.Fatal("encodeTrades differs from the generic encoders")
	}
}
