package api

import (
	"context"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/tail"
)

// A join adds another table's values to each of a kind's records, as
// columns after the kind's own (and after fields=, when given). with=NAME
// on the kind's record routes asks for it; only a kind that declares
// joins takes with.
type join struct {
	fields []arrow.Field
	// open starts the join for one read. A fresh read joins the other
	// table's lake and stream; a read as of a time joins the other table
	// as of that time, and a read as of a snapshot as of the time that
	// snapshot (read) was committed.
	open func(s *Server, fresh bool, read *query.SnapshotRef, asOf query.AsOf) joiner
}

// joiner gives a batch of records the join's columns, and says whether
// the stream still held everything the join needed.
type joiner func(ctx context.Context, rec arrow.RecordBatch) ([]arrow.Array, bool, error)

// joins are each table's joins, by name.
var joins = map[string]map[string]*join{
	record.Trade.Table.Name: {"quote": quoteJoin},
}

// joinNames lists a table's joins.
func joinNames(table string) []string {
	var out []string
	for name := range joins[table] {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// withJoin is rec with the join's columns after its own.
func withJoin(rec arrow.RecordBatch, j *join, cols []arrow.Array) arrow.RecordBatch {
	sc := arrow.NewSchema(append(slices.Clone(rec.Schema().Fields()), j.fields...), nil)
	return array.NewRecordBatch(sc, append(slices.Clone(rec.Columns()), cols...), rec.NumRows())
}

// quoteJoin gives each trade the quote prevailing at its time, for
// transaction-cost analysis: the latest quote of the same symbol and
// exchange at or before the trade, on the trade's exchange-local date
// (query.PrevailingQuotes), as quote_bid_price, quote_bid_quantity,
// quote_ask_price, quote_ask_quantity and quote_timestamp; all null when
// there is none, a side null when the book had none.
var quoteJoin = &join{fields: quoteFields, open: openQuoteJoin}

// quoteJoinColumns encode the joined quotes (a zero Quote where none
// prevailed) in the order of quoteJoinFields.
var quoteJoinColumns = []lake.Column[md.Quote]{
	lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidPrice }),
	lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidQuantity }),
	lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskPrice }),
	lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskQuantity }),
	lake.TimestampColumn(func(q *md.Quote) md.NullTimestamp {
		return md.NullTimestamp{Timestamp: q.Timestamp, Valid: q.QuoteID != ""}
	}),
}

// quoteFields are the quotes table's columns, prefixed and nullable.
var quoteFields = func() []arrow.Field {
	sc := query.Schema(&record.Quote.Table)
	var out []arrow.Field
	for _, name := range []string{"bid_price", "bid_quantity", "ask_price", "ask_quantity", "timestamp"} {
		f := sc.Field(sc.FieldIndices(name)[0])
		f.Name, f.Nullable = "quote_"+name, true
		out = append(out, f)
	}
	return out
}()

func openQuoteJoin(s *Server, fresh bool, read *query.SnapshotRef, asOf query.AsOf) joiner {
	pinned, offsets, started := query.AsOf{}, lake.Offsets{}, false
	switch {
	case fresh:
	case asOf.Time != 0:
		pinned = query.AsOf{Time: asOf.Time}
	case read != nil:
		pinned = query.AsOf{Time: md.Timestamp(read.TimestampMs * 1000)}
	}
	return func(ctx context.Context, rec arrow.RecordBatch) ([]arrow.Array, bool, error) {
		if fresh && !started {
			// Pin the quotes the lake holds; the stream holds the rest. While
			// the table is empty nothing pins it, and a quote in both the
			// lake and the stream prevails all the same.
			head, err := s.engine.Head(ctx, record.Quote.Table.Name)
			if err != nil {
				return nil, false, err
			}
			if ref := head.SnapshotRef; ref != nil {
				pinned, offsets = query.AsOf{SnapshotID: ref.ID}, ref.Offsets
			}
			started = true
		}
		sc := rec.Schema()
		col := func(name string) arrow.Array { return rec.Column(sc.FieldIndices(name)[0]) }
		sym, ex, ts := col("symbol").(*array.String), col("exchange").(*array.String), col("timestamp").(*array.Timestamp)
		n := int(rec.NumRows())
		probes := make([]query.QuoteProbe, n)
		var tq tail.Query
		for i := range n {
			probes[i] = query.QuoteProbe{Symbol: sym.Value(i), Exchange: ex.Value(i), Time: md.Timestamp(ts.Value(i))}
			if !slices.Contains(tq.Symbols, probes[i].Symbol) {
				tq.Symbols = append(tq.Symbols, probes[i].Symbol)
			}
			if !slices.Contains(tq.Exchanges, probes[i].Exchange) {
				tq.Exchanges = append(tq.Exchanges, probes[i].Exchange)
			}
			tq.To = max(tq.To, probes[i].Time+1)
		}
		j := query.QuoteJoin{Probes: probes, AsOf: pinned}
		complete := true
		if fresh && s.tail != nil && n > 0 {
			var rows []record.Row
			rows, complete = s.tail.Since(ctx, record.Quote, offsets, tq)
			j.Extra = make([]md.Quote, len(rows))
			for i := range rows {
				j.Extra[i] = rows[i].Value.(md.Quote)
			}
		}
		found, err := s.engine.PrevailingQuotes(ctx, j)
		if err != nil {
			return nil, false, err
		}
		quotes, order := make([]md.Quote, n), make([]int, n)
		for i, q := range found {
			if q != nil {
				quotes[i] = *q
			}
			order[i] = i
		}
		cols := make([]arrow.Array, len(quoteJoinColumns))
		for i, c := range quoteJoinColumns {
			cols[i] = c(quoteFields[i].Type, quotes, order)
		}
		return cols, complete, nil
	}
}
