package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/sink"
)

// offsetsCmd runs `k2 lake offsets ...` on the cluster's lake and brokers.
func (s *cluster) offsetsCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return run(t, append([]string{"lake", "offsets", args[0], "--data-dir", s.dataDir, "--brokers", s.brokers,
		"--topic-prefix", s.prefix, "--sink-group", s.group()}, args[1:]...)...)
}

// waitLog waits until a process's log holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in %s", want, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// topicRecreated stores two thirds of BHP's trades, deletes the trades topic and
// creates it again, and produces the last third to it: offsets start at 0
// while the table records where the old topic ended. The sink refuses the
// partition and says which command to run; `k2 lake offsets show` flags
// it; after `k2 lake offsets set --to-start` a sink stores the new topic's
// records, and the lake holds every trade and quote exactly once.
func topicRecreated(t *testing.T, s *cluster) {
	data := loadBHP(t)
	ctx := context.Background()
	// The new topic holds fewer records than the old one did, so its end
	// is below the table's offset.
	half := len(data.trades) * 2 / 3
	first := bhpStream{ref: data.ref, trades: data.trades[:half], quotes: data.quotes}
	second := bhpStream{ref: data.ref, trades: data.trades[half:]}
	if err := first.produce(ctx, s.producer(t), 5_000, 0); err != nil {
		t.Fatal(err)
	}
	s.waitCaughtUp(t, s.sink(t, 0))
	trades := s.prefix + asxTrades
	if recorded := recordedSum(t, s, trades); recorded != int64(half) {
		t.Fatalf("trades table records offsets summing to %d, want %d", recorded, half)
	}

	if _, err := s.adm.DeleteTopics(ctx, trades); err != nil {
		t.Fatal(err)
	}
	topo := bus.DefaultTopology()
	topo.Prefix = s.prefix
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := bus.CreateTopics(ctx, s.adm, topo)
		created := false
		for _, r := range res {
			created = created || (r.Topic == trades && r.Created)
		}
		if err == nil && created {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trades topic was not created again: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := second.produce(ctx, s.producer(t), 5_000, 0); err != nil {
		t.Fatal(err)
	}

	// The sink refuses the partition, and says what to do.
	refused := s.sink(t, 1)
	waitLog(t, refused.log, "partition not consumed: the table records an offset past the partition's end")
	waitLog(t, refused.log, "k2 lake offsets set --table trades --topic "+trades+" --to-start")
	out, errOut, code := s.offsetsCmd(t, "show", "--table", "trades")
	if code != 0 || !strings.Contains(out, "recorded beyond the topic's end: topic recreated") {
		t.Fatalf("show: %d %q %q", code, out, errOut)
	}
	t.Logf("k2 lake offsets show:\n%s", out)
	refused.Process.Signal(syscall.SIGTERM)
	refused.Wait()
	if n := s.storedRows(ctx, t); n != int64(half) {
		t.Fatalf("%d trades stored while the partition was refused, want %d", n, half)
	}

	// Bad requests are refused with what to fix.
	for _, bad := range [][]string{
		{"set", "--topic", trades, "--to-start"},
		{"set", "--table", "trades", "--topic", trades},
		{"set", "--table", "trades", "--topic", trades, "--offset", "3"},
		{"set", "--table", "quotes", "--topic", trades, "--to-start"},
	} {
		if _, errOut, code := s.offsetsCmd(t, bad...); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%v: exit %d, %q", bad, code, errOut)
		}
	}
	out, errOut, code = s.offsetsCmd(t, "set", "--table", "trades", "--topic", trades, "--to-start", "--dry-run")
	if code != 0 || !strings.Contains(out, "would set") {
		t.Fatalf("dry run: %d %q %q", code, out, errOut)
	}
	if off := recordedSum(t, s, trades); off != int64(half) {
		t.Fatalf("a dry run moved the offsets to %d", off)
	}
	// Each way of naming offsets; none commits, so each replaces the last.
	var part int32 = -1
	for _, p := range positions(t, s) {
		if p.Topic == trades {
			part = p.Partition
		}
	}
	recordedAt := func() sink.Position {
		for _, p := range positions(t, s) {
			if p.Topic == trades && p.Partition == part {
				return p
			}
		}
		t.Fatalf("no position of %s[%d]", trades, part)
		return sink.Position{}
	}
	if _, errOut, code := s.offsetsCmd(t, "set", "--table", "trades", "--topic", trades, "--partition", fmt.Sprint(part), "--offset", "5"); code != 0 || *recordedAt().Recorded != 5 {
		t.Fatalf("set --offset 5: %d %q %+v", code, errOut, recordedAt())
	}
	if _, errOut, code := s.offsetsCmd(t, "set", "--table", "trades", "--to-end"); code != 0 || *recordedAt().Recorded != int64(len(second.trades)) {
		t.Fatalf("set --to-end: %d %q %+v", code, errOut, recordedAt())
	}
	file := filepath.Join(t.TempDir(), "offsets.json")
	os.WriteFile(file, []byte(fmt.Sprintf(`{%q: {"%d": 7}}`, trades, part)), 0o644)
	if _, errOut, code := s.offsetsCmd(t, "set", "--table", "trades", "--from-file", file); code != 0 || *recordedAt().Recorded != 7 {
		t.Fatalf("set --from-file: %d %q %+v", code, errOut, recordedAt())
	}
	if _, errOut, code := s.offsetsCmd(t, "set", "--table", "trades", "--to-start"); code != 0 || *recordedAt().Recorded != 0 {
		t.Fatalf("set --to-start on every topic: %d %q %+v", code, errOut, recordedAt())
	}
	out, errOut, code = s.offsetsCmd(t, "set", "--table", "trades", "--topic", trades, "--to-start")
	if code != 0 || !strings.Contains(out, "0 → 0") {
		t.Fatalf("set: %d %q %q", code, out, errOut)
	}
	t.Logf("k2 lake offsets set:\n%s%s", out, errOut)
	for _, p := range positions(t, s) {
		if p.Topic == trades && (p.Recorded == nil || *p.Recorded != 0 || !p.Overridden || p.Problem != "") {
			t.Errorf("after set: %+v", p)
		}
	}

	s.waitCaughtUp(t, s.sink(t, 2))
	s.verify(t, data)
	if off := recordedSum(t, s, trades); off != int64(len(second.trades)) {
		t.Errorf("the table records offsets summing to %d on the new topic, want %d", off, len(second.trades))
	}
}

// positions is what `k2 lake offsets show --json` says of the trades table.
func positions(t *testing.T, s *cluster) []sink.Position {
	t.Helper()
	out, errOut, code := s.offsetsCmd(t, "show", "--table", "trades", "--json")
	var pos []sink.Position
	if err := json.Unmarshal([]byte(out), &pos); code != 0 || err != nil {
		t.Fatalf("show: %d %v %q", code, err, errOut)
	}
	return pos
}

// recordedSum adds up the offsets the trades table records for a topic's
// partitions: the records it has consumed of it.
func recordedSum(t *testing.T, s *cluster, topic string) int64 {
	t.Helper()
	tbl, err := s.lake.Load(context.Background(), "trades")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, off := range lake.TableOffsets(tbl)[topic] {
		n += off
	}
	return n
}

func TestTopicRecreatedEmbedded(t *testing.T) { topicRecreated(t, embeddedStack(t)) }

func TestTopicRecreatedKafka(t *testing.T) { topicRecreated(t, kafkaStack(t)) }
