package bus

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The broker gives up what the sink group committed and nothing else:
// not a partition the group has not reached, not the last keep of any.
func TestTrimDeletesOnlyWhatTheGroupCommitted(t *testing.T) {
	t.Parallel()
	b, _ := embedded(t, t.TempDir())
	ctx := context.Background()
	adm := admin(t, b.Addr())
	topo := DefaultTopology()
	topo.SegmentBytes = 1 << 10 // a segment per few batches, so trimming frees them
	if _, err := CreateTopics(ctx, adm, topo); err != nil {
		t.Fatal(err)
	}
	const topic = "market.crypto.trades.binance"
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 200 {
		r := &kgo.Record{Partition: int32(i % 2), Value: make([]byte, 100)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group has stored 60 records of partition 0 and none of partition 1.
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: topic, Partition: 0, At: 60})
	if _, err := adm.CommitOffsets(ctx, "k2-sink", commit); err != nil {
		t.Fatal(err)
	}
	if done, err := TrimConsumed(ctx, adm, "k2-sink", topo.StreamTopics(), time.Hour); err != nil || len(done) != 0 {
		t.Fatalf("keeping the last hour: trimmed %+v %v; want nothing", done, err)
	}
	done, err := TrimConsumed(ctx, adm, "k2-sink", topo.StreamTopics(), 0)
	if err != nil || len(done) != 1 || done[0] != (Trimmed{Topic: topic, Partition: 0, From: 0, To: 60}) {
		t.Fatalf("trimmed %+v %v; want partition 0 up to the group's 60", done, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int32]int64{0: 60, 1: 0} {
		if s, _ := starts.Lookup(topic, p); s.Offset != want {
			t.Errorf("partition %d starts at %d, want %d", p, s.Offset, want)
		}
	}
	// A consumer of the committed group reads on from 60.
	c, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic), kgo.ConsumerGroup("k2-sink"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var first int64 = -1
	for first < 0 && pctx.Err() == nil {
		c.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if r.Partition == 0 && first < 0 {
				first = r.Offset
			}
		})
	}
	if first != 60 {
		t.Fatalf("the group read partition 0 from %d, want 60", first)
	}
}

// Topics an earlier K2 created without a segment size get it at start.
func TestEnsureTopicsSetsTheSegmentSizeOfExistingTopics(t *testing.T) {
	t.Parallel()
	b, _ := embedded(t, t.TempDir())
	ctx := context.Background()
	adm := admin(t, b.Addr())
	if _, err := CreateTopics(ctx, adm, DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	topo := DefaultTopology()
	topo.SegmentBytes = 8 << 20
	if err := EnsureTopics(ctx, []string{b.Addr()}, Security{}, topo); err != nil {
		t.Fatal(err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "market.crypto.trades.binance", "market.crypto.trades.binance.dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rc {
		got := ""
		for _, c := range r.Configs {
			if c.Key == "segment.bytes" && c.Value != nil {
				got = *c.Value
			}
		}
		if want := map[bool]string{true: "8388608", false: "104857600"}[r.Name == "market.crypto.trades.binance"]; got != want {
			t.Errorf("%s: segment.bytes %q, want %q", r.Name, got, want)
		}
	}
}
