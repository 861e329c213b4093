package stack

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/ops"
)

// embeddedSegmentBytes is segment.bytes of the embedded broker's stream
// topics: it frees a segment's disk and index once every record in it is
// trimmed, so small segments keep its memory to what it holds.
const embeddedSegmentBytes = 8 << 20

// trimmer deletes from the embedded broker what the lake holds.
type trimmer struct {
	cl      *kgo.Client
	adm     *kadm.Client
	group   string
	topics  []string
	keep    time.Duration
	trimmed *prometheus.CounterVec // topic
}

func (st *Stack) newTrimmer() (*trimmer, error) {
	cl, err := bus.NewClient(st.brokers, st.sec, kgo.ClientID("k2-trim"))
	if err != nil {
		return nil, err
	}
	st.onClose(cl.Close)
	t := &trimmer{cl: cl, adm: kadm.NewClient(cl), group: st.cfg.Sink.Group,
		topics: Topology(st.cfg.Kafka).StreamTopics(), keep: st.cfg.Embedded.BrokerKeep,
		trimmed: ops.NewMetrics(st.metrics).CounterVec("k2_kafka_records_trimmed_total",
			"Records the embedded broker deleted after the sink group committed them to the lake.", "topic")}
	for _, topic := range t.topics {
		t.trimmed.WithLabelValues(topic)
	}
	return t, nil
}

// run trims every keep/10 (at most a minute) until ctx ends.
func (t *trimmer) run(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(min(time.Minute, max(time.Second, t.keep/10)))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		done, err := bus.TrimConsumed(ctx, t.adm, t.group, t.topics, t.keep)
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot trim the broker; it keeps the records meanwhile", "error", err)
		}
		var n int64
		for _, d := range done {
			t.trimmed.WithLabelValues(d.Topic).Add(float64(d.To - d.From))
			n += d.To - d.From
		}
		if n > 0 {
			log.Log(ctx, ops.LevelRoutine, "broker trimmed", "records", n, "partitions", len(done))
		}
	}
}
