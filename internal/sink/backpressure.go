package sink

import (
	"context"
	"time"
)

// backpressure applies the degradation level: at the top level fetching
// pauses until the level falls (nothing is dropped); a lake that fails to
// commit also pauses fetching, and the batch is retried.
func (s *Sink) backpressure(ctx context.Context, flushErr error) {
	pause := false
	if flushErr != nil {
		s.m.consumerErrors.WithLabelValues("lake").Inc()
		s.log.Error("lake commit failed; pausing and retrying, nothing is lost", "error", flushErr)
		pause = true
		s.stall = time.Now().Add(2 * time.Second)
	}
	var total int64
	for _, l := range s.lag {
		total += l
	}
	s.count(func(st *Stats) { st.Lag = total })
	if s.cfg.Degradation != nil {
		s.cfg.Degradation.Observe(total, s.cfg.Memory())
		pause = pause || s.cfg.Degradation.ShouldPause()
	}
	if pause && !s.paused {
		s.cl.PauseFetchTopics(s.assignedTopics()...)
		s.paused = true
		s.m.paused.Set(1)
		if flushErr == nil {
			// Free what the batches hold so memory can recover.
			if err := s.flushAll(ctx); err != nil {
				s.log.Error("flush while paused failed", "error", err)
			}
		}
	} else if !pause && s.paused && time.Now().After(s.stall) {
		s.cl.ResumeFetchTopics(s.assignedTopics()...)
		s.paused = false
		s.m.paused.Set(0)
	}
}

func (s *Sink) assignedTopics() []string {
	seen := map[string]bool{}
	var out []string
	for k := range s.lag {
		if !seen[k.topic] {
			seen[k.topic] = true
			out = append(out, k.topic)
		}
	}
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	for t := range s.topics {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
