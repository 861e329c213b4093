package live

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
)

// metrics are one exchange's feed metrics, named as the original named
// them: k2_binance_connection_status, k2_kraken_reconnects_total, …
type metrics struct {
	status         prometheus.Gauge
	received       *prometheus.CounterVec // symbol
	messageErrors  *prometheus.CounterVec // error_type
	reconnects     *prometheus.CounterVec // reason
	connErrors     *prometheus.CounterVec // error_type
	lastMessage    prometheus.Gauge
	reconnectDelay prometheus.Gauge
	rotations      *prometheus.CounterVec // reason
	lifetime       prometheus.Gauge
	lastPong       prometheus.Gauge
	pongTimeouts   prometheus.Counter
	duplicates     *prometheus.CounterVec // kind
	gaps           *prometheus.CounterVec // symbol
	backfilled     *prometheus.CounterVec // symbol
	breakerState   prometheus.Gauge
}

// Label values known before the first event, so their series start at 0.
var (
	reconnectReasons = []string{"pong_timeout", "keepalive_failed", "stale", "connection_error", "closed_by_server", "rotation"}
	connErrorTypes   = []string{"dial", "subscribe", "timeout"}
	duplicateKinds   = []string{"trade", "quote"}
)

// newMetrics registers one session's and feed's metrics with reg (nil:
// kept to themselves), their series at zero for p's symbols.
func newMetrics(reg prometheus.Registerer, p feed.Protocol) *metrics {
	prefix := "k2_" + strings.ToLower(p.Exchange()) + "_"
	f := ops.Factory(reg)
	m := &metrics{
		status:         f.NewGauge(prometheus.GaugeOpts{Name: prefix + "connection_status", Help: "1 while a WebSocket to the exchange is open, else 0."}),
		received:       f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "messages_received_total", Help: "Records received from the exchange, by symbol."}, []string{"symbol"}),
		messageErrors:  f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "message_errors_total", Help: "Frames that could not be turned into records (dead-lettered), by reason."}, []string{"error_type"}),
		reconnects:     f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "reconnects_total", Help: "Reconnections, by what ended the connection."}, []string{"reason"}),
		connErrors:     f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "connection_errors_total", Help: "Failed connection attempts, by kind."}, []string{"error_type"}),
		lastMessage:    f.NewGauge(prometheus.GaugeOpts{Name: prefix + "last_message_timestamp_seconds", Help: "When the last frame arrived (Unix seconds)."}),
		reconnectDelay: f.NewGauge(prometheus.GaugeOpts{Name: prefix + "reconnect_delay_seconds", Help: "The back-off before the next connection attempt."}),
		rotations:      f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "connection_rotations_total", Help: "Connections replaced before the exchange's lifetime limit."}, []string{"reason"}),
		lifetime:       f.NewGauge(prometheus.GaugeOpts{Name: prefix + "connection_lifetime_seconds", Help: "Age of the current connection."}),
		lastPong:       f.NewGauge(prometheus.GaugeOpts{Name: prefix + "last_pong_timestamp_seconds", Help: "When the last pong answered our ping (Unix seconds)."}),
		pongTimeouts:   f.NewCounter(prometheus.CounterOpts{Name: prefix + "pong_timeouts_total", Help: "Pings left unanswered; each closes the connection."}),
		duplicates:     f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "duplicates_dropped_total", Help: "Records received twice (reconnect overlap, rotation) and dropped by id."}, []string{"kind"}),
		gaps:           f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "trade_gaps_total", Help: "Holes in the exchange's contiguous trade ids, by symbol."}, []string{"symbol"}),
		backfilled:     f.NewCounterVec(prometheus.CounterOpts{Name: prefix + "backfilled_trades_total", Help: "Missed trades recovered from the REST API, by symbol."}, []string{"symbol"}),
		breakerState:   f.NewGauge(prometheus.GaugeOpts{Name: prefix + "circuit_breaker_state", Help: "Reconnect circuit breaker: 0 closed, 1 open, 2 half-open."}),
	}
	for _, s := range p.Symbols() {
		m.received.WithLabelValues(s)
		m.gaps.WithLabelValues(s)
		m.backfilled.WithLabelValues(s)
	}
	for _, r := range md.Reasons {
		m.messageErrors.WithLabelValues(r)
	}
	for _, r := range reconnectReasons {
		m.reconnects.WithLabelValues(r)
	}
	for _, e := range connErrorTypes {
		m.connErrors.WithLabelValues(e)
	}
	m.rotations.WithLabelValues("max_lifetime")
	for _, k := range duplicateKinds {
		m.duplicates.WithLabelValues(k)
	}
	return m
}
