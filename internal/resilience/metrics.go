package resilience

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

// Metric names are the original's (reference §6.2) so dashboards and alert
// rules carry over; level label values are level names (GRACEFUL), not
// numbers, so a query reads without a lookup table.

// degradationMetrics are one Degradation's. Children are resolved once:
// Observe then increments without a label lookup, and every reachable
// series exists (at 0) before its first event, so rate() and alerts see it
// from the start.
type degradationMetrics struct {
	level        prometheus.Gauge
	backpressure [NumLevels]prometheus.Counter            // index: level; [Normal] unused
	transitions  [NumLevels][NumLevels]prometheus.Counter // [from][to]; only reachable pairs
}

func newDegradationMetrics(reg prometheus.Registerer) *degradationMetrics {
	f := ops.NewMetrics(reg)
	m := &degradationMetrics{level: f.Gauge("k2_degradation_level", "Current degradation level: 0 NORMAL, 1 SOFT, 2 GRACEFUL, 3 AGGRESSIVE, 4 CIRCUIT_BREAK.")}
	transitions := f.CounterVec("k2_degradation_transitions_total", "Degradation level changes, by level names before and after.", "from_level", "to_level")
	backpressure := f.CounterVec("k2_backpressure_events_total", "Observations of lag and memory that left the consumer above NORMAL, by the resulting level.", "level")
	for l := Soft; l <= CircuitBreak; l++ {
		m.backpressure[l] = backpressure.WithLabelValues(l.String())
	}
	for from := Normal; from <= CircuitBreak; from++ {
		// Degrading may jump to any higher level; recovery steps down one.
		for to := from + 1; to <= CircuitBreak; to++ {
			m.transitions[from][to] = transitions.WithLabelValues(from.String(), to.String())
		}
		if from > Normal {
			m.transitions[from][from-1] = transitions.WithLabelValues(from.String(), (from - 1).String())
		}
	}
	return m
}

// newShedMetrics is k2_messages_shed_total of one Shedder.
func newShedMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	return ops.NewMetrics(reg).CounterVec("k2_messages_shed_total",
		"Records dropped by the load shedder because its configured policy names their data type and symbol tier at this level.",
		"data_type", "symbol_tier", "level")
}
