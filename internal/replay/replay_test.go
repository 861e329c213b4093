package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/k2-market-data/k2/internal/testutil"
)

// The real recordings, under the shared data directory (see its README.md).
const (
	btcDay1 = "binance/ws/spot_btcusdt_20240808.gz"
	btcDay2 = "binance/ws/spot_btcusdt_20240809.gz"
	ethDay1 = "binance/ws/spot_ethusdt_20240808.gz"
	aggFile = "binance/ws/aggtrade_frames.txt"
	krFile  = "kraken/kraken_v2_trade_BTC-USDT.from-rest.jsonl"
	csvFile = "binance/vision/BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv"

	firstBTC, lastBTC = 3735683259, 3735703162
	nBTC              = 19904
)

var loaded sync.Map // path list → *Capture: tests share one load (a Server never changes its Capture)

func load(t testing.TB, rels ...string) *Capture {
	t.Helper()
	var paths []string
	for _, r := range rels {
		paths = append(paths, testutil.Data(t, r))
	}
	key := strings.Join(paths, "|")
	if c, ok := loaded.Load(key); ok {
		return c.(*Capture)
	}
	c, err := Load(paths...)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(key, c)
	return c
}

// noLeaks fails the test if goroutines started during it outlive it. Call
// it first: cleanups run last-registered first, so it checks after the
// server and connections are closed. It counts the whole process's
// goroutines, so the tests that call it (through serve) are not parallel:
// go test starts parallel tests only once the serial ones have finished.
func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before the test, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// serve starts a replay server on httptest and returns its http:// base.
func serve(t *testing.T, c *Capture, o Options) (*Server, string) {
	noLeaks(t)
	s := New(c, o)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		ts.Close()
	})
	return s, ts.URL
}

func dial(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func read(t *testing.T, ctx context.Context, ws *websocket.Conn) []byte {
	t.Helper()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func send(t *testing.T, ctx context.Context, ws *websocket.Conn, msg string) {
	t.Helper()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// tradeID is a Binance trade frame's (enveloped or not) "t".
func tradeID(t *testing.T, b []byte) int64 {
	t.Helper()
	// encoding/json matches keys case-insensitively: name "T" too, or it
	// lands in t.
	var v struct {
		Data struct {
			T     *int64          `json:"t"`
			Upper json.RawMessage `json:"T"`
		} `json:"data"`
		T     *int64          `json:"t"`
		Upper json.RawMessage `json:"T"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	switch {
	case v.Data.T != nil:
		return *v.Data.T
	case v.T != nil:
		return *v.T
	}
	t.Fatalf("no trade id in %s", b)
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}

func TestLoadBinance(t *testing.T) {
	t.Parallel()
	c := load(t, btcDay1, btcDay2)
	if c.Exchange != Binance || c.Skipped != 1 {
		t.Fatalf("exchange %s, skipped %d; want BINANCE, 1 (the REST snapshot)", c.Exchange, c.Skipped)
	}
	var trades, tickers int
	next := int64(firstBTC)
	for i, f := range c.Frames {
		if i > 0 && f.At < c.Frames[i-1].At {
			t.Fatalf("frame %d not in time order", i)
		}
		switch f.Stream {
		case "btcusdt@trade":
			trades++
			if id := tradeID(t, f.Data); id != next {
				t.Fatalf("frame %d: trade id %d, want %d (contiguous)", i, id, next)
			}
			next++
			if !bytes.Equal(f.Payload(), f.Data[len(`{"stream":"btcusdt@trade","data":`):len(f.Data)-1]) {
				t.Fatalf("payload %s of %s", f.Payload(), f.Data)
			}
		case "btcusdt@bookTicker":
			tickers++
		case "btcusdt@depth@100ms":
		default:
			t.Fatalf("unexpected stream %q", f.Stream)
		}
	}
	if trades != nBTC || next-1 != lastBTC || tickers != 73174 {
		t.Fatalf("%d trades up to id %d, %d bookTicker; want 19904 up to %d, 73174", trades, next-1, lastBTC, tickers)
	}

	// Two instruments interleave by time.
	both := load(t, btcDay1, ethDay1)
	syms := map[string]int{}
	switches := 0
	for i, f := range both.Frames {
		sym, _, _ := strings.Cut(f.Stream, "@")
		syms[sym]++
		if i > 0 && !strings.HasPrefix(both.Frames[i-1].Stream, sym) {
			switches++
		}
		if i > 0 && f.At < both.Frames[i-1].At {
			t.Fatalf("BTC+ETH frame %d not in time order", i)
		}
	}
	if syms["btcusdt"] == 0 || syms["ethusdt"] == 0 || switches < 1000 || both.Skipped != 2 {
		t.Fatalf("BTC+ETH: %v, %d switches between symbols, %d skipped", syms, switches, both.Skipped)
	}
}

func TestLoadKraken(t *testing.T) {
	t.Parallel()
	c := load(t, krFile)
	if c.Exchange != Kraken || len(c.Frames) != 561 {
		t.Fatalf("%s, %d frames; want KRAKEN, 561", c.Exchange, len(c.Frames))
	}
	next := int64(10218208)
	for i, f := range c.Frames {
		if f.Stream != "trade" || !slices.Equal(f.Symbols, []string{"BTC/USDT"}) {
			t.Fatalf("frame %d: %q %v", i, f.Stream, f.Symbols)
		}
		for _, id := range krakenIDs(t, f.Data) {
			if id != next {
				t.Fatalf("frame %d: trade_id %d, want %d", i, id, next)
			}
			next++
		}
	}
	if next != 10219208 {
		t.Fatalf("trade ids end at %d, want 10219207", next-1)
	}
	// The time is the message's last trade time.
	if got := time.Unix(0, c.Frames[1].At).UTC().Format(time.RFC3339Nano); got != "2025-11-10T17:38:41.129866Z" {
		t.Fatalf("frame 1 at %s", got)
	}
}

func krakenIDs(t *testing.T, b []byte) []int64 {
	t.Helper()
	var m struct {
		Data []struct {
			TradeID int64 `json:"trade_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var ids []int64
	for _, d := range m.Data {
		ids = append(ids, d.TradeID)
	}
	return ids
}

func TestLoadAggTradeAndFormats(t *testing.T) {
	t.Parallel()
	c := load(t, aggFile)
	if len(c.Frames) != 13 || c.Exchange != Binance {
		t.Fatalf("%d frames of %s", len(c.Frames), c.Exchange)
	}
	// The file is not in time order; the capture is.
	if c.Frames[0].Stream != "omgbusd@aggTrade" || c.Frames[12].Stream != "lrcbtc@aggTrade" ||
		c.Frames[0].At != 1633998288392960000 || c.Frames[3].At != 1633998291739657900 {
		t.Fatalf("first %s at %d, last %s", c.Frames[0].Stream, c.Frames[0].At, c.Frames[12].Stream)
	}

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}

	// Without the envelope: the stream is derived and the envelope built.
	payload := `{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}`
	raw, err := Load(write("raw.txt", []byte("1633998523.957215: "+payload+"\n")))
	if err != nil {
		t.Fatal(err)
	}
	f := raw.Frames[0]
	if f.Stream != "nknusdt@aggTrade" || string(f.Payload()) != payload ||
		string(f.Data) != `{"stream":"nknusdt@aggTrade","data":`+payload+`}` || f.At != 1633998523957215000 {
		t.Fatalf("derived frame: %q %s at %d", f.Stream, f.Data, f.At)
	}

	// gzip is told by its magic bytes, not the name.
	lines, err := os.ReadFile(testutil.Data(t, krFile))
	if err != nil {
		t.Fatal(err)
	}
	first3 := append(bytes.Join(bytes.SplitN(lines, []byte("\n"), 4)[:3], []byte("\n")), '\n')
	if k, err := Load(write("kraken.jsonl", gz(first3))); err != nil || len(k.Frames) != 3 || k.Exchange != Kraken {
		t.Fatalf("gzip without .gz: %v", err)
	}
	agg, _ := os.ReadFile(testutil.Data(t, aggFile))
	if a, err := Load(write("plain.gz", agg)); err != nil || len(a.Frames) != 13 {
		t.Fatalf("plain text named .gz: %v", err)
	}

	errCases := []struct {
		name  string
		files []string
		want  string
	}{
		{"garbled line", []string{write("bad.txt", []byte(string(agg[:bytes.IndexByte(agg, '\n')+1])+"\n1633998534.481201: {\"stream\":\"x@trade\",\"data\":{\n"))}, "bad.txt:3:"},
		{"bad time", []string{write("badtime.txt", []byte("12:34:56 {}\n"))}, "badtime.txt:1:"},
		{"not json", []string{write("text.txt", []byte("hello\n"))}, "text.txt:1:"},
		{"mixed files", []string{testutil.Data(t, aggFile), write("k.jsonl", first3)}, "k.jsonl:1: a kraken frame in a binance capture"},
		{"mixed lines", []string{write("mixed.txt", append(append([]byte{}, first3...), agg...))}, "mixed.txt:4: a binance frame in a kraken capture"},
		{"empty", []string{write("empty.txt", nil)}, "no frames"},
		{"only a snapshot", []string{write("snap.txt", []byte(`1723161254206652067 {"lastUpdateId":1,"bids":[],"asks":[]}`))}, "no frames"},
		{"missing", []string{filepath.Join(dir, "nope.gz")}, "nope.gz"},
	}
	for _, tc := range errCases {
		_, err := Load(tc.files...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseSpeed(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]float64{"max": 0, "MAX": 0, "0": 0, "0x": 0, "10x": 10, "10": 10, "0.5x": 0.5, "1x": 1, " 2X ": 2} {
		if got, err := ParseSpeed(in); err != nil || got != want {
			t.Errorf("ParseSpeed(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "-2x", "fast", "10xx", "NaN", "Inf", "1e400"} {
		if got, err := ParseSpeed(in); err == nil {
			t.Errorf("ParseSpeed(%q) = %v, want an error", in, got)
		}
	}
}

// A combined-stream client at full speed gets every frame of its streams,
// byte for byte, in order, and nothing else.
func TestBinanceCombinedStreamExact(t *testing.T) {
	c := load(t, btcDay1, btcDay2)
	var want [][]byte
	for _, f := range c.Frames {
		if f.Stream == "btcusdt@trade" || f.Stream == "btcusdt@bookTicker" {
			want = append(want, f.Data)
		}
	}
	s, base := serve(t, c, Options{})
	ctx := testCtx(t, 60*time.Second)
	ws := dial(t, ctx, base+"/stream?streams=btcusdt@trade/BTCUSDT@bookTicker")
	for i, w := range want {
		if got := read(t, ctx, ws); !bytes.Equal(got, w) {
			t.Fatalf("frame %d of %d:\n got %s\nwant %s", i, len(want), got, w)
		}
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the capture")
	}
	waitFor(t, "the last write to count", func() bool { return s.Stats().Sent == int64(len(want)) })
	if st := s.Stats(); st.Played != int64(len(c.Frames)) || st.Accepted != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// /ws takes SUBSCRIBE requests and sends raw payloads.
func TestBinanceRawSubscribe(t *testing.T) {
	c := load(t, btcDay1, btcDay2)
	var trades [][]byte
	for _, f := range c.Frames {
		if f.Stream == "btcusdt@trade" {
			trades = append(trades, f.Payload())
		}
	}
	_, base := serve(t, c, Options{})
	ctx := testCtx(t, 30*time.Second)
	ws := dial(t, ctx, base+"/ws")
	expect := func(want string) {
		t.Helper()
		if got := read(t, ctx, ws); string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	send(t, ctx, ws, `{"method":"LIST_SUBSCRIPTIONS","id":0}`)
	expect(`{"result":[],"id":0}`)
	send(t, ctx, ws, `not json`)
	expect(`{"error":{"code":2,"msg":"Invalid request"},"id":null}`)
	send(t, ctx, ws, `{"method":"SUBSCRIBE","params":"btcusdt@trade","id":5}`)
	expect(`{"error":{"code":2,"msg":"Invalid request"},"id":null}`)
	send(t, ctx, ws, `{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}`)
	expect(`{"result":null,"id":1}`)
	for i := range 100 {
		expect(string(trades[i]))
	}
	send(t, ctx, ws, `{"method":"LIST_SUBSCRIPTIONS","id":"x"}`)
	send(t, ctx, ws, `{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":2}`)
	var got []string
	for i := 100; len(got) < 2; i++ {
		b := read(t, ctx, ws)
		if bytes.HasPrefix(b, []byte(`{"result"`)) {
			got = append(got, string(b))
			i--
			continue
		}
		if !bytes.Equal(b, trades[i]) {
			t.Fatalf("trade %d: %s", i, b)
		}
	}
	if !slices.Equal(got, []string{`{"result":["btcusdt@trade"],"id":"x"}`, `{"result":null,"id":2}`}) {
		t.Fatalf("answers %q", got)
	}

	// /ws/<stream> subscribes in the path.
	_, base2 := serve(t, c, Options{})
	ws2 := dial(t, ctx, base2+"/ws/btcusdt@bookTicker")
	n := 0
	for _, f := range c.Frames {
		if f.Stream == "btcusdt@bookTicker" {
			if got := read(t, ctx, ws2); !bytes.Equal(got, f.Payload()) {
				t.Fatalf("bookTicker %d: %s, want %s", n, got, f.Payload())
			}
			if n++; n == 200 {
				break
			}
		}
	}
}

type restTrade struct {
	ID           json.Number `json:"id"`
	Price        string      `json:"price"`
	Qty          string      `json:"qty"`
	QuoteQty     string      `json:"quoteQty"`
	Time         json.Number `json:"time"`
	IsBuyerMaker bool        `json:"isBuyerMaker"`
	IsBestMatch  bool        `json:"isBestMatch"`
}

func (r restTrade) csv() string {
	py := map[bool]string{true: "True", false: "False"} // the public files' spelling
	return fmt.Sprintf("%s,%s,%s,%s,%s,%s,%s", r.ID, r.Price, r.Qty, r.QuoteQty, r.Time, py[r.IsBuyerMaker], py[r.IsBestMatch])
}

func get(t *testing.T, client *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// A forced outage closes the connection; the reconnected client misses the
// outage's frames and the REST endpoint gives the missed trades back, with
// the exact strings of the public trade file.
func TestDisconnectAtAndBackfill(t *testing.T) {
	c := load(t, btcDay1, btcDay2)
	csvRows := map[string]string{}
	f, err := os.Open(testutil.Data(t, csvFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		id, _, _ := strings.Cut(sc.Text(), ",")
		csvRows[id] = sc.Text()
	}

	var tradeAt []int // frame index of each trade
	for i, f := range c.Frames {
		if f.Stream == "btcusdt@trade" {
			tradeAt = append(tradeAt, i)
		}
	}
	at, outage := tradeAt[5000], 6000
	s, base := serve(t, c, Options{DisconnectAt: []int{at}, OutageFrames: outage})
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	ctx := testCtx(t, 60*time.Second)

	seen := map[int64]string{}
	ws := dial(t, ctx, base+"/stream?streams=btcusdt@trade")
	var first []int64
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
				t.Fatalf("first connection ended with %v, want 1001 going away", err)
			}
			break
		}
		first = append(first, tradeID(t, b))
	}
	if len(first) != 5000 || first[0] != firstBTC || first[4999] != firstBTC+4999 {
		t.Fatalf("before the outage: %d trades, want exactly the 5000 before frame %d", len(first), at)
	}
	for _, id := range first {
		seen[id] = "stream"
	}

	// The cursor skips the outage, then (at full speed) waits for a
	// subscriber; REST sees what was played, not beyond.
	waitFor(t, "the outage to pass", func() bool { return s.Stats().Played == int64(at+outage) })
	lastPlayed := int64(firstBTC + tradesBefore(tradeAt, at+outage) - 1)
	code, body := get(t, client, base+"/api/v3/historicalTrades?symbol=btcusdt&limit=2")
	var latest []restTrade
	if err := json.Unmarshal(body, &latest); code != 200 || err != nil || len(latest) != 2 ||
		latest[1].ID.String() != strconv.FormatInt(lastPlayed, 10) {
		t.Fatalf("latest played: HTTP %d %s; want ids up to %d", code, body, lastPlayed)
	}

	ws2 := dial(t, ctx, base+"/stream?streams=btcusdt@trade")
	var second []int64
	for len(second) == 0 || second[len(second)-1] != lastBTC {
		second = append(second, tradeID(t, read(t, ctx, ws2)))
	}
	if second[0] != lastPlayed+1 {
		t.Fatalf("after reconnecting the first trade is %d, want %d (the first after the outage)", second[0], lastPlayed+1)
	}
	for _, id := range second {
		seen[id] = "stream"
	}
	<-s.Done()

	// Backfill the gap page by page, as a feed does.
	for from := first[len(first)-1] + 1; from < second[0]; {
		code, body := get(t, client, fmt.Sprintf("%s/api/v3/historicalTrades?symbol=BTCUSDT&fromId=%d&limit=1000", base, from))
		var page []restTrade
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if code != 200 || d.Decode(&page) != nil || len(page) == 0 {
			t.Fatalf("fromId %d: HTTP %d %.200s", from, code, body)
		}
		for _, r := range page {
			id, _ := r.ID.Int64()
			if id != from {
				t.Fatalf("REST id %d, want %d", id, from)
			}
			if want := csvRows[r.ID.String()]; r.csv() != want {
				t.Fatalf("REST trade\n got %s\nwant %s", r.csv(), want)
			}
			if id < second[0] {
				seen[id] = "rest"
			}
			from++
		}
	}
	if len(seen) != nBTC {
		t.Fatalf("stream ∪ REST has %d trade ids, want %d", len(seen), nBTC)
	}
	for id := int64(firstBTC); id <= lastBTC; id++ {
		if seen[id] == "" {
			t.Fatalf("trade %d neither streamed nor backfilled", id)
		}
	}

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v3/historicalTrades?symbol=ETHUSDT", 400, `{"code":-1121,"msg":"Invalid symbol."}`},
		{"/api/v3/historicalTrades", 400, `"code":-1102`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&limit=abc", 400, `"code":-1100`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&limit=1001", 400, `"code":-1130`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&fromId=-3", 400, `"code":-1100`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&fromId=3735683259&limit=1", 200,
			`[{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.75260000","time":1723161255342,"isBuyerMaker":true,"isBestMatch":true}]`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&fromId=3735703162&limit=5", 200, `[{"id":3735703162,`},
		{"/api/v3/historicalTrades?symbol=BTCUSDT&fromId=3735703163", 200, `[]`},
		{"/api/v3/ping", 200, `{}`},
		{"/nope", 404, ""},
		{"/v2", 404, ""},
	} {
		code, body := get(t, client, base+tc.path)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: HTTP %d %.200s; want %d with %s", tc.path, code, body, tc.code, tc.want)
		}
	}
	if st := s.Stats(); st.Outages != 1 || st.Forced != 1 || st.Accepted != 2 || st.REST < 10 {
		t.Fatalf("stats %+v", st)
	}
}

// tradesBefore counts the trades before frame index i.
func tradesBefore(tradeAt []int, i int) int {
	n, _ := slices.BinarySearch(tradeAt, i)
	return n
}

// Looping continues the ids: three loops are one contiguous sequence.
func TestLoopsContinueIDs(t *testing.T) {
	c := load(t, btcDay1, btcDay2)
	var orig [][]byte
	for _, f := range c.Frames {
		if f.Stream == "btcusdt@trade" {
			orig = append(orig, f.Data)
		}
	}
	s, base := serve(t, c, Options{Loops: 3})
	ctx := testCtx(t, 60*time.Second)
	ws := dial(t, ctx, base+"/stream?streams=btcusdt@trade")
	for i := range 3 * nBTC {
		b := read(t, ctx, ws)
		want := int64(firstBTC + i)
		if id := tradeID(t, b); id != want {
			t.Fatalf("trade %d: id %d, want %d", i, id, want)
		}
		// Only the id differs from the recorded frame.
		o := orig[i%nBTC]
		if i >= nBTC && !bytes.Equal(b, bytes.Replace(o, fmt.Appendf(nil, `"t":%d`, firstBTC+i%nBTC), fmt.Appendf(nil, `"t":%d`, want), 1)) {
			t.Fatalf("loop %d frame:\n%s\nrecorded:\n%s", i/nBTC, b, o)
		}
	}
	<-s.Done()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	_, body := get(t, client, fmt.Sprintf("%s/api/v3/historicalTrades?symbol=BTCUSDT&fromId=%d&limit=1", base, firstBTC+2*nBTC))
	if want := fmt.Sprintf(`[{"id":%d,"price":"61837.63000000","qty":"0.02000000"`, firstBTC+2*nBTC); !strings.HasPrefix(string(body), want) {
		t.Fatalf("REST in the third loop: %s", body)
	}
	if st := s.Stats(); st.Played != 3*int64(len(c.Frames)) {
		t.Fatalf("played %d", st.Played)
	}
}

// At Speed > 0 the capture keeps its recorded pace, scaled.
func TestSpeedPacing(t *testing.T) {
	c := load(t, aggFile)
	const speed = 1000
	_, base := serve(t, c, Options{Speed: speed})
	ctx := testCtx(t, 30*time.Second)
	ws := dial(t, ctx, base+"/stream?streams=omgbusd@aggTrade/nknusdt@aggTrade/lrcbtc@aggTrade")
	var arrived []time.Time
	for i, f := range c.Frames {
		if got := read(t, ctx, ws); !bytes.Equal(got, f.Data) {
			t.Fatalf("frame %d: %s, want %s", i, got, f.Data)
		}
		arrived = append(arrived, time.Now())
	}
	recorded := time.Duration(c.Frames[12].At-c.Frames[0].At) / speed // ≈ 246 ms
	elapsed := arrived[12].Sub(arrived[0])
	if elapsed < recorded/3 || elapsed > recorded+5*time.Second {
		t.Fatalf("13 frames took %v; recorded pace at %dx is %v", elapsed, speed, recorded)
	}
	// The long recorded pause (222 s) shows as a pause.
	if gap := arrived[11].Sub(arrived[10]); gap < elapsed/3 {
		t.Fatalf("gap %v of %v: not paced", gap, elapsed)
	}
}

// At Speed > 0 a client that falls behind is dropped, not waited for.
func TestSlowClientDropped(t *testing.T) {
	c := load(t, btcDay1, ethDay1) // TestLoadBinance, parallel so run later, reuses this load
	s, base := serve(t, c, Options{Speed: 1e9, ClientBuffer: 1})
	ctx := testCtx(t, 30*time.Second)
	dial(t, ctx, base+"/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms") // never reads
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("the cursor waited for a slow client")
	}
	waitFor(t, "the drop", func() bool { st := s.Stats(); return st.SlowDropped == 1 && st.Clients == 0 })
}

// A Binance connection that does not answer pings is closed; one that
// reads (and so answers) stays.
func TestPongTimeout(t *testing.T) {
	c := load(t, aggFile)
	s, base := serve(t, c, Options{PingInterval: 50 * time.Millisecond, PongTimeout: 500 * time.Millisecond})
	ctx := testCtx(t, 30*time.Second)
	silent := dial(t, ctx, base+"/ws")
	reader := dial(t, ctx, base+"/ws")
	readErr := make(chan error, 1)
	go func() {
		_, _, err := reader.Read(context.Background())
		readErr <- err
	}()
	waitFor(t, "the pong timeout", func() bool { st := s.Stats(); return st.PongTimeouts == 1 && st.Clients == 1 })
	time.Sleep(700 * time.Millisecond) // more pings than one timeout's worth, answered
	if st := s.Stats(); st.PongTimeouts != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v: the reading client should stay", st)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := silent.Read(rctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent client read %v, want the closed connection", err)
	}
	reader.CloseNow()
	<-readErr
}

func TestKraken(t *testing.T) {
	noLeaks(t)
	c := load(t, krFile)
	s := New(c, Options{Heartbeat: 20 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	ctx := testCtx(t, 30*time.Second)
	ws := dial(t, ctx, "http://"+l.Addr().String()+"/v2")

	var status struct {
		Channel string
		Data    []struct {
			ConnectionID json.Number `json:"connection_id"`
			System       string
		}
	}
	d := json.NewDecoder(bytes.NewReader(read(t, ctx, ws)))
	d.UseNumber()
	if err := d.Decode(&status); err != nil || status.Channel != "status" || len(status.Data) != 1 || status.Data[0].System != "online" {
		t.Fatalf("first message: %+v %v", status, err)
	}
	if id := status.Data[0].ConnectionID.String(); func() bool { _, err := strconv.ParseInt(id, 10, 64); return err == nil }() {
		t.Fatalf("connection_id %s fits an int64; Kraken's do not", id)
	} else if u, err := strconv.ParseUint(id, 10, 64); err != nil || u <= math.MaxInt64 {
		t.Fatalf("connection_id %s", id)
	}

	send(t, ctx, ws, `{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USDT"],"snapshot":true},"req_id":1}`)
	send(t, ctx, ws, `{"method":"ping","req_id":7}`)
	send(t, ctx, ws, `{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USDT"]},"req_id":2}`)
	send(t, ctx, ws, `{"method":"subscribe","params":{"channel":"nope","symbol":["BTC/USDT"]},"req_id":3}`)
	send(t, ctx, ws, `{"method":"subscribe","params":{"channel":"trade"},"req_id":4}`)

	type reply struct {
		Error   string
		Method  string
		ReqID   int `json:"req_id"`
		Success *bool
		Result  *struct {
			Channel  string
			Symbol   string
			Snapshot *bool
		}
		TimeIn  string `json:"time_in"`
		TimeOut string `json:"time_out"`
	}
	var replies []reply
	var ids []int64
	frame, heartbeats := 0, 0
	for frame < len(c.Frames) || heartbeats < 3 || len(replies) < 5 {
		b := read(t, ctx, ws)
		switch {
		case string(b) == `{"channel":"heartbeat"}`:
			heartbeats++
		case bytes.HasPrefix(b, []byte(`{"channel":"trade"`)):
			if len(replies) == 0 {
				t.Fatal("a trade frame before the subscribe ack")
			}
			if !bytes.Equal(b, c.Frames[frame].Data) {
				t.Fatalf("frame %d: %.200s", frame, b)
			}
			frame++
			ids = append(ids, krakenIDs(t, b)...)
		default:
			var r reply
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if _, err := time.Parse(time.RFC3339Nano, r.TimeIn); err != nil || !strings.HasSuffix(r.TimeOut, "Z") || len(r.TimeOut) != len("2025-11-10T17:38:41.129866Z") {
				t.Fatalf("times in %s", b)
			}
			replies = append(replies, r)
		}
	}
	if len(ids) != 1000 || ids[0] != 10218208 || ids[999] != 10219207 {
		t.Fatalf("%d trade ids %v…", len(ids), ids[:3])
	}
	ok := func(r reply, id int, channel string) bool {
		return r.ReqID == id && r.Method == "subscribe" && r.Success != nil && *r.Success && r.Result != nil &&
			r.Result.Channel == channel && r.Result.Symbol == "BTC/USDT"
	}
	failed := func(r reply, id int) bool {
		return r.ReqID == id && r.Success != nil && !*r.Success && r.Error != "" && r.Method == "subscribe"
	}
	if len(replies) != 5 || !ok(replies[0], 1, "trade") || replies[0].Result.Snapshot == nil || !*replies[0].Result.Snapshot ||
		replies[1].Method != "pong" || replies[1].ReqID != 7 || !ok(replies[2], 2, "ticker") || !failed(replies[3], 3) || !failed(replies[4], 4) {
		t.Fatalf("replies %+v", replies)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("not done")
	}

	// "/" serves too; other paths do not.
	ws2 := dial(t, ctx, "http://"+l.Addr().String()+"/")
	if b := read(t, ctx, ws2); !bytes.HasPrefix(b, []byte(`{"channel":"status"`)) {
		t.Fatalf("on /: %s", b)
	}
	if _, _, err := websocket.Dial(ctx, "ws://"+l.Addr().String()+"/stream", nil); err == nil {
		t.Fatal("/stream on a Kraken capture should be 404")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	// Heartbeats sent while the test was busy with ws2 may still be
	// unread; after them the connection must end, soon.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(rctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("connection open 5s after Close")
		}
		if err != nil {
			break
		}
		if string(b) != `{"channel":"heartbeat"}` {
			t.Fatalf("after Close: %s", b)
		}
	}
}
