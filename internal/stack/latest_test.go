package stack

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testutil"
)

// A symbol's latest trades come from memory kept at the lake's head:
// brought forward from the stream as the sink commits, read from the lake
// again after a load or once the tail no longer holds what came between.
// Every answer is the one the long way gives (a list of one symbol, which
// the memory does not serve), through stream commits, a load, a
// compaction, and on an API whose tail holds almost nothing.
func TestLatestFromMemoryIsTheLongWaysAnswer(t *testing.T) {
	t.Parallel()
	b := newBoundary(t)
	// APIs of their own, unlimited: the test reads more than 100 times a
	// minute.
	api := start(t, "api", b.remote(func(c *config.Config) { c.API.RateLimit = "off" }), Parts{API: true})
	small := start(t, "api", b.remote(func(c *config.Config) { c.API.TailBytes, c.API.RateLimit = 4<<10, "off" }), Parts{API: true})
	p, err := b.broker.Producer("latest-test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	produced, sent := 0, 0 // the next index of freshTrade; the trades sent
	produce := func(n int) {
		for range n {
			tr := freshTrade(produced)
			if err := bus.Produce(ctx, p, record.Trade, &tr); err != nil {
				t.Fatal(err)
			}
			sent++
			if produced++; produced%100 == 0 {
				// Several sink commits per round, and reads between
				// them: memory takes the stream in small steps.
				p.Flush(ctx)
				time.Sleep(10 * time.Millisecond)
				api.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 100})
				small.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 100})
			}
		}
		p.Flush(ctx)
	}
	ids := func(pg apiPage) []string {
		out := make([]string, len(pg.Data))
		for i, d := range pg.Data {
			out[i] = d.TradeID
		}
		return out
	}
	// same compares the two ways on api once the lake holds every trade
	// produced and the last is answered.
	same := func(what string, api *running, last string) {
		t.Helper()
		// A tail that lost records the lake does not have yet answers
		// incomplete, rightly, whichever way: compare once it has them.
		testutil.WaitFor(t, what+": the sink to catch up", 30*time.Second, func() bool {
			return b.sink.Sink().Stats().Written >= int64(sent)
		})
		testutil.WaitFor(t, what+": the last trade through the API", 30*time.Second, func() bool {
			return slices.Contains(ids(api.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 1000})), last)
		})
		for _, limit := range []int{1, 100, 1000} {
			// The two reads may see different snapshots: the engine's view
			// of the lake follows a commit within a recheck, and a read on
			// the older one with a tail that lost records answers
			// incomplete, rightly. Once the view has settled they agree.
			var fast, long apiPage
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				fast = api.query(t, map[string]any{"symbol": "ETHUSDT", "limit": limit})
				long = api.query(t, map[string]any{"symbols": []string{"ETHUSDT"}, "limit": limit})
				if slices.Equal(ids(fast), ids(long)) && fast.Meta.Incomplete == long.Meta.Incomplete || time.Now().After(deadline) {
					break
				}
			}
			if !slices.Equal(ids(fast), ids(long)) || fast.Meta.Incomplete != long.Meta.Incomplete {
				a, b := ids(fast), ids(long)
				i := 0
				for i < min(len(a), len(b)) && a[i] == b[i] {
					i++
				}
				t.Fatalf("%s, latest %d: from memory %d trades (incomplete %v), the long way %d (%v); they part at %d: %v, %v",
					what, limit, len(a), fast.Meta.Incomplete, len(b), long.Meta.Incomplete, i, a[i:min(i+3, len(a))], b[i:min(i+3, len(b))])
			}
			if want := min(limit, ethTrades(produced)); len(fast.Data) < want && !fast.Meta.Incomplete {
				t.Fatalf("%s, latest %d: %d trades of %d", what, limit, len(fast.Data), want)
			}
		}
	}
	lastETH := func() string {
		i := produced - 1
		if i%2 == 0 { // ETHUSDT has the odd ones
			i--
		}
		return fmt.Sprintf("BINANCE-%d", i)
	}

	produce(3000)
	same("first read", api, lastETH())
	// Every answer shape reads memory the same as the long way: CSV (no
	// meta, so the same bytes), chosen fields, and the prevailing quote.
	for _, q := range []string{"limit=50&format=csv", "limit=20&format=csv&fields=trade_id,price,timestamp",
		"limit=10&format=csv&with=quote", "limit=5&format=csv&exchange=BINANCE&start_time=" + url.QueryEscape(freshBase.String())} {
		_, fast := api.get(t, "/v1/trades?symbol=ETHUSDT&"+q)
		_, long := api.get(t, "/v1/trades?symbols=ETHUSDT&"+q)
		if fast != long || strings.Count(fast, "\n") < 5 {
			t.Errorf("%s: from memory\n%.300s\nthe long way\n%.300s", q, fast, long)
		}
	}
	same("first read, small tail", small, lastETH())
	produce(3000)
	same("after stream commits", api, lastETH())
	same("after stream commits, small tail", small, lastETH())
	if n := latestReads(t, api, "stream"); n == 0 {
		t.Error("no series was brought forward from the stream")
	}

	// Trades that arrive late, older than the newest held, are merged in
	// their place.
	for i := range 300 {
		tr := freshTrade(2*i + 1)
		tr.TradeID = fmt.Sprintf("BINANCE-LATE%d", i)
		tr.MessageID = md.MessageID("trade", tr.Symbol, tr.TradeID)
		tr.Timestamp += md.Timestamp(5_500_000) // among the last 500 ms of ETHUSDT's
		if err := bus.Produce(ctx, p, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	p.Flush(ctx)
	same("after late trades", api, "BINANCE-LATE299")
	same("after late trades, small tail", small, "BINANCE-LATE299")

	// A load commits without offsets: the memory is read again.
	w, err := record.Trade.Writer(b.sink.Lake())
	if err != nil {
		t.Fatal(err)
	}
	loaded := make([]md.Trade, 50)
	for i := range loaded {
		tr := freshTrade(2*(100_000+i) + 1)
		tr.TradeID = fmt.Sprintf("BINANCE-L%d", i)
		tr.MessageID = md.MessageID("trade", tr.Symbol, tr.TradeID)
		loaded[i] = tr
	}
	if _, err := w.Commit(ctx, loaded, nil); err != nil {
		t.Fatal(err)
	}
	before := latestReads(t, api, "lake")
	same("after a load", api, "BINANCE-L49")
	if latestReads(t, api, "lake") == before {
		t.Error("the load did not make the API read the lake again")
	}

	// A compaction changes no row: the memory goes on from the stream.
	if _, err := b.sink.Lake().Compact(ctx, "trades", lake.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	produce(1000)
	same("after a compaction", api, lastETH())
	same("after a compaction, small tail", small, lastETH())
}

// ethTrades is how many of freshTrade 0 … n-1 are ETHUSDT's.
func ethTrades(n int) int { return n / 2 }

// latestReads is the API's k2_api_latest_reads_total of a source.
func latestReads(t *testing.T, r *running, source string) int {
	t.Helper()
	_, body := r.get(t, "/metrics")
	m := regexp.MustCompile(`(?m)^k2_api_latest_reads_total\{source="` + source + `"\} (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return int(n)
}
