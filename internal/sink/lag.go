package sink

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchMaxWait bounds how long the broker holds a fetch with no new
// records (kgo's default 5 s). The embedded broker, restarted on its data,
// left the sink's first fetches waiting it out although records arrived:
// a restart's recovery took 5.5 s, 1.5 s with this. Two empty fetches a
// second cost a broker nothing.
const fetchMaxWait = 500 * time.Millisecond

// lagInterval is how often the sink asks the broker for the end offsets
// of the partitions it reads.
const lagInterval = time.Second

// readPos is how far the sink has read a partition, and the partition's
// end as last seen.
type readPos struct {
	read bool      // a record has been read: next and at are known
	next int64     // offset after the last record read
	at   time.Time // that record's timestamp
	end  int64     // the partition's end offset, from a fetch or the broker
}

// observe records how far a partition has been read and how far behind it
// is. The fetch's high watermark is that of when the records were fetched:
// a sink slower than its feed drains a buffered fetch long after, so the
// lag is also measured against the broker's end offsets (watchLag).
func (s *Sink) observe(p kgo.FetchTopicPartition, last *kgo.Record) {
	k := tp{p.Topic, p.Partition}
	r := s.read[k]
	r.read, r.next, r.at, r.end = true, last.Offset+1, last.Timestamp, max(r.end, p.HighWatermark)
	s.read[k] = r
	s.setLag(k, r)
	s.m.offset.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(r.next))
	s.readMu.Lock()
	s.readTo[k] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
	s.readMu.Unlock()
}

// readEpoch is the leader epoch of the last record this sink read on a
// partition, when it read at least up to next. Checking next against
// that epoch is sound even if the record before next came in an earlier
// one: the broker's log held everything read, so its end for the epoch is
// past next unless the log was cut behind it.
func (s *Sink) readEpoch(k tp, next int64) (int32, bool) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	r, ok := s.readTo[k]
	return r.Epoch, ok && r.Offset >= next && r.Epoch >= 0
}

func (s *Sink) setLag(k tp, r readPos) {
	lag := max(0, r.end-r.next)
	s.lag[k] = lag
	part := strconv.Itoa(int(k.partition))
	s.m.lagMessages.WithLabelValues(k.topic, part).Set(float64(lag))
	lagSeconds := 0.0
	if lag > 0 && r.read {
		lagSeconds = time.Since(r.at).Seconds()
	}
	s.m.lagSeconds.WithLabelValues(k.topic, part).Set(lagSeconds)
}

// track starts measuring the lag of newly assigned partitions, before
// their first record is read.
func (s *Sink) track(assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range assigned {
		for _, p := range ps {
			if _, ok := s.read[tp{t, p}]; !ok {
				s.read[tp{t, p}] = readPos{next: -1}
			}
		}
	}
}

// forget drops what the sink knew of a partition it no longer reads.
func (s *Sink) forget(k tp) {
	delete(s.lag, k)
	delete(s.read, k)
}

// watchLag measures, every lagInterval until ctx ends, the lag of the
// sink's partitions against the broker's end offsets: what a Kafka lag
// exporter reports, and what the lag alerts and the back-pressure levels
// need when the sink falls behind. A partition not read yet is measured
// from the group's committed offset, or from its start.
func (s *Sink) watchLag(ctx context.Context) {
	adm := kadm.NewClient(s.cl)
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		var topics []string
		seen := map[string]bool{}
		for k := range s.read {
			if !seen[k.topic] {
				seen[k.topic] = true
				topics = append(topics, k.topic)
			}
		}
		s.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, lagInterval)
		ends, err := adm.ListEndOffsets(lctx, topics...)
		var starts kadm.ListedOffsets
		if err == nil {
			starts, err = adm.ListStartOffsets(lctx, topics...)
		}
		cancel()
		if err != nil {
			continue // a broker away: the fetches say so (k2_consumer_errors_total)
		}
		committed := s.cl.CommittedOffsets()
		s.mu.Lock()
		for k, r := range s.read {
			o, ok := ends.Lookup(k.topic, k.partition)
			if !ok || o.Err != nil {
				continue
			}
			r.end = max(r.end, o.Offset)
			if !r.read {
				if c, ok := committed[k.topic][k.partition]; ok && c.Offset >= 0 {
					r.next = c.Offset
				} else if st, ok := starts.Lookup(k.topic, k.partition); ok && st.Err == nil {
					r.next = st.Offset
				} else {
					continue
				}
			}
			s.read[k] = r
			s.setLag(k, r)
		}
		s.mu.Unlock()
	}
}
