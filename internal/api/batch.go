package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
)

// A batch asks for at most maxBatchItems bars reads whose limits add up
// to at most maxBatchLimit bars (the original's bounds).
const (
	maxBatchItems = 5
	maxBatchLimit = 25_000
)

// batchItemParams are the members of a batch item: GET /v1/bars'
// parameters and its interval, as timeframe (the original's) or interval.
var (
	timeframeParam = param{name: "timeframe", kind: choiceKind, values: intervalParam.values, maxBytes: 16, example: "1h",
		doc: "The bars' size (the original's name for interval); give timeframe or interval"}
	itemIntervalParam = param{name: "interval", kind: choiceKind, values: intervalParam.values, maxBytes: 16, example: "1h",
		doc: "The bars' size; give timeframe or interval"}
	batchItemParams = append([]param{timeframeParam, itemIntervalParam}, barParams...)
)

// batchRoute is POST /v1/ohlcv/batch.
func (s *Server) batchRoute() route {
	return route{method: "POST", path: "/v1/ohlcv/batch", summary: "Up to 5 bars reads at once, each answered as GET /v1/bars would",
		doc: "The body is a JSON array of 1 to 5 items, each GET /v1/bars' parameters and its interval (timeframe or interval); " +
			"their limits add up to at most 25,000 bars. The answer maps \"{timeframe}_{symbol}\" to each item's answer; " +
			"an item that fails says why without failing the others.",
		body: batchItemParams, rawBody: true, items: maxBatchItems, oneRequired: []string{"timeframe", "interval"},
		ok: jsonReply(map[string]batchResult{}), serve: s.barsBatch}
}

// batchResult is one item's answer, as GET /v1/bars would give it.
type batchResult struct {
	Success    bool          `json:"success"`
	Data       []md.Bar      `json:"data"`
	Count      int           `json:"count"`
	Incomplete bool          `json:"incomplete,omitempty"`
	Error      *errorMessage `json:"error,omitempty"`
}

// barsBatch answers POST /v1/ohlcv/batch: a JSON array of bars reads,
// run at once (the query pool bounds them) within one query timeout. The
// answer maps "{timeframe}_{symbol}" to each item's answer; an item that
// fails says why without failing the others.
func (s *Server) barsBatch(w http.ResponseWriter, r *http.Request, _ *params) {
	body, ok := decodeAny(w, r)
	if !ok {
		return
	}
	items, isList := body.([]any)
	switch {
	case !isList:
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the body must be a JSON array of 1 to 5 items such as {\"symbol\":\"BHP\",\"timeframe\":\"1h\"}", nil)
		return
	case len(items) == 0:
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, "the batch is empty: give 1 to 5 items", map[string]any{"max_items": maxBatchItems})
		return
	case len(items) > maxBatchItems:
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("the batch holds %d items, more than %d", len(items), maxBatchItems),
			map[string]any{"items": len(items), "max_items": maxBatchItems})
		return
	}
	type item struct {
		key string
		q   query.BarQuery
		err error
	}
	reads := make([]item, len(items))
	index := map[string]int{}
	total := 0
	for i, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("item %d is not a JSON object", i), map[string]any{"item": i})
			return
		}
		p := bodyToParams(obj, batchItemParams)
		name, tf := timeframeParam.name, p.text(timeframeParam)
		if iv := p.text(itemIntervalParam); tf == "" || iv == tf {
			name, tf = "interval", iv
		} else if iv != "" {
			p.fail("interval", "give timeframe or interval, not both")
		}
		if tf == "" {
			p.fail("timeframe", "is required: 1m, 5m, 15m, 30m, 1h or 1d")
		}
		q := p.barQuery(name, tf, s.o.MaxSpan)
		key := tf + "_" + strings.ToUpper(p.q.Get("symbol"))
		if j, dup := index[key]; dup {
			writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("items %d and %d both answer as %q: ask for each symbol and timeframe once", j, i, key),
				map[string]any{"item": i})
			return
		}
		index[key] = i
		if p.err == nil {
			total += q.Limit
		}
		reads[i] = item{key: key, q: q, err: p.err}
	}
	if total > maxBatchLimit {
		writeError(w, r, http.StatusBadRequest, codeInvalidParameters, fmt.Sprintf("the items' limits add up to %d bars, more than %d", total, maxBatchLimit),
			map[string]any{"limit_total": total, "max_limit_total": maxBatchLimit})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.engine.Timeout())
	defer cancel()
	results := make([]batchResult, len(reads))
	var wg sync.WaitGroup
	for i := range reads {
		it, res := &reads[i], &results[i]
		if it.err != nil {
			res.Error = &errorMessage{Code: codeInvalidParameters, Message: it.err.Error(), Details: paramDetails(it.err)}
			continue
		}
		wg.Go(func() {
			var m meta
			aggs, err := s.freshBars(ctx, it.q, &m)
			if err != nil {
				_, code, msg := s.classify(r, err)
				res.Error = &errorMessage{Code: code, Message: msg}
				return
			}
			res.Success, res.Data, res.Count, res.Incomplete = true, query.BarsOf(aggs), len(aggs), m.Incomplete
		})
	}
	wg.Wait()
	data := make(map[string]batchResult, len(reads))
	for i, it := range reads {
		data[it.key] = results[i]
	}
	writeData(w, newMeta(r), data, len(reads))
}
