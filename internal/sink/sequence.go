package sink

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
)

// SeqEvent classifies a record's exchange sequence number against the last
// one of its (exchange, symbol).
type SeqEvent int

const (
	SeqOK         SeqEvent = iota // the next number, or the first seen
	SeqSmallGap                   // numbers skipped, at most LargeGap
	SeqLargeGap                   // more than LargeGap numbers skipped
	SeqReset                      // the sequence started again after a pause: a new session
	SeqOutOfOrder                 // not after the last number, without a pause
)

func (e SeqEvent) String() string {
	return [...]string{"ok", "small_gap", "large_gap", "reset", "out_of_order"}[e]
}

// seqMetrics count what a Tracker finds.
type seqMetrics struct {
	gaps       *prometheus.CounterVec // exchange, symbol, severity
	resets     *prometheus.CounterVec // exchange
	outOfOrder *prometheus.CounterVec // exchange
}

func newSeqMetrics(f ops.Metrics) *seqMetrics {
	return &seqMetrics{
		gaps:       f.CounterVec("k2_sequence_gaps_detected_total", "Exchange sequence gaps by symbol and severity (small, large).", "exchange", "symbol", "severity"),
		resets:     f.CounterVec("k2_sequence_resets_detected_total", "Exchange sequences that restarted after a pause.", "exchange"),
		outOfOrder: f.CounterVec("k2_out_of_order_messages_total", "Records whose sequence number is not after the last one.", "exchange"),
	}
}

func (m *seqMetrics) initExchange(exchange string) {
	m.resets.WithLabelValues(exchange)
	m.outOfOrder.WithLabelValues(exchange)
}

// Tracker follows exchange sequence numbers per (exchange, symbol).
//
// The original nested its reset test inside the "number jumped ahead"
// branch, where "much smaller than the last" can never hold, so resets were
// reported as out-of-order. Here a number that is not after the last one is
// a reset when the stream paused for longer than ResetAfter (an ASX
// trading day numbers its trades from 1 again the next morning), and
// out-of-order otherwise.
type Tracker struct {
	LargeGap   int64         // gaps above this are large (default 10)
	ResetAfter time.Duration // a pause this long makes a restart a reset (default 1h)

	mu    sync.Mutex
	state map[seqKey]*seqState
	named map[seqKey]bool // the symbols named in gap labels, kept across Reset
	m     *seqMetrics
}

type seqKey struct{ exchange, symbol string }

type seqState struct {
	last int64
	at   md.Timestamp
}

// maxGapSymbols bounds the symbols a tracker counts gaps of by name (a
// whole exchange's listing fits); the others count as otherSymbols.
const (
	maxGapSymbols = 5000
	otherSymbols  = "_other"
)

// NewTracker returns a tracker with the original's thresholds, counting
// in reg (nil: a registry of its own).
func NewTracker(reg prometheus.Registerer) *Tracker {
	return newTracker(newSeqMetrics(ops.NewMetrics(reg)))
}

func newTracker(m *seqMetrics) *Tracker {
	return &Tracker{LargeGap: 10, ResetAfter: time.Hour, state: map[seqKey]*seqState{}, named: map[seqKey]bool{}, m: m}
}

// label is the symbol label k's gaps are counted under. The symbols come
// from the records, not from configuration: past maxGapSymbols a producer
// of made-up symbols would grow the family without end, so the rest share
// one series (and are not remembered: the map is full for good).
func (t *Tracker) label(k seqKey) string {
	if !t.named[k] {
		if len(t.named) >= maxGapSymbols {
			return otherSymbols
		}
		t.named[k] = true
	}
	return k.symbol
}

// Check classifies seq at time ts and counts anything but OK. The state
// keeps the highest number seen, so one late record is one event.
func (t *Tracker) Check(exchange, symbol string, seq int64, ts md.Timestamp) SeqEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := seqKey{exchange, symbol}
	s, ok := t.state[k]
	if !ok {
		// Kept for good: not the decoded record's text, which may share
		// a block with many other records (codec.Arena).
		exchange, symbol = strings.Clone(exchange), strings.Clone(symbol)
		k = seqKey{exchange, symbol}
		t.state[k] = &seqState{last: seq, at: ts}
		// A symbol's gap series exist from its first record on.
		label := t.label(k)
		t.m.gaps.WithLabelValues(exchange, label, "small")
		t.m.gaps.WithLabelValues(exchange, label, "large")
		return SeqOK
	}
	pause := time.Duration(ts-s.at) * time.Microsecond
	switch {
	case seq == s.last+1:
		s.last, s.at = seq, ts
		return SeqOK
	case seq > s.last+1:
		gap := seq - s.last - 1
		s.last, s.at = seq, ts
		if gap > t.LargeGap {
			t.m.gaps.WithLabelValues(exchange, t.label(k), "large").Inc()
			return SeqLargeGap
		}
		t.m.gaps.WithLabelValues(exchange, t.label(k), "small").Inc()
		return SeqSmallGap
	case pause > t.ResetAfter:
		s.last, s.at = seq, ts
		t.m.resets.WithLabelValues(exchange).Inc()
		return SeqReset
	}
	t.m.outOfOrder.WithLabelValues(exchange).Inc()
	return SeqOutOfOrder
}

// Reset forgets every sequence: after a rewind or a rebalance the records
// that follow may be ones already seen, read again, and are not out of
// order.
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.state)
}
