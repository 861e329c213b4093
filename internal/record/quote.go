package record

import (
	"github.com/apache/iceberg-go"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Quote is a top-of-book update: market.{asset}.quotes.{exchange},
// market_data.quotes.
var Quote = &Kind[md.Quote]{
	Spec: Spec{
		Name:     "quote",
		DataType: "quotes",
		Avro:     &codec.Quote,
		Derived:  []string{"message_id"},
		Table: lake.TableDef{
			Name: "quotes",
			Doc:  "Top-of-book quotes: best bid and ask with sizes, keyed by quote_id; an empty side is null. A quote's message_id is not stored: it is UUIDv5 of \"quote/{symbol}/{quote_id}\" in namespace " + md.MessageIDNamespace + ".",
			Schema: iceberg.NewSchemaWithIdentifiers(0, []int{1},
				lake.Required(1, "quote_id", lake.String, "{EXCHANGE}-{native update id}; unique in the table"),
				lake.Required(2, "symbol", lake.String, "Instrument symbol"),
				lake.Required(3, "exchange", lake.String, "Upper-case exchange code"),
				lake.Required(4, "asset_class", lake.String, "equities, crypto, futures or options"),
				lake.Required(5, "timestamp", lake.Timestamp, "Quote time at the exchange (receive time where the feed has none), UTC, microseconds"),
				lake.Optional(6, "bid_price", lake.Decimal, "Best bid price; null when the bid side is empty"),
				lake.Optional(7, "bid_quantity", lake.Decimal, "Size at the best bid; null when the bid side is empty"),
				lake.Optional(8, "ask_price", lake.Decimal, "Best ask price; null when the ask side is empty"),
				lake.Optional(9, "ask_quantity", lake.Decimal, "Size at the best ask; null when the ask side is empty"),
				lake.Required(10, "currency", lake.String, "Currency of the prices"),
				lake.Optional(11, "source_sequence", lake.Long, "Exchange sequence or update id"),
				lake.Required(12, "ingestion_timestamp", lake.Timestamp, "When K2 received the quote, UTC, microseconds"),
				lake.Optional(13, "platform_sequence", lake.Long, "K2's own sequence number where assigned"),
				lake.Optional(14, "vendor_data", lake.StringMap(15, 16), "Exchange-specific extras"),
			),
			Key: "quote_id", Symbol: "symbol", Time: "timestamp", Sequence: "source_sequence",
			PerSymbol: []string{"exchange", "asset_class", "currency"},
			// Format 1 stored message_id as field 1; such a table keeps its ids.
			Migrations: []lake.Migration{{Version: 2, Drop: []string{"message_id"}}},
		},
	},
	Encode:   codec.AppendQuote,
	Decode:   (*codec.Decoder).QuoteInto,
	Validate: (*md.Quote).Validate,
	Key:      func(q *md.Quote) string { return q.Symbol },
	Exchange: func(q *md.Quote) string { return q.Exchange },
	Asset:    func(q *md.Quote) md.AssetClass { return q.AssetClass },
	Rows: lake.Codec[md.Quote]{
		Key:    func(q *md.Quote) string { return q.QuoteID },
		Symbol: func(q *md.Quote) string { return q.Symbol },
		Time:   func(q *md.Quote) md.Timestamp { return q.Timestamp },
		Seq:    func(q *md.Quote) int64 { return lake.SeqOf(q.SourceSequence) },
		Columns: []lake.Column[md.Quote]{
			lake.TextColumn(func(q *md.Quote) string { return q.QuoteID }),
			lake.TextColumn(func(q *md.Quote) string { return q.Symbol }),
			lake.TextColumn(func(q *md.Quote) string { return q.Exchange }),
			lake.TextColumn(func(q *md.Quote) string { return string(q.AssetClass) }),
			lake.TimestampColumn(func(q *md.Quote) md.NullTimestamp { return md.NullTimestamp{Timestamp: q.Timestamp, Valid: true} }),
			lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidPrice }),
			lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.BidQuantity }),
			lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskPrice }),
			lake.DecimalColumn(func(q *md.Quote) md.NullDecimal { return q.AskQuantity }),
			lake.TextColumn(func(q *md.Quote) string { return q.Currency }),
			lake.Int64Column(func(q *md.Quote) md.NullInt64 { return q.SourceSequence }),
			lake.TimestampColumn(func(q *md.Quote) md.NullTimestamp {
				return md.NullTimestamp{Timestamp: q.IngestionTimestamp, Valid: true}
			}),
			lake.Int64Column(func(q *md.Quote) md.NullInt64 { return q.PlatformSequence }),
			lake.MapColumn(func(q *md.Quote) map[string]string { return q.VendorData }),
		},
	},
}
