package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape a replay. Zero values take the defaults.
type Options struct {
	// Speed 0 plays as fast as the slowest connected client takes frames,
	// and waits while no client is subscribed, so a test loses nothing.
	// Speed > 0 plays at the recorded pace divided by Speed, whoever is
	// connected, and drops a client that falls ClientBuffer frames behind,
	// as Binance drops slow consumers.
	Speed float64
	// PingInterval is how often a Binance connection is pinged (default
	// 20 s, Binance's); a ping unanswered within PongTimeout (default 60 s)
	// closes the connection. A negative PingInterval disables pings.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// Heartbeat is how often a Kraken connection gets {"channel":"heartbeat"}
	// (default 1 s, Kraken's). Negative disables heartbeats.
	Heartbeat time.Duration
	// DisconnectAt are positions on the replay timeline (frame i of loop l
	// is at l*len(Frames)+i). When the cursor reaches one, every connection
	// is closed with 1001 going away after what was already queued for it,
	// and the OutageFrames frames from there on are played to nobody: lost
	// to clients, as on a real exchange while a client is disconnected, but
	// visible to the REST endpoint.
	DisconnectAt []int
	OutageFrames int
	// Loops plays the capture this many times (0 or 1: once; < 0: forever).
	// Later loops shift the ids (Binance trade t, aggTrade a, bookTicker u;
	// Kraken trade_id) by max-min+1 per symbol and loop, so a client sees
	// one contiguous sequence that never repeats. Timestamps are not shifted.
	Loops int
	// ClientBuffer is how many frames may wait for one connection (default
	// 65536).
	ClientBuffer int
	Logger       *slog.Logger
	// Mount adds routes to the server's listener, by pattern (k2
	// replay-server serves /health and /metrics beside the exchange's).
	Mount map[string]http.Handler
}

// Stats count what the server did.
type Stats struct {
	Played       int64 `json:"played"`        // timeline positions the cursor passed, outage frames included
	Sent         int64 `json:"sent"`          // frames written, summed over connections
	Accepted     int64 `json:"accepted"`      // WebSocket connections accepted
	Clients      int   `json:"clients"`       // connections receiving frames now
	Outages      int64 `json:"outages"`       // DisconnectAt points reached
	Forced       int64 `json:"forced"`        // connections closed by outages
	SlowDropped  int64 `json:"slow_dropped"`  // connections dropped for falling behind
	PongTimeouts int64 `json:"pong_timeouts"` // connections closed for not answering a ping
	REST         int64 `json:"rest"`          // REST requests
}

// Server plays one capture to every connection on one shared timeline.
type Server struct {
	c          *Capture
	o          Options
	log        *slog.Logger
	spans      []int64 // per id series: the shift of one loop
	disconnect map[int64]bool

	ctx    context.Context // ends on Close; every connection's derives from it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the player and every connection handler

	mu      sync.Mutex
	closed  bool
	wake    chan struct{} // closed and replaced when clients or subscriptions change
	servers []*http.Server

	clients   atomic.Pointer[[]*client] // copy on write, under mu
	started   chan struct{}             // the first subscription
	startOnce sync.Once
	done      chan struct{}
	played    atomic.Int64
	ids       atomic.Uint64

	sent, accepted, outages, forced, slow, pongTimeouts, rest atomic.Int64
}

// New prepares a server and its player, which waits for the first
// subscription. Close releases it.
func New(c *Capture, o Options) *Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.PingInterval, 20*time.Second)
	def(&o.PongTimeout, 60*time.Second)
	def(&o.Heartbeat, time.Second)
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = 1 << 16
	}
	if o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		o.Speed = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{c: c, o: o, log: o.Logger.With("exchange", c.Exchange), disconnect: map[int64]bool{},
		wake: make(chan struct{}), started: make(chan struct{}), done: make(chan struct{})}
	for _, sr := range c.series {
		s.spans = append(s.spans, sr.max-sr.min+1)
	}
	for _, at := range o.DisconnectAt {
		if at >= 0 {
			s.disconnect[int64(at)] = true
		}
	}
	s.clients.Store(&[]*client{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.play()
	return s
}

// Handler serves the exchange's endpoints: for Binance /stream, /ws,
// /ws/<stream>, /api/v3/historicalTrades and /api/v3/ping; for Kraken /v2
// and /. Anything else is 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	switch s.c.Exchange {
	case Binance:
		mux.HandleFunc("GET /stream", s.binanceWS)
		mux.HandleFunc("GET /ws", s.binanceWS)
		mux.HandleFunc("GET /ws/", s.binanceWS)
		mux.HandleFunc("GET /api/v3/historicalTrades", s.historicalTrades)
		mux.HandleFunc("GET /api/v3/ping", func(w http.ResponseWriter, _ *http.Request) {
			s.rest.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{}"))
		})
	case Kraken:
		mux.HandleFunc("GET /v2", s.krakenWS)
		mux.HandleFunc("GET /{$}", s.krakenWS)
	}
	for pattern, h := range s.o.Mount {
		mux.Handle(pattern, h)
	}
	return mux
}

// Serve answers on l until Close; it returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ListenAndServe listens on addr (host:port) and serves until Close.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Close stops the player, closes every connection and listener, and
// waits for the server's goroutines to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	s.cancel()
	var err error
	for _, hs := range servers {
		err = errors.Join(err, hs.Close())
	}
	s.wg.Wait()
	return err
}

// Done is closed once the cursor has played the capture (every loop).
// Frames may still be queued to connections then; connections stay open
// after it, with their pings and heartbeats, until they leave or Close.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Played: s.played.Load(), Sent: s.sent.Load(), Accepted: s.accepted.Load(),
		Clients: len(*s.clients.Load()), Outages: s.outages.Load(), Forced: s.forced.Load(),
		SlowDropped: s.slow.Load(), PongTimeouts: s.pongTimeouts.Load(), REST: s.rest.Load(),
	}
}

// ParseSpeed reads a replay speed: "max" or "0" (as fast as clients take
// frames), "10x", "10", "0.5x".
func ParseSpeed(v string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	if t == "max" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(t, "x"), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || t == "" || t == "x" {
		return 0, fmt.Errorf("replay speed %q: want max, or a non-negative factor such as 10x or 0.5x", v)
	}
	return f, nil
}

// enter admits a connection handler unless the server is closing, so the
// WaitGroup never grows once Close waits on it.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) register(c *client) {
	s.mu.Lock()
	list := append(slices.Clone(*s.clients.Load()), c)
	s.clients.Store(&list)
	s.changedLocked()
	s.mu.Unlock()
	if c.subscribed() {
		s.subscribed()
	}
}

// unregister stops deliveries to c; it reports whether c was registered.
func (s *Server) unregister(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.clients.Load()
	i := slices.Index(old, c)
	if i < 0 {
		return false
	}
	list := slices.Delete(slices.Clone(old), i, i+1)
	s.clients.Store(&list)
	s.changedLocked()
	return true
}

func (s *Server) changedLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// subscribed is called when a connection subscribes: it starts playback
// and wakes a player waiting for a subscriber.
func (s *Server) subscribed() {
	s.startOnce.Do(func() { close(s.started) })
	s.mu.Lock()
	s.changedLocked()
	s.mu.Unlock()
}

// play moves the one cursor over the timeline.
func (s *Server) play() {
	defer s.wg.Done()
	select {
	case <-s.started:
	case <-s.ctx.Done():
		return
	}
	frames := s.c.Frames
	n := int64(len(frames))
	loops := int64(s.o.Loops)
	if loops == 0 {
		loops = 1
	}
	first, span := frames[0].At, frames[n-1].At-frames[0].At
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.log.Info("playback started", "frames", n, "loops", loops, "speed", s.o.Speed)
	outageEnd := int64(-1)
	for pos := int64(0); loops < 0 || pos < loops*n; pos++ {
		loop, f := pos/n, &frames[pos%n]
		if s.o.Speed > 0 {
			due := start.Add(time.Duration(float64(loop*span+f.At-first) / s.o.Speed))
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-s.ctx.Done():
					return
				}
			}
		}
		if s.disconnect[pos] {
			s.outage(pos)
			outageEnd = pos + int64(s.o.OutageFrames)
		}
		if pos < outageEnd {
			s.played.Store(pos + 1) // played to nobody
			continue
		}
		if s.o.Speed == 0 && !s.waitSubscriber() {
			return
		}
		s.played.Store(pos + 1)
		if !s.deliver(f, loop) {
			return
		}
	}
	s.log.Info("capture played", "frames", loops*n, "elapsed", time.Since(start).Round(time.Millisecond))
	close(s.done)
}

// waitSubscriber holds the cursor (at Speed 0) until a connection has
// subscribed to something; false when the server closes.
func (s *Server) waitSubscriber() bool {
	for {
		if slices.ContainsFunc(*s.clients.Load(), (*client).subscribed) {
			return true
		}
		s.mu.Lock()
		wake := s.wake
		s.mu.Unlock()
		// Check again: a change after the first check has closed wake.
		if slices.ContainsFunc(*s.clients.Load(), (*client).subscribed) {
			return true
		}
		select {
		case <-wake:
		case <-s.ctx.Done():
			return false
		}
	}
}

// deliver queues f to every connection that subscribed to it. At Speed 0
// it waits for room; otherwise a connection without room is dropped.
func (s *Server) deliver(f *Frame, loop int64) bool {
	var data []byte
	var payload [2]int32
	for _, c := range *s.clients.Load() {
		if !c.wants(f) {
			continue
		}
		if data == nil {
			data, payload = s.frameBytes(f, loop)
		}
		msg := data
		if c.raw {
			msg = data[payload[0]:payload[1]]
		}
		if s.o.Speed == 0 {
			select {
			case c.out <- msg:
			case <-c.quit:
			case <-c.ctx.Done():
			case <-s.ctx.Done():
				return false
			}
			continue
		}
		select {
		case c.out <- msg:
		default:
			if s.unregister(c) {
				s.slow.Add(1)
				c.end("slow consumer")
				s.log.Warn("dropping a slow client", "conn", c.id, "remote", c.remote, "buffer", s.o.ClientBuffer)
				c.cancel()
			}
		}
	}
	return true
}

// frameBytes is f as loop plays it: the recorded bytes in the first loop,
// later with the ids spliced in shifted (no JSON re-encoding).
func (s *Server) frameBytes(f *Frame, loop int64) ([]byte, [2]int32) {
	if loop == 0 || len(f.ids) == 0 {
		return f.Data, f.payload
	}
	out := make([]byte, 0, len(f.Data)+4*len(f.ids))
	payload := f.payload
	prev := int32(0)
	for _, p := range f.ids {
		out = append(out, f.Data[prev:p.start]...)
		before := len(out)
		out = strconv.AppendInt(out, p.id+loop*s.spans[p.series], 10)
		delta := int32(len(out)-before) - (p.end - p.start)
		if p.start < f.payload[0] {
			payload[0] += delta
		}
		if p.start < f.payload[1] {
			payload[1] += delta
		}
		prev = p.end
	}
	out = append(out, f.Data[prev:]...)
	return out, payload
}

// outage closes every connection: a forced disconnect.
func (s *Server) outage(pos int64) {
	list := *s.clients.Load()
	s.outages.Add(1)
	s.log.Warn("forced outage: closing every connection", "position", pos, "connections", len(list), "lost_frames", s.o.OutageFrames)
	for _, c := range list {
		if s.unregister(c) {
			s.forced.Add(1)
			c.goAway()
		}
	}
}
