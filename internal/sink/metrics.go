package sink

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/record"
)

// metrics are one sink's metrics (the original's names), registered with
// Config.Registerer.
type metrics struct {
	consumed       *prometheus.CounterVec // topic
	lagMessages    *prometheus.GaugeVec   // topic, partition
	lagSeconds     *prometheus.GaugeVec   // topic, partition
	offset         *prometheus.GaugeVec   // topic, partition
	deadLetters    *prometheus.CounterVec // topic, reason
	duplicates     *prometheus.CounterVec // table
	consumerErrors *prometheus.CounterVec // error_type
	paused         prometheus.Gauge
	seq            *seqMetrics
}

// consumerErrorTypes are the error_type values of k2_consumer_errors_total.
var consumerErrorTypes = []string{"fetch", "commit", "lake", "overlap", "offsets_beyond_end", "log_truncated"}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := ops.NewMetrics(reg)
	m := &metrics{
		consumed:       f.CounterVec("k2_kafka_messages_consumed_total", "Records the sink read.", "topic"),
		lagMessages:    f.GaugeVec("k2_kafka_consumer_lag_messages", "Records in the partition not yet read by the sink.", "topic", "partition"),
		lagSeconds:     f.GaugeVec("k2_kafka_consumer_lag_seconds", "Age of the last record read while the partition has unread records; 0 when caught up.", "topic", "partition"),
		offset:         f.GaugeVec("k2_kafka_consumer_offset", "Next offset the sink reads.", "topic", "partition"),
		deadLetters:    f.CounterVec("k2_sink_dead_letters_total", "Records sent to a dead-letter topic, by reason.", "topic", "reason"),
		duplicates:     f.CounterVec("k2_duplicate_messages_detected_total", "Records dropped because their id was already stored or repeated.", "table"),
		consumerErrors: f.CounterVec("k2_consumer_errors_total", "Sink errors by type (fetch, commit, lake, overlap, offsets_beyond_end: a partition refused because its table records an offset past its end; log_truncated: a partition refused because the broker cut its log behind what the sink read).", "error_type"),
		paused:         f.Gauge("k2_sink_paused", "1 while the sink has paused fetching (back-pressure or a failing lake)."),
		seq:            newSeqMetrics(f),
	}
	for _, t := range record.TableNames() {
		m.duplicates.WithLabelValues(t)
	}
	for _, e := range consumerErrorTypes {
		m.consumerErrors.WithLabelValues(e)
	}
	return m
}

// initTopic creates an assigned topic's series at zero: every partition's
// lag and offset, and a dead-letter count for every reason a record of
// its kind can have (the decoder's and one per column).
func (m *metrics) initTopic(topic string, info topicInfo, partitions []int32) {
	m.consumed.WithLabelValues(topic)
	for _, p := range partitions {
		part := strconv.Itoa(int(p))
		m.lagMessages.WithLabelValues(topic, part)
		m.lagSeconds.WithLabelValues(topic, part)
		m.offset.WithLabelValues(topic, part)
	}
	for _, r := range md.Reasons {
		m.deadLetters.WithLabelValues(topic, r)
	}
	if info.stream == nil {
		return
	}
	for _, f := range info.stream.kind.Table.Schema.Fields() {
		m.deadLetters.WithLabelValues(topic, md.InvalidReason(f.Name))
	}
	if info.stream.kind.Sequenced {
		m.seq.initExchange(info.exchange)
	}
}
