package sink

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/k2-market-data/k2/internal/lake"
)

// The tables hold the truth of what has been stored: each commit records
// the Kafka offsets it consumed. The consumer group's offsets follow them
// and only save a restart the lookup.

// resumeFromLake moves each assigned partition to the offset the tables
// recorded when that is further than the group's committed offset.
func (s *Sink) resumeFromLake(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	byTable := map[string]lake.Offsets{}
	for topic, parts := range assigned {
		info := s.topic(topic)
		if info.err != nil {
			continue
		}
		name := info.stream.kind.Table.Name
		lo, ok := byTable[name]
		if !ok {
			tbl, err := s.lake.Load(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("read offsets from %s: %w", name, err)
			}
			lo = lake.TableOffsets(tbl)
			byTable[name] = lo
		}
		for p, o := range parts {
			off, ok := lo[topic][p]
			if !ok {
				continue
			}
			if cur := o.EpochOffset().Offset; cur < 0 || off > cur {
				parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
				s.log.Info("resuming from the lake's offset", "topic", topic, "partition", p, "offset", off, "group_offset", cur)
			}
		}
	}
	return assigned, nil
}

// commitGroup commits offsets to the consumer group. The lake holds the
// truth; a failed group commit only means a restart reads the lake's.
func (s *Sink) commitGroup(ctx context.Context, o lake.Offsets) {
	m := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range o {
		m[t] = map[int32]kgo.EpochOffset{}
		for p, off := range ps {
			m[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
	}
	s.cl.CommitOffsetsSync(ctx, m, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			s.m.consumerErrors.WithLabelValues("commit").Inc()
			s.log.Warn("consumer group commit failed; the lake's offsets stand", "error", err)
		}
	})
}

// rewind moves partitions back to be read again: each to the earliest
// of the given first offsets, or to where the table stands if that is
// further. Records held for the registry are dropped with them, and the
// sequence tracker forgets what it saw, since it will see it again.
func (s *Sink) rewind(ctx context.Context, table string, froms ...lake.Offsets) {
	if s.rebalancing {
		return
	}
	var stored lake.Offsets
	if tbl, err := s.lake.Load(ctx, table); err != nil {
		// The earliest offsets of the batches are safe: what the table
		// already holds is dropped by key when it is read again.
		s.log.Warn("cannot read the table's offsets; re-reading from the dropped batches' first offsets", "table", table, "error", err)
	} else {
		stored = lake.TableOffsets(tbl)
	}
	earliest := lake.Offsets{}
	for _, f := range froms {
		for t, ps := range f {
			for p, off := range ps {
				if cur, ok := earliest.Get(t, p); !ok || off < cur {
					if earliest[t] == nil {
						earliest[t] = map[int32]int64{}
					}
					earliest[t][p] = off
				}
			}
		}
	}
	seek := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range earliest {
		seek[t] = map[int32]kgo.EpochOffset{}
		for p, off := range ps {
			if st, ok := stored.Get(t, p); ok && st > off {
				off = st
			}
			seek[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
			s.release(map[string][]int32{t: {p}})
		}
	}
	s.seq.Reset()
	s.cl.SetOffsets(seek)
}
