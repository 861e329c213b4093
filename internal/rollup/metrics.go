package rollup

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
)

type metrics struct {
	runs        *prometheus.CounterVec   // table, result
	duration    *prometheus.HistogramVec // table
	bars        *prometheus.CounterVec   // table: bars computed again
	lastSuccess *prometheus.GaugeVec     // table
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := ops.NewMetrics(reg)
	m := &metrics{
		runs:        f.CounterVec("k2_rollup_runs_total", "Rolls of a bar table up to the trades table, by result (success, failed).", "table", "result"),
		duration:    f.HistogramVec("k2_rollup_duration_seconds", "Time a roll of a bar table took.", ops.StorageBuckets, "table"),
		bars:        f.CounterVec("k2_rollup_bars_computed_total", "Bars computed again from the trades and written.", "table"),
		lastSuccess: f.GaugeVec("k2_rollup_last_success_timestamp_seconds", "When the bar table last matched a trades snapshot (Unix seconds; 0: never).", "table"),
	}
	for _, bt := range record.BarTables {
		t := bt.Table.Name
		m.runs.WithLabelValues(t, "success")
		m.runs.WithLabelValues(t, "failed")
		m.duration.WithLabelValues(t)
		m.bars.WithLabelValues(t)
		m.lastSuccess.WithLabelValues(t)
	}
	return m
}
