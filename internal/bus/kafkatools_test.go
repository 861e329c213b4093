package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/testsvc"
)

// Apache Kafka's own tools, run as an operator runs them against k2 up
// (docs/operations/kafka-tools.md): each exits 0 and prints what the broker
// holds.
func TestKafkaToolsAgainstEmbeddedBroker(t *testing.T) {
	tools := testsvc.Tools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := StartLocal(ctx, LocalConfig{Dir: t.TempDir(), BrokerListen: "127.0.0.1:0", RegistryListen: "127.0.0.1:0", Topology: DefaultTopology()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bootstrap := []string{"--bootstrap-server", l.Brokers()[0]}
	run := func(class string, args ...string) string {
		t.Helper()
		return tools.Run(t, class, append(bootstrap, args...)...)
	}
	const topic = "market.crypto.trades.binance"

	// Records keyed by symbol spread over the six partitions; the acks say
	// where each went.
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := map[int32]int64{}
	produce := func(n int) {
		t.Helper()
		for i := range n {
			r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "SYM%d", i%11), Value: fmt.Appendf(nil, "%d", i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			ends[r.Partition] = r.Offset + 1
		}
	}
	produce(200)
	if len(ends) < 2 {
		t.Fatalf("records went to %d partition(s): the test needs several", len(ends))
	}

	t.Run("topics", func(t *testing.T) {
		out := run(testsvc.TopicCommand, "--create", "--topic", "ops.scratch", "--partitions", "4", "--config", "retention.ms=3600000")
		if !strings.Contains(out, "Created topic ops.scratch.") {
			t.Errorf("--create printed %q", out)
		}
		list := strings.Fields(run(testsvc.TopicCommand, "--list"))
		if !slices.Contains(list, "ops.scratch") || !slices.Contains(list, topic) || !slices.Contains(list, topic+DLQSuffix) {
			t.Errorf("--list printed %v", list)
		}
		desc := run(testsvc.TopicCommand, "--describe", "--topic", topic)
		head, parts, _ := strings.Cut(desc, "\n")
		for _, want := range []string{"Topic: " + topic, "PartitionCount: 6", "ReplicationFactor: 1", "compression.type=" + Compression, "retention.ms=604800000"} {
			if !strings.Contains(head, want) {
				t.Errorf("--describe header %q lacks %q", head, want)
			}
		}
		for p := range 6 {
			if !strings.Contains(parts, fmt.Sprintf("Topic: %s\tPartition: %d\tLeader: 0\tReplicas: 0\tIsr: 0", topic, p)) {
				t.Errorf("--describe lacks partition %d:\n%s", p, desc)
			}
		}
		scratch := run(testsvc.TopicCommand, "--describe", "--topic", "ops.scratch")
		if !strings.Contains(scratch, "PartitionCount: 4") || !strings.Contains(scratch, "retention.ms=3600000") {
			t.Errorf("--describe of the created topic:\n%s", scratch)
		}
	})

	t.Run("get-offsets", func(t *testing.T) {
		got := offsetLines(t, run(testsvc.GetOffsetShell, "--topic", topic))
		want := map[string]int64{}
		for p := range int32(6) {
			want[fmt.Sprintf("%s:%d", topic, p)] = ends[p]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("end offsets %v, produced %v", got, want)
		}
		earliest := offsetLines(t, run(testsvc.GetOffsetShell, "--topic", topic, "--time", "-2"))
		for tp, off := range earliest {
			if off != 0 {
				t.Errorf("%s: earliest offset %d, want 0", tp, off)
			}
		}
	})

	// As with Kafka's default auto.create.topics.enable, the console
	// producer's first record creates a missing topic instead of waiting
	// for it (60 s) and failing.
	t.Run("console-producer-creates-a-missing-topic", func(t *testing.T) {
		cmd := tools.Command(ctx, testsvc.ConsoleProducer, append(bootstrap, "--topic", "ops.new")...)
		cmd.Stdin = strings.NewReader("one\ntwo\nthree\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("console producer: %v\n%s", err, out)
		}
		if desc := run(testsvc.TopicCommand, "--describe", "--topic", "ops.new"); !strings.Contains(desc, "PartitionCount: 6") {
			t.Errorf("the created topic:\n%s", desc)
		}
		total := int64(0)
		for _, n := range offsetLines(t, run(testsvc.GetOffsetShell, "--topic", "ops.new")) {
			total += n
		}
		if total != 3 {
			t.Errorf("ops.new holds %d records, want the 3 produced", total)
		}
	})

	// A group that consumed everything, committed and left, and then 30
	// more records: its lag.
	const group = "ops-group"
	consumer, err := kgo.NewClient(kgo.SeedBrokers(l.Brokers()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 200; {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	consumer.Close()
	committed := map[int32]int64{}
	for p, off := range ends {
		committed[p] = off
	}
	produce(30)
	adm := kadm.NewClient(cl)

	t.Run("consumer-groups", func(t *testing.T) {
		if list := strings.Fields(run(testsvc.ConsumerGroupCommand, "--list")); !slices.Contains(list, group) {
			t.Errorf("--list printed %v, want %s", list, group)
		}
		rows := table(run(testsvc.ConsumerGroupCommand, "--describe", "--group", group))
		lag := int64(0)
		for _, r := range rows {
			p := int32(atoi(t, r["PARTITION"]))
			if r["GROUP"] != group || r["TOPIC"] != topic {
				t.Errorf("row %v", r)
			}
			if r["CURRENT-OFFSET"] != strconv.FormatInt(committed[p], 10) && !(committed[p] == 0 && r["CURRENT-OFFSET"] == "-") {
				t.Errorf("partition %d: CURRENT-OFFSET %s, committed %d", p, r["CURRENT-OFFSET"], committed[p])
			}
			if r["LOG-END-OFFSET"] != strconv.FormatInt(ends[p], 10) {
				t.Errorf("partition %d: LOG-END-OFFSET %s, end %d", p, r["LOG-END-OFFSET"], ends[p])
			}
			if r["LAG"] != "-" {
				lag += int64(atoi(t, r["LAG"]))
			}
		}
		if len(rows) < len(committed) || lag != 30 {
			t.Errorf("--describe: %d rows, total lag %d; want a row per partition read and lag 30:\n%v", len(rows), lag, rows)
		}

		reset := []string{"--group", group, "--topic", topic, "--reset-offsets", "--to-earliest"}
		plan := table(run(testsvc.ConsumerGroupCommand, append(reset, "--dry-run")...))
		if len(plan) != 6 {
			t.Errorf("--dry-run planned %d partitions, want 6: %v", len(plan), plan)
		}
		for _, r := range plan {
			if r["NEW-OFFSET"] != "0" {
				t.Errorf("--dry-run plans %v", r)
			}
		}
		if got := fetchOffsets(t, adm, group, topic); fmt.Sprint(got) != fmt.Sprint(committed) {
			t.Errorf("after --dry-run the group's offsets are %v, want them unchanged at %v", got, committed)
		}
		run(testsvc.ConsumerGroupCommand, append(reset, "--execute")...)
		for p, off := range fetchOffsets(t, adm, group, topic) {
			if off != 0 {
				t.Errorf("after --execute partition %d is at %d, want 0", p, off)
			}
		}
		lag = 0
		for _, r := range table(run(testsvc.ConsumerGroupCommand, "--describe", "--group", group)) {
			lag += int64(atoi(t, r["LAG"]))
		}
		if lag != 230 {
			t.Errorf("lag after the reset %d, want all 230 records", lag)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}

// offsetLines reads GetOffsetShell's topic:partition:offset lines.
func offsetLines(t *testing.T, out string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, line := range strings.Fields(out) {
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			t.Fatalf("GetOffsetShell printed %q", line)
		}
		got[line[:i]] = int64(atoi(t, line[i+1:]))
	}
	return got
}

// table reads the consumer-groups tool's table: a header line, then a row
// per line, columns split on spaces (no cell is empty: the tool prints -).
func table(out string) []map[string]string {
	var head []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case head == nil:
			head = f
		case len(f) == len(head):
			r := map[string]string{}
			for i, h := range head {
				r[h] = f[i]
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func fetchOffsets(t *testing.T, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resp, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			got[o.Partition] = o.At
		}
	})
	return got
}
