package live

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/bus/bustest"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/binance"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/testutil"
)

// exchange is a tiny WebSocket server for session tests: each connection
// runs serve.
type exchange struct {
	*httptest.Server
	conns   atomic.Int32
	dials   atomic.Int32 // upgrade requests, refused ones included
	refuse  atomic.Bool  // answer upgrades with HTTP 503
	serveFn func(ctx context.Context, c *websocket.Conn, n int32)
}

func newExchange(t *testing.T, serve func(ctx context.Context, c *websocket.Conn, n int32)) *exchange {
	x := &exchange{serveFn: serve}
	x.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.dials.Add(1)
		if x.refuse.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		x.serveFn(r.Context(), c, x.conns.Add(1))
	}))
	t.Cleanup(x.Close)
	return x
}

func (x *exchange) ws() string { return "ws" + strings.TrimPrefix(x.URL, "http") }

func tradeFrame(id int64) []byte {
	return []byte(fmt.Sprintf(`{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"61837.%02d000000","q":"0.00020000","T":%d,"m":true,"M":true}}`,
		1723161255343+id, id, id%100, 1723161255342+id))
}

func quoteFrame(u int64) []byte {
	return []byte(fmt.Sprintf(`{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"61837.62000000","B":"1.50000000","a":"61837.63000000","A":"0.70000000"}}`, u))
}

// send writes frames and reports whether the connection is still good.
func send(ctx context.Context, c *websocket.Conn, frames ...[]byte) bool {
	for _, f := range frames {
		if c.Write(ctx, websocket.MessageText, f) != nil {
			return false
		}
	}
	return true
}

// kafka is an embedded installation with a producer.
type kafka struct{ *bustest.Kafka }

func newKafka(t testing.TB) *kafka { return &kafka{bustest.Start(t)} }

// read consumes a topic from the start until n records arrived.
func (k *kafka) read(t *testing.T, topic string, n int) []*kgo.Record { return k.Read(t, topic, n) }

// decoder reads records K2 wrote (every id is K2's own schema).
var decoder = codec.NewDecoder(func(ctx context.Context, id uint32) (string, error) { return codec.Trade.Text, nil })

// tradeIDs decodes trade records' exchange ids.
func tradeIDs(t *testing.T, recs []*kgo.Record) []int64 {
	t.Helper()
	var out []int64
	for _, r := range recs {
		tr, _, err := decoder.Trade(context.Background(), r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr.SourceSequence.Int64)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 30*time.Second, cond)
}

func runFeed(t *testing.T, f *Feed) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("feed did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func binanceFeed(t *testing.T, k *kafka, sc SessionConfig, backfill feed.Backfill) *Feed {
	t.Helper()
	b, err := binance.NewProtocol([]string{"BTCUSDT"}, md.DefaultAssets)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFeed(b, sc, FeedConfig{Producer: k.Prod, Backfill: backfill})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A reconnect's repeats are dropped, its hole filled from REST, and bad
// frames dead-lettered with reasons while the good ones go through.
func TestFeedDropsRepeatsFillsHolesAndDeadLettersBadFrames(t *testing.T) {
	k := newKafka(t)
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		if n == 1 {
			send(ctx, c, tradeFrame(100), tradeFrame(101), quoteFrame(7),
				[]byte(`{"stream":"btcusdt@trade","data":{"e":"trade"`), // malformed JSON
				[]byte(`{"stream":"btcusdt@weird","data":{"e":"weird","s":"BTCUSDT"}}`),
				[]byte(`{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":5,"q":"1","T":1723161255342,"m":true}}`), // no price
				[]byte(strings.Replace(string(tradeFrame(999)), `"p":"61837.99000000"`, `"p":"lots"`, 1)),
				[]byte(strings.Replace(string(tradeFrame(998)), `"p":"61837.98000000"`, `"p":"-1"`, 1)),
				tradeFrame(102))
			c.Close(websocket.StatusGoingAway, "bye")
			return
		}
		// After the reconnect: 101 and 102 again, then 103 and 104 missed.
		send(ctx, c, tradeFrame(101), tradeFrame(102), quoteFrame(7), tradeFrame(105), quoteFrame(8))
		<-ctx.Done()
	})
	var asked []string
	backfill := func(_ context.Context, symbol string, from, to int64) ([]md.Trade, error) {
		asked = append(asked, fmt.Sprintf("%s %d-%d", symbol, from, to))
		var out []md.Trade
		for id := from; id <= to; id++ {
			ev, err := binance.ParseFrame(tradeFrame(id), md.Now(), md.DefaultAssets)
			if err != nil {
				return nil, err
			}
			out = append(out, ev.Trades...)
		}
		return out, nil
	}
	reg := ops.NewRegistry()
	f := binanceFeed(t, k, SessionConfig{Endpoints: []string{x.ws()}, BackoffMin: 10 * time.Millisecond, Registerer: reg}, backfill)
	// Every family is there, at zero, before anything happens.
	if missing, err := reg.Missing(); err != nil || len(missing) > 0 {
		t.Fatalf("families without series before the first frame: %v %v", missing, err)
	}
	watched := []string{
		`k2_binance_messages_received_total{symbol="BTCUSDT"}`, `k2_binance_reconnects_total{reason="closed_by_server"}`,
		`k2_binance_message_errors_total{error_type="invalid_price"}`, `k2_binance_message_errors_total{error_type="malformed_json"}`,
		`k2_binance_duplicates_dropped_total{kind="trade"}`, `k2_binance_duplicates_dropped_total{kind="quote"}`, `k2_binance_trade_gaps_total{symbol="BTCUSDT"}`,
		`k2_binance_backfilled_trades_total{symbol="BTCUSDT"}`,
	}
	before := metricValues(t, reg, watched)
	stop := runFeed(t, f)
	waitFor(t, "the trades", func() bool { return f.Stats().Trades == 6 && f.Stats().Quotes == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	if st.Duplicates != 3 || st.Gaps != 1 || st.Missing != 2 || st.Backfilled != 2 || st.DeadLetters != 5 {
		t.Fatalf("%+v", st)
	}
	if len(asked) != 1 || asked[0] != "BTCUSDT 103-104" {
		t.Fatalf("backfill asked for %v", asked)
	}
	ids := tradeIDs(t, k.read(t, "market.crypto.trades.binance", 6))
	if fmt.Sprint(ids) != "[100 101 102 103 104 105]" {
		t.Fatalf("trades produced: %v", ids)
	}
	reasons := map[string]int{}
	for _, r := range k.read(t, "market.crypto.trades.binance.dlq", 5) {
		for _, h := range r.Headers {
			if h.Key == bus.HeaderReason {
				reasons[string(h.Value)]++
			}
		}
	}
	want := map[string]int{"malformed_json": 1, "unknown_event": 1, "invalid_price": 3}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("dead-letter reasons %v, want %v", reasons, want)
	}
	if s := f.Session().Stats(); s.Connects != 2 || s.Reconnects["closed_by_server"] != 1 {
		t.Fatalf("session %+v", s)
	}
	// What Prometheus scrapes, under the original's names.
	after := metricValues(t, reg, watched)
	for i, want := range []float64{8, 1, 3, 1, 2, 1, 1, 2} {
		if got := after[i] - before[i]; got != want {
			t.Errorf("%s rose by %v, want %v", watched[i], got, want)
		}
	}
	if v := metricValues(t, reg, []string{"k2_binance_last_message_timestamp_seconds"})[0]; time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last message timestamp %v", v)
	}
}

// metricValues reads series (name{label="value",…}) from the registry
// /metrics serves; a series not yet there reads 0.
func metricValues(t *testing.T, reg *ops.Registry, series []string) []float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]float64{}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := fam.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				have[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				have[key] = m.Gauge.GetValue()
			}
		}
	}
	out := make([]float64, len(series))
	for i, s := range series {
		out[i] = have[s]
	}
	return out
}

// A restarted feed starts after the trades already in Kafka: the hole its
// downtime left is backfilled, up to MaxBackfill ids a gap.
func TestFeedResumesAfterWhatKafkaHolds(t *testing.T) {
	k := newKafka(t)
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, tradeFrame(98), tradeFrame(103), tradeFrame(104), tradeFrame(120))
		c.CloseRead(ctx)
		<-ctx.Done()
	})
	var asked []string
	backfill := func(_ context.Context, symbol string, from, to int64) ([]md.Trade, error) {
		asked = append(asked, fmt.Sprintf("%d-%d", from, to))
		var out []md.Trade
		for id := from; id <= to; id++ {
			ev, _ := binance.ParseFrame(tradeFrame(id), md.Now(), md.DefaultAssets)
			out = append(out, ev.Trades...)
		}
		return out, nil
	}
	b, err := binance.NewProtocol([]string{"BTCUSDT"}, md.DefaultAssets)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFeed(b, SessionConfig{Endpoints: []string{x.ws()}}, FeedConfig{Producer: k.Prod, Backfill: backfill, MaxBackfill: 10,
		Resume: func(context.Context) (map[string]int64, error) { return map[string]int64{"BTCUSDT": 99}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	stop := runFeed(t, f)
	waitFor(t, "the trades", func() bool { return f.Stats().Trades == 6 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(asked) != "[100-102]" {
		t.Fatalf("backfill asked for %v; the 15-id gap before 120 is over MaxBackfill", asked)
	}
	if ids := tradeIDs(t, k.read(t, "market.crypto.trades.binance", 6)); fmt.Sprint(ids) != "[100 101 102 103 104 120]" {
		t.Fatalf("trades produced: %v", ids)
	}
	if st := f.Stats(); st.Duplicates != 1 || st.Gaps != 2 || st.Missing != 18 || st.Backfilled != 3 {
		t.Fatalf("%+v", st)
	}
}
