// Package replay serves recorded exchange WebSocket frames over a local
// WebSocket that speaks the exchange's own protocol (Binance spot streams
// and REST trades, Kraken v2), so the live feeds can be tested end to end
// and demos can run without a network.
//
// A capture plays once on one shared timeline, as a real exchange does: a
// connection receives what is played while it is connected, nothing from
// before. Forced outages, looping with continued trade ids, and slow
// consumer drops reproduce what a feed has to survive in production.
package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exchanges a capture can hold.
const (
	Binance = "BINANCE"
	Kraken  = "KRAKEN"
)

// Frame is one recorded message. Data is shared by every connection it is
// sent to: treat it as read-only.
type Frame struct {
	// At is the time the frame was recorded (unix ns); it places the frame
	// on the replay timeline. Kraken captures without receive times use the
	// trade time.
	At int64
	// Data is the frame as a combined Binance stream sends it (the
	// {"stream":...,"data":...} envelope, built at load time when the
	// capture held only the payload), or the Kraken message as recorded.
	Data []byte
	// Stream is the Binance stream name as recorded ("btcusdt@bookTicker"),
	// or the Kraken channel ("trade").
	Stream string
	// Symbols are the Kraken data symbols ("BTC/USDT"), nil for Binance.
	Symbols []string

	key     string   // what subscriptions match: lowercased Binance stream, Kraken channel
	payload [2]int32 // Binance: the envelope's data within Data
	ids     []idPos  // id numbers shifted when the capture loops
	trade   *trade   // Binance @trade: what the REST endpoint answers
}

// Payload is what a raw Binance stream (/ws) sends: the envelope's data.
// For Kraken it is the whole message.
func (f *Frame) Payload() []byte {
	if f.payload[1] == 0 {
		return f.Data
	}
	return f.Data[f.payload[0]:f.payload[1]]
}

// idPos locates one id number inside Frame.Data, so a later loop can
// splice in a shifted id without decoding the frame again.
type idPos struct {
	start, end int32
	series     int32 // index into Capture.series
	id         int64
}

// series is one id sequence (one kind of id of one symbol): a loop shifts
// its ids by max-min+1 so they continue instead of repeating.
type series struct {
	name     string
	min, max int64
}

// trade is a Binance @trade frame's fields, for /api/v3/historicalTrades.
type trade struct {
	symbol     string // upper case
	id         int64
	price, qty string // as in the frame
	time       int64  // T, ms
	buyerMaker bool
	bestMatch  bool
	frame      int // index in Capture.Frames
}

// Capture is a loaded recording: the frames of one exchange in time order.
type Capture struct {
	Exchange string // Binance or Kraken
	Frames   []Frame
	// Skipped counts lines that are not stream frames: REST snapshots,
	// subscription answers, recorded heartbeats and status messages.
	Skipped int

	series []series
	trades map[string][]*trade // Binance @trade frames by upper-case symbol, by id
}

// Load reads captures (gzip or not, told by the magic bytes) in the order
// given and sorts their frames by time, stably, so several instruments
// interleave as recorded and files of consecutive days join up. Formats:
//
//	<receive time ns> <frame>          Binance recorder (hftbacktest)
//	<receive time s.frac>: <frame>     cryptofeed
//	<frame>                            JSON lines (Kraken v2: time from data[].timestamp)
//
// Binance frames without the combined-stream envelope get one, with the
// stream named after the payload. All files must be of one exchange.
func Load(paths ...string) (*Capture, error) {
	if len(paths) == 0 {
		return nil, errors.New("replay: no capture file")
	}
	l := &loader{c: &Capture{}, intern: map[string]string{}, seriesIdx: map[string]int32{}}
	for _, p := range paths {
		if err := l.file(p); err != nil {
			return nil, err
		}
	}
	c := l.c
	if len(c.Frames) == 0 {
		return nil, fmt.Errorf("replay: %s: no frames", strings.Join(paths, ", "))
	}
	slices.SortStableFunc(c.Frames, func(a, b Frame) int { return cmp.Compare(a.At, b.At) })
	c.trades = map[string][]*trade{}
	for i := range c.Frames {
		if t := c.Frames[i].trade; t != nil {
			t.frame = i
			c.trades[t.symbol] = append(c.trades[t.symbol], t)
		}
	}
	for _, ts := range c.trades {
		slices.SortStableFunc(ts, func(a, b *trade) int { return cmp.Compare(a.id, b.id) })
	}
	return c, nil
}

type loader struct {
	c         *Capture
	intern    map[string]string
	seriesIdx map[string]int32
	exchFile  string // where the exchange was decided, for the mixing error
}

func (l *loader) file(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var r io.Reader = br
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("replay: %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	// One buffer for the whole file: frames are slices of it, so loading
	// costs one allocation per file instead of one per line.
	buf, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("replay: %s: %w", path, err)
	}
	var prev int64 // time of the previous frame, for lines without one
	for n := 1; len(buf) > 0; n++ {
		line := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		at, err := l.line(line, prev)
		if err != nil {
			return fmt.Errorf("replay: %s:%d: %w", path, n, err)
		}
		if at != nil {
			prev = *at
		}
		if l.exchFile == "" && l.c.Exchange != "" {
			l.exchFile = fmt.Sprintf("%s:%d", path, n)
		}
	}
	return nil
}

// line adds one line's frame, if it is one, and returns its time.
func (l *loader) line(line []byte, prev int64) (*int64, error) {
	at, hasAt := prev, false
	if c := line[0]; c >= '0' && c <= '9' {
		i := 0
		for i < len(line) && (line[i] >= '0' && line[i] <= '9' || line[i] == '.') {
			i++
		}
		num, rest := line[:i], line[i:]
		var err error
		switch {
		case len(rest) > 0 && rest[0] == ':':
			at, err = parseSeconds(num)
			rest = rest[1:]
		case len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t'):
			if bytes.IndexByte(num, '.') >= 0 {
				at, err = parseSeconds(num)
			} else {
				at, err = strconv.ParseInt(string(num), 10, 64)
			}
		default:
			err = errors.New("expected `<receive time> <frame>`")
		}
		if err != nil {
			return nil, fmt.Errorf("receive time %q: %w", num, err)
		}
		hasAt = true
		line = bytes.TrimSpace(rest)
	}
	if len(line) == 0 || line[0] != '{' {
		return nil, errors.New("expected a JSON object frame")
	}
	if !json.Valid(line) {
		return nil, fmt.Errorf("invalid JSON frame: %.80s", line)
	}
	var stream, channel, data, e, s []byte
	var hasStream, hasChannel, hasData bool
	members(line, func(k []byte, v []byte) {
		switch string(k) {
		case "stream":
			stream, hasStream = v, true
		case "channel":
			channel, hasChannel = v, true
		case "data":
			data, hasData = v, true
		case "e":
			e = v
		case "s":
			s = v
		}
	})
	switch {
	case hasStream:
		name, ok := str(stream)
		if !ok || !hasData {
			return nil, errors.New(`binance frame: "stream" must be a string, with "data"`)
		}
		return &at, l.binance(line, name, data, at)
	case hasChannel:
		return l.kraken(line, channel, data, at, hasAt)
	case e != nil && s != nil:
		// A raw payload: name its stream after the event.
		ev, _ := str(e)
		sym, _ := str(s)
		suffix := "@" + ev
		if ev == "depthUpdate" {
			suffix = "@depth"
		}
		return &at, l.binancePayload(line, strings.ToLower(sym)+suffix, at)
	case s != nil && hasKeys(line, "u", "b", "a"):
		sym, _ := str(s)
		return &at, l.binancePayload(line, strings.ToLower(sym)+"@bookTicker", at)
	}
	l.c.Skipped++ // REST snapshot, subscription answer, ...
	return nil, nil
}

func (l *loader) exchange(x string) error {
	if l.c.Exchange == "" {
		l.c.Exchange = x
		return nil
	}
	if l.c.Exchange != x {
		return fmt.Errorf("a %s frame in a %s capture (first frame at %s): a capture holds one exchange",
			strings.ToLower(x), strings.ToLower(l.c.Exchange), l.exchFile)
	}
	return nil
}

// binancePayload wraps a payload in the combined-stream envelope.
func (l *loader) binancePayload(payload []byte, stream string, at int64) error {
	env := make([]byte, 0, len(payload)+len(stream)+22)
	env = append(env, `{"stream":`...)
	env = strconv.AppendQuote(env, stream)
	env = append(env, `,"data":`...)
	env = append(env, payload...)
	env = append(env, '}')
	return l.binance(env, stream, env[len(env)-1-len(payload):len(env)-1], at)
}

// binance adds an envelope frame; data is a sub-slice of env.
func (l *loader) binance(env []byte, stream string, data []byte, at int64) error {
	if err := l.exchange(Binance); err != nil {
		return err
	}
	at0 := offset(env, data)
	f := Frame{At: at, Data: env, Stream: l.str(stream), key: l.str(strings.ToLower(stream)),
		payload: [2]int32{at0, at0 + int32(len(data))}}
	sym, kind, _ := strings.Cut(f.key, "@")
	idKey, ok := map[string]string{"trade": "t", "aggtrade": "a", "bookticker": "u"}[kind]
	if !ok {
		idKey = "\x00" // matches no key
	}
	var t trade
	t.bestMatch = true // M is absent from some documents' examples
	nids := 0
	members(data, func(k, v []byte) {
		switch string(k) {
		case "s":
			if s, ok := str(v); ok {
				sym = strings.ToLower(s)
			}
		case idKey:
			if id, ok := integer(v); ok {
				s := offset(env, v)
				f.ids = append(f.ids, idPos{start: s, end: s + int32(len(v)), id: id})
				t.id = id
				nids++
			}
		case "p":
			t.price, _ = str(v)
		case "q":
			t.qty, _ = str(v)
		case "T":
			t.time, _ = integer(v)
		case "m":
			t.buyerMaker = string(v) == "true"
		case "M":
			t.bestMatch = string(v) != "false"
		}
	})
	if nids != 1 {
		f.ids = nil // not a frame of the kind its stream says: leave it alone
	} else {
		f.ids[0].series = l.series(idKey+":"+strings.ToUpper(sym), f.ids[0].id)
	}
	if kind == "trade" && nids == 1 && t.price != "" && t.qty != "" {
		t.symbol = strings.ToUpper(sym)
		f.trade = &t
	}
	l.c.Frames = append(l.c.Frames, f)
	return nil
}

// kraken adds a Kraken v2 message; the time is the receive time if the line
// had one, else the last data[].timestamp, else the previous frame's.
func (l *loader) kraken(msg, channel, data []byte, at int64, hasAt bool) (*int64, error) {
	ch, ok := str(channel)
	if !ok {
		return nil, errors.New(`kraken message: "channel" must be a string`)
	}
	if err := l.exchange(Kraken); err != nil {
		return nil, err
	}
	if ch == "heartbeat" || ch == "status" {
		l.c.Skipped++ // the server sends its own
		return nil, nil
	}
	f := Frame{Data: msg, Stream: l.str(ch), key: l.str(ch)}
	var last []byte
	if len(data) > 0 && data[0] == '[' {
		elements(data, func(el []byte) {
			if el[0] != '{' {
				return
			}
			var sym string
			var tid []byte
			members(el, func(k, v []byte) {
				switch string(k) {
				case "symbol":
					sym, _ = str(v)
				case "trade_id":
					tid = v
				case "timestamp":
					last = v
				}
			})
			if sym != "" && !slices.Contains(f.Symbols, sym) {
				f.Symbols = append(f.Symbols, l.str(sym))
			}
			if id, ok := integer(tid); ok && ch == "trade" && sym != "" {
				s := offset(msg, tid)
				f.ids = append(f.ids, idPos{start: s, end: s + int32(len(tid)), series: l.series("trade_id:"+sym, id), id: id})
			}
		})
	}
	if !hasAt && last != nil {
		ts, ok := str(last)
		t, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			return nil, fmt.Errorf("kraken timestamp %s: not RFC 3339", last)
		}
		at = t.UnixNano()
	}
	f.At = at
	l.c.Frames = append(l.c.Frames, f)
	return &at, nil
}

func (l *loader) str(s string) string {
	if v, ok := l.intern[s]; ok {
		return v
	}
	l.intern[s] = s
	return s
}

func (l *loader) series(name string, id int64) int32 {
	i, ok := l.seriesIdx[name]
	if !ok {
		i = int32(len(l.c.series))
		l.seriesIdx[name] = i
		l.c.series = append(l.c.series, series{name: name, min: id, max: id})
	}
	s := &l.c.series[i]
	s.min, s.max = min(s.min, id), max(s.max, id)
	return i
}

// parseSeconds reads "1633998291.7396579" exactly (no float rounding).
func parseSeconds(b []byte) (int64, error) {
	whole, frac, _ := bytes.Cut(b, []byte{'.'})
	sec, err := strconv.ParseInt(string(whole), 10, 64)
	if err != nil || bytes.IndexByte(frac, '.') >= 0 {
		return 0, errors.New("not seconds")
	}
	var ns int64
	for i := range 9 {
		ns *= 10
		if i < len(frac) {
			ns += int64(frac[i] - '0')
		}
	}
	return sec*1e9 + ns, nil
}
