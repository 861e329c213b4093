package record

import (
	"github.com/apache/iceberg-go"
	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Funding is a perpetual future's mark price and funding rate:
// market.{asset}.funding_rates.{exchange}, market_data.funding_rates. A
// venue publishes one a second per contract, so the id is kept as it is
// (derived from symbol, exchange and time) rather than derived on read.
var Funding = &Kind[md.FundingRate]{
	Spec: Spec{
		Name:     "funding",
		DataType: "funding_rates",
		Avro:     &codec.Funding,
		Table: lake.TableDef{
			Name: "funding_rates",
			Doc:  "Mark prices and funding rates of perpetual futures as the exchange published them, keyed by message_id (UUIDv5 of \"funding/{symbol}/{exchange}-{timestamp µs}\" in namespace " + md.MessageIDNamespace + ").",
			Schema: iceberg.NewSchemaWithIdentifiers(0, []int{1},
				lake.Required(1, "message_id", lake.String, "Name-based UUID of the record; unique in the table"),
				lake.Required(2, "symbol", lake.String, "Contract symbol"),
				lake.Required(3, "exchange", lake.String, "Upper-case exchange code"),
				lake.Required(4, "asset_class", lake.String, "equities, crypto, futures or options"),
				lake.Required(5, "timestamp", lake.Timestamp, "Event time at the exchange, UTC, microseconds"),
				lake.Required(6, "mark_price", lake.Decimal, "Mark price"),
				lake.Optional(7, "index_price", lake.Decimal, "Index price"),
				lake.Optional(8, "estimated_settle_price", lake.Decimal, "Estimated settle price"),
				lake.Optional(9, "funding_rate", lake.Decimal, "Funding rate per funding interval, a fraction; null for delivery contracts"),
				lake.Optional(10, "next_funding_time", lake.Timestamp, "When the next funding is paid, UTC, microseconds"),
				lake.Required(11, "currency", lake.String, "Currency of the prices"),
				lake.Required(12, "ingestion_timestamp", lake.Timestamp, "When K2 received the record, UTC, microseconds"),
				lake.Optional(13, "vendor_data", lake.StringMap(14, 15), "Exchange-specific extras"),
			),
			Key: "message_id", Symbol: "symbol", Time: "timestamp",
			PerSymbol: []string{"exchange", "asset_class", "currency"},
		},
	},
	Encode:   codec.AppendFunding,
	Decode:   (*codec.Decoder).FundingInto,
	Validate: (*md.FundingRate).Validate,
	Key:      func(f *md.FundingRate) string { return f.Symbol },
	Exchange: func(f *md.FundingRate) string { return f.Exchange },
	Asset:    func(f *md.FundingRate) md.AssetClass { return f.AssetClass },
	Rows: lake.Codec[md.FundingRate]{
		Key:    func(f *md.FundingRate) string { return f.MessageID.String() },
		Symbol: func(f *md.FundingRate) string { return f.Symbol },
		Time:   func(f *md.FundingRate) md.Timestamp { return f.Timestamp },
		Columns: []lake.Column[md.FundingRate]{
			lake.UUIDColumn(func(f *md.FundingRate) uuid.UUID { return f.MessageID }),
			lake.TextColumn(func(f *md.FundingRate) string { return f.Symbol }),
			lake.TextColumn(func(f *md.FundingRate) string { return f.Exchange }),
			lake.TextColumn(func(f *md.FundingRate) string { return string(f.AssetClass) }),
			lake.TimestampColumn(func(f *md.FundingRate) md.NullTimestamp { return md.NullTimestamp{Timestamp: f.Timestamp, Valid: true} }),
			lake.DecimalColumn(func(f *md.FundingRate) md.NullDecimal { return md.SomeDecimal(f.MarkPrice) }),
			lake.DecimalColumn(func(f *md.FundingRate) md.NullDecimal { return f.IndexPrice }),
			lake.DecimalColumn(func(f *md.FundingRate) md.NullDecimal { return f.EstimatedSettlePrice }),
			lake.DecimalColumn(func(f *md.FundingRate) md.NullDecimal { return f.FundingRate }),
			lake.TimestampColumn(func(f *md.FundingRate) md.NullTimestamp { return f.NextFundingTime }),
			lake.TextColumn(func(f *md.FundingRate) string { return f.Currency }),
			lake.TimestampColumn(func(f *md.FundingRate) md.NullTimestamp {
				return md.NullTimestamp{Timestamp: f.IngestionTimestamp, Valid: true}
			}),
			lake.MapColumn(func(f *md.FundingRate) map[string]string { return f.VendorData }),
		},
	},
}
