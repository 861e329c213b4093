package sink

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
)

// A running sink whose broker restarts with a partition's log cut short
// (a segment torn by a crash) refuses that partition instead of dropping
// the records at the reused offsets as already stored; once the table's
// offset is set to the cut, every record is stored exactly once.
func TestSinkRefusesAPartitionWhoseLogWasCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := filepath.Join(t.TempDir(), "kafka")
	b, err := bus.StartBroker(dir, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := setUp(t, &env{brokers: []string{addr}})
	ctx := context.Background()
	topic := binanceTrades

	e.produceTrades(t, 0, 3_000)
	s := e.startSink(t, Config{})
	waitFor(t, "the first records", func() bool { return s.Stats().Written == 3_000 })
	ends := e.endOffsets(t, topic)

	// Tear the last byte of the busiest partition's segment while the
	// broker is down: it cuts the segment's last batch at the restart.
	b.Close()
	var part int32
	for p, end := range ends {
		if end > ends[part] {
			part = p
		}
	}
	seg := filepath.Join(dir, "partitions", topic+"-"+strconv.Itoa(int(part)), "0.dat")
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 0xFF
	if err := os.WriteFile(seg, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = bus.StartBroker(dir, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cut := e.endOffsets(t, topic)[part]
	if cut >= ends[part] {
		t.Fatalf("partition %d ends at %d after the tear, was %d: nothing cut", part, cut, ends[part])
	}
	t.Logf("partition %d cut from %d to %d", part, ends[part], cut)

	// New records; those of the torn partition reuse the cut offsets.
	e.produceTrades(t, 3_000, 3_000)
	waitFor(t, "the refusal", func() bool { return s.metric("k2_consumer_errors_total", "error_type", "log_truncated") == 1 })
	if err := s.Refused(); err == nil || !strings.Contains(err.Error(), "cut at offset "+strconv.FormatInt(cut, 10)) {
		t.Errorf("Refused() = %v, want the partition cut at %d", err, cut)
	}
	after := e.endOffsets(t, topic)
	waitFor(t, "the other partitions", func() bool {
		stored := e.tableOffsets(t, "trades")
		for p, end := range after {
			if got, _ := stored.Get(topic, p); p != part && end > 0 && got != end {
				return false
			}
		}
		return true
	})
	if got, _ := e.tableOffsets(t, "trades").Get(topic, part); got != ends[part] {
		t.Errorf("the table records offset %d for the refused partition, want %d (what was read before the cut)", got, ends[part])
	}
	if s.Stats().Duplicates != 0 {
		t.Errorf("%d records dropped as already stored", s.Stats().Duplicates)
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}

	// The runbook's repair: the table's offset set to the cut. The records
	// cut from the broker were stored before the cut; every new one is
	// stored now, and nothing twice.
	if _, err := e.lake.SetOffsets(ctx, "trades", lake.Offsets{topic: {part: cut}}, false); err != nil {
		t.Fatal(err)
	}
	s2 := e.startSink(t, Config{})
	waitFor(t, "every record", func() bool {
		got, _ := e.tableOffsets(t, "trades").Get(topic, part)
		return got == after[part]
	})
	s2.stop(t)
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), 6_000)
	if err := s2.Refused(); err != nil {
		t.Errorf("after the offsets were set: %v", err)
	}
}
