package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Trimmed is what a trim deleted from one partition.
type Trimmed struct {
	Topic     string
	Partition int32
	From, To  int64 // the records [From, To) were deleted
}

// TrimConsumed deletes from topics the records that group has committed
// and that are older than keep: the lake holds them, and the embedded
// broker would otherwise keep every record for the topics' retention (a
// week), on disk and in its index. A partition the group has not
// committed is left alone, so nothing a sink has not stored is deleted,
// and the last keep of every partition stays for a rewind.
func TrimConsumed(ctx context.Context, adm *kadm.Client, group string, topics []string, keep time.Duration) ([]Trimmed, error) {
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topics...)
	if err != nil {
		return nil, fmt.Errorf("offsets of group %s: %w", group, err)
	}
	// The first offset at or after now-keep: what is before it is older.
	recent, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-keep).UnixMilli(), topics...)
	if err != nil {
		return nil, fmt.Errorf("offsets %s ago: %w", keep, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("start offsets: %w", err)
	}
	del := kadm.Offsets{}
	var out []Trimmed
	starts.Each(func(s kadm.ListedOffset) {
		c, ok := committed.Lookup(s.Topic, s.Partition)
		r, ok2 := recent.Lookup(s.Topic, s.Partition)
		if !ok || !ok2 || s.Err != nil || c.Err != nil || r.Err != nil || c.At < 0 {
			return
		}
		to := min(c.At, r.Offset)
		if to > s.Offset {
			del.Add(kadm.Offset{Topic: s.Topic, Partition: s.Partition, At: to})
			out = append(out, Trimmed{Topic: s.Topic, Partition: s.Partition, From: s.Offset, To: to})
		}
	})
	if len(del) == 0 {
		return nil, nil
	}
	resp, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		return nil, fmt.Errorf("delete records: %w", err)
	}
	if err := resp.Error(); err != nil {
		return out, fmt.Errorf("delete records: %w", err)
	}
	return out, nil
}
