package sink

import (
	"context"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// deadLetter sends a record K2 cannot store to <topic>.dlq, unchanged,
// with why in its headers.
func (s *Sink) deadLetter(ctx context.Context, r *kgo.Record, err error) {
	reason := md.ReasonOf(err)
	s.m.deadLetters.WithLabelValues(r.Topic, reason).Inc()
	// A stream of bad records must not become a stream of log lines: one
	// a second, with the count since the last; the metric counts them all.
	s.deadSinceLog++
	s.deadLog.Do(func() {
		s.log.Warn("record sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"reason", reason, "error", err, "dead_letters_since_last_line", s.deadSinceLog)
		s.deadSinceLog = 0
	})
	headers := append(slices.Clone(r.Headers),
		kgo.RecordHeader{Key: bus.HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: bus.HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: bus.HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	if perr := s.dlq.DeadLetter(ctx, r.Topic, r.Key, r.Value, reason, err, headers...); perr != nil {
		s.log.Error("dead-letter produce failed", "error", perr)
	}
}
