package resilience

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

// Metrics. The names are the original's (reference §6.2) so dashboards and
// alert rules carry over; level label values are level names (GRACEFUL),
// not numbers, so a query reads without a lookup table. They are
// process-wide: a process runs one Degradation (one consumer's view of its
// own pressure), and every Shedder adds to the same shed counter.
var (
	mLevel = ops.Factory.NewGauge(prometheus.GaugeOpts{
		Name: "k2_degradation_level",
		Help: "Current degradation level: 0 NORMAL, 1 SOFT, 2 GRACEFUL, 3 AGGRESSIVE, 4 CIRCUIT_BREAK.",
	})
	mTransitions = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_degradation_transitions_total",
		Help: "Degradation level changes, by level names before and after.",
	}, []string{"from_level", "to_level"})
	mBackpressure = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_backpressure_events_total",
		Help: "Observations of lag and memory that left the consumer above NORMAL, by the resulting level.",
	}, []string{"level"})
	mShed = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_messages_shed_total",
		Help: "Records dropped by the load shedder because its configured policy names their data type and symbol tier at this level.",
	}, []string{"data_type", "symbol_tier", "level"})
)

// Children resolved once: Observe then increments without a label lookup,
// and every reachable series exists (at 0) before its first event, so rate()
// and alerts see it from the start.
var (
	backpressure [NumLevels]prometheus.Counter            // index: level; [Normal] unused
	transitions  [NumLevels][NumLevels]prometheus.Counter // [from][to]; only reachable pairs
)

func init() {
	for l := Soft; l <= CircuitBreak; l++ {
		backpressure[l] = mBackpressure.WithLabelValues(l.String())
	}
	for from := Normal; from <= CircuitBreak; from++ {
		// Degrading may jump to any higher level; recovery steps down one.
		for to := from + 1; to <= CircuitBreak; to++ {
			transitions[from][to] = mTransitions.WithLabelValues(from.String(), to.String())
		}
		if from > Normal {
			transitions[from][from-1] = mTransitions.WithLabelValues(from.String(), (from - 1).String())
		}
	}
}
