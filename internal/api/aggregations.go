package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

// The members of POST /v1/aggregations' body.
var (
	aggSymbolsParam = param{name: "symbols", kind: listKind, maxItems: 50, maxBytes: maxSymbolBytes, example: "BHP,RIO",
		required: true, doc: "The symbols to aggregate (1 to 50)"}
	aggMetricsParam = param{name: "metrics", kind: listKind, maxItems: len(aggregationMetrics), maxBytes: 32,
		values: slices.Sorted(maps.Keys(aggregationMetrics)), example: "vwap,twap", required: true,
		doc: "The metrics of each bucket: vwap, twap (time-weighted over the bucket), ohlcv, volume, trade_count (volume_profile: the original's name for it)"}
	aggIntervalParam = param{name: "interval", kind: choiceKind, values: intervalParam.values, example: "1h", required: true,
		doc: "The buckets' size (K2's name, or the original's: 1min … 1day); a 1d bucket is the exchange-local trading date"}
	aggFormatParam = param{name: "format", kind: choiceKind, values: []string{"json", "csv"}, example: "csv",
		doc: "The JSON envelope, or CSV: a header row of the columns asked for, then a row a bucket"}
	aggregationParams = append([]param{aggSymbolsParam, aggMetricsParam, aggIntervalParam,
		withExample(startParam.need(), "2014-03-10T23:00:00Z"), withExample(endParam.need(), "2014-03-11T06:00:00Z"),
		exchangeParam, nonMarketParam}, append(asOfParams, aggFormatParam)...)
)

// withExample is d with another example.
func withExample(d param, example string) param { d.example = example; return d }

// aggregationsRoute is POST /v1/aggregations.
func (s *Server) aggregationsRoute() route {
	return route{method: "POST", path: "/v1/aggregations", summary: "Per symbol and bucket, the requested VWAP, TWAP, OHLCV, volume and trade count",
		doc: "Exact VWAPs and time-weighted TWAPs over [start_time, end_time), of the lake and the stream after it; " +
			"at most 100,000 buckets (symbols times the buckets the range holds). meta.request_summary restates the request.",
		body: aggregationParams, ok: aggregationReply, serve: s.aggregations}
}

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
	typ          string // its JSON's: text, time, decimal, integer or boolean (aggregationReply)
}{
	{"symbol", "", true, func(a *query.Aggregate) string { return a.Symbol }, "text"},
	{"exchange", "", true, func(a *query.Aggregate) string { return a.Exchange }, "text"},
	{"interval_start", "", true, func(a *query.Aggregate) string { return a.WindowStart.String() }, "time"},
	{"interval_end", "", true, func(a *query.Aggregate) string { return a.WindowEnd.String() }, "time"},
	{"open", "ohlcv", true, func(a *query.Aggregate) string { return a.Open.String() }, "decimal"},
	{"high", "ohlcv", true, func(a *query.Aggregate) string { return a.High.String() }, "decimal"},
	{"low", "ohlcv", true, func(a *query.Aggregate) string { return a.Low.String() }, "decimal"},
	{"close", "ohlcv", true, func(a *query.Aggregate) string { return a.Close.String() }, "decimal"},
	{"volume", "volume", true, func(a *query.Aggregate) string { return a.Volume.String() }, "decimal"},
	{"trade_count", "trade_count", false, func(a *query.Aggregate) string { return strconv.FormatInt(a.TradeCount, 10) }, "integer"},
	{"vwap", "vwap", true, func(a *query.Aggregate) string { return a.VWAP.String() }, "decimal"},
	{"twap", "twap", true, func(a *query.Aggregate) string { return a.TWAP.String() }, "decimal"},
	{"partial", "", false, func(a *query.Aggregate) string { return strconv.FormatBool(a.Partial) }, "boolean"},
}

// aggregationReply is what POST /v1/aggregations answers: the envelope
// of buckets holding the columns asked for, or CSV.
var aggregationReply reply = func(c *schemas) map[string]mediaType {
	props, required := schema{}, []string{}
	for _, col := range aggregationColumns {
		var s schema
		switch col.typ {
		case "text":
			s = schema{"type": "string"}
		case "time":
			s = schema{"type": "string", "format": "date-time"}
		case "decimal":
			s = c.decimal()
		default:
			s = schema{"type": col.typ}
		}
		props[col.name] = s
		if col.metric == "" && col.name != "partial" { // partial: only when true
			required = append(required, col.name)
		}
	}
	out := envelope(c, schema{"type": "array", "items": c.ref("AggregationBucket", func() schema {
		return schema{"type": "object", "properties": props, "required": required, "additionalProperties": false,
			"description": "A bucket of a symbol: the columns of the metrics asked for"}
	})})
	out["text/csv"] = mediaType{Schema: schema{"type": "string", "description": "A header row of the columns asked for, then a row a bucket"}}
	return out
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
func (s *Server) aggregations(w http.ResponseWriter, r *http.Request, p *params) {
	sum := &aggregationSummary{Symbols: dedupe(upper(p.list(aggSymbolsParam)))}
	if len(sum.Symbols) == 0 {
		p.fail("symbols", "is required: 1 to 50 symbols")
	} else if slices.Contains(sum.Symbols, "") {
		p.fail("symbols", "holds an empty symbol")
	}
	for _, m := range p.list(aggMetricsParam) {
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
	if p.value(aggIntervalParam) == "" {
		p.fail("interval", "is required: 1m, 5m, 15m, 30m, 1h or 1d (or 1min, 5min, 15min, 30min, 1hour, 1day)")
	}
	q := query.BarQuery{Interval: p.interval(aggIntervalParam.name, p.value(aggIntervalParam)), Filter: p.filter(s.o.MaxSpan), AsOf: p.asOf(),
		IncludeNonMarket: p.oneOf(nonMarketParam) == "true",
		TWAP:             slices.Contains(sum.Metrics, "twap")}
	q.Symbols = sum.Symbols
	sum.Interval, sum.StartTime, sum.EndTime = q.Interval, q.From, q.To
	switch {
	case q.From == 0:
		p.fail("start_time", "is required")
	case q.To == 0:
		p.fail("end_time", "is required")
	}
	format := p.oneOf(aggFormatParam)
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
