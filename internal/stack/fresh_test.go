package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testutil"
)

// freshBase is when the test's stream starts: ten minutes ago, so the
// recent routes' window holds all of it.
var freshBase = md.TimestampOf(time.Now().Add(-10 * time.Minute))

// freshTrade is trade i of a stream over two symbols, a millisecond apart.
func freshTrade(i int) md.Trade {
	sym := []string{"BTCUSDT", "ETHUSDT"}[i%2]
	tid := fmt.Sprintf("BINANCE-%d", i)
	return md.Trade{
		MessageID: md.MessageID("trade", sym, tid), TradeID: tid, Symbol: sym, Exchange: "BINANCE",
		AssetClass: md.Crypto, Timestamp: freshBase + md.Timestamp(i)*1000,
		Price: md.DecimalFromUnits(6183763000000 + int64(i)), Quantity: md.MustDecimal("0.02"),
		Currency: "USDT", Side: md.Buy, TradeConditions: []string{},
		SourceSequence: md.SomeInt64(int64(i/2 + 1)), IngestionTimestamp: freshBase,
	}
}

type apiPage struct {
	Data []struct {
		TradeID string `json:"trade_id"`
	} `json:"data"`
	Meta struct {
		SnapshotID int64 `json:"snapshot_id"`
		Count      int   `json:"count"`
		Incomplete bool  `json:"incomplete"`
	} `json:"meta"`
}

func (r *running) query(t *testing.T, body map[string]any) apiPage {
	t.Helper()
	var p apiPage
	r.call(t, "POST", "/v1/trades/query", body, &p)
	return p
}

// call asks the API (a GET when body is nil) and reads its 200 answer
// into out.
func (r *running) call(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+r.HTTPAddr()+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s %s %v: %d %v %.300s", method, path, body, resp.StatusCode, err, raw)
	}
}

// exactlyOnce checks p holds trades 0 … n-1 of symbol's, each once.
func exactlyOnce(t *testing.T, what string, p apiPage, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, d := range p.Data {
		seen[d.TradeID]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf("BINANCE-%d", i)]; c != 1 {
			t.Fatalf("%s: trade %d answered %d times (%d answered in all)", what, i, c, len(p.Data))
		}
	}
	if len(p.Data) != n {
		t.Fatalf("%s: %d trades answered, %d produced", what, len(p.Data), n)
	}
}

// boundary is a broker, a sink and an API over one lake, for tests of
// reads across the lake's boundary: produce stops the sink mid-stream.
type boundary struct {
	broker, sink, api *running
	// remote is a configuration of a process of the cluster, changed by mod.
	remote func(mod func(*config.Config)) config.Config
}

func newBoundary(t *testing.T) *boundary {
	b := &boundary{broker: start(t, "broker", testConfig(t), Parts{Embedded: true})}
	dataDir := t.TempDir()
	b.remote = func(mod func(*config.Config)) config.Config {
		cfg := testConfig(t)
		cfg.DataDir, cfg.Lake.Catalog, cfg.Lake.Warehouse = dataDir, "", ""
		cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(b.broker.Brokers(), ","), b.broker.RegistryURL()
		if mod != nil {
			mod(&cfg)
		}
		if err := cfg.Resolve(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	b.sink = start(t, "sink", b.remote(nil), Parts{Sink: true})
	b.api = start(t, "api", b.remote(nil), Parts{API: true})
	return b
}

// produce sends trades 0 … n-1 and stops the sink once it has written a
// thousand of them; it returns how many the lake holds.
func (b *boundary) produce(t *testing.T, n int, trade func(int) md.Trade) int {
	t.Helper()
	p, err := b.broker.Producer("fresh-test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		testutil.WaitFor(t, "the sink's first commits", 60*time.Second, func() bool { return b.sink.Sink().Stats().Written >= 1000 })
		b.sink.stop(t) // mid-stream: the producer goes on
	}()
	for i := 0; i < n; i++ {
		tr := trade(i)
		if err := bus.Produce(ctx, p, record.Trade, &tr); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			p.Flush(ctx)
			time.Sleep(20 * time.Millisecond)
		}
	}
	p.Flush(ctx)
	<-stopped
	inLake := int(b.sink.Sink().Stats().Written)
	if inLake == 0 || inLake >= n {
		t.Fatalf("the sink wrote %d of %d trades before it stopped: the test needs a boundary", inLake, n)
	}
	t.Logf("the lake holds %d of %d trades when the sink stops", inLake, n)
	return inLake
}

// Reads combine the lake up to its snapshot's offsets with the stream
// after exactly them: the sink stopped mid-stream, every produced trade is
// answered once, and once the sink catches up, the same again.
func TestFreshReadsCrossTheLakeAndTailOnce(t *testing.T) {
	t.Parallel()
	b := newBoundary(t)
	api, remote := b.api, b.remote
	// A second API whose tail holds almost nothing: it must say so.
	small := start(t, "api", remote(func(c *config.Config) { c.API.TailBytes = 4 << 10 }), Parts{API: true})
	const n = 6000
	inLake := b.produce(t, n, freshTrade)

	all := map[string]any{"symbols": []string{"BTCUSDT", "ETHUSDT"}, "order": "asc", "limit": 100_000}
	var got apiPage
	testutil.WaitFor(t, "every trade through the API", 30*time.Second, func() bool {
		got = api.query(t, all)
		return len(got.Data) >= n
	})
	exactlyOnce(t, "lake and tail", got, n)
	if got.Meta.Incomplete || got.Meta.SnapshotID == 0 {
		t.Errorf("meta: %+v", got.Meta)
	}
	// The same snapshot alone is the lake's part, no more.
	lakeOnly := api.query(t, map[string]any{"symbols": []string{"BTCUSDT", "ETHUSDT"}, "limit": 100_000, "as_of_snapshot": got.Meta.SnapshotID})
	if len(lakeOnly.Data) != inLake {
		t.Errorf("as of snapshot %d: %d trades; the sink wrote %d", got.Meta.SnapshotID, len(lakeOnly.Data), inLake)
	}
	// Latest N of a symbol, newest first, reaches the last produced.
	latest := api.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 3})
	if len(latest.Data) != 3 || latest.Data[0].TradeID != fmt.Sprintf("BINANCE-%d", n-1) || latest.Data[2].TradeID != fmt.Sprintf("BINANCE-%d", n-5) {
		t.Errorf("latest ETHUSDT: %+v", latest.Data)
	}
	// The recent route: the symbol's latest, oldest first.
	resp, err := http.Get("http://" + api.HTTPAddr() + "/v1/trades/recent?symbol=ETHUSDT&exchange=BINANCE&limit=4")
	if err != nil {
		t.Fatal(err)
	}
	var recent apiPage
	json.NewDecoder(resp.Body).Decode(&recent)
	resp.Body.Close()
	if ids := recent.Data; len(ids) != 4 || ids[0].TradeID != fmt.Sprintf("BINANCE-%d", n-7) || ids[3].TradeID != fmt.Sprintf("BINANCE-%d", n-1) {
		t.Errorf("recent ETHUSDT: %+v", recent.Data)
	}
	// A tail too small to hold what the lake lacks says the answer is
	// incomplete rather than pretending.
	testutil.WaitFor(t, "the small tail to admit it", 30*time.Second, func() bool { return small.query(t, all).Meta.Incomplete })
	// The latest records kept in memory admit it too, and do not keep the
	// gap once the lake has what the tail lost (checked below).
	if !small.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 1000}).Meta.Incomplete {
		t.Error("the latest ETHUSDT from a tail that lost records does not say it is incomplete")
	}

	// The sink catches up; the boundary moves; still each trade once.
	sink2 := start(t, "sink", remote(nil), Parts{Sink: true})
	testutil.WaitFor(t, "the sink to catch up", 60*time.Second, func() bool { return sink2.Sink().Stats().Written >= int64(n-inLake) })
	got = api.query(t, all)
	exactlyOnce(t, "after the sink caught up", got, n)
	if after := api.query(t, map[string]any{"symbols": []string{"BTCUSDT", "ETHUSDT"}, "limit": 100_000, "as_of_snapshot": got.Meta.SnapshotID}); len(after.Data) != n {
		t.Errorf("the lake after catching up holds %d of %d", len(after.Data), n)
	}
	if small.query(t, all).Meta.Incomplete {
		t.Error("the small tail still says incomplete once the lake holds everything")
	}
	fast := small.query(t, map[string]any{"symbol": "ETHUSDT", "limit": 1000})
	long := small.query(t, map[string]any{"symbols": []string{"ETHUSDT"}, "limit": 1000})
	if fast.Meta.Incomplete || len(fast.Data) != 1000 || fmt.Sprint(fast.Data) != fmt.Sprint(long.Data) {
		t.Errorf("the latest ETHUSDT from memory after the sink caught up: %d trades (incomplete %v), the long way %d",
			len(fast.Data), fast.Meta.Incomplete, len(long.Data))
	}
}
