package live

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

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

var (
	metricsMu sync.Mutex
	byName    = map[string]*metrics{}
)

// metricsFor returns the exchange's metrics, registering them once per
// process (two feeds of one exchange share them).
func metricsFor(exchange string) *metrics {
	name := strings.ToLower(exchange)
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := byName[name]; ok {
		return m
	}
	p := "k2_" + name + "_"
	f := ops.Factory
	m := &metrics{
		status:         f.NewGauge(prometheus.GaugeOpts{Name: p + "connection_status", Help: "1 while a WebSocket to the exchange is open, else 0."}),
		received:       f.NewCounterVec(prometheus.CounterOpts{Name: p + "messages_received_total", Help: "Records received from the exchange, by symbol."}, []string{"symbol"}),
		messageErrors:  f.NewCounterVec(prometheus.CounterOpts{Name: p + "message_errors_total", Help: "Frames that could not be turned into records (dead-lettered), by reason."}, []string{"error_type"}),
		reconnects:     f.NewCounterVec(prometheus.CounterOpts{Name: p + "reconnects_total", Help: "Reconnections, by what ended the connection."}, []string{"reason"}),
		connErrors:     f.NewCounterVec(prometheus.CounterOpts{Name: p + "connection_errors_total", Help: "Failed connection attempts, by kind."}, []string{"error_type"}),
		lastMessage:    f.NewGauge(prometheus.GaugeOpts{Name: p + "last_message_timestamp_seconds", Help: "When the last frame arrived (Unix seconds)."}),
		reconnectDelay: f.NewGauge(prometheus.GaugeOpts{Name: p + "reconnect_delay_seconds", Help: "The back-off before the next connection attempt."}),
		rotations:      f.NewCounterVec(prometheus.CounterOpts{Name: p + "connection_rotations_total", Help: "Connections replaced before the exchange's lifetime limit."}, []string{"reason"}),
		lifetime:       f.NewGauge(prometheus.GaugeOpts{Name: p + "connection_lifetime_seconds", Help: "Age of the current connection."}),
		lastPong:       f.NewGauge(prometheus.GaugeOpts{Name: p + "last_pong_timestamp_seconds", Help: "When the last pong answered our ping (Unix seconds)."}),
		pongTimeouts:   f.NewCounter(prometheus.CounterOpts{Name: p + "pong_timeouts_total", Help: "Pings left unanswered; each closes the connection."}),
		duplicates:     f.NewCounterVec(prometheus.CounterOpts{Name: p + "duplicates_dropped_total", Help: "Records received twice (reconnect overlap, rotation) and dropped by id."}, []string{"kind"}),
		gaps:           f.NewCounterVec(prometheus.CounterOpts{Name: p + "trade_gaps_total", Help: "Holes in the exchange's contiguous trade ids, by symbol."}, []string{"symbol"}),
		backfilled:     f.NewCounterVec(prometheus.CounterOpts{Name: p + "backfilled_trades_total", Help: "Missed trades recovered from the REST API, by symbol."}, []string{"symbol"}),
		breakerState:   f.NewGauge(prometheus.GaugeOpts{Name: p + "circuit_breaker_state", Help: "Reconnect circuit breaker: 0 closed, 1 open, 2 half-open."}),
	}
	byName[name] = m
	return m
}
