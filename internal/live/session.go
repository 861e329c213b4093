package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed"
)

// SessionConfig says how a session connects and how hard it holds on.
// Zero values take the defaults.
type SessionConfig struct {
	// Endpoints are tried in turn: a failed dial moves to the next.
	Endpoints []string
	// PingInterval is how often the session pings; a ping unanswered
	// after PongTimeout closes the connection (defaults 3 min and 10 s,
	// the original's).
	PingInterval time.Duration
	PongTimeout  time.Duration
	// StaleAfter closes a connection that delivered nothing for this long
	// (default 30 s): a socket can stay open while the stream has died.
	StaleAfter time.Duration
	// RotateAfter replaces a connection this old with a new one, the two
	// overlapping until the new one delivers (default: 30 min before the
	// protocol's MaxLifetime; 0 there means never).
	RotateAfter time.Duration
	// RotateOverlap is how long both connections deliver once the new one
	// has (default 5 s), so the old one's last frames are not cut off.
	RotateOverlap time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential back-off
	// between failed attempts (defaults 500 ms and 30 s).
	BackoffMin, BackoffMax time.Duration
	// BreakerFailures consecutive failed dials open the circuit breaker for
	// BreakerOpen (defaults 5 and 60 s): then nothing is dialled at all,
	// so a dead endpoint is not hammered by a reconnect storm.
	BreakerFailures uint32
	BreakerOpen     time.Duration
	DialTimeout     time.Duration // default 10 s
	HTTPClient      *http.Client
	Logger          *slog.Logger
	// Registerer takes the session's and its feed's metrics (nil: kept
	// to themselves).
	Registerer prometheus.Registerer
}

func (c *SessionConfig) defaults(p feed.Protocol) error {
	if len(c.Endpoints) == 0 {
		return errors.New("live: no endpoint")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, config.Default().Feed.PingInterval)
	def(&c.PongTimeout, 10*time.Second)
	def(&c.StaleAfter, config.Default().Feed.StaleAfter)
	def(&c.RotateOverlap, 5*time.Second)
	def(&c.BackoffMin, 500*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.BreakerOpen, time.Minute)
	def(&c.DialTimeout, 10*time.Second)
	if c.RotateAfter <= 0 {
		if life := p.MaxLifetime(); life > 0 {
			c.RotateAfter = max(life-30*time.Minute, life/2)
		}
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Session keeps one live connection to an exchange (two, briefly, while
// rotating) and delivers every frame it receives on Frames.
type Session struct {
	cfg       SessionConfig
	proto     feed.Protocol
	m         *metrics
	connected atomic.Bool
	log       *slog.Logger
	breaker   *gobreaker.CircuitBreaker[*conn]
	frames    chan Frame

	next     int // endpoint to dial next
	failures int // consecutive failed attempts, for the back-off
	ids      atomic.Uint64

	stats struct {
		sync.Mutex
		SessionStats
	}
}

// SessionStats count what happened to the connections.
type SessionStats struct {
	Connects     int            `json:"connects"`
	Reconnects   map[string]int `json:"reconnects"` // by reason
	Rotations    int            `json:"rotations"`
	DialFailures int            `json:"dial_failures"`
	BreakerOpens int            `json:"breaker_opens"`
}

// setConnected records whether a connection is open, for /health and the
// connection_status metric.
func (s *Session) setConnected(up bool) {
	s.connected.Store(up)
	if up {
		s.m.status.Set(1)
	} else {
		s.m.status.Set(0)
	}
}

// Connected reports whether a connection is open now.
func (s *Session) Connected() bool { return s.connected.Load() }

// NewSession prepares a session; Run connects.
func NewSession(p feed.Protocol, cfg SessionConfig) (*Session, error) {
	if err := cfg.defaults(p); err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, proto: p, m: newMetrics(cfg.Registerer, p), frames: make(chan Frame, 4096),
		log: cfg.Logger.With("exchange", p.Exchange())}
	s.stats.Reconnects = map[string]int{}
	s.breaker = gobreaker.NewCircuitBreaker[*conn](gobreaker.Settings{
		Name:        p.Exchange() + " websocket",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			s.m.breakerState.Set(map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateOpen: 1, gobreaker.StateHalfOpen: 2}[to])
			if to == gobreaker.StateOpen {
				s.m.breakerOpened.Inc()
				s.stats.Lock()
				s.stats.BreakerOpens++
				s.stats.Unlock()
				s.log.Error("circuit breaker open: not dialling for a while", "open_for", cfg.BreakerOpen)
			} else {
				s.log.Info("circuit breaker "+to.String(), "breaker", name)
			}
		},
	})
	return s, nil
}

// Frames delivers what the connections receive, in order per connection.
func (s *Session) Frames() <-chan Frame { return s.frames }

// Stats returns the counters.
func (s *Session) Stats() SessionStats {
	s.stats.Lock()
	defer s.stats.Unlock()
	out := s.stats.SessionStats
	out.Reconnects = make(map[string]int, len(s.stats.Reconnects))
	for k, v := range s.stats.Reconnects {
		out.Reconnects[k] = v
	}
	return out
}

// conn is one WebSocket and its reader.
type conn struct {
	id       uint64
	ws       *websocket.Conn
	endpoint string
	opened   time.Time
	last     atomic.Int64 // unix ns of the last frame
	first    chan struct{}
	firstOne sync.Once
	// While a rotation overlaps two connections, the new one's frames are
	// held until the old one has delivered its last: frames of the two
	// interleaved would look like a hole in the ids (the new one ahead)
	// followed by repeats (the old one catching up).
	holdMu  sync.Mutex
	holding bool
	held    []Frame
	done    chan struct{} // closed when the reader stops
	err     error         // why, once done is closed
	reason  atomic.Value  // string: why we closed it ourselves
	cancel  context.CancelFunc
}

func (c *conn) close(reason string) {
	c.reason.CompareAndSwap(nil, reason)
	c.cancel()
	c.ws.Close(websocket.StatusNormalClosure, reason)
}

// endReason is why the connection ended, for the reconnect metric.
func (c *conn) endReason() string {
	if r, ok := c.reason.Load().(string); ok {
		return r
	}
	switch websocket.CloseStatus(c.err) {
	case -1:
		return "connection_error"
	default:
		return "closed_by_server"
	}
}

// Run keeps a connection up until ctx ends, then closes Frames.
func (s *Session) Run(ctx context.Context) error {
	defer close(s.frames)
	defer s.setConnected(false)
	var cur *conn
	defer func() {
		if cur != nil {
			cur.close("shutdown")
			<-cur.done
		}
	}()
	lifetime := time.NewTicker(time.Second)
	defer lifetime.Stop()
	for {
		if cur == nil {
			c, err := s.connect(ctx, false)
			if err != nil {
				return nil // ctx ended
			}
			cur = c
		}
		var rotate <-chan time.Time
		var timer *time.Timer
		if s.cfg.RotateAfter > 0 {
			timer = time.NewTimer(time.Until(cur.opened.Add(s.cfg.RotateAfter)))
			rotate = timer.C
		}
		select {
		case <-ctx.Done():
		case <-cur.done:
			reason := cur.endReason()
			s.countReconnect(reason)
			s.log.Warn("connection ended; reconnecting", "reason", reason, "error", cur.err, "endpoint", cur.endpoint,
				"lived", time.Since(cur.opened).Round(time.Millisecond))
			cur = nil
		case <-rotate:
			cur = s.rotate(ctx, cur)
		case <-lifetime.C:
			s.m.lifetime.Set(time.Since(cur.opened).Seconds())
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Session) countReconnect(reason string) {
	s.setConnected(false)
	s.m.reconnects.WithLabelValues(reason).Inc()
	s.stats.Lock()
	s.stats.Reconnects[reason]++
	s.stats.Unlock()
}

// rotate opens a replacement for old and keeps both until the new one has
// delivered and RotateOverlap has passed since: the old connection may
// still hold frames sent before the new one subscribed, and closing it at
// the new one's first frame would lose them. Repeats the overlap produces
// are dropped downstream by id.
func (s *Session) rotate(ctx context.Context, old *conn) *conn {
	s.log.Info("rotating the connection before the exchange's lifetime limit", "age", time.Since(old.opened).Round(time.Second))
	nc, err := s.connect(ctx, true)
	if err != nil {
		return old
	}
	defer s.release(ctx, nc) // after the old one's last frame, or on failure
	// A market can be quiet: after StaleAfter without a frame the swap goes
	// ahead (the new connection's own stale check then takes over).
	select {
	case <-nc.first:
	case <-time.After(s.cfg.StaleAfter):
	case <-ctx.Done():
		old.close("shutdown")
		<-old.done
		return nc // Run closes it
	case <-nc.done:
		s.log.Warn("the replacement connection failed; keeping the old one", "error", nc.err)
		return old
	case <-old.done:
		return nc // Run notices the new one; the old one's end needs no reconnect
	}
	select {
	case <-time.After(s.cfg.RotateOverlap):
	case <-ctx.Done():
	case <-old.done:
	}
	old.close("rotated")
	<-old.done
	s.m.rotations.WithLabelValues("max_lifetime").Inc()
	s.stats.Lock()
	s.stats.Rotations++
	s.stats.Unlock()
	return nc
}

// connect dials until a connection is up or ctx ends, moving through the
// endpoints, backing off with jitter, and going through the breaker.
func (s *Session) connect(ctx context.Context, hold bool) (*conn, error) {
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		endpoint := s.cfg.Endpoints[s.next%len(s.cfg.Endpoints)]
		c, err := s.breaker.Execute(func() (*conn, error) { return s.dial(ctx, endpoint, hold) })
		if err == nil {
			s.failures = 0
			s.m.reconnectDelay.Set(0)
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := s.backoff()
		switch {
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			// The breaker is open: wait for it instead of dialling.
			wait = max(wait, s.cfg.BackoffMin)
		default:
			s.m.connErrors.WithLabelValues(dialErrorType(err)).Inc()
			s.stats.Lock()
			s.stats.DialFailures++
			s.stats.Unlock()
			s.log.Warn("connection attempt failed", "endpoint", endpoint, "error", err, "retry_in", wait.Round(time.Millisecond))
			s.next++ // fail over
		}
		s.m.reconnectDelay.Set(wait.Seconds())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// backoff is the next delay: exponential from BackoffMin, capped at
// BackoffMax, with full jitter in its upper half so a fleet of clients
// does not reconnect in step.
func (s *Session) backoff() time.Duration {
	s.failures++
	d := s.cfg.BackoffMin << min(s.failures-1, 20)
	if d <= 0 || d > s.cfg.BackoffMax {
		d = s.cfg.BackoffMax
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func dialErrorType(err error) string {
	var se *subscribeError
	switch {
	case errors.As(err, &se):
		return "subscribe"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "dial"
}

type subscribeError struct{ err error }

func (e *subscribeError) Error() string { return "subscribe: " + e.err.Error() }
func (e *subscribeError) Unwrap() error { return e.err }

// dial opens one connection, subscribes, and starts its reader and
// keepers.
func (s *Session) dial(ctx context.Context, endpoint string, hold bool) (*conn, error) {
	u, err := s.proto.URL(endpoint)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: s.cfg.HTTPClient, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	ws.SetReadLimit(4 << 20)
	for _, msg := range s.proto.Subscribe() {
		if err := ws.Write(dctx, websocket.MessageText, msg); err != nil {
			ws.CloseNow()
			return nil, &subscribeError{err}
		}
	}
	cctx, ccancel := context.WithCancel(ctx)
	c := &conn{id: s.ids.Add(1), ws: ws, endpoint: endpoint, opened: time.Now(), first: make(chan struct{}), done: make(chan struct{}), cancel: ccancel, holding: hold}
	c.last.Store(time.Now().UnixNano())
	go s.read(cctx, c)
	go s.keep(cctx, c)
	s.setConnected(true)
	s.stats.Lock()
	s.stats.Connects++
	s.stats.Unlock()
	s.log.Info("connected", "endpoint", endpoint, "url", u, "conn", c.id)
	return c, nil
}

// maxHeld bounds the frames a new connection holds during an overlap; past
// it they flow (the old connection is then far behind and the hole the
// feed sees is real).
const maxHeld = 1 << 20

// release delivers what c held and lets its frames flow from now on.
func (s *Session) release(ctx context.Context, c *conn) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	for _, fr := range c.held {
		select {
		case s.frames <- fr:
		case <-ctx.Done():
		}
	}
	c.held, c.holding = nil, false
}

// read delivers the connection's frames until it fails or is closed.
func (s *Session) read(ctx context.Context, c *conn) {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			c.err = err
			return
		}
		now := time.Now()
		c.last.Store(now.UnixNano())
		s.m.lastMessage.Set(float64(now.UnixNano()) / 1e9)
		c.firstOne.Do(func() { close(c.first) })
		fr := Frame{Data: data, Received: now, Conn: c.id, Endpoint: c.endpoint}
		c.holdMu.Lock()
		if c.holding && len(c.held) < maxHeld {
			c.held = append(c.held, fr)
			c.holdMu.Unlock()
			continue
		}
		c.holdMu.Unlock()
		select {
		case s.frames <- fr:
		case <-ctx.Done():
			c.err = ctx.Err()
			return
		}
	}
}

// keep pings the peer, sends the protocol's keep-alive, and closes the
// connection when the stream goes silent.
func (s *Session) keep(ctx context.Context, c *conn) {
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	stale := time.NewTicker(max(s.cfg.StaleAfter/4, 10*time.Millisecond))
	defer stale.Stop()
	var app <-chan time.Time
	msg, every := s.proto.KeepAlive()
	if msg != nil && every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		app = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.cfg.PongTimeout)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.m.pongTimeouts.Inc()
				s.log.Warn("ping unanswered; closing the connection", "timeout", s.cfg.PongTimeout, "conn", c.id)
				c.close("pong_timeout")
				return
			}
			s.m.lastPong.Set(float64(time.Now().UnixNano()) / 1e9)
		case <-app:
			if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil && ctx.Err() == nil {
				c.close("keepalive_failed")
				return
			}
		case <-stale.C:
			if idle := time.Since(time.Unix(0, c.last.Load())); idle > s.cfg.StaleAfter {
				s.log.Warn("no frame for too long; closing the connection", "idle", idle.Round(time.Millisecond), "conn", c.id)
				c.close("stale")
				return
			}
		}
	}
}
