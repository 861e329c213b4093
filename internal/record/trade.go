package record

import (
	"maps"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Trade is one execution: market.{asset}.trades.{exchange}, market_data.trades.
var Trade = &Kind[md.Trade]{
	Spec: Spec{
		Name:      "trade",
		DataType:  "trades",
		Avro:      &codec.Trade,
		Sequenced: true,
		Derived:   []string{"message_id"},
		Table: lake.TableDef{
			Name: "trades",
			Doc:  "Every trade K2 captured: one row per execution, keyed by trade_id, event time in UTC microseconds, prices and sizes as exact decimal(18,8). A trade's message_id is not stored: it is UUIDv5 of \"trade/{symbol}/{trade_id}\" in namespace " + md.MessageIDNamespace + ".",
			Schema: iceberg.NewSchemaWithIdentifiers(0, []int{1},
				lake.Required(1, "trade_id", lake.String, "{EXCHANGE}-{native trade id}; unique in the table"),
				lake.Required(2, "symbol", lake.String, "Instrument symbol as the exchange lists it, e.g. BHP, BTCUSDT"),
				lake.Required(3, "exchange", lake.String, "Upper-case exchange code: ASX, BINANCE, KRAKEN"),
				lake.Required(4, "asset_class", lake.String, "equities, crypto, futures or options"),
				lake.Required(5, "timestamp", lake.Timestamp, "Execution time at the exchange, UTC, microseconds"),
				lake.Required(6, "price", lake.Decimal, "Execution price in the quote currency"),
				lake.Required(7, "quantity", lake.Decimal, "Executed quantity (shares or base-asset units)"),
				lake.Required(8, "currency", lake.String, "Currency of price: ISO 4217 or the crypto quote asset"),
				lake.Required(9, "side", lake.String, "Aggressor side: BUY, SELL, SELL_SHORT or UNKNOWN"),
				lake.Required(10, "trade_conditions", lake.StringList(11), "Exchange condition codes, empty when none"),
				lake.Optional(12, "source_sequence", lake.Long, "Exchange sequence number of the trade, used for gap detection"),
				lake.Required(13, "ingestion_timestamp", lake.Timestamp, "When K2 received the trade, UTC, microseconds"),
				lake.Optional(14, "platform_sequence", lake.Long, "K2's own sequence number where assigned"),
				lake.Optional(15, "vendor_data", lake.StringMap(16, 17), "Exchange-specific extras"),
			),
			Key: "trade_id", Symbol: "symbol", Time: "timestamp", Sequence: "source_sequence",
			PerSymbol: []string{"exchange", "asset_class", "currency"},
			// Format 1 stored message_id as field 1; such a table keeps its ids.
			Migrations: []lake.Migration{{Version: 2, Drop: []string{"message_id"}}},
		},
	},
	Encode:   codec.AppendTrade,
	Decode:   (*codec.Decoder).TradeInto,
	Validate: (*md.Trade).Validate,
	Key:      func(t *md.Trade) string { return t.Symbol },
	Exchange: func(t *md.Trade) string { return t.Exchange },
	Asset:    func(t *md.Trade) md.AssetClass { return t.AssetClass },
	Sequence: func(t *md.Trade) md.NullInt64 { return t.SourceSequence },
	Rows: lake.Codec[md.Trade]{
		Key:    func(t *md.Trade) string { return t.TradeID },
		Symbol: func(t *md.Trade) string { return t.Symbol },
		Time:   func(t *md.Trade) md.Timestamp { return t.Timestamp },
		Seq:    func(t *md.Trade) int64 { return lake.SeqOf(t.SourceSequence) },
		Encode: encodeTrades,
		Columns: []lake.Column[md.Trade]{
			lake.TextColumn(func(t *md.Trade) string { return t.TradeID }),
			lake.TextColumn(func(t *md.Trade) string { return t.Symbol }),
			lake.TextColumn(func(t *md.Trade) string { return t.Exchange }),
			lake.TextColumn(func(t *md.Trade) string { return string(t.AssetClass) }),
			lake.TimestampColumn(func(t *md.Trade) md.NullTimestamp { return md.NullTimestamp{Timestamp: t.Timestamp, Valid: true} }),
			lake.DecimalColumn(func(t *md.Trade) md.NullDecimal { return md.SomeDecimal(t.Price) }),
			lake.DecimalColumn(func(t *md.Trade) md.NullDecimal { return md.SomeDecimal(t.Quantity) }),
			lake.TextColumn(func(t *md.Trade) string { return t.Currency }),
			lake.TextColumn(func(t *md.Trade) string { return string(t.Side) }),
			lake.ListColumn(func(t *md.Trade) []string { return t.TradeConditions }),
			lake.Int64Column(func(t *md.Trade) md.NullInt64 { return t.SourceSequence }),
			lake.TimestampColumn(func(t *md.Trade) md.NullTimestamp {
				return md.NullTimestamp{Timestamp: t.IngestionTimestamp, Valid: true}
			}),
			lake.Int64Column(func(t *md.Trade) md.NullInt64 { return t.PlatformSequence }),
			lake.MapColumn(func(t *md.Trade) map[string]string { return t.VendorData }),
		},
	},
}

// encodeTrades is the trades table's hot path: one pass over the rows
// fills every column, reading each row once. It produces exactly what the
// Columns would (a test holds it to that).
func encodeTrades(sc *arrow.Schema, rows []md.Trade, order []int) []arrow.Array {
	n := len(order)
	var lens [7]int
	for _, i := range order {
		t := &rows[i]
		lens[0] += len(t.TradeID)
		lens[1] += len(t.Symbol)
		lens[2] += len(t.Exchange)
		lens[3] += len(t.AssetClass)
		lens[4] += len(t.Currency)
		lens[5] += len(t.Side)
		for _, c := range t.TradeConditions {
			lens[6] += len(c)
		}
	}
	var text [7]*lake.TextBuffer
	for k := range text {
		text[k] = lake.NewTextBuffer(n, lens[k])
	}
	ts := make([]arrow.Timestamp, n)
	ingested := make([]arrow.Timestamp, n)
	price := make([]decimal128.Num, n)
	qty := make([]decimal128.Num, n)
	srcSeq, platSeq := make([]int64, n), make([]int64, n)
	var srcValid, platValid lake.Bitmap
	condOffsets := make([]int32, 1, n+1)
	vendor := array.NewBuilder(memory.DefaultAllocator, sc.Field(13).Type).(*array.MapBuilder)
	defer vendor.Release()
	kb, vb := vendor.KeyBuilder().(*array.StringBuilder), vendor.ItemBuilder().(*array.StringBuilder)
	anyVendor := false // live feeds rarely carry extras: build the all-null column at once
	for j, i := range order {
		t := &rows[i]
		text[0].Add(t.TradeID)
		text[1].Add(t.Symbol)
		text[2].Add(t.Exchange)
		text[3].Add(string(t.AssetClass))
		ts[j] = arrow.Timestamp(t.Timestamp)
		price[j] = decimal128.FromI64(t.Price.Units())
		qty[j] = decimal128.FromI64(t.Quantity.Units())
		text[4].Add(t.Currency)
		text[5].Add(string(t.Side))
		for _, c := range t.TradeConditions {
			text[6].Add(c)
		}
		condOffsets = append(condOffsets, int32(text[6].Len()))
		srcSeq[j] = t.SourceSequence.Int64
		srcValid.Set(j, t.SourceSequence.Valid, n)
		ingested[j] = arrow.Timestamp(t.IngestionTimestamp)
		platSeq[j] = t.PlatformSequence.Int64
		platValid.Set(j, t.PlatformSequence.Valid, n)
		if t.VendorData == nil {
			if anyVendor {
				vendor.AppendNull()
			}
			continue
		}
		if !anyVendor {
			// The first map: the rows before it had none.
			anyVendor = true
			vendor.AppendNulls(j)
		}
		vendor.Append(true)
		for _, k := range slices.Sorted(maps.Keys(t.VendorData)) {
			kb.Append(k)
			vb.Append(t.VendorData[k])
		}
	}
	vendorCol := array.MakeArrayOfNull(memory.DefaultAllocator, sc.Field(13).Type, n)
	if anyVendor {
		vendorCol.Release()
		vendorCol = vendor.NewArray()
	}
	return []arrow.Array{
		text[0].Array(sc.Field(0).Type, nil, 0),
		text[1].Array(sc.Field(1).Type, nil, 0),
		text[2].Array(sc.Field(2).Type, nil, 0),
		text[3].Array(sc.Field(3).Type, nil, 0),
		lake.FixedArray(sc.Field(4).Type, n, arrow.TimestampTraits.CastToBytes(ts), nil),
		lake.FixedArray(sc.Field(5).Type, n, arrow.Decimal128Traits.CastToBytes(price), nil),
		lake.FixedArray(sc.Field(6).Type, n, arrow.Decimal128Traits.CastToBytes(qty), nil),
		text[4].Array(sc.Field(7).Type, nil, 0),
		text[5].Array(sc.Field(8).Type, nil, 0),
		lake.ListArray(sc.Field(9).Type.(*arrow.ListType), condOffsets, text[6]),
		lake.FixedArray(sc.Field(10).Type, n, arrow.Int64Traits.CastToBytes(srcSeq), &srcValid),
		lake.FixedArray(sc.Field(11).Type, n, arrow.TimestampTraits.CastToBytes(ingested), nil),
		lake.FixedArray(sc.Field(12).Type, n, arrow.Int64Traits.CastToBytes(platSeq), &platValid),
		vendorCol,
	}
}
