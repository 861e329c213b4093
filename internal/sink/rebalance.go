package sink

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

func (s *Sink) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	n := 0
	for t, ps := range assigned {
		n += len(ps)
		s.m.initTopic(t, s.topic(t), ps)
	}
	s.track(assigned)
	s.log.Info("partitions assigned", "partitions", n)
	s.count(func(st *Stats) { st.Partitions += n })
}

// onRevoked commits what was read from the partitions being given away,
// so their next owner starts after it.
func (s *Sink) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebalancing = true
	defer func() { s.rebalancing = false }()
	if err := s.flushAll(ctx); err != nil {
		// The new owner reads from the lake's offsets; nothing is lost,
		// and what this sink still holds is dropped.
		s.log.Error("could not commit before giving up partitions; their new owner re-reads them", "error", err)
		s.discard(ctx)
	}
	s.release(revoked)
	n := 0
	for t, ps := range revoked {
		n += len(ps)
		for _, p := range ps {
			s.forget(tp{t, p})
		}
	}
	// Their symbols' sequences continue elsewhere; if they come back,
	// what this sink last saw of them is stale.
	s.seq.Reset()
	s.count(func(st *Stats) { st.Partitions -= n })
}

// onLost drops what was read: the group has moved on without this member.
func (s *Sink) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebalancing = true
	defer func() { s.rebalancing = false }()
	s.log.Warn("partitions lost; their unsaved records will be re-read by their owner", "partitions", len(lost))
	s.release(lost)
	s.discard(ctx)
	clear(s.lag)
	clear(s.read)
	s.seq.Reset()
	s.count(func(st *Stats) { st.Partitions = 0 })
}

// release forgets held records of partitions this sink no longer owns:
// their new owner reads them.
func (s *Sink) release(parts map[string][]int32) {
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := s.held[tp{t, p}]; ok {
				delete(s.held, tp{t, p})
				if !s.isRefused(tp{t, p}) {
					s.cl.ResumeFetchPartitions(map[string][]int32{t: {p}})
				}
			}
		}
	}
}
