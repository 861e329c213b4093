package lake

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Namespace holds K2's tables.
const Namespace = "market_data"

// Table names inside Namespace.
const (
	Trades        = "trades"
	Quotes        = "quotes"
	ReferenceData = "reference_data"
)

// TableDef is everything K2 declares about one table. Field ids are fixed
// here, numbered depth-first as the catalog assigns them on creation, so
// every deployment's tables are identical and other engines can rely on them.
type TableDef struct {
	Name string
	Doc  string
	// Schema is the Iceberg schema with documented columns.
	Schema *iceberg.Schema
	// Spec partitions the table; SortOrder orders rows inside each data file.
	Spec      iceberg.PartitionSpec
	SortOrder table.SortOrder
	// Key is the column whose value identifies a record (trade_id, quote_id,
	// message_id): a row whose key is already stored is not written again.
	Key string
	// Time is the event-time column (timestamp), "" for tables without one.
	Time string
	// Properties are the table properties set at creation.
	Properties iceberg.Properties
}

// Identifier returns the catalog identifier market_data.<name>.
func (d *TableDef) Identifier() table.Identifier { return table.Identifier{Namespace, d.Name} }

// FullName returns "market_data.<name>".
func (d *TableDef) FullName() string { return Namespace + "." + d.Name }

// SymbolPartition chooses the partition transform on symbol. Identity keeps
// one symbol per file, which makes symbol reads touch nothing else;
// bucket[N] bounds the files a commit writes when thousands of symbols
// trade. The choice and the measurements behind it are in docs/lake.md.
type SymbolPartition struct {
	Buckets int // 0 = identity(symbol)
}

// ParseSymbolPartition reads "identity" or "bucket[16]".
func ParseSymbolPartition(s string) (SymbolPartition, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" || s == "identity" {
		return SymbolPartition{}, nil
	}
	if n, ok := strings.CutPrefix(s, "bucket["); ok {
		if n, ok := strings.CutSuffix(n, "]"); ok {
			if b, err := strconv.Atoi(n); err == nil && b > 0 && b <= 1024 {
				return SymbolPartition{Buckets: b}, nil
			}
		}
	}
	return SymbolPartition{}, fmt.Errorf("symbol partition %q is not identity or bucket[N] with 1 ≤ N ≤ 1024", s)
}

func (p SymbolPartition) String() string {
	if p.Buckets == 0 {
		return "identity"
	}
	return fmt.Sprintf("bucket[%d]", p.Buckets)
}

func (p SymbolPartition) field(sourceID int) iceberg.PartitionField {
	if p.Buckets == 0 {
		return iceberg.PartitionField{SourceIDs: []int{sourceID}, FieldID: 1001, Name: "symbol", Transform: iceberg.IdentityTransform{}}
	}
	return iceberg.PartitionField{SourceIDs: []int{sourceID}, FieldID: 1001, Name: "symbol_bucket", Transform: iceberg.BucketTransform{NumBuckets: p.Buckets}}
}

var (
	str       = iceberg.PrimitiveTypes.String
	long      = iceberg.PrimitiveTypes.Int64
	tstz      = iceberg.PrimitiveTypes.TimestampTz
	dec188    = iceberg.DecimalTypeOf(18, 8)
	boolean   = iceberg.PrimitiveTypes.Bool
	stringMap = func(keyID, valueID int) *iceberg.MapType {
		return &iceberg.MapType{KeyID: keyID, KeyType: str, ValueID: valueID, ValueType: str, ValueRequired: false}
	}
)

func req(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: true, Doc: doc}
}

func opt(id int, name string, t iceberg.Type, doc string) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: false, Doc: doc}
}

// baseProperties apply to every table. Parquet dictionaries are off: on
// this schema they cost a tenth of the append throughput and saved about 1%
// of the bytes, as zstd already folds the repeated symbols and codes (see
// docs/lake.md). Compression is zstd level 1, the fastest. Row groups hold
// 32,768 rows: their min/max statistics let DuckDB skip all but the newest
// row groups of a file for "latest trades", and a partition's row groups
// are scanned in parallel.
func baseProperties(doc string) iceberg.Properties {
	return iceberg.Properties{
		"comment":                                  doc,
		table.PropertyFormatVersion:                "2",
		table.ParquetCompressionKey:                "zstd",
		table.ParquetCompressionLevelKey:           "1",
		"parquet.enable.dictionary":                "false",
		table.WriteTargetFileSizeBytesKey:          fmt.Sprint(256 << 20),
		table.ParquetRowGroupLimitKey:              "32768",
		table.CommitNumRetriesKey:                  "6",
		table.CommitMinRetryWaitMsKey:              "50",
		table.CommitMaxRetryWaitMsKey:              "2000",
		table.MetadataDeleteAfterCommitEnabledKey:  "true",
		table.MetadataPreviousVersionsMaxKey:       "100",
		"write.metadata.metrics.default":           "truncate(16)",
		"write.metadata.metrics.column.trade_id":   "full",
		"write.metadata.metrics.column.quote_id":   "full",
		"write.metadata.metrics.column.message_id": "full",
	}
}

func sortBySymbolTimeSeq(symbolID, timeID, seqID int) table.SortOrder {
	so, err := table.NewSortOrder(1, []table.SortField{
		{SourceIDs: []int{symbolID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{timeID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{seqID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	})
	if err != nil {
		panic(err)
	}
	return so
}

// TradesTable declares market_data.trades.
func TradesTable(p SymbolPartition) TableDef {
	const doc = "Every trade K2 captured: one row per execution, keyed by trade_id, event time in UTC microseconds, prices and sizes as exact decimal(18,8)."
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{2},
		req(1, "message_id", str, "Name-based UUID of the record, stable across loads and replays"),
		req(2, "trade_id", str, "{EXCHANGE}-{native trade id}; unique in the table"),
		req(3, "symbol", str, "Instrument symbol as the exchange lists it, e.g. BHP, BTCUSDT"),
		req(4, "exchange", str, "Upper-case exchange code: ASX, BINANCE, KRAKEN"),
		req(5, "asset_class", str, "equities, crypto, futures or options"),
		req(6, "timestamp", tstz, "Execution time at the exchange, UTC, microseconds"),
		req(7, "price", dec188, "Execution price in the quote currency"),
		req(8, "quantity", dec188, "Executed quantity (shares or base-asset units)"),
		req(9, "currency", str, "Currency of price: ISO 4217 or the crypto quote asset"),
		req(10, "side", str, "Aggressor side: BUY, SELL, SELL_SHORT or UNKNOWN"),
		req(11, "trade_conditions", &iceberg.ListType{ElementID: 12, Element: str, ElementRequired: true}, "Exchange condition codes, empty when none"),
		opt(13, "source_sequence", long, "Exchange sequence number of the trade, used for gap detection"),
		req(14, "ingestion_timestamp", tstz, "When K2 received the trade, UTC, microseconds"),
		opt(15, "platform_sequence", long, "K2's own sequence number where assigned"),
		opt(16, "vendor_data", stringMap(17, 18), "Exchange-specific extras"),
	)
	return TableDef{
		Name: Trades, Doc: doc, Schema: sc,
		Spec: iceberg.NewPartitionSpec(
			iceberg.PartitionField{SourceIDs: []int{6}, FieldID: 1000, Name: "timestamp_day", Transform: iceberg.DayTransform{}},
			p.field(3),
		),
		SortOrder:  sortBySymbolTimeSeq(3, 6, 13),
		Key:        "trade_id",
		Time:       "timestamp",
		Properties: baseProperties(doc),
	}
}

// QuotesTable declares market_data.quotes.
func QuotesTable(p SymbolPartition) TableDef {
	const doc = "Top-of-book quotes: best bid and ask with sizes, keyed by quote_id; an empty side is null."
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{2},
		req(1, "message_id", str, "Name-based UUID of the record, stable across loads and replays"),
		req(2, "quote_id", str, "{EXCHANGE}-{native update id}; unique in the table"),
		req(3, "symbol", str, "Instrument symbol"),
		req(4, "exchange", str, "Upper-case exchange code"),
		req(5, "asset_class", str, "equities, crypto, futures or options"),
		req(6, "timestamp", tstz, "Quote time at the exchange (receive time where the feed has none), UTC, microseconds"),
		opt(7, "bid_price", dec188, "Best bid price; null when the bid side is empty"),
		opt(8, "bid_quantity", dec188, "Size at the best bid; null when the bid side is empty"),
		opt(9, "ask_price", dec188, "Best ask price; null when the ask side is empty"),
		opt(10, "ask_quantity", dec188, "Size at the best ask; null when the ask side is empty"),
		req(11, "currency", str, "Currency of the prices"),
		opt(12, "source_sequence", long, "Exchange sequence or update id"),
		req(13, "ingestion_timestamp", tstz, "When K2 received the quote, UTC, microseconds"),
		opt(14, "platform_sequence", long, "K2's own sequence number where assigned"),
		opt(15, "vendor_data", stringMap(16, 17), "Exchange-specific extras"),
	)
	return TableDef{
		Name: Quotes, Doc: doc, Schema: sc,
		Spec: iceberg.NewPartitionSpec(
			iceberg.PartitionField{SourceIDs: []int{6}, FieldID: 1000, Name: "timestamp_day", Transform: iceberg.DayTransform{}},
			p.field(3),
		),
		SortOrder:  sortBySymbolTimeSeq(3, 6, 12),
		Key:        "quote_id",
		Time:       "timestamp",
		Properties: baseProperties(doc),
	}
}

// ReferenceDataTable declares market_data.reference_data. It is small and
// unpartitioned; a changed instrument is a new row with a new message_id,
// and readers take the latest by ingestion_timestamp.
func ReferenceDataTable() TableDef {
	const doc = "Instrument reference data: company id, symbol, name, ISIN per exchange; one row per distinct version of a record."
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{1},
		req(1, "message_id", str, "Name-based UUID of this version of the record"),
		req(2, "company_id", str, "Exchange or vendor company id"),
		req(3, "symbol", str, "Listed symbol"),
		req(4, "exchange", str, "Upper-case exchange code"),
		req(5, "asset_class", str, "equities, crypto, futures or options"),
		req(6, "company_name", str, "Issuer name"),
		opt(7, "isin", str, "ISIN where known"),
		opt(8, "currency", str, "Trading currency"),
		opt(9, "listing_date", tstz, "Listing date where known"),
		opt(10, "delisting_date", tstz, "Delisting date where known"),
		req(11, "is_active", boolean, "Whether the instrument trades"),
		req(12, "ingestion_timestamp", tstz, "When K2 received the record"),
		opt(13, "vendor_data", stringMap(14, 15), "Vendor-specific extras"),
	)
	return TableDef{
		Name: ReferenceData, Doc: doc, Schema: sc,
		Spec:       *iceberg.UnpartitionedSpec,
		SortOrder:  table.UnsortedSortOrder,
		Key:        "message_id",
		Properties: baseProperties(doc),
	}
}
