package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

// aggregationParams are the members of POST /v1/aggregations' body.
var aggregationParams = []string{"symbols", "metrics", "interval", "start_time", "end_time", "exchange",
	"include_non_market", "as_of_snapshot", "as_of_time", "format"}

// aggregationMetrics are the metrics an aggregation computes. The
// original's volume_profile was the count of trades per bucket, so it is
// trade_count by another name.
var aggregationMetrics = map[string]string{"vwap": "vwap", "twap": "twap", "ohlcv": "ohlcv", "volume": "volume",
	"trade_count": "trade_count", "volume_profile": "trade_count"}

// maxAggregationRows bounds an aggregation's answer: its symbols times the
// buckets its range can hold.
const maxAggregationRows = 100_000

// aggregationColumns are an aggregation's columns, each with the metric
// that asks for it ("" for every answer); quoted values are JSON strings.
var aggregationColumns = []struct {
	name, metric string
	quoted       bool
	value        func(*query.Aggregate) string
}{
	{"symbol", "", true, func(a *query.Aggregate) string { return a.Symbol }},
	{"exchange", "", true, func(a *query.Aggregate) string { return a.Exchange }},
	{"interval_start", "", true, func(a *query.Aggregate) string { return a.WindowStart.String() }},
	{"interval_end", "", true, func(a *query.Aggregate) string { return a.WindowEnd.String() }},
	{"open", "ohlcv", true, func(a *query.Aggregate) string { return a.Open.String() }},
	{"high", "ohlcv", true, func(a *query.Aggregate) string { return a.High.String() }},
	{"low", "ohlcv", true, func(a *query.Aggregate) string { return a.Low.String() }},
	{"close", "ohlcv", true, func(a *query.Aggregate) string { return a.Close.String() }},
	{"volume", "volume", true, func(a *query.Aggregate) string { return a.Volume.String() }},
	{"trade_count", "trade_count", false, func(a *query.Aggregate) string { return strconv.FormatInt(a.TradeCount, 10) }},
	{"vwap", "vwap", true, func(a *query.Aggregate) string { return a.VWAP.String() }},
	{"twap", "twap", true, func(a *query.Aggregate) string { return a.TWAP.String() }},
	{"partial", "", false, func(a *query.Aggregate) string { return strconv.FormatBool(a.Partial) }},
}

// aggregationSummary restates an aggregation's request in meta.
type aggregationSummary struct {
	Symbols     []string     `json:"symbols"`
	Metrics     []string     `json:"metrics"`
	Interval    md.Interval  `json:"interval"`
	StartTime   md.Timestamp `json:"start_time"`
	EndTime     md.Timestamp `json:"end_time"`
	BucketCount int          `json:"bucket_count"`
}

// aggregations answers POST /v1/aggregations: per symbol and interval
// bucket, the requested metrics over [start_time, end_time).
func (s *Server) aggregations(w http.ResponseWriter, r *http.Request) {
	p, ok := s.bodyParams(w, r, aggregationParams)
	if !ok {
		return
	}
	sum := &aggregationSummary{Symbols: dedupe(upper(p.list("symbols", 50, maxSymbolBytes)))}
	if len(sum.Symbols) == 0 {
		p.fail("symbols", "is required: 1 to 50 symbols")
	} else if slices.Contains(sum.Symbols, "") {
		p.fail("symbols", "holds an empty symbol")
	}
	for _, m := range p.list("metrics", len(aggregationMetrics), 32) {
		name, ok := aggregationMetrics[m]
		if !ok {
			p.fail("metrics", "%q is not one of vwap, twap, ohlcv, volume, trade_count (or volume_profile)", m)
		}
		sum.Metrics = append(sum.Metrics, name)
	}
	sum.Metrics = dedupe(sum.Metrics)
	if len(sum.Metrics) == 0 {
		p.fail("metrics", "is required: one or more of vwap, twap, ohlcv, volume, trade_count")
	}
	if p.q.Get("interval") == "" {
		p.fail("interval", "is required: 1m, 5m, 15m, 30m, 1h or 1d (or 1min, 5min, 15min, 30min, 1hour, 1day)")
	}
	q := query.BarQuery{Interval: p.interval("interval", p.q.Get("interval")), Filter: p.filter(s.o.MaxSpan), AsOf: p.asOf(),
		IncludeNonMarket: p.oneOf("include_non_market", "false", "true", "false") == "true",
		TWAP:             slices.Contains(sum.Metrics, "twap")}
	q.Symbols = sum.Symbols
	sum.Interval, sum.StartTime, sum.EndTime = q.Interval, q.From, q.To
	switch {
	case q.From == 0:
		p.fail("start_time", "is required")
	case q.To == 0:
		p.fail("end_time", "is required")
	}
	format := p.oneOf("format", "json", "json", "csv")
	if n := bucketsIn(q.From, q.To, q.Interval) * int64(len(q.Symbols)); p.err == nil && n > maxAggregationRows {
		p.fail("interval", "%d symbols over this range hold up to %d %s buckets, more than %d: ask for a longer interval, a shorter range or fewer symbols",
			len(q.Symbols), n, q.Interval, maxAggregationRows)
	}
	if format == "csv" && p.err == nil {
		m := newMeta(r)
		aggs, err := s.aggregate(r.Context(), q, &m)
		if err != nil {
			status, code, msg := s.classify(r, err)
			writeError(w, r, status, code, msg, nil)
			return
		}
		writeAggregationCSV(w, aggs, sum.Metrics)
		return
	}
	s.answer(w, r, p.err, func(ctx context.Context, m *meta) (any, int, error) {
		aggs, err := s.aggregate(ctx, q, m)
		if err != nil {
			return nil, 0, err
		}
		sum.BucketCount = len(aggs)
		m.RequestSummary = sum
		return aggregationJSON(aggs, sum.Metrics), len(aggs), nil
	})
}

// aggregate reads an aggregation's buckets in the answer's order: symbol,
// exchange, bucket.
func (s *Server) aggregate(ctx context.Context, q query.BarQuery, m *meta) ([]query.Aggregate, error) {
	aggs, err := s.freshBars(ctx, q, m)
	slices.SortStableFunc(aggs, func(a, b query.Aggregate) int {
		if c := strings.Compare(a.Symbol, b.Symbol); c != 0 {
			return c
		}
		return strings.Compare(a.Exchange, b.Exchange)
	})
	return aggs, err
}

// bucketsIn is how many buckets of iv [from, to) can touch: for 1d, the
// local dates of any zone.
func bucketsIn(from, to md.Timestamp, iv md.Interval) int64 {
	w := int64(iv.Duration() / time.Microsecond)
	if w == 0 || to <= from {
		return 0
	}
	if iv == md.Interval1d {
		return (int64(to-from)+w-1)/w + 1
	}
	return (int64(to)-1)/w - int64(from)/w + 1
}

// wanted reports whether a column belongs in an answer of metrics.
func wanted(metric string, metrics []string) bool {
	return metric == "" || slices.Contains(metrics, metric)
}

// aggregationJSON writes the buckets as JSON objects holding the
// requested metrics' fields only.
func aggregationJSON(aggs []query.Aggregate, metrics []string) json.RawMessage {
	b := []byte{'['}
	for i := range aggs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		first := true
		for _, c := range aggregationColumns {
			if !wanted(c.metric, metrics) || c.name == "partial" && !aggs[i].Partial {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, c.name)
			b = append(b, ':')
			if v := c.value(&aggs[i]); c.quoted {
				b = appendJSONString(b, v)
			} else {
				b = append(b, v...)
			}
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// writeAggregationCSV answers the buckets as CSV: a header row, then a
// row a bucket.
func writeAggregationCSV(w http.ResponseWriter, aggs []query.Aggregate, metrics []string) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", "attachment; filename=aggregations_"+time.Now().UTC().Format("20060102_150405")+".csv")
	h.Set("X-Record-Count", fmt.Sprint(len(aggs)))
	var b []byte
	row := func(cell func(i int) string) {
		first := true
		for i, c := range aggregationColumns {
			if !wanted(c.metric, metrics) {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendCSVField(b, []byte(cell(i)))
		}
		b = append(b, '\r', '\n')
	}
	row(func(i int) string { return aggregationColumns[i].name })
	for j := range aggs {
		row(func(i int) string { return aggregationColumns[i].value(&aggs[j]) })
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// dedupe drops repeated items, keeping the first of each.
func dedupe(items []string) []string {
	var out []string
	for _, it := range items {
		if !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	return out
}
