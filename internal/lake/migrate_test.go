package lake_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// formatOneTrades is the trades table as K2 created it in format 1: every
// column stored, message_id first with field id 1, then the columns of
// today with ids one higher (this is the schema, spec, sort order and
// properties of a table written before format 2).
func formatOneTrades() (*iceberg.Schema, iceberg.PartitionSpec, table.SortOrder, iceberg.Properties) {
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{2},
		lake.Required(1, "message_id", lake.String, "Name-based UUID of the record, stable across loads and replays"),
		lake.Required(2, "trade_id", lake.String, "{EXCHANGE}-{native trade id}; unique in the table"),
		lake.Required(3, "symbol", lake.String, "Instrument symbol as the exchange lists it, e.g. BHP, BTCUSDT"),
		lake.Required(4, "exchange", lake.String, "Upper-case exchange code: ASX, BINANCE, KRAKEN"),
		lake.Required(5, "asset_class", lake.String, "equities, crypto, futures or options"),
		lake.Required(6, "timestamp", lake.Timestamp, "Execution time at the exchange, UTC, microseconds"),
		lake.Required(7, "price", lake.Decimal, "Execution price in the quote currency"),
		lake.Required(8, "quantity", lake.Decimal, "Executed quantity (shares or base-asset units)"),
		lake.Required(9, "currency", lake.String, "Currency of price: ISO 4217 or the crypto quote asset"),
		lake.Required(10, "side", lake.String, "Aggressor side: BUY, SELL, SELL_SHORT or UNKNOWN"),
		lake.Required(11, "trade_conditions", lake.StringList(12), "Exchange condition codes, empty when none"),
		lake.Optional(13, "source_sequence", lake.Long, "Exchange sequence number of the trade, used for gap detection"),
		lake.Required(14, "ingestion_timestamp", lake.Timestamp, "When K2 received the trade, UTC, microseconds"),
		lake.Optional(15, "platform_sequence", lake.Long, "K2's own sequence number where assigned"),
		lake.Optional(16, "vendor_data", lake.StringMap(17, 18), "Exchange-specific extras"),
	)
	spec := iceberg.NewPartitionSpec(
		iceberg.PartitionField{SourceIDs: []int{6}, FieldID: 1000, Name: "timestamp_day", Transform: iceberg.DayTransform{}},
		iceberg.PartitionField{SourceIDs: []int{3}, FieldID: 1001, Name: "symbol", Transform: iceberg.IdentityTransform{}},
	)
	order, _ := table.NewSortOrder(1, []table.SortField{
		{SourceIDs: []int{3}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{6}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{13}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	})
	props := iceberg.Properties{
		"comment": "Every trade K2 captured", table.PropertyFormatVersion: "2",
		table.ParquetCompressionKey: "zstd", table.ParquetCompressionLevelKey: "1", "parquet.enable.dictionary": "false",
		table.ParquetRowGroupLimitKey: "32768", "write.metadata.metrics.default": "truncate(16)",
		"write.metadata.metrics.column.trade_id": "full",
	}
	return sc, spec, order, props
}

// A lake written in format 1 opens in format 2: message_id leaves the
// schema (its values stay in the old files, unread), every other column
// keeps its field id, the old rows read back with the message ids they
// were written with, and new commits land beside them.
func TestFormatOneLakeIsMigrated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	catalogPath, warehouse := filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse")

	// The format-1 table, written as K2 wrote it.
	db, err := sql.Open("sqlite", "file:"+catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := sqlcat.NewCatalog(lake.CatalogName, db, sqlcat.SQLite, iceberg.Properties{"warehouse": "file://" + warehouse})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateNamespace(ctx, table.Identifier{lake.Namespace}, nil); err != nil {
		t.Fatal(err)
	}
	sc, spec, order, props := formatOneTrades()
	old, err := cat.CreateTable(ctx, table.Identifier{lake.Namespace, "trades"}, sc, catalog.WithLocation("file://"+warehouse+"/market_data/trades"),
		catalog.WithPartitionSpec(&spec), catalog.WithSortOrder(order), catalog.WithProperties(props))
	if err != nil {
		t.Fatal(err)
	}
	want := testTrades("BHP", 1, 3)
	var rows []string
	for _, tr := range want {
		rows = append(rows, `{"message_id":"`+tr.MessageID.String()+`","trade_id":"`+tr.TradeID+`","symbol":"BHP","exchange":"BINANCE","asset_class":"crypto",`+
			`"timestamp":"`+tr.Timestamp.Time().Format("2006-01-02T15:04:05.000000Z")+`","price":"`+tr.Price.String()+`","quantity":"0.02",`+
			`"currency":"USDT","side":"SELL","trade_conditions":[],"source_sequence":`+strconv.FormatInt(tr.SourceSequence.Int64, 10)+`,`+
			`"ingestion_timestamp":"2024-08-08T23:54:16.000000Z","platform_sequence":null,"vendor_data":null}`)
	}
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, lake.ArrowSchema(sc), strings.NewReader("["+strings.Join(rows, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	tx := old.NewTransaction()
	if err := tx.Append(ctx, rdr, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Today's K2 opens it.
	l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: catalogPath, Warehouse: warehouse})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tbl, err := l.Load(ctx, "trades")
	if err != nil {
		t.Fatal(err)
	}
	if v := tbl.Properties()[lake.FormatVersionProperty]; v != "2" {
		t.Fatalf("format version %q after opening, want 2", v)
	}
	if _, ok := tbl.Schema().FindFieldByName("message_id"); ok {
		t.Fatal("message_id is still a column")
	}
	if f, _ := tbl.Schema().FindFieldByName("trade_id"); f.ID != 2 {
		t.Fatalf("trade_id has field id %d, want the 2 it had", f.ID)
	}
	if _, ok := tbl.Properties()["parquet.enable.dictionary"]; ok || tbl.Properties()[table.ParquetCompressionLevelKey] != "3" {
		t.Fatalf("properties not migrated: %v", tbl.Properties())
	}
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, testTrades("BHP", 4, 2), nil); err != nil {
		t.Fatal(err)
	}
	e, err := query.New(l, query.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, err := e.Trades(ctx, query.RecordQuery{Filter: query.Filter{Symbol: "BHP"}, Limit: 10})
	if err != nil || len(got) != 5 {
		t.Fatalf("%d trades, %v; want the 3 old and 2 new", len(got), err)
	}
	for i, tr := range want {
		if got[i].TradeID != tr.TradeID || got[i].MessageID != tr.MessageID || got[i].Price != tr.Price {
			t.Errorf("old trade %d reads back as %+v, was %+v", i, got[i], tr)
		}
	}
	if got[4].MessageID != md.MessageID("trade", "BHP", got[4].TradeID) {
		t.Error("a new trade's message id is not derived")
	}
	// Opening again changes nothing.
	l2, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: catalogPath, Warehouse: warehouse})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := l2.Load(ctx, "trades")
	l2.Close()
	if again.MetadataLocation() != func() string { t, _ := l.Load(ctx, "trades"); return t.MetadataLocation() }() {
		t.Error("a second open committed again")
	}
}

// A table of a newer format is refused with the reason.
func TestNewerFormatIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	opts := lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")}
	l, err := lake.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := l.Load(ctx, "quotes")
	tx := tbl.NewTransaction()
	tx.SetProperties(iceberg.Properties{lake.FormatVersionProperty: "99"})
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, err = lake.Open(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "format version 99, written by a newer K2") {
		t.Fatalf("got %v", err)
	}
}
