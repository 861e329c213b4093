package query

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// duckTrades is Trades answered by DuckDB alone.
func duckTrades(e *Engine, q RecordQuery) ([]md.Trade, error) {
	var out []md.Trade
	_, err := e.topN(context.Background(), "trades", record.Trade.Table.Name, "trade_id", tradeColumns, q, func(rows *sql.Rows) (md.Timestamp, error) {
		t, err := scanTrade(rows)
		out = append(out, t)
		return t.Timestamp, err
	}, func() { out = out[:0] }, nil)
	return out, err
}

// latestLake commits trades of three symbols in several commits whose
// times overlap, with late trades, ties in time and sequence, and null
// sequences, so a symbol-day has several files of several row groups.
// Some are written as the sink writes them (lake.WithTransientFiles).
func latestLake(t *testing.T) (*Engine, []md.Trade) {
	e := testEngine(t, Options{Query: config.Query{PoolSize: 2}})
	table, err := record.Trade.Writer(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := record.Trade.Writer(e.lake, lake.WithTransientFiles())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gen := synth.New(synth.Config{Seed: 7, Symbols: []string{"AAAUSD", "BBBUSD", "CCCUSD"}, Rate: 2})
	rng := rand.New(rand.NewPCG(3, 4))
	var all []md.Trade
	for c := range 3 {
		batch := gen.Trades(nil, 70_000)
		// Late trades: earlier times, some tying an earlier trade's time
		// and sequence, some without a sequence.
		for i := range 2_000 {
			src := all
			if len(src) == 0 {
				src = batch
			}
			late := src[rng.IntN(len(src))]
			late.TradeID = fmt.Sprintf("late-%d-%d", c, i)
			switch rng.IntN(4) {
			case 0:
				late.SourceSequence = md.NullInt64{}
			case 1:
				late.Timestamp -= md.Timestamp(rng.Int64N(3_600_000_000))
			case 2:
				late.SourceSequence.Int64 += 1
			}
			late.MessageID = md.MessageID(record.Trade.Name, late.Symbol, late.TradeID)
			batch = append(batch, late)
		}
		w := table
		if c != 1 {
			w = sink
		}
		if _, err := w.Commit(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	return e, all
}

// The latest trades read in Go are DuckDB's answer, row for row, for any
// symbol, limit, direction, time range and continuation, before and after
// compaction.
func TestLatestTradesInGoAreDuckDBs(t *testing.T) {
	e, all := latestLake(t)
	ctx := context.Background()
	lo, hi := all[0].Timestamp, all[0].Timestamp
	for _, tr := range all {
		lo, hi = min(lo, tr.Timestamp), max(hi, tr.Timestamp)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pages := func(q RecordQuery) {
		t.Helper()
		e.duckOnly = true
		want, err := e.Records(ctx, record.Trade.Table.Name, q)
		e.duckOnly = false
		if err != nil {
			t.Fatal(err)
		}
		defer want.Release()
		got, err := e.Records(ctx, record.Trade.Table.Name, q)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Release()
		if !array.RecordEqual(got.Rows, want.Rows) || !got.Rows.Schema().Equal(want.Rows.Schema()) || got.Full != want.Full {
			t.Fatalf("%+v: the page read in Go differs from DuckDB's:\n%v\n%v", q, got.Rows, want.Rows)
		}
	}
	check := func(round int) {
		q := RecordQuery{Limit: []int{1, 7, 100, 1000, 5000}[rng.IntN(5)], Desc: rng.IntN(3) > 0}
		if rng.IntN(6) > 0 {
			q.Symbol = []string{"AAAUSD", "BBBUSD", "CCCUSD", "ZZZUSD"}[rng.IntN(4)]
		}
		if rng.IntN(5) == 0 {
			q.Symbols = []string{"AAAUSD", "CCCUSD"}
		}
		if rng.IntN(4) == 0 {
			q.Exchange = []string{synth.Code, "OTHER"}[rng.IntN(2)]
		}
		if rng.IntN(5) == 0 {
			q.Exchanges = [][]string{{"OTHER"}, {synth.Code, "OTHER"}}[rng.IntN(2)]
		}
		span := int64(hi - lo)
		if rng.IntN(2) == 0 {
			q.From = lo + md.Timestamp(rng.Int64N(span))
		}
		if rng.IntN(2) == 0 {
			q.To = lo + md.Timestamp(rng.Int64N(span)) + 1
			if q.From >= q.To {
				q.From = 0
			}
		}
		want, err := duckTrades(e, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) > 1 && rng.IntN(3) == 0 { // continue after a row
			p := want[rng.IntN(len(want))]
			q.After = &Position{Time: p.Timestamp, Key: p.TradeID}
			if p.SourceSequence.Valid {
				q.After.Seq = &p.SourceSequence.Int64
			}
			if want, err = duckTrades(e, q); err != nil {
				t.Fatal(err)
			}
		}
		served := e.servedInGo.Load()
		got, err := e.Trades(ctx, q)
		if err != nil {
			t.Fatalf("round %d %+v: %v", round, q, err)
		}
		if len(want) > 0 && e.servedInGo.Load() != served+1 {
			t.Fatalf("round %d: the query was not served in Go", round)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d %+v: %d rows in Go, %d from DuckDB; first difference at %d", round, q, len(got), len(want), firstDiff(got, want))
		}
		if round%5 == 0 { // the API's read: the table's own columns
			pages(q)
		}
	}
	for round := range 150 {
		check(round)
	}
	if _, err := e.lake.Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	for round := range 100 {
		check(1000 + round)
	}
}

func firstDiff(a, b []md.Trade) int {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// The API's page of quotes read in Go is DuckDB's, empty book sides (null
// prices) included.
func TestLatestQuotesPagesInGoAreDuckDBs(t *testing.T) {
	e := testEngine(t, Options{Query: config.Query{PoolSize: 2}})
	ctx := context.Background()
	w, err := record.Quote.Writer(e.lake)
	if err != nil {
		t.Fatal(err)
	}
	gen := synth.New(synth.Config{Seed: 3, Symbols: []string{"AAAUSD", "BBBUSD"}, Rate: 2, QuoteEvery: 1})
	rng := rand.New(rand.NewPCG(1, 1))
	for range 2 {
		var trades []md.Trade
		var quotes []md.Quote
		for len(quotes) < 30_000 {
			gen.Next(&trades, &quotes)
		}
		for i := range quotes {
			if rng.IntN(10) == 0 {
				quotes[i].BidPrice, quotes[i].BidQuantity = md.NullDecimal{}, md.NullDecimal{}
			}
		}
		if _, err := w.Commit(ctx, quotes, nil); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 40 {
		q := RecordQuery{Filter: Filter{Symbol: []string{"AAAUSD", "BBBUSD"}[rng.IntN(2)]}, Limit: []int{1, 100, 3000}[rng.IntN(3)], Desc: rng.IntN(2) == 0}
		e.duckOnly = true
		want, err := e.Records(ctx, record.Quote.Table.Name, q)
		e.duckOnly = false
		if err != nil {
			t.Fatal(err)
		}
		served := e.servedInGo.Load()
		got, err := e.Records(ctx, record.Quote.Table.Name, q)
		if err != nil {
			t.Fatal(err)
		}
		if e.servedInGo.Load() != served+1 {
			t.Fatalf("round %d: not served in Go", round)
		}
		if want.Rows.NumRows() == 0 || !array.RecordEqual(got.Rows, want.Rows) {
			t.Fatalf("round %d %+v: %d rows in Go, %d from DuckDB, or they differ", round, q, got.Rows.NumRows(), want.Rows.NumRows())
		}
		got.Release()
		want.Release()
	}
}
