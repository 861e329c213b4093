package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// apiBench runs the scenarios against one k2 up.
type apiBench struct {
	o    APIOptions
	up   *upProcess // nil when the server is not a child (tests)
	lake apiLake
	base string
	http *http.Client
	rows int
	// The server's highest resident memory and sink degradation level
	// (0 NORMAL … 4 CIRCUIT_BREAK) seen at the start and end of each run.
	peakRSS, peakLevel float64
}

// waitForSymbols waits until the API lists every symbol of the lake.
func (b *apiBench) waitForSymbols(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for {
		missing, err := b.missingSymbols(ctx)
		switch {
		case err == nil && len(missing) == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			if err == nil {
				err = fmt.Errorf("%d of the lake's %d symbols missing, e.g. %s", len(missing), len(b.lake.Symbols), missing[0])
			}
			return fmt.Errorf("the API at %s does not list the lake's symbols: %w", b.base, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *apiBench) missingSymbols(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/v1/symbols?format=list", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ans apiAnswer[string]
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || !ans.Success {
		return nil, fmt.Errorf("/v1/symbols: %s, %v", resp.Status, err)
	}
	var missing []string
	for _, s := range b.lake.Symbols {
		if !slices.Contains(ans.Data, s) {
			missing = append(missing, s)
		}
	}
	return missing, nil
}

// apiScenario is one kind of request, its answer's check and its targets.
type apiScenario struct {
	name    string // "latest 100 trades"
	key     string // "latest", in file names
	minRate float64
	maxP99  time.Duration
	// rate, when set, paces the requests (else APIOptions.Rate does).
	rate int
	// path makes a request's path and query from the random source ("":
	// no more requests).
	path  func(rng *rand.Rand) string
	check func(u *url.URL, body []byte) error
	// first are requests that each read a part of the lake (a symbol's
	// newest files, a symbol-day's file) the server has not read yet.
	first     []string
	firstName string
}

// scenarios are the two loads of issue 11: the latest 100 trades of a
// random symbol, and a random symbol's 1m bars over a random hour of the
// lake's range (whole minutes, so no bar is partial).
func (b *apiBench) scenarios() []apiScenario {
	syms := b.lake.Symbols
	from := b.lake.Appended.From.Time().UTC().Truncate(time.Minute)
	span := b.lake.Appended.To.Time().Sub(from)
	minutes := max(1, int((span-time.Hour)/time.Minute)+1) // window starts inside the range
	dense := expectedInWindow(b.lake, len(syms)) >= minTradesDense
	latest := func(sym string) string { return "/v1/trades?symbol=" + url.QueryEscape(sym) + "&limit=100&order=desc" }
	bars := func(sym string, start time.Time) string {
		return "/v1/bars/1m?symbol=" + url.QueryEscape(sym) +
			"&start_time=" + start.Format(time.RFC3339) + "&end_time=" + start.Add(time.Hour).Format(time.RFC3339)
	}
	var firstLatest, firstBars []string
	last := from.Add(time.Duration(minutes-1) * time.Minute) // the last window start
	for _, sym := range syms {
		firstLatest = append(firstLatest, latest(sym))
		for day := from.Truncate(24 * time.Hour); !day.After(last); day = day.Add(24 * time.Hour) {
			start := day
			if start.Before(from) {
				start = from
			}
			if start.After(last) {
				start = last
			}
			firstBars = append(firstBars, bars(sym, start))
		}
	}
	return []apiScenario{{
		name: "latest 100 trades", key: "latest", minRate: latestTargetRate, maxP99: latestTargetP99,
		path:  func(rng *rand.Rand) string { return latest(syms[rng.IntN(len(syms))]) },
		check: checkLatest,
		first: firstLatest, firstName: "first read of each symbol",
	}, {
		name: "1m bars of an hour", key: "bars", minRate: barsTargetRate, maxP99: barsTargetP99,
		path: func(rng *rand.Rand) string {
			return bars(syms[rng.IntN(len(syms))], from.Add(time.Duration(rng.IntN(minutes))*time.Minute))
		},
		check: func(u *url.URL, body []byte) error { return checkBars(u, body, dense) },
		first: firstBars, firstName: "first read of each symbol-day",
	}}
}

// inTurn is a scenario making sc.first's requests once each, in turn.
func (sc apiScenario) inTurn() apiScenario {
	next := 0
	sc.path = func(*rand.Rand) string {
		if next == len(sc.first) {
			return ""
		}
		next++
		return sc.first[next-1]
	}
	return sc
}

// minTradesDense is how many trades the least active symbol must be
// expected to make in a window for an empty answer to count as wrong.
const minTradesDense = 20

// expectedInWindow is the trades the least active of n symbols is expected
// to make in a bar window (an hour, or the lake's range when shorter):
// the synthetic market's activity falls as 1/rank (Zipf).
func expectedInWindow(lk apiLake, n int) float64 {
	h := 0.0
	for i := 1; i <= n; i++ {
		h += 1 / float64(i)
	}
	window := min(time.Hour, lk.Appended.To.Time().Sub(lk.Appended.From.Time()))
	return lk.SimRate * window.Seconds() / float64(n) / h
}

// apiAnswer is the API's success shape, with the rows as T.
type apiAnswer[T any] struct {
	Success bool `json:"success"`
	Data    []T  `json:"data"`
	Meta    struct {
		Count *int `json:"count"`
	} `json:"meta"`
}

// decodeAnswer reads an answer in the success shape whose count is its
// rows'.
func decodeAnswer[T any](body []byte) ([]T, error) {
	var a apiAnswer[T]
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("not the API's JSON: %v", err)
	}
	switch {
	case !a.Success:
		return nil, errors.New("success is not true")
	case a.Meta.Count == nil || *a.Meta.Count != len(a.Data):
		return nil, fmt.Errorf("meta.count %v for %d rows", a.Meta.Count, len(a.Data))
	}
	return a.Data, nil
}

// checkLatest checks an answer to the latest 100 trades of a symbol: 100
// trades, all of that symbol, newest first.
func checkLatest(u *url.URL, body []byte) error {
	trades, err := decodeAnswer[struct {
		Symbol    string       `json:"symbol"`
		Timestamp md.Timestamp `json:"timestamp"`
	}](body)
	if err != nil {
		return err
	}
	sym := u.Query().Get("symbol")
	if len(trades) != 100 {
		return fmt.Errorf("%d trades of %s, want 100", len(trades), sym)
	}
	for i, t := range trades {
		switch {
		case t.Symbol != sym:
			return fmt.Errorf("a trade of %s in the answer for %s", t.Symbol, sym)
		case i > 0 && t.Timestamp > trades[i-1].Timestamp:
			return fmt.Errorf("%s's trades are not newest first", sym)
		}
	}
	return nil
}

// checkBars checks an answer to a symbol's 1m bars of an hour: at most 60
// bars of that symbol inside the hour, in order; none at all only where
// the market is too thin to expect any (dense false).
func checkBars(u *url.URL, body []byte, dense bool) error {
	bars, err := decodeAnswer[struct {
		Symbol      string       `json:"symbol"`
		Interval    md.Interval  `json:"interval"`
		WindowStart md.Timestamp `json:"window_start"`
		TradeCount  int64        `json:"trade_count"`
	}](body)
	if err != nil {
		return err
	}
	q := u.Query()
	sym := q.Get("symbol")
	from, err1 := time.Parse(time.RFC3339, q.Get("start_time"))
	to, err2 := time.Parse(time.RFC3339, q.Get("end_time"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	switch {
	case len(bars) == 0 && dense:
		return fmt.Errorf("no bars of %s from %s", sym, q.Get("start_time"))
	case len(bars) > int(to.Sub(from)/time.Minute):
		return fmt.Errorf("%d 1m bars of %s in %s", len(bars), sym, to.Sub(from))
	}
	for i, bar := range bars {
		start := bar.WindowStart.Time()
		switch {
		case bar.Symbol != sym:
			return fmt.Errorf("a bar of %s in the answer for %s", bar.Symbol, sym)
		case bar.Interval != md.Interval1m:
			return fmt.Errorf("a %s bar in the answer for 1m", bar.Interval)
		case start.Before(from) || !start.Before(to):
			return fmt.Errorf("a bar of %s at %s, outside %s – %s", sym, start.Format(time.RFC3339), q.Get("start_time"), q.Get("end_time"))
		case i > 0 && bar.WindowStart <= bars[i-1].WindowStart:
			return fmt.Errorf("%s's bars are not in order", sym)
		case bar.TradeCount <= 0:
			return fmt.Errorf("a bar of %s with %d trades", sym, bar.TradeCount)
		}
	}
	return nil
}
