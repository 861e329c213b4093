package kfake

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Apache Kafka's admin client (and so kafka-topics.sh,
// kafka-consumer-groups.sh and GetOffsetShell) reads some nullable fields
// without a null check, because its brokers always send them, and matches
// ListGroups filters the way its brokers do. These tests pin what goes over
// the wire, decoded by kmsg: a null array decodes as nil, an empty one as
// a non-nil empty slice.

func TestJavaAdminDescribeTopicPartitionsSendsELR(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NumBrokers(1), SeedTopics(2, "t"))
	cl := newPlainClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
	rt.Topic = "t"
	req.Topics = append(req.Topics, rt)
	req.ResponsePartitionLimit = 10
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("got %+v, want topic t with 2 partitions", resp.Topics)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.EligibleLeaderReplicas == nil || p.LastKnownELR == nil {
			t.Errorf("partition %d: EligibleLeaderReplicas %v, LastKnownELR %v: want empty lists, not null",
				p.Partition, p.EligibleLeaderReplicas, p.LastKnownELR)
		}
	}
}

func TestJavaAdminCreateTopicsSendsConfigs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NumBrokers(1))
	cl := newPlainClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := kmsg.NewPtrCreateTopicsRequest()
	plain := kmsg.NewCreateTopicsRequestTopic()
	plain.Topic, plain.NumPartitions, plain.ReplicationFactor = "plain", 1, 1
	withCfg := kmsg.NewCreateTopicsRequestTopic()
	withCfg.Topic, withCfg.NumPartitions, withCfg.ReplicationFactor = "configured", 1, 1
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "retention.ms", kmsg.StringPtr("60000")
	withCfg.Configs = append(withCfg.Configs, cfg)
	req.Topics = append(req.Topics, plain, withCfg)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range resp.Topics {
		if st.ErrorCode != 0 {
			t.Fatalf("%s: error code %d", st.Topic, st.ErrorCode)
		}
		if st.Configs == nil {
			t.Errorf("%s: Configs is null: want a list (empty if none)", st.Topic)
		}
		for _, c := range st.Configs {
			if c.Source < 0 {
				t.Errorf("%s: config %s has source %d: want a valid ConfigSource", st.Topic, c.Name, c.Source)
			}
		}
	}
	if got := resp.Topics[1].Configs; len(got) != 1 || got[0].Name != "retention.ms" || *got[0].Value != "60000" {
		t.Errorf("configured: Configs %+v, want retention.ms=60000", got)
	}
}

func TestJavaAdminListGroupsFiltersIgnoreCase(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NumBrokers(1), SeedTopics(1, "t"))
	produceN(t, c, "t", 1)
	classic := newPlainClient(t, c,
		kgo.ConsumeTopics("t"),
		kgo.ConsumerGroup("classic-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	consumeN(t, classic, 1, 10*time.Second)
	waitStable(t, c, "classic-group", 1)
	next := newGroupConsumer(t, c, "t", "consumer-group")
	consumeN(t, next, 1, 10*time.Second)
	waitStable(t, c, "consumer-group", 1)

	admin := newPlainClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range []struct {
		types, states []string
		want          string
	}{
		{types: []string{"Classic"}, want: "classic-group"}, // what Kafka's admin client sends
		{types: []string{"classic"}, want: "classic-group"}, // what a ListGroups response names it
		{types: []string{"Consumer"}, want: "consumer-group"},
		{types: []string{"CLASSIC"}, states: []string{"STABLE"}, want: "classic-group"}, // Kafka's brokers lower-case both sides
	} {
		req := kmsg.NewPtrListGroupsRequest()
		req.TypesFilter, req.StatesFilter = f.types, f.states
		resp, err := req.RequestWith(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Groups) != 1 || resp.Groups[0].Group != f.want {
			t.Errorf("types %v states %v: got %+v, want only %s", f.types, f.states, resp.Groups, f.want)
		}
	}
}
