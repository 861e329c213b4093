package sink

import (
	"strconv"
	"strings"

	"github.com/apache/iceberg-go/table"
)

// OffsetPrefix starts the snapshot-summary keys that record consumed Kafka
// offsets: k2.kafka-offset.<topic>.<partition> = the next offset to read.
// The offsets go into the same atomic commit as the rows they produced, so
// the table itself says where consumption stands: a sink killed between
// its lake commit and its group commit resumes from here and repeats
// nothing.
const OffsetPrefix = "k2.kafka-offset."

// Offsets maps topic → partition → next offset.
type Offsets map[string]map[int32]int64

func (o Offsets) set(topic string, partition int32, next int64) {
	p := o[topic]
	if p == nil {
		p = map[int32]int64{}
		o[topic] = p
	}
	if next > p[partition] {
		p[partition] = next
	}
}

// props are the snapshot-summary properties for o.
func (o Offsets) props() map[string]string {
	out := make(map[string]string, len(o))
	for t, ps := range o {
		for p, off := range ps {
			out[OffsetPrefix+t+"."+strconv.Itoa(int(p))] = strconv.FormatInt(off, 10)
		}
	}
	return out
}

// TableOffsets reads the offsets recorded in a table's snapshots: for each
// partition the highest, since several sinks commit to one table and each
// records only its own partitions. Snapshots that were expired take their
// offsets with them; the consumer group's committed offsets cover those.
func TableOffsets(tbl *table.Table) Offsets {
	out := Offsets{}
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary == nil {
			continue
		}
		for k, v := range s.Summary.Properties {
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
				out.set(rest[:i], int32(p), off)
			}
		}
	}
	return out
}
