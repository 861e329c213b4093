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
	breakerOpened  prometheus.Counter
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
	f := ops.NewMetrics(reg)
	m := &metrics{
		status:         f.Gauge(prefix+"connection_status", "1 while a WebSocket to the exchange is open, else 0."),
		received:       f.CounterVec(prefix+"messages_received_total", "Records received from the exchange, by symbol.", "symbol"),
		messageErrors:  f.CounterVec(prefix+"message_errors_total", "Frames that could not be turned into records (dead-lettered), by reason.", "error_type"),
		reconnects:     f.CounterVec(prefix+"reconnects_total", "Reconnections, by what ended the connection.", "reason"),
		connErrors:     f.CounterVec(prefix+"connection_errors_total", "Failed connection attempts, by kind.", "error_type"),
		lastMessage:    f.Gauge(prefix+"last_message_timestamp_seconds", "When the last frame arrived (Unix seconds)."),
		reconnectDelay: f.Gauge(prefix+"reconnect_delay_seconds", "The back-off before the next connection attempt."),
		rotations:      f.CounterVec(prefix+"connection_rotations_total", "Connections replaced before the exchange's lifetime limit.", "reason"),
		lifetime:       f.Gauge(prefix+"connection_lifetime_seconds", "Age of the current connection."),
		lastPong:       f.Gauge(prefix+"last_pong_timestamp_seconds", "When the last pong answered our ping (Unix seconds)."),
		pongTimeouts:   f.Counter(prefix+"pong_timeouts_total", "Pings left unanswered; each closes the connection."),
		duplicates:     f.CounterVec(prefix+"duplicates_dropped_total", "Records received twice (reconnect overlap, rotation) and dropped by id.", "kind"),
		gaps:           f.CounterVec(prefix+"trade_gaps_total", "Holes in the exchange's contiguous trade ids, by symbol.", "symbol"),
		backfilled:     f.CounterVec(prefix+"backfilled_trades_total", "Missed trades recovered from the REST API, by symbol.", "symbol"),
		breakerState:   f.Gauge(prefix+"circuit_breaker_state", "Reconnect circuit breaker: 0 closed, 1 open, 2 half-open."),
		breakerOpened:  f.Counter(prefix+"circuit_breaker_opened_total", "Times the reconnect circuit breaker opened (dialling paused)."),
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
