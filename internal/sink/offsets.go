package sink

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/k2-market-data/k2/internal/lake"
)

// The tables hold the truth of what has been stored: each commit records
// the Kafka offsets it consumed. The consumer group's offsets follow them
// and only save a restart the lookup.

// resumeFromLake moves each assigned partition to the offset the tables
// recorded when that is further than the group's committed offset (the
// group may be further: a batch of only dead letters commits to the group
// and not to the lake). Offsets set by hand on a table (k2 lake offsets
// set) are followed either way.
//
// A partition whose table records an offset past the partition's end
// (its topic was deleted and created again, or truncated) is refused: it
// is not consumed, and the error names the command that sets the table's
// offsets. Reading it from the start would store nothing (every batch
// would start below the table's offset) and reading it from the table's
// offset would wait for records that may never come.
func (s *Sink) resumeFromLake(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	type tableOffsets struct {
		o          lake.Offsets
		overridden bool
	}
	byTable := map[string]tableOffsets{}
	var ends kadm.ListedOffsets
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
			lo.o, lo.overridden = lake.CurrentOffsets(tbl)
			byTable[name] = lo
			if lo.overridden {
				s.log.Warn("the table's offsets were set by hand; resuming from them", "table", name, "offsets", lo.o)
			}
		}
		for p, o := range parts {
			off, ok := lo.o[topic][p]
			if !ok {
				continue
			}
			if !lo.overridden {
				if ends == nil {
					ends = s.endOffsets(ctx, assigned)
				}
				if end, ok := ends.Lookup(topic, p); ok && end.Err == nil && off > end.Offset {
					delete(parts, p)
					s.refuse(name, topic, p, off, end.Offset)
					continue
				}
			}
			if cur := o.EpochOffset().Offset; lo.overridden || cur < 0 || off > cur {
				parts[p] = kgo.NewOffset().At(off).WithEpoch(-1)
				s.log.Info("resuming from the lake's offset", "topic", topic, "partition", p, "offset", off, "group_offset", cur)
			}
			// Where this sink itself read at least up to, the leader epoch
			// of its last record goes with the offset: the client then asks the
			// broker whether the log still holds it (KIP-320), and a log
			// cut behind it while the group was lost — a broker restarted
			// on a torn segment — is reported (ErrDataLoss) instead of read
			// past at reused offsets.
			at := parts[p].EpochOffset().Offset
			if epoch, ok := s.readEpoch(tp{topic, p}, at); ok && !lo.overridden {
				parts[p] = kgo.NewOffset().At(at).WithEpoch(epoch)
			}
		}
	}
	return assigned, nil
}

// refuse reports a partition that is not consumed because its table
// records an offset past its end.
func (s *Sink) refuse(table, topic string, partition int32, recorded, end int64) {
	s.m.consumerErrors.WithLabelValues("offsets_beyond_end").Inc()
	s.setRefused(tp{topic, partition}, fmt.Sprintf("%s[%d]: the table %s records offset %d, past the partition's end %d (docs/operations/runbooks/topic-recreated.md)", topic, partition, table, recorded, end))
	s.log.Error("partition not consumed: the table records an offset past the partition's end; was the topic deleted and created again, or truncated? "+
		"Stop the sinks, run k2 lake offsets set --table "+table+" --topic "+topic+" --to-start (see docs/operations/runbooks/topic-recreated.md) and start them again",
		"table", table, "topic", topic, "partition", partition, "table_offset", recorded, "partition_end", end)
}

// endOffsets lists the assigned partitions' end offsets; a failure lists
// none (and no partition is refused).
func (s *Sink) endOffsets(ctx context.Context, assigned map[string]map[int32]kgo.Offset) kadm.ListedOffsets {
	topics := make([]string, 0, len(assigned))
	for t := range assigned {
		topics = append(topics, t)
	}
	ends, err := kadm.NewClient(s.cl).ListEndOffsets(ctx, topics...)
	if err != nil {
		s.log.Warn("cannot list the partitions' end offsets; not checking the tables' offsets against them", "error", err)
		return kadm.ListedOffsets{}
	}
	return ends
}

// commitGroup commits offsets to the consumer group, each with the
// leader epoch of the record before it, so that a sink resuming from
// them has the broker check its log still holds them (KIP-320). The lake
// holds the truth; a failed group commit only means a restart reads the
// lake's.
func (s *Sink) commitGroup(ctx context.Context, o lake.Offsets, epochs map[tp]int32) {
	m := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range o {
		m[t] = map[int32]kgo.EpochOffset{}
		for p, off := range ps {
			epoch, ok := epochs[tp{t, p}]
			if !ok {
				epoch = -1
			}
			m[t][p] = kgo.EpochOffset{Epoch: epoch, Offset: off}
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

// truncated refuses a partition whose log the broker cut short behind
// what this sink read: a segment torn by a crash or damaged is cut at the
// damage when the broker starts, and the partition's next records reuse
// the lost offsets. kgo learns of it from the broker's new leader epoch
// (KIP-320) and would go on reading from the cut; every record there up
// to what the table records would be dropped as already stored, a silent
// loss. The partition is paused instead, until an operator sets the
// table's offset to the cut: what the sink read before the cut is stored
// (or is in the batch being stored), the records at the reused offsets
// are then read, and what the broker held past loss.ConsumedTo that the
// sink had not read is gone from Kafka.
func (s *Sink) truncated(loss *kgo.ErrDataLoss) {
	k := tp{loss.Topic, loss.Partition}
	s.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
	if s.isRefused(k) {
		return
	}
	table := "<table>"
	if info := s.topic(k.topic); info.err == nil {
		table = info.stream.kind.Table.Name
	}
	s.m.consumerErrors.WithLabelValues("log_truncated").Inc()
	s.setRefused(k, fmt.Sprintf("%s[%d]: the broker's log was cut at offset %d behind offset %d the sink had read (docs/operations/runbooks/broker-data-corrupt.md)",
		k.topic, k.partition, loss.ResetTo, loss.ConsumedTo))
	s.log.Error("partition not consumed: the broker's log was cut short behind what the sink read (a torn or damaged segment?); "+
		"the records it had read there are stored, and the partition's next records reuse their offsets, which the table records as stored. "+
		"Stop the sinks, run k2 lake offsets set --table "+table+" --topic "+k.topic+" --partition "+strconv.Itoa(int(k.partition))+" --offset "+strconv.FormatInt(loss.ResetTo, 10)+
		" (see docs/operations/runbooks/broker-data-corrupt.md) and start them again",
		"table", table, "topic", k.topic, "partition", k.partition, "consumed_to", loss.ConsumedTo, "cut_at", loss.ResetTo,
		"reused_offsets", loss.ConsumedTo-loss.ResetTo)
}

func (s *Sink) setRefused(k tp, why string) {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	s.refused[k] = why
}

func (s *Sink) isRefused(k tp) bool {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	_, ok := s.refused[k]
	return ok
}

// Refused says which partitions this sink refuses to consume and why, or
// nil when it consumes every partition it was given.
func (s *Sink) Refused() error {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	if len(s.refused) == 0 {
		return nil
	}
	whys := make([]string, 0, len(s.refused))
	for _, why := range s.refused {
		whys = append(whys, why)
	}
	slices.Sort(whys)
	return fmt.Errorf("%d partitions not consumed: %s", len(whys), strings.Join(whys, "; "))
}
