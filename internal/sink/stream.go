package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

// stream is one kind's records on their way into its table: the buffer
// being filled from Kafka and at most one earlier buffer being committed,
// so that decoding the next batch overlaps writing the last. Commits of a
// table land in order, one at a time, because each carries the offsets the
// one before it left.
type stream struct {
	kind     *record.Spec
	cur      buffer
	spare    record.Batch // a committed buffer's rows, emptied, for reuse
	inflight *commit      // the commit under way, if any
}

// buffer is a batch of rows and the offsets they came from. Offsets move
// for records that are not stored too (dead letters, shed records), so a
// buffer may be pending with no rows.
type buffer struct {
	rows    record.Batch
	since   time.Time    // when the first offset was taken
	offsets lake.Offsets // next offset per partition after what the buffer holds
	from    lake.Offsets // the buffer's first offset per partition
	epochs  map[tp]int32 // the leader epoch of each partition's last record
}

// commit is a buffer on its way into the lake.
type commit struct {
	buf  buffer
	done chan struct{}
	res  lake.CommitResult
	err  error
}

// advance records that a partition's records from first to last have
// been dealt with (stored, dead-lettered or shed).
func (b *buffer) advance(first, last *kgo.Record) {
	if b.offsets == nil {
		b.offsets, b.from, b.epochs = lake.Offsets{}, lake.Offsets{}, map[tp]int32{}
		b.since = time.Now()
	}
	if _, ok := b.from.Get(first.Topic, first.Partition); !ok {
		b.from.Set(first.Topic, first.Partition, first.Offset)
	}
	b.offsets.Set(last.Topic, last.Partition, last.Offset+1)
	b.epochs[tp{last.Topic, last.Partition}] = last.LeaderEpoch
}

func (b *buffer) pending() bool { return len(b.offsets) > 0 }

func (b *buffer) due(l record.Limits, now time.Time) bool {
	return b.pending() && l.Due(b.rows.Len(), b.rows.Bytes(), b.since, now)
}

func (b *buffer) reset() {
	b.rows.Reset()
	b.offsets, b.from, b.epochs, b.since = nil, nil, nil, time.Time{}
}

// summaryOf checks the buffer against the table it will be committed on
// and returns the offsets to record: the table's, carried forward, with
// the buffer's on top.
func (b *buffer) summaryOf(base *table.Table) (map[string]string, error) {
	stored := lake.TableOffsets(base)
	for t, ps := range b.from {
		for p, first := range ps {
			if off, ok := stored.Get(t, p); ok && off > first {
				return nil, &OverlapError{Topic: t, Partition: p, First: first, Stored: off}
			}
		}
	}
	stored.Merge(b.offsets)
	return stored.Props(), nil
}

// OverlapError refuses a batch whose records another sink already stored:
// the table's offsets for a partition are past the batch's first offset.
// It happens when a sink that lost its partitions (a long pause, a network
// split) commits late; the batch is dropped and the partition re-read from
// the table's offset.
type OverlapError struct {
	Topic         string
	Partition     int32
	First, Stored int64
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("%s[%d]: batch starts at offset %d but the table already holds records up to offset %d",
		e.Topic, e.Partition, e.First, e.Stored)
}

// flush starts committing what the stream's buffer holds: to the lake
// with its offsets, then to the group, in the background. It first waits
// for the table's previous commit and returns that one's failure, if any.
func (s *Sink) flush(ctx context.Context, st *stream) error {
	if err := s.settle(ctx, st); err != nil {
		return err
	}
	if !st.cur.pending() {
		return nil
	}
	// A dead letter must be safe in its topic before its offset is committed.
	if err := s.dlq.Flush(ctx); err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	c := &commit{buf: st.cur, done: make(chan struct{})}
	next := st.spare
	if next == nil {
		next = st.cur.rows.Another()
	}
	st.cur, st.spare, st.inflight = buffer{rows: next}, nil, c
	// The commit outlives a stopping poll loop: shutdown waits for it.
	cctx := context.WithoutCancel(ctx)
	go func() {
		defer close(c.done)
		c.res, c.err = c.buf.rows.Commit(cctx, map[string]string{"k2.source": "sink:" + s.cfg.Group}, lake.WithSummary(c.buf.summaryOf))
		if c.err == nil {
			s.commitGroup(cctx, c.buf.offsets, c.buf.epochs)
			s.counted(st.kind, c.res)
		}
	}()
	return nil
}

// counted adds a commit to the counters as soon as it is in the lake and
// the group, not when the poll loop next settles it: that may be a whole
// poll (up to the batch age) later.
func (s *Sink) counted(kind *record.Spec, res lake.CommitResult) {
	s.m.duplicates.WithLabelValues(kind.Table.Name).Add(float64(res.Duplicates))
	s.count(func(st *Stats) {
		st.Written += int64(res.Rows)
		st.Duplicates += int64(res.Duplicates)
		if res.Rows > 0 {
			st.Commits++
		}
	})
}

// settle waits for the stream's commit under way, if any, and takes its
// outcome. After a failure both that buffer and the one being filled are
// dropped and their partitions read again from where the table stands.
func (s *Sink) settle(ctx context.Context, st *stream) error {
	c := st.inflight
	if c == nil {
		return nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	st.inflight = nil
	if c.err == nil {
		c.buf.reset()
		st.spare = c.buf.rows
		return nil
	}
	s.rewind(ctx, st.kind.Table.Name, c.buf.from, st.cur.from)
	st.cur.reset()
	c.buf.reset()
	st.spare = c.buf.rows
	var overlap *OverlapError
	if errors.As(c.err, &overlap) {
		s.m.consumerErrors.WithLabelValues("overlap").Inc()
		s.log.Warn("batch dropped: another sink stored some of its records; re-reading", "error", overlap.Error())
		return nil
	}
	return c.err
}

// settled takes the outcome of a commit that has finished, without waiting.
func (s *Sink) settled(ctx context.Context, st *stream) error {
	if st.inflight == nil {
		return nil
	}
	select {
	case <-st.inflight.done:
		return s.settle(ctx, st)
	default:
		return nil
	}
}

// flushAll commits every pending batch and waits until all are in.
func (s *Sink) flushAll(ctx context.Context) error {
	var errs []error
	for _, st := range s.streams {
		errs = append(errs, s.flush(ctx, st))
	}
	for _, st := range s.streams {
		errs = append(errs, s.settle(ctx, st))
	}
	return errors.Join(errs...)
}

// flushDue commits the batches that are due; after a failed commit it
// waits for the retry time.
func (s *Sink) flushDue(ctx context.Context) error {
	now := time.Now()
	if now.Before(s.stall) {
		return nil
	}
	var errs []error
	for _, st := range s.streams {
		errs = append(errs, s.settled(ctx, st))
	}
	for _, st := range s.streams {
		if st.cur.due(s.cfg.limits(), now) {
			errs = append(errs, s.flush(ctx, st))
		}
	}
	return errors.Join(errs...)
}

// untilDue is how long the poll may wait before a pending batch is due
// or held records are to be retried.
func (s *Sink) untilDue() time.Duration {
	wait := s.cfg.BatchAge
	for _, st := range s.streams {
		if st.cur.pending() {
			wait = min(wait, max(time.Millisecond, s.cfg.BatchAge-time.Since(st.cur.since)))
		}
	}
	for _, h := range s.held {
		wait = min(wait, max(time.Millisecond, time.Until(h.retryAt)))
	}
	return wait
}

// pollLimit is how many records the next poll may take: no more than
// fills the fullest batch, so no commit holds more than BatchRows rows.
func (s *Sink) pollLimit() int {
	n := s.cfg.MaxPoll
	for _, st := range s.streams {
		n = min(n, s.cfg.BatchRows-st.cur.rows.Len())
	}
	return max(n, 1)
}

// discard drops what the batches are filling, after waiting for the
// commits under way (they may land; their offsets then stand).
func (s *Sink) discard(ctx context.Context) {
	for _, st := range s.streams {
		s.settle(ctx, st)
		st.cur.reset()
	}
}
