package record

import (
	"context"
	"testing"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// BenchmarkAddTradeMessages measures the sink's share per trade before
// the writer: decoding a wire-format message, validating it and adding it
// to a batch, as batches of 200k fill and are reset.
func BenchmarkAddTradeMessages(b *testing.B) {
	const n = 200_000
	trades := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, n)
	msgs := make([][]byte, n)
	for i := range trades {
		msgs[i], _ = codec.AppendTrade(nil, 1, &trades[i])
	}
	d := codec.NewDecoder(func(context.Context, uint32) (string, error) { return codec.Trade.Text, nil })
	ctx := context.Background()
	batch := &rows[md.Trade]{k: Trade}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == n {
			batch.Reset()
			i = 0
		}
		if _, err := batch.AddMessage(ctx, d, msgs[i], trades[i].Exchange); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEncodeDecodedTrades is BenchmarkEncodeTrades on rows as the
// sink holds them: decoded from messages, their text in the batch's arena.
func BenchmarkEncodeDecodedTrades(b *testing.B) {
	const n = 100_000
	trades := synth.New(synth.Config{Seed: 1, Rate: 20}).Trades(nil, n)
	d := codec.NewDecoder(func(context.Context, uint32) (string, error) { return codec.Trade.Text, nil })
	batch := &rows[md.Trade]{k: Trade}
	for i := range trades {
		msg, _ := codec.AppendTrade(nil, 1, &trades[i])
		if _, err := batch.AddMessage(context.Background(), d, msg, trades[i].Exchange); err != nil {
			b.Fatal(err)
		}
	}
	sc := lake.ArrowSchema(Trade.Table.Schema)
	order, ends := Trade.Rows.Partitions(batch.rows)
	for b.Loop() {
		lo := 0
		for _, hi := range ends { // a partition at a time, as the writer does
			rec := Trade.Rows.Record(sc, batch.rows, order[lo:hi])
			rec.Release()
			lo = hi
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}
