package record

import (
	"time"

	"github.com/apache/iceberg-go"

	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// BarTable declares the table that keeps one interval's OHLCV bars,
// derived from the trades table (internal/rollup keeps it; the query
// engine reads it). Unlike a kind's table, nothing streams into it.
type BarTable struct {
	Interval md.Interval
	Table    lake.TableDef
	// Retention: bars whose window starts longer ago than this are
	// dropped, and queries reaching further back read the trades.
	Retention time.Duration
}

// TradesSnapshotProperty, in a bar table's snapshot summary, is the trades
// snapshot the bars were computed from: the bar table then holds exactly
// the bars of that snapshot's trades.
const TradesSnapshotProperty = "k2.trades-snapshot"

// BarsFromProperty, beside it, is where queries of the table may start
// (UTC microseconds): the partition after the oldest the table keeps, so
// that a 1d window reaching back into that oldest partition is never
// missing. Older bars went with retention; a query reaching further back
// reads the trades.
const BarsFromProperty = "k2.bars-from"

const day = 24 * time.Hour

// BarTables are the bar tables, shortest interval first, with the
// original's retention (its gold layer: 1m 90 days … 1d 5 years).
// Intraday tables are partitioned by the window's UTC day (1m, 5m) or
// month (30m, 1h); 1d by month. Each partition holds one symbol.
var BarTables = []BarTable{
	barTable(md.Interval1m, 90*day, iceberg.DayTransform{}),
	barTable(md.Interval5m, 180*day, iceberg.DayTransform{}),
	barTable(md.Interval30m, 365*day, iceberg.MonthTransform{}),
	barTable(md.Interval1h, 1095*day, iceberg.MonthTransform{}),
	barTable(md.Interval1d, 1825*day, iceberg.MonthTransform{}),
}

// BarTableOf returns the table keeping iv's bars, if there is one.
func BarTableOf(iv md.Interval) (BarTable, bool) {
	for _, b := range BarTables {
		if b.Interval == iv {
			return b, true
		}
	}
	return BarTable{}, false
}

// AllTables are the kinds' tables and the bar tables, for opening a lake
// that keeps both.
func AllTables() []lake.TableDef {
	out := Tables()
	for _, b := range BarTables {
		out = append(out, b.Table)
	}
	return out
}

// AllTableNames names the kinds' tables and the bar tables.
func AllTableNames() []string {
	out := TableNames()
	for _, b := range BarTables {
		out = append(out, b.Table.Name)
	}
	return out
}

func barTable(iv md.Interval, retention time.Duration, part iceberg.Transform) BarTable {
	window := "the UTC epoch's " + string(iv) + " windows"
	if iv == md.Interval1d {
		window = "the exchange-local trading date, from local midnight to local midnight"
	}
	return BarTable{
		Interval:  iv,
		Retention: retention,
		Table: lake.TableDef{
			Name: "bars_" + string(iv),
			Doc: "OHLCV bars of " + window + ", computed exactly from market_data.trades (order-book trades only: the " +
				"non-market condition codes are left out) and replaced whole whenever the trades under them change; the " +
				"snapshot summary's " + TradesSnapshotProperty + " names the trades snapshot they match. Kept " +
				retention.String() + ".",
			Schema: iceberg.NewSchemaWithIdentifiers(0, []int{1, 2, 3},
				lake.Required(1, "symbol", lake.String, "Instrument symbol as the exchange lists it"),
				lake.Required(2, "exchange", lake.String, "Upper-case exchange code"),
				lake.Required(3, "window_start", lake.Timestamp, "Start of the bar's window, UTC, microseconds"),
				lake.Required(4, "window_end", lake.Timestamp, "End of the bar's window (exclusive), UTC, microseconds"),
				lake.Required(5, "open", lake.Decimal, "Price of the window's first trade by (time, exchange sequence)"),
				lake.Required(6, "high", lake.Decimal, "Highest trade price"),
				lake.Required(7, "low", lake.Decimal, "Lowest trade price"),
				lake.Required(8, "close", lake.Decimal, "Price of the window's last trade by (time, exchange sequence)"),
				lake.Required(9, "volume", lake.WideDecimal, "Σ quantity, exact"),
				lake.Required(10, "trade_count", lake.Long, "Number of trades"),
				lake.Required(11, "vwap", lake.Decimal, "Σ(price·quantity) / Σ quantity, rounded half-up to 8 decimals"),
			),
			Key: "window_start", Symbol: "symbol", Time: "window_start",
			TimeTransform: part, Symbols: &lake.SymbolPartition{},
		},
	}
}
