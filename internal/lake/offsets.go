package lake

import (
	"maps"
	"strconv"
	"strings"

	"github.com/apache/iceberg-go/table"
)

// OffsetPrefix starts the snapshot-summary keys that record consumed Kafka
// offsets: k2.kafka-offset.<topic>.<partition> = the next offset to read.
// A stream writer puts them into the same atomic commit as the rows they
// produced, so the table itself says where consumption stands: a consumer
// killed between its lake commit and its group commit resumes from here
// and repeats nothing. Every such commit carries the offsets of all
// partitions forward, so the latest one is complete.
const OffsetPrefix = "k2.kafka-offset."

// Offsets maps topic → partition → next offset to read.
type Offsets map[string]map[int32]int64

// Set records next for a partition, keeping the higher of old and new:
// offsets only move forward.
func (o Offsets) Set(topic string, partition int32, next int64) {
	p := o[topic]
	if p == nil {
		p = map[int32]int64{}
		o[topic] = p
	}
	if cur, ok := p[partition]; !ok || next > cur {
		p[partition] = next
	}
}

// Get returns the next offset for a partition and whether one is recorded.
func (o Offsets) Get(topic string, partition int32) (int64, bool) {
	off, ok := o[topic][partition]
	return off, ok
}

// Merge sets every offset of other in o.
func (o Offsets) Merge(other Offsets) {
	for t, ps := range other {
		for p, off := range ps {
			o.Set(t, p, off)
		}
	}
}

// Props are the snapshot-summary properties for o.
func (o Offsets) Props() map[string]string {
	out := make(map[string]string, len(o))
	for t, ps := range o {
		for p, off := range ps {
			out[OffsetPrefix+t+"."+strconv.Itoa(int(p))] = strconv.FormatInt(off, 10)
		}
	}
	return out
}

// offsetsOf parses the offsets in a snapshot summary.
func offsetsOf(props map[string]string) Offsets {
	out := Offsets{}
	for k, v := range props {
		rest, ok := strings.CutPrefix(k, OffsetPrefix)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			continue
		}
		p, err1 := strconv.ParseInt(rest[i+1:], 10, 32)
		off, err2 := strconv.ParseInt(v, 10, 64)
		if err1 == nil && err2 == nil {
			out.Set(rest[:i], int32(p), off)
		}
	}
	return out
}

// TableOffsets returns where a stream resumes on the table as it stands:
// the offsets an operator set (SetOffsets) while no commit has followed
// them, else those recorded by the latest snapshot that records any,
// walking back from the current one past snapshots written by others (a
// load, a compaction that did not carry them). It is empty for a table no
// stream has written, or whose offset-bearing snapshots expired; the
// consumer group's committed offsets cover that case.
func TableOffsets(tbl *table.Table) Offsets {
	o, _ := CurrentOffsets(tbl)
	return o
}

// CurrentOffsets is TableOffsets, also saying whether they are an
// operator's override: those are to be followed even where they go back
// (a topic recreated), and even below the consumer group's offsets.
//
// A compaction after offsets were set by hand records them in its summary
// with SetByHandProperty, so they keep that standing until a stream
// commit: a sink started after a restore and a compaction still resumes
// from the restored offsets rather than the consumer group's later ones.
func CurrentOffsets(tbl *table.Table) (Offsets, bool) {
	if ov, ok := ActiveOverride(tbl); ok {
		return ov.Offsets.Clone(), true
	}
	o, snap := RecordedOffsets(tbl, tbl.Metadata().CurrentSnapshot())
	return o, snap != nil && snap.Summary.Properties[SetByHandProperty] == "true"
}

// SetByHandProperty marks a snapshot summary whose offsets were carried
// from offsets set by hand (a compaction's).
const SetByHandProperty = "k2.kafka-offsets.set-by-hand"

// SnapshotOffsets returns the offsets recorded by snap or, when it records
// none, by its nearest ancestor that does: the stream's position when the
// table stood at snap.
func SnapshotOffsets(tbl *table.Table, snap *table.Snapshot) Offsets {
	o, _ := RecordedOffsets(tbl, snap)
	return o
}

// RecordedOffsets is SnapshotOffsets and the snapshot that recorded them
// (nil when none did).
func RecordedOffsets(tbl *table.Table, snap *table.Snapshot) (Offsets, *table.Snapshot) {
	md := tbl.Metadata()
	for s := snap; s != nil; {
		if s.Summary != nil {
			if o := offsetsOf(s.Summary.Properties); len(o) > 0 {
				return o, s
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return Offsets{}, nil
}

// Clone returns a copy of o.
func (o Offsets) Clone() Offsets {
	out := make(Offsets, len(o))
	for t, ps := range o {
		out[t] = maps.Clone(ps)
	}
	return out
}

// Streamed reports whether snap changed its parent's rows only by adding
// records of the stream from the parent's offsets to its own (a stream
// commit) or not at all (a compaction, which carries the offsets
// forward): the table at snap is the table at its parent plus the
// stream's records between the two snapshots' offsets. A load, which
// records no offsets, and a commit whose offsets went back (a topic
// recreated) are not.
func Streamed(tbl *table.Table, snap *table.Snapshot) bool {
	if snap == nil || snap.Summary == nil || snap.ParentSnapshotID == nil {
		return false
	}
	own := offsetsOf(snap.Summary.Properties)
	if len(own) == 0 {
		return false
	}
	parent := tbl.Metadata().SnapshotByID(*snap.ParentSnapshotID)
	if parent == nil {
		return false
	}
	for t, ps := range SnapshotOffsets(tbl, parent) {
		for p, off := range ps {
			if now, ok := own.Get(t, p); !ok || now < off {
				return false
			}
		}
	}
	return true
}
