package live

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/feed/kraken"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/testutil"
)

// session runs a Binance session against cfg's endpoints and collects
// the trade ids its frames carry.
type session struct {
	*Session
	mu      sync.Mutex
	frames  []Frame
	metrics *ops.Registry
}

func runSession(t *testing.T, cfg SessionConfig) *session {
	t.Helper()
	b, err := binance.NewProtocol([]string{"BTCUSDT"}, md.DefaultAssets)
	if err != nil {
		t.Fatal(err)
	}
	reg := ops.NewRegistry()
	cfg.Registerer = reg
	s, err := NewSession(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := &session{Session: s, metrics: reg}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	go func() {
		for fr := range s.Frames() {
			out.mu.Lock()
			out.frames = append(out.frames, fr)
			out.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("session did not stop")
		}
	})
	return out
}

func (s *session) received() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.frames)
}

// A stream that goes silent on an open socket is noticed and replaced.
func TestSessionReplacesAStaleStream(t *testing.T) {
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, tradeFrame(int64(n)))
		c.CloseRead(ctx) // answer pings, send nothing more
		<-ctx.Done()
	})
	s := runSession(t, SessionConfig{Endpoints: []string{x.ws()}, StaleAfter: 150 * time.Millisecond, BackoffMin: time.Millisecond})
	waitFor(t, "two stale reconnects", func() bool { return s.Stats().Reconnects["stale"] >= 2 })
	waitFor(t, "the third connection's frame", func() bool { return len(s.received()) >= 3 })
	if st := s.Stats(); len(st.Reconnects) != 1 {
		t.Fatalf("reconnects for other reasons: %+v", st)
	}
}

// A peer that stops answering pings is dropped; one that answers is kept,
// and the client answers the server's own pings.
func TestSessionPingsAndAnswersPings(t *testing.T) {
	serverPinged := make(chan error, 1)
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		if n == 1 {
			<-ctx.Done() // never reads, so never answers a ping
			return
		}
		ctx = c.CloseRead(ctx)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		select {
		case serverPinged <- c.Ping(pctx):
		default:
		}
		<-ctx.Done()
	})
	s := runSession(t, SessionConfig{Endpoints: []string{x.ws()}, PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond,
		StaleAfter: time.Hour, BackoffMin: time.Millisecond})
	waitFor(t, "the pong timeout", func() bool { return s.Stats().Reconnects["pong_timeout"] == 1 })
	if err := <-serverPinged; err != nil {
		t.Fatalf("the client did not answer the server's ping: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // several pings on the second connection
	if st := s.Stats(); st.Connects != 2 || st.Reconnects["pong_timeout"] != 1 {
		t.Fatalf("a connection answering pings was dropped: %+v", st)
	}
	if v := metricValues(t, s.metrics, []string{"k2_binance_pong_timeouts_total", "k2_binance_last_pong_timestamp_seconds"}); v[0] != 1 || time.Since(time.Unix(int64(v[1]), 0)) > time.Minute {
		t.Fatalf("pong timeouts %v, last pong at %v", v[0], v[1])
	}
}

// An endpoint that refuses connections is skipped for the next one.
func TestSessionFailsOverToTheNextEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + l.Addr().String()
	l.Close()
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, tradeFrame(1))
		c.CloseRead(ctx)
		<-ctx.Done()
	})
	s := runSession(t, SessionConfig{Endpoints: []string{dead, x.ws()}, BackoffMin: time.Millisecond})
	waitFor(t, "a frame", func() bool { return len(s.received()) == 1 })
	if fr := s.received()[0]; fr.Endpoint != x.ws() {
		t.Fatalf("frame from %s", fr.Endpoint)
	}
	if st := s.Stats(); st.DialFailures != 1 || st.Connects != 1 {
		t.Fatalf("%+v", st)
	}
}

// Once the breaker opens, nothing is dialled until it half-opens: a dead
// exchange sees a handful of attempts, not a storm.
func TestBreakerGatesReconnects(t *testing.T) {
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, tradeFrame(1))
		c.CloseRead(ctx)
		<-ctx.Done()
	})
	x.refuse.Store(true)
	s := runSession(t, SessionConfig{Endpoints: []string{x.ws()}, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		BreakerFailures: 3, BreakerOpen: 1500 * time.Millisecond})
	waitFor(t, "the breaker to open", func() bool { return s.Stats().BreakerOpens == 1 })
	time.Sleep(500 * time.Millisecond) // ~250 back-offs' worth of time
	if d := x.dials.Load(); d != 3 {
		t.Fatalf("%d dials while the breaker was open; want the 3 that opened it", d)
	}
	if v := metricValues(t, s.metrics, []string{"k2_binance_circuit_breaker_state", "k2_binance_circuit_breaker_opened_total"}); v[0] != 1 || v[1] != 1 {
		t.Fatalf("k2_binance_circuit_breaker_state %v, opened_total %v while open", v[0], v[1])
	}
	x.refuse.Store(false)
	// Half-open after 1.5 s lets one attempt through, which now succeeds.
	waitFor(t, "the connection", func() bool { return len(s.received()) == 1 })
	if d, st := x.dials.Load(), s.Stats(); d != 4 || st.DialFailures != 3 || st.Connects != 1 {
		t.Fatalf("%d dials, %+v", d, st)
	}
	if v := metricValues(t, s.metrics, []string{"k2_binance_circuit_breaker_state", "k2_binance_connection_status"}); v[0] != 0 || v[1] != 1 {
		t.Fatalf("breaker state %v, connection status %v once connected", v[0], v[1])
	}
}

// The back-off doubles up to its cap with jitter in the upper half.
func TestBackoffIsExponentialJitteredAndCapped(t *testing.T) {
	s := &Session{cfg: SessionConfig{BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second}}
	var got []time.Duration
	for range 12 {
		got = append(got, s.backoff())
	}
	for i, d := range got {
		want := min(100*time.Millisecond<<i, 2*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("attempt %d waited %v; want %v–%v", i+1, d, want/2, want)
		}
	}
	if tail := got[6:]; slices.Min(tail) == slices.Max(tail) {
		t.Fatalf("no jitter at the cap: %v", tail)
	}
}

// ticker plays trade ids on one timeline to every connection, as an
// exchange does: a rotated connection overlaps the old one on the same ids.
// Odd-numbered connections get every frame late, as a congested path
// would deliver them.
type ticker struct {
	mu    sync.Mutex
	next  int64
	conns map[chan sent]bool
	late  time.Duration
}

type sent struct {
	id int64
	at time.Time
}

func (tk *ticker) serve(ctx context.Context, c *websocket.Conn, n int32) {
	ctx = c.CloseRead(ctx)
	ch := make(chan sent, 1<<16)
	tk.mu.Lock()
	tk.conns[ch] = true
	tk.mu.Unlock()
	defer func() {
		tk.mu.Lock()
		delete(tk.conns, ch)
		tk.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-ch:
			if n%2 == 1 {
				time.Sleep(time.Until(it.at.Add(tk.late)))
			}
			if c.Write(ctx, websocket.MessageText, tradeFrame(it.id)) != nil {
				return
			}
		}
	}
}

func (tk *ticker) play(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tk.mu.Lock()
		if len(tk.conns) > 0 {
			for ch := range tk.conns {
				ch <- sent{tk.next, time.Now()}
			}
			tk.next++
		}
		tk.mu.Unlock()
	}
}

// Rotating the connection before its lifetime limit loses nothing: the new
// connection overlaps the old, also when the old one lags behind it (the
// frames it still holds are not cut off), and the repeats are dropped by
// trade id.
func TestRotationLosesNothingAndDropsTheOverlap(t *testing.T) {
	k := newKafka(t)
	tk := &ticker{next: 1000, conns: map[chan sent]bool{}, late: 150 * time.Millisecond}
	x := newExchange(t, tk.serve)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tk.play(ctx, 2*time.Millisecond)
	f := binanceFeed(t, k, SessionConfig{Endpoints: []string{x.ws()}, RotateAfter: 300 * time.Millisecond, RotateOverlap: 400 * time.Millisecond}, nil)
	stop := runFeed(t, f)
	waitFor(t, "three rotations", func() bool { return f.Session().Stats().Rotations >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st := f.Stats()
	if st.Gaps != 0 || st.Duplicates == 0 {
		t.Fatalf("rotations should overlap without a gap: %+v", st)
	}
	ids := tradeIDs(t, k.read(t, "market.crypto.trades.binance", int(st.Trades)))
	for i, id := range ids {
		if id != ids[0]+int64(i) {
			t.Fatalf("trade %d has id %d after %d: lost or repeated across a rotation", i, id, ids[i-1])
		}
	}
	// (A rotation under way when the feed stopped has connected but not
	// yet counted.)
	if ss := f.Session().Stats(); len(ss.Reconnects) != 0 || ss.Connects-ss.Rotations > 2 {
		t.Fatalf("rotations counted as reconnects: %+v", ss)
	}
	t.Logf("%d trades over %d rotations, %d overlap repeats dropped", len(ids), f.Session().Stats().Rotations, st.Duplicates)
}

// Kraken: the client subscribes to trades with the snapshot and to the
// ticker and pings at the application level; the status, the answers, the
// heartbeats and the pongs are skipped, and every
// trade of the real file lands with its exact decimals.
func TestKrakenFeedOfTheRealFile(t *testing.T) {
	path := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	k := newKafka(t)
	subs := make(chan []string, 1)
	pinged := make(chan int, 1)
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, []byte(`{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":14352341863424139553,"system":"online","version":"2.0.8"}]}`))
		var got []string
		for range 2 {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			var req struct {
				Method string `json:"method"`
				Params struct {
					Channel  string   `json:"channel"`
					Symbol   []string `json:"symbol"`
					Snapshot bool     `json:"snapshot"`
				} `json:"params"`
			}
			if err := json.Unmarshal(msg, &req); err != nil {
				t.Error(err)
			}
			got = append(got, req.Method+" "+req.Params.Channel+" "+req.Params.Symbol[0]+" "+map[bool]string{true: "snapshot", false: "live"}[req.Params.Snapshot])
			send(ctx, c, []byte(`{"method":"subscribe","req_id":1,"result":{"channel":"`+req.Params.Channel+`","symbol":"BTC/USDT"},"success":true}`))
		}
		subs <- got
		// Answer the client's application pings as Kraken does, from a
		// reader of our own.
		pings := make(chan struct{}, 100)
		ctx, closed := context.WithCancel(ctx) // (a hijacked request's context never ends)
		go func() {
			defer closed()
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					return
				}
				if strings.Contains(string(msg), `"method":"ping"`) {
					pings <- struct{}{}
					send(ctx, c, []byte(`{"method":"pong","req_id":1,"time_in":"2025-11-10T17:23:53.971744Z","time_out":"2025-11-10T17:23:53.971800Z"}`))
				}
			}
		}()
		defer func() { pinged <- len(pings) }()
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			send(ctx, c, sc.Bytes(), []byte(`{"channel":"heartbeat"}`))
		}
		<-ctx.Done()
	})
	kr, err := kraken.NewProtocol([]string{"BTC/USDT"}, md.DefaultAssets)
	if err != nil {
		t.Fatal(err)
	}
	kr.PingEvery = 50 * time.Millisecond
	f, err := NewFeed(kr, SessionConfig{Endpoints: []string{x.ws()}}, FeedConfig{Producer: k.Prod})
	if err != nil {
		t.Fatal(err)
	}
	stop := runFeed(t, f)
	waitFor(t, "1,000 trades", func() bool { return f.Stats().Trades == 1000 })
	time.Sleep(300 * time.Millisecond) // several application pings
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := <-pinged; n < 3 {
		t.Fatalf("%d application pings in 300 ms at one per 50 ms", n)
	}
	if got := <-subs; !slices.Equal(got, []string{"subscribe trade BTC/USDT snapshot", "subscribe ticker BTC/USDT live"}) {
		t.Fatalf("subscriptions %q", got)
	}
	// Skipped: the status, two answers, 561 heartbeats and the pongs.
	if st := f.Stats(); st.DeadLetters != 0 || st.Gaps != 0 || st.Duplicates != 0 || st.Skipped < 564+3 {
		t.Fatalf("%+v", st)
	}
	recs := k.read(t, "market.crypto.trades.kraken", 1000)
	first, _, err := decoder.Trade(context.Background(), recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	// {"symbol":"BTC/USDT","side":"buy","price":105433.6,"qty":0.00027625,…,"trade_id":10218208}
	if first.SourceSequence.Int64 != 10218208 || first.Price.String() != "105433.6" || first.Quantity.String() != "0.00027625" ||
		first.Side != md.Buy || first.Symbol != "BTCUSDT" {
		t.Fatalf("first trade %+v", first)
	}
	ids := tradeIDs(t, recs)
	for i, id := range ids {
		if id != 10218208+int64(i) {
			t.Fatalf("trade %d has id %d", i, id)
		}
	}
}

// A connection cut without a close frame (a network failure) is
// reconnected and counted as a connection error.
func TestSessionReconnectsAfterAnAbruptDrop(t *testing.T) {
	x := newExchange(t, func(ctx context.Context, c *websocket.Conn, n int32) {
		send(ctx, c, tradeFrame(int64(n)))
		if n == 1 {
			c.CloseNow()
			return
		}
		c.CloseRead(ctx)
		<-ctx.Done()
	})
	s := runSession(t, SessionConfig{Endpoints: []string{x.ws()}, BackoffMin: time.Millisecond})
	waitFor(t, "the second connection's frame", func() bool { return len(s.received()) == 2 })
	if st := s.Stats(); st.Connects != 2 || st.Reconnects["connection_error"] != 1 {
		t.Fatalf("%+v", st)
	}
}
