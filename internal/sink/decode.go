package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/resilience"
)

// topicInfo is what a topic's name says: the stream its records go to and
// the exchange they must come from.
type topicInfo struct {
	stream   *stream
	exchange string
	err      error
}

func (s *Sink) topic(name string) topicInfo {
	s.topicsMu.Lock()
	defer s.topicsMu.Unlock()
	if info, ok := s.topics[name]; ok {
		return info
	}
	var info topicInfo
	if base, ok := strings.CutPrefix(name, s.cfg.TopicPrefix); ok {
		_, kind, exchange, err := bus.ParseTopic(base)
		if info.err = err; err == nil {
			info.stream, info.exchange = s.streams[kind.Describe().Index()], exchange
		}
	} else {
		info.err = fmt.Errorf("topic %q lacks the prefix %q", name, s.cfg.TopicPrefix)
	}
	s.topics[name] = info
	return info
}

// handle decodes, checks and batches one partition's fetched records. It
// returns the records it could not decode for want of the schema registry
// (the first such and all after it).
func (s *Sink) handle(ctx context.Context, p kgo.FetchTopicPartition) (rest []*kgo.Record) {
	if len(p.Records) == 0 {
		return nil
	}
	info := s.topic(p.Topic)
	level := resilience.Normal
	if s.cfg.Degradation != nil {
		level = s.cfg.Degradation.Level()
	}
	var consumed, shed, dead int64
	for i, r := range p.Records {
		consumed++
		err := info.err
		dropped := false
		if err == nil {
			dropped, err = s.accept(ctx, info, r, level)
		}
		if dropped {
			shed++
		}
		if err == nil {
			continue
		}
		if transient(err) {
			// The registry could not be asked: the record is not bad.
			// It and the rest are held and tried again later.
			consumed--
			rest = p.Records[i:]
			s.log.Warn("schema registry unavailable; holding the partition's records to retry", "topic", p.Topic, "partition", p.Partition, "offset", r.Offset, "held", len(rest), "error", err)
			break
		}
		s.deadLetter(ctx, r, err)
		dead++
	}
	if consumed == 0 {
		return rest
	}
	last := p.Records[len(p.Records)-len(rest)-1]
	if info.stream != nil {
		// Every record up to last was stored, shed or dead-lettered (a
		// dead letter's offset is passed once it is in the DLQ): the
		// buffer's offsets move once per fetch, not per record.
		info.stream.cur.advance(p.Records[0], last)
	}
	s.observe(p, last)
	s.count(func(st *Stats) {
		st.Consumed += consumed
		st.Shed += shed
		st.DeadLetters += dead
	})
	s.m.consumed.WithLabelValues(p.Topic).Add(float64(consumed))
	return rest
}

// accept decodes and checks one record and adds it to its stream's batch,
// or reports it dropped when the shedding policy sheds it. handle moves
// the batch's offsets past the records dealt with; a record waiting for
// the registry is not, so its offset is not committed before it is stored.
func (s *Sink) accept(ctx context.Context, info topicInfo, r *kgo.Record, level resilience.Level) (dropped bool, err error) {
	st := info.stream
	m, err := st.cur.rows.AddMessage(ctx, s.dec, r.Value, info.exchange)
	if err != nil {
		return false, err
	}
	if st.kind.Sequenced && m.Sequence.Valid {
		s.seq.Check(info.exchange, m.Symbol, m.Sequence.Int64, m.Time)
	}
	if s.cfg.Shedder != nil && !s.cfg.Shedder.Keep(level, string(st.kind.DataType), m.Symbol) {
		st.cur.rows.Undo()
		return true, nil
	}
	return false, nil
}

// transient reports an error that says nothing about the record: the
// schema registry was unreachable or the sink is stopping.
func transient(err error) bool {
	var unknown *codec.UnknownSchemaError
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return errors.As(err, &unknown) && !errors.Is(err, registry.ErrNotFound)
}

// held are a partition's records that could not be decoded for want of
// the schema registry. Its fetching is paused meanwhile, and they are
// decoded again later, backing off, so neither Kafka nor the registry is
// hammered and nothing is dead-lettered for a registry outage.
type held struct {
	p       kgo.FetchTopicPartition // the records left
	retryAt time.Time
	backoff time.Duration
}

const (
	holdFirst = 250 * time.Millisecond
	holdMax   = 10 * time.Second
)

// take handles a fetched partition, holding what cannot be decoded yet.
func (s *Sink) take(ctx context.Context, p kgo.FetchTopicPartition) {
	k := tp{p.Topic, p.Partition}
	if s.isRefused(k) {
		return // fetched before the pause took effect
	}
	if h := s.held[k]; h != nil {
		// Fetched before the pause took effect: keep the order.
		h.p.Records = append(h.p.Records, p.Records...)
		h.p.HighWatermark = p.HighWatermark
		return
	}
	if rest := s.handle(ctx, p); len(rest) > 0 {
		p.Records = slices.Clone(rest)
		s.held[k] = &held{p: p, retryAt: time.Now().Add(holdFirst), backoff: holdFirst}
		s.cl.PauseFetchPartitions(map[string][]int32{p.Topic: {p.Partition}})
	}
}

// retryHeld decodes held records whose time has come and resumes their
// partitions once they are all through.
func (s *Sink) retryHeld(ctx context.Context) {
	now := time.Now()
	for k, h := range s.held {
		if now.Before(h.retryAt) {
			continue
		}
		if rest := s.handle(ctx, h.p); len(rest) > 0 {
			h.p.Records = rest
			h.backoff = min(2*h.backoff, holdMax)
			h.retryAt = now.Add(h.backoff)
			continue
		}
		delete(s.held, k)
		s.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		s.log.Info("schema registry reachable again; partition resumed", "topic", k.topic, "partition", k.partition)
	}
}
