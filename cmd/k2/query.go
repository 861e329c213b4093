package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

type queryFlags struct {
	symbol, exchange  string
	from, to          string
	limit             int
	order             string
	interval          string
	date              string
	asOfSnapshot      int64
	asOfTime          string
	format            string
	excludeConditions []string
	includeNonMarket  bool
	table             string
	args              []string // positionals of the running subcommand
}

func newQueryCmd(a *app) *cobra.Command {
	f := &queryFlags{}
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Ask the lake: trades, quotes, bars, daily summaries, symbols, stats, snapshots",
		Long: `Query the lake. Times are RFC 3339 (2014-03-10T10:00:00+11:00, …Z), local
date-times (2014-03-10T10:00:00) or dates (2014-03-10); values without a zone
are read in the zone of --exchange, else UTC. --from is inclusive, --to
exclusive. Every read can be made as of a snapshot (--as-of-snapshot) or as the
table stood at an instant (--as-of-time).

JSON output is one array of objects; timestamps are RFC 3339 UTC with
microseconds; decimals are strings.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.symbol, "symbol", "", "instrument symbol, e.g. BHP or BTCUSDT")
	pf.StringVar(&f.exchange, "exchange", "", "exchange code, e.g. ASX, BINANCE")
	pf.StringVar(&f.from, "from", "", "start time (inclusive)")
	pf.StringVar(&f.to, "to", "", "end time (exclusive)")
	pf.IntVar(&f.limit, "limit", 0, "rows to return (trades/quotes default 100; bars default all)")
	pf.StringVar(&f.order, "order", "", "asc or desc (trades/quotes default desc: newest first; bars default asc)")
	pf.Int64Var(&f.asOfSnapshot, "as-of-snapshot", 0, "read the table at this snapshot id")
	pf.StringVar(&f.asOfTime, "as-of-time", "", "read the table as it stood at this time")
	pf.StringVar(&f.format, "format", "table", "table, csv or json")
	a.cfg.RegisterLake(pf)
	a.cfg.RegisterQuery(pf)

	trades := &cobra.Command{
		Use: "trades", Short: "Trades by symbol, exchange and time, newest first by default",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			q, err := f.records(true)
			if err != nil {
				return err
			}
			rows, err := e.Trades(ctx, q)
			if err != nil {
				return err
			}
			return f.write(w, rows, tradeColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	trades.Flags().StringSliceVar(&f.excludeConditions, "exclude-conditions", nil, "leave out trades carrying any of these condition codes, e.g. 25,26")
	quotes := &cobra.Command{
		Use: "quotes", Short: "Top-of-book quotes by symbol, exchange and time",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			q, err := f.records(true)
			if err != nil {
				return err
			}
			rows, err := e.Quotes(ctx, q)
			if err != nil {
				return err
			}
			return f.write(w, rows, quoteColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	funding := &cobra.Command{
		Use: "funding", Short: "Mark prices and funding rates of perpetual futures by symbol, exchange and time",
		Example: "  k2 query funding --exchange BINANCE_USDM --symbol ETHUSDT --limit 10",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			q, err := f.records(true)
			if err != nil {
				return err
			}
			rows, err := e.Funding(ctx, q)
			if err != nil {
				return err
			}
			return f.write(w, rows, fundingColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	bars := &cobra.Command{
		Use: "bars", Short: "OHLCV bars (1m, 5m, 15m, 30m, 1h, 1d) with exact VWAP; 1d is the exchange-local trading date",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			q, err := f.records(false)
			if err != nil {
				return err
			}
			iv, err := md.ParseInterval(f.interval)
			if err != nil {
				return err
			}
			rows, err := e.Bars(ctx, query.BarQuery{Filter: q.Filter, Interval: iv, AsOf: q.AsOf, Limit: q.Limit, Desc: q.Desc, IncludeNonMarket: f.includeNonMarket})
			if err != nil {
				return err
			}
			return f.write(w, rows, barColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	bars.Flags().StringVar(&f.interval, "interval", "1m", "bar size: 1m, 5m, 15m, 30m, 1h or 1d")
	bars.Flags().StringSliceVar(&f.excludeConditions, "exclude-conditions", nil, "leave out trades carrying any of these condition codes")
	bars.Flags().BoolVar(&f.includeNonMarket, "include-non-market", false, "count prints that are not order-book trades ("+strings.Join(md.NonMarketConditions, ", ")+"), left out by default")
	summary := &cobra.Command{
		Use: "summary [SYMBOL DATE]", Short: "Daily summary (open, high, low, close, volume, trades, VWAP) of a symbol on an exchange-local date",
		Args: cobra.RangeArgs(0, 2),
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			if len(f.args) > 0 {
				f.symbol = f.args[0]
			}
			if len(f.args) > 1 {
				f.date = f.args[1]
			}
			if f.symbol == "" || f.date == "" {
				return fmt.Errorf("summary needs a symbol and a date: k2 query summary BHP 2014-03-10")
			}
			asOf, err := f.asOf()
			if err != nil {
				return err
			}
			bar, err := e.Summary(ctx, strings.ToUpper(f.symbol), strings.ToUpper(f.exchange), f.date, asOf)
			if err != nil {
				return err
			}
			rows := []md.Bar{}
			if bar != nil {
				rows = append(rows, *bar)
			}
			return f.write(w, rows, barColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	summary.Flags().StringVar(&f.date, "date", "", "exchange-local trading date, YYYY-MM-DD")
	symbols := &cobra.Command{
		Use: "symbols", Short: "Instruments with trades: counts and first/last trade times",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			asOf, err := f.asOf()
			if err != nil {
				return err
			}
			rows, err := e.Symbols(ctx, strings.ToUpper(f.exchange), asOf)
			if err != nil {
				return err
			}
			return f.write(w, rows, symbolColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	stats := &cobra.Command{
		Use: "stats", Short: "Row counts, files, bytes, snapshots and time range of each table",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			asOf, err := f.asOf()
			if err != nil {
				return err
			}
			rows, err := e.Stats(ctx, asOf)
			if err != nil {
				return err
			}
			return f.write(w, rows, statsColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	snapshots := &cobra.Command{
		Use: "snapshots", Short: "A table's snapshots, newest first",
		RunE: a.queryRun(f, func(ctx context.Context, e *query.Engine, w io.Writer) error {
			rows, err := e.Snapshots(ctx, f.table)
			if err != nil {
				return err
			}
			if f.limit > 0 && len(rows) > f.limit {
				rows = rows[:f.limit]
			}
			return f.write(w, rows, snapshotColumns, len(rows), func(i int) any { return &rows[i] })
		}),
	}
	snapshots.Flags().StringVar(&f.table, "table", record.Trade.Table.Name, "trades, quotes or reference_data")
	cmd.AddCommand(trades, quotes, funding, bars, summary, symbols, stats, snapshots)
	return cmd
}

func (a *app) queryRun(f *queryFlags, fn func(context.Context, *query.Engine, io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		f.args = args
		switch f.format {
		case "table", "csv", "json":
		default:
			return fmt.Errorf("--format %q is not table, csv or json", f.format)
		}
		l, e, err := a.openQuery(cmd.Context())
		if err != nil {
			return err
		}
		defer l.Close()
		defer e.Close()
		return fn(cmd.Context(), e, cmd.OutOrStdout())
	}
}

// records builds a trade/quote query from the flags; descDefault is the
// order when --order is not given.
func (f *queryFlags) records(descDefault bool) (query.RecordQuery, error) {
	q := query.RecordQuery{Limit: f.limit, Desc: descDefault}
	switch strings.ToLower(f.order) {
	case "":
	case "asc":
		q.Desc = false
	case "desc":
		q.Desc = true
	default:
		return q, fmt.Errorf("--order %q is not asc or desc", f.order)
	}
	q.Symbol, q.Exchange = strings.ToUpper(f.symbol), strings.ToUpper(f.exchange)
	loc := time.UTC
	if q.Exchange != "" {
		ex, err := md.LookupExchange(q.Exchange)
		if err != nil {
			return q, err
		}
		loc = ex.Location()
	}
	var err error
	if f.from != "" {
		if q.From, err = md.ParseInstant(f.from, loc); err != nil {
			return q, fmt.Errorf("--from: %w", err)
		}
	}
	if f.to != "" {
		if q.To, err = md.ParseInstant(f.to, loc); err != nil {
			return q, fmt.Errorf("--to: %w", err)
		}
	}
	q.ExcludeConditions = f.excludeConditions
	q.AsOf, err = f.asOf()
	return q, err
}

func (f *queryFlags) asOf() (query.AsOf, error) {
	a := query.AsOf{SnapshotID: f.asOfSnapshot}
	if f.asOfTime != "" {
		if f.asOfSnapshot != 0 {
			return a, fmt.Errorf("give --as-of-snapshot or --as-of-time, not both")
		}
		t, err := md.ParseInstant(f.asOfTime, time.UTC)
		if err != nil {
			return a, fmt.Errorf("--as-of-time: %w", err)
		}
		a.Time = t
	}
	return a, nil
}

// column is one output column: its header and how to print a row's value.
type column struct {
	name string
	get  func(row any) string
}

// write prints rows (a slice, for JSON) in the chosen format; row(i)
// returns a pointer to the i-th element for the columns.
func (f *queryFlags) write(w io.Writer, rows any, cols []column, n int, row func(int) any) error {
	switch f.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if n == 0 {
			_, err := io.WriteString(w, "[]\n")
			return err
		}
		return enc.Encode(rows)
	case "csv":
		cw := csv.NewWriter(w)
		header := make([]string, len(cols))
		for i, c := range cols {
			header[i] = c.name
		}
		cw.Write(header)
		for i := 0; i < n; i++ {
			rec := make([]string, len(cols))
			for j, c := range cols {
				rec[j] = c.get(row(i))
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, strings.ToUpper(c.name))
	}
	fmt.Fprintln(tw)
	for i := 0; i < n; i++ {
		for j, c := range cols {
			if j > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c.get(row(i)))
		}
		fmt.Fprintln(tw)
	}
	if n == 0 {
		fmt.Fprintln(tw, "(no rows)")
	}
	return tw.Flush()
}

func nullInt(n md.NullInt64) string {
	if !n.Valid {
		return ""
	}
	return strconv.FormatInt(n.Int64, 10)
}

func kv(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func col[T any](name string, get func(*T) string) column {
	return column{name, func(r any) string { return get(r.(*T)) }}
}

var tradeColumns = []column{
	col("timestamp", func(t *md.Trade) string { return t.Timestamp.String() }),
	col("symbol", func(t *md.Trade) string { return t.Symbol }),
	col("exchange", func(t *md.Trade) string { return t.Exchange }),
	col("price", func(t *md.Trade) string { return t.Price.String() }),
	col("quantity", func(t *md.Trade) string { return t.Quantity.String() }),
	col("currency", func(t *md.Trade) string { return t.Currency }),
	col("side", func(t *md.Trade) string { return string(t.Side) }),
	col("trade_id", func(t *md.Trade) string { return t.TradeID }),
	col("trade_conditions", func(t *md.Trade) string { return strings.Join(t.TradeConditions, " ") }),
	col("source_sequence", func(t *md.Trade) string { return nullInt(t.SourceSequence) }),
	col("ingestion_timestamp", func(t *md.Trade) string { return t.IngestionTimestamp.String() }),
	col("vendor_data", func(t *md.Trade) string { return kv(t.VendorData) }),
}

var quoteColumns = []column{
	col("timestamp", func(q *md.Quote) string { return q.Timestamp.String() }),
	col("symbol", func(q *md.Quote) string { return q.Symbol }),
	col("exchange", func(q *md.Quote) string { return q.Exchange }),
	col("bid_price", func(q *md.Quote) string { return q.BidPrice.String() }),
	col("bid_quantity", func(q *md.Quote) string { return q.BidQuantity.String() }),
	col("ask_price", func(q *md.Quote) string { return q.AskPrice.String() }),
	col("ask_quantity", func(q *md.Quote) string { return q.AskQuantity.String() }),
	col("currency", func(q *md.Quote) string { return q.Currency }),
	col("quote_id", func(q *md.Quote) string { return q.QuoteID }),
	col("source_sequence", func(q *md.Quote) string { return nullInt(q.SourceSequence) }),
}

var fundingColumns = []column{
	col("timestamp", func(f *md.FundingRate) string { return f.Timestamp.String() }),
	col("symbol", func(f *md.FundingRate) string { return f.Symbol }),
	col("exchange", func(f *md.FundingRate) string { return f.Exchange }),
	col("mark_price", func(f *md.FundingRate) string { return f.MarkPrice.String() }),
	col("index_price", func(f *md.FundingRate) string { return f.IndexPrice.String() }),
	col("funding_rate", func(f *md.FundingRate) string { return f.FundingRate.String() }),
	col("next_funding_time", func(f *md.FundingRate) string {
		if !f.NextFundingTime.Valid {
			return ""
		}
		return f.NextFundingTime.Timestamp.String()
	}),
	col("currency", func(f *md.FundingRate) string { return f.Currency }),
}

var barColumns = []column{
	col("symbol", func(b *md.Bar) string { return b.Symbol }),
	col("exchange", func(b *md.Bar) string { return b.Exchange }),
	col("interval", func(b *md.Bar) string { return string(b.Interval) }),
	col("window_start", func(b *md.Bar) string { return b.WindowStart.String() }),
	col("window_end", func(b *md.Bar) string { return b.WindowEnd.String() }),
	col("open", func(b *md.Bar) string { return b.Open.String() }),
	col("high", func(b *md.Bar) string { return b.High.String() }),
	col("low", func(b *md.Bar) string { return b.Low.String() }),
	col("close", func(b *md.Bar) string { return b.Close.String() }),
	col("volume", func(b *md.Bar) string { return b.Volume.String() }),
	col("trade_count", func(b *md.Bar) string { return strconv.FormatInt(b.TradeCount, 10) }),
	col("vwap", func(b *md.Bar) string { return b.VWAP.String() }),
	col("partial", func(b *md.Bar) string { return map[bool]string{true: "partial"}[b.Partial] }),
}

var symbolColumns = []column{
	col("symbol", func(s *query.SymbolInfo) string { return s.Symbol }),
	col("exchange", func(s *query.SymbolInfo) string { return s.Exchange }),
	col("market", func(s *query.SymbolInfo) string { return s.Market }),
	col("trades", func(s *query.SymbolInfo) string { return strconv.FormatInt(s.Trades, 10) }),
	col("quotes", func(s *query.SymbolInfo) string { return strconv.FormatInt(s.Quotes, 10) }),
	col("first_trade", func(s *query.SymbolInfo) string { return timeText(s.First) }),
	col("last_trade", func(s *query.SymbolInfo) string { return timeText(s.Last) }),
}

var statsColumns = []column{
	col("table", func(s *query.TableStats) string { return s.Table }),
	col("rows", func(s *query.TableStats) string { return strconv.FormatInt(s.Rows, 10) }),
	col("data_files", func(s *query.TableStats) string { return strconv.FormatInt(s.DataFiles, 10) }),
	col("bytes", func(s *query.TableStats) string { return strconv.FormatInt(s.Bytes, 10) }),
	col("snapshots", func(s *query.TableStats) string { return strconv.Itoa(s.Snapshots) }),
	col("snapshot_id", func(s *query.TableStats) string { return strconv.FormatInt(s.SnapshotID, 10) }),
	col("first_timestamp", func(s *query.TableStats) string { return tsOrEmpty(s.First) }),
	col("last_timestamp", func(s *query.TableStats) string { return tsOrEmpty(s.Last) }),
}

var snapshotColumns = []column{
	col("snapshot_id", func(s *query.SnapshotInfo) string { return strconv.FormatInt(s.SnapshotID, 10) }),
	col("timestamp", func(s *query.SnapshotInfo) string { return s.Timestamp.String() }),
	col("operation", func(s *query.SnapshotInfo) string { return s.Operation }),
	col("current", func(s *query.SnapshotInfo) string { return strconv.FormatBool(s.Current) }),
	col("added_records", func(s *query.SnapshotInfo) string { return s.Summary["added-records"] }),
	col("total_records", func(s *query.SnapshotInfo) string { return s.Summary["total-records"] }),
	col("source", func(s *query.SnapshotInfo) string { return s.Summary["k2.source"] }),
}

func tsOrEmpty(t md.Timestamp) string {
	if t == 0 {
		return ""
	}
	return t.String()
}

// timeText is a time, or nothing for none.
func timeText(t md.Timestamp) string {
	if t == 0 {
		return ""
	}
	return t.String()
}
