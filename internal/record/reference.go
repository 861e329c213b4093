package record

import (
	"github.com/apache/iceberg-go"
	"github.com/google/uuid"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Reference describes a listed instrument:
// market.{asset}.reference_data.{exchange}, market_data.reference_data.
// The table is small and unpartitioned; a changed instrument is a new row
// with a new message_id, and readers take the latest by
// ingestion_timestamp. Its topic is compacted by company id.
var Reference = &Kind[md.ReferenceData]{
	Spec: Spec{
		Name:      "reference",
		DataType:  "reference_data",
		Avro:      &codec.Reference,
		Compacted: true,
		Table: lake.TableDef{
			Name: "reference_data",
			Doc:  "Instrument reference data: company id, symbol, name, ISIN per exchange; one row per distinct version of a record.",
			Schema: iceberg.NewSchemaWithIdentifiers(0, []int{1},
				lake.Required(1, "message_id", lake.String, "Name-based UUID of this version of the record"),
				lake.Required(2, "company_id", lake.String, "Exchange or vendor company id"),
				lake.Required(3, "symbol", lake.String, "Listed symbol"),
				lake.Required(4, "exchange", lake.String, "Upper-case exchange code"),
				lake.Required(5, "asset_class", lake.String, "equities, crypto, futures or options"),
				lake.Required(6, "company_name", lake.String, "Issuer name"),
				lake.Optional(7, "isin", lake.String, "ISIN where known"),
				lake.Optional(8, "currency", lake.String, "Trading currency"),
				lake.Optional(9, "listing_date", lake.Timestamp, "Listing date where known"),
				lake.Optional(10, "delisting_date", lake.Timestamp, "Delisting date where known"),
				lake.Required(11, "is_active", lake.Bool, "Whether the instrument trades"),
				lake.Required(12, "ingestion_timestamp", lake.Timestamp, "When K2 received the record"),
				lake.Optional(13, "vendor_data", lake.StringMap(14, 15), "Vendor-specific extras"),
			),
			Key: "message_id", Symbol: "symbol",
		},
	},
	Encode:   codec.AppendReference,
	Decode:   (*codec.Decoder).ReferenceInto,
	Validate: (*md.ReferenceData).Validate,
	Key:      func(r *md.ReferenceData) string { return r.CompanyID },
	Exchange: func(r *md.ReferenceData) string { return r.Exchange },
	Asset:    func(r *md.ReferenceData) md.AssetClass { return r.AssetClass },
	Rows: lake.Codec[md.ReferenceData]{
		Key:    func(r *md.ReferenceData) string { return r.MessageID.String() },
		Symbol: func(r *md.ReferenceData) string { return r.Symbol },
		Columns: []lake.Column[md.ReferenceData]{
			lake.UUIDColumn(func(r *md.ReferenceData) uuid.UUID { return r.MessageID }),
			lake.TextColumn(func(r *md.ReferenceData) string { return r.CompanyID }),
			lake.TextColumn(func(r *md.ReferenceData) string { return r.Symbol }),
			lake.TextColumn(func(r *md.ReferenceData) string { return r.Exchange }),
			lake.TextColumn(func(r *md.ReferenceData) string { return string(r.AssetClass) }),
			lake.TextColumn(func(r *md.ReferenceData) string { return r.CompanyName }),
			lake.OptTextColumn(func(r *md.ReferenceData) string { return r.ISIN }),
			lake.OptTextColumn(func(r *md.ReferenceData) string { return r.Currency }),
			lake.TimestampColumn(func(r *md.ReferenceData) md.NullTimestamp { return r.ListingDate }),
			lake.TimestampColumn(func(r *md.ReferenceData) md.NullTimestamp { return r.DelistingDate }),
			lake.BoolColumn(func(r *md.ReferenceData) bool { return r.IsActive }),
			lake.TimestampColumn(func(r *md.ReferenceData) md.NullTimestamp {
				return md.NullTimestamp{Timestamp: r.IngestionTimestamp, Valid: true}
			}),
			lake.MapColumn(func(r *md.ReferenceData) map[string]string { return r.VendorData }),
		},
	},
}
