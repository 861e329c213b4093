package bus

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LatestByKey returns the newest record of each key among the last depth
// records of every partition of topic. A feed restarting after a crash
// reads where it stopped from it: records are keyed by symbol, so one
// symbol's records are in one partition in the order produced.
func LatestByKey(ctx context.Context, brokers []string, sec Security, topic string, depth int64) (map[string]*kgo.Record, error) {
	cl, err := NewClient(brokers, sec, kgo.ClientID("k2-tail"))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("%s start offsets: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("%s end offsets: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	left := 0 // partitions not yet read to their end
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset <= start.Offset {
			return // empty
		}
		from[o.Partition] = kgo.NewOffset().At(max(start.Offset, o.Offset-depth))
		want[o.Partition] = o.Offset
		left++
	})
	out := map[string]*kgo.Record{}
	if left == 0 {
		return out, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("%s[%d]: %w", t, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[string(r.Key)] = r
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
				left--
			}
		})
	}
	return out, nil
}
