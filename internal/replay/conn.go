package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// closeGrace bounds a graceful close (flush, close handshake) before the
// connection is cut.
const closeGrace = 5 * time.Second

// client is one WebSocket connection: a writer fed by out (the handler's
// goroutine), a reader for requests, and for Binance a pinger.
type client struct {
	s      *Server
	id     uint64
	remote string
	ws     *websocket.Conn
	kraken bool
	raw    bool // Binance /ws: payloads without the envelope

	out    chan []byte
	ctx    context.Context // cancelled: cut the connection now
	cancel context.CancelFunc
	quit   chan struct{} // closed: flush what is queued, then close with 1001
	qonce  sync.Once
	why    atomic.Pointer[string] // why the connection ended, first reason wins

	bsubs atomic.Pointer[binanceSubs]
	ksubs atomic.Pointer[krakenSubs]
}

// binanceSubs is immutable: the reader swaps in a new one.
type binanceSubs struct {
	list []string        // as the client spelled them, in order
	set  map[string]bool // lowercased
}

// krakenSubs maps channel → symbols; immutable like binanceSubs.
type krakenSubs map[string]map[string]bool

func (c *client) subscribed() bool {
	if c.kraken {
		p := c.ksubs.Load()
		return p != nil && len(*p) > 0
	}
	p := c.bsubs.Load()
	return p != nil && len(p.set) > 0
}

func (c *client) wants(f *Frame) bool {
	if !c.kraken {
		p := c.bsubs.Load()
		return p != nil && p.set[f.key]
	}
	p := c.ksubs.Load()
	if p == nil {
		return false
	}
	syms, ok := (*p)[f.key]
	if !ok {
		return false
	}
	if len(f.Symbols) == 0 {
		return true
	}
	for _, sym := range f.Symbols {
		if syms[sym] {
			return true
		}
	}
	return false
}

func (c *client) end(why string) { c.why.CompareAndSwap(nil, &why) }

// goAway flushes what is queued, then closes with 1001 going away; cut
// after closeGrace if the peer does not cooperate.
func (c *client) goAway() {
	c.end("forced outage")
	c.qonce.Do(func() { close(c.quit) })
	time.AfterFunc(closeGrace, c.cancel)
}

func (s *Server) binanceWS(w http.ResponseWriter, r *http.Request) {
	c := &client{s: s}
	var streams []string
	switch {
	case r.URL.Path == "/stream":
		if v := r.URL.Query().Get("streams"); v != "" {
			streams = strings.Split(v, "/")
		}
	case r.URL.Path == "/ws":
		c.raw = true
	default: // /ws/<stream>[/<stream>...]
		c.raw = true
		streams = strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/ws/"), "/"), "/")
	}
	for _, st := range streams {
		if !strings.Contains(st, "@") {
			http.Error(w, fmt.Sprintf(`{"code":-1100,"msg":"Invalid stream name %q."}`, st), http.StatusBadRequest)
			return
		}
	}
	c.bsubs.Store(c.withStreams(streams, true))
	s.serveWS(w, r, c)
}

func (s *Server) krakenWS(w http.ResponseWriter, r *http.Request) {
	c := &client{s: s, kraken: true}
	c.ksubs.Store(&krakenSubs{})
	s.serveWS(w, r, c)
}

// serveWS runs one connection until it ends or the server closes.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, c *client) {
	if !s.enter() {
		http.Error(w, "replay server closed", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns: []string{"*"}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	ws.SetReadLimit(1 << 16)
	c.ws, c.id, c.remote = ws, s.ids.Add(1), r.RemoteAddr
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	defer c.cancel()
	c.out = make(chan []byte, s.o.ClientBuffer)
	c.quit = make(chan struct{})
	s.accepted.Add(1)
	if c.kraken {
		// The status message opens a Kraken connection, before anything else.
		status := fmt.Appendf(nil, `{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":%d,"system":"online","version":"2.0.8"}]}`,
			rand.Uint64()|1<<63) // beyond int64, as Kraken's are
		if err := ws.Write(c.ctx, websocket.MessageText, status); err != nil {
			ws.CloseNow()
			return
		}
	}
	s.register(c)
	s.log.Info("client connected", "conn", c.id, "remote", c.remote, "path", r.URL.Path)
	var g sync.WaitGroup
	g.Go(c.read)
	if !c.kraken && s.o.PingInterval > 0 {
		g.Go(c.ping)
	}
	c.write()
	s.unregister(c)
	c.cancel()
	ws.CloseNow()
	g.Wait()
	c.end("server closed")
	s.log.Info("client disconnected", "conn", c.id, "remote", c.remote, "reason", *c.why.Load())
}

// write sends queued frames (and Kraken heartbeats) until the connection
// ends.
func (c *client) write() {
	var heartbeat <-chan time.Time
	if c.kraken && c.s.o.Heartbeat > 0 {
		t := time.NewTicker(c.s.o.Heartbeat)
		defer t.Stop()
		heartbeat = t.C
	}
	send := func(msg []byte) bool {
		if err := c.ws.Write(c.ctx, websocket.MessageText, msg); err != nil {
			c.end("write failed")
			return false
		}
		c.s.sent.Add(1)
		return true
	}
	for {
		select {
		case msg := <-c.out:
			if !send(msg) {
				return
			}
		case <-heartbeat:
			if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(`{"channel":"heartbeat"}`)); err != nil {
				c.end("write failed")
				return
			}
		case <-c.quit:
			// What was queued before the outage still goes out.
			for len(c.out) > 0 {
				if !send(<-c.out) {
					return
				}
			}
			c.ws.Close(websocket.StatusGoingAway, "replay: forced disconnect")
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// read answers the client's requests until the connection ends.
func (c *client) read() {
	defer c.cancel()
	for {
		_, msg, err := c.ws.Read(c.ctx)
		if err != nil {
			if websocket.CloseStatus(err) != -1 {
				c.end("client closed: " + websocket.CloseStatus(err).String())
			} else {
				c.end("connection lost")
			}
			return
		}
		var reply [][]byte
		if c.kraken {
			reply = c.krakenRequest(msg, time.Now())
		} else {
			reply = c.binanceRequest(msg)
		}
		for _, m := range reply {
			if c.ws.Write(c.ctx, websocket.MessageText, m) != nil {
				return
			}
		}
	}
}

// ping pings as Binance does; an unanswered ping cuts the connection.
func (c *client) ping() {
	t := time.NewTicker(c.s.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.s.o.PongTimeout)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				c.s.pongTimeouts.Add(1)
				c.end("pong timeout")
				c.s.log.Warn("ping unanswered; closing the connection", "conn", c.id, "remote", c.remote, "timeout", c.s.o.PongTimeout)
				c.s.unregister(c)
				c.cancel()
			}
			return
		}
	}
}

// withStreams is the subscription set with streams added or removed.
func (c *client) withStreams(streams []string, add bool) *binanceSubs {
	n := &binanceSubs{set: map[string]bool{}}
	if old := c.bsubs.Load(); old != nil {
		n.list = slices.Clone(old.list)
		for k := range old.set {
			n.set[k] = true
		}
	}
	for _, st := range streams {
		k := strings.ToLower(st)
		switch {
		case add && !n.set[k]:
			n.set[k] = true
			n.list = append(n.list, st)
		case !add && n.set[k]:
			delete(n.set, k)
			n.list = slices.DeleteFunc(n.list, func(x string) bool { return strings.ToLower(x) == k })
		}
	}
	return n
}

var binanceInvalid = []byte(`{"error":{"code":2,"msg":"Invalid request"},"id":null}`)

// binanceRequest answers SUBSCRIBE, UNSUBSCRIBE and LIST_SUBSCRIPTIONS.
func (c *client) binanceRequest(msg []byte) [][]byte {
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		ID     json.RawMessage `json:"id"`
	}
	if json.Unmarshal(msg, &req) != nil {
		return [][]byte{binanceInvalid}
	}
	id := []byte("null")
	if len(req.ID) > 0 {
		if _, ok := integer(req.ID); !ok && req.ID[0] != '"' && string(req.ID) != "null" {
			return [][]byte{binanceInvalid}
		}
		id = req.ID
	}
	switch strings.ToUpper(req.Method) {
	case "SUBSCRIBE", "UNSUBSCRIBE":
		var streams []string
		if json.Unmarshal(req.Params, &streams) != nil || len(streams) == 0 ||
			slices.ContainsFunc(streams, func(st string) bool { return !strings.Contains(st, "@") }) {
			return [][]byte{binanceInvalid}
		}
		ack := fmt.Appendf(nil, `{"result":null,"id":%s}`, id)
		if strings.ToUpper(req.Method) == "UNSUBSCRIBE" {
			c.bsubs.Store(c.withStreams(streams, false))
			return [][]byte{ack}
		}
		// Answer before the first frame of the new streams, as Binance does.
		if c.ws.Write(c.ctx, websocket.MessageText, ack) != nil {
			return nil
		}
		c.bsubs.Store(c.withStreams(streams, true))
		c.s.log.Info("client subscribed", "conn", c.id, "streams", streams)
		c.s.subscribed()
		return nil
	case "LIST_SUBSCRIPTIONS":
		list, _ := json.Marshal(c.bsubs.Load().list)
		if string(list) == "null" {
			list = []byte("[]")
		}
		return [][]byte{fmt.Appendf(nil, `{"result":%s,"id":%s}`, list, id)}
	}
	return [][]byte{binanceInvalid}
}

// krakenChannels can be subscribed; a capture may have frames of only some.
var krakenChannels = map[string]bool{"trade": true, "ticker": true, "book": true, "ohlc": true}

type krakenReply struct {
	Error   string          `json:"error,omitempty"`
	Method  string          `json:"method,omitempty"`
	ReqID   json.RawMessage `json:"req_id,omitempty"`
	Result  *krakenResult   `json:"result,omitempty"`
	Success *bool           `json:"success,omitempty"`
	TimeIn  string          `json:"time_in"`
	TimeOut string          `json:"time_out"`
}

type krakenResult struct {
	Channel  string `json:"channel"`
	Snapshot *bool  `json:"snapshot,omitempty"`
	Symbol   string `json:"symbol"`
}

func krakenTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// krakenRequest answers subscribe, unsubscribe and ping.
func (c *client) krakenRequest(msg []byte, in time.Time) [][]byte {
	var req struct {
		Method string          `json:"method"`
		ReqID  json.RawMessage `json:"req_id"`
		Params struct {
			Channel  string   `json:"channel"`
			Symbol   []string `json:"symbol"`
			Snapshot *bool    `json:"snapshot"`
		} `json:"params"`
	}
	reply := func(r krakenReply) []byte {
		r.ReqID, r.TimeIn, r.TimeOut = req.ReqID, krakenTime(in), krakenTime(time.Now())
		b, _ := json.Marshal(r)
		return b
	}
	no := false
	fail := func(method, why string) [][]byte {
		return [][]byte{reply(krakenReply{Error: why, Method: method, Success: &no})}
	}
	if err := json.Unmarshal(msg, &req); err != nil {
		req.ReqID = nil
		return fail("", "Malformed request")
	}
	if _, ok := integer(req.ReqID); len(req.ReqID) > 0 && !ok {
		req.ReqID = nil
		return fail(req.Method, "Malformed request: req_id must be an integer")
	}
	switch req.Method {
	case "ping":
		return [][]byte{reply(krakenReply{Method: "pong"})}
	case "subscribe", "unsubscribe":
	default:
		return fail(req.Method, "Method not found")
	}
	p := req.Params
	switch {
	case !krakenChannels[p.Channel]:
		return fail(req.Method, fmt.Sprintf("Channel %s not found", p.Channel))
	case len(p.Symbol) == 0:
		return fail(req.Method, "Missing field 'symbol'")
	}
	for _, sym := range p.Symbol {
		if !strings.Contains(sym, "/") {
			return fail(req.Method, fmt.Sprintf("Currency pair not supported %s", sym))
		}
	}
	yes := true
	var acks [][]byte
	for _, sym := range p.Symbol {
		acks = append(acks, reply(krakenReply{Method: req.Method, Success: &yes,
			Result: &krakenResult{Channel: p.Channel, Snapshot: p.Snapshot, Symbol: sym}}))
	}
	next := krakenSubs{}
	for ch, syms := range *c.ksubs.Load() {
		next[ch] = syms
	}
	set := map[string]bool{}
	for sym := range next[p.Channel] {
		set[sym] = true
	}
	for _, sym := range p.Symbol {
		set[sym] = req.Method == "subscribe"
		if !set[sym] {
			delete(set, sym)
		}
	}
	if len(set) > 0 {
		next[p.Channel] = set
	} else {
		delete(next, p.Channel)
	}
	if req.Method == "unsubscribe" {
		c.ksubs.Store(&next)
		return acks
	}
	// The acks come before the first frame, as on Kraken.
	for _, a := range acks {
		if c.ws.Write(c.ctx, websocket.MessageText, a) != nil {
			return nil
		}
	}
	c.ksubs.Store(&next)
	c.s.log.Info("client subscribed", "conn", c.id, "channel", p.Channel, "symbols", p.Symbol)
	c.s.subscribed()
	return nil
}
