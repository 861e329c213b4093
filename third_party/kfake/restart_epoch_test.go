package kfake

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A restart from a DataDir begins a new leader epoch, so a consumer that
// stays up across it validates its position (KIP-320). These tests keep
// one consumer running across a restart on the same port.

// restartCluster closes c and starts a new cluster on its port and dir.
func restartCluster(t *testing.T, c *Cluster, dir string, damage func()) *Cluster {
	t.Helper()
	_, port, err := net.SplitHostPort(c.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	c.Close()
	if damage != nil {
		damage()
	}
	return newCluster(t, DataDir(dir), NumBrokers(1), Ports(p))
}

// pollRestarted polls cl until want records arrived, a fetch error did, or
// within passed.
func pollRestarted(t *testing.T, cl *kgo.Client, want int, within time.Duration) (recs []*kgo.Record, errs []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for len(recs) < want && len(errs) == 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, err)
			}
		})
		recs = append(recs, fs.Records()...)
	}
	return recs, errs
}

func TestPersistTornSegmentReportsDataLoss(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic = "torn"
	c := newCluster(t, DataDir(dir), SyncWrites(), NumBrokers(1), SeedTopics(1, topic))
	produceN(t, c, topic, 10) // ten batches, offsets 0-9
	cl := newPlainClient(t, c, kgo.ConsumeTopics(topic), kgo.FetchMaxWait(250*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if recs, errs := pollRestarted(t, cl, 10, 10*time.Second); len(recs) != 10 || len(errs) > 0 {
		t.Fatalf("before the restart: %d records, errors %v; want 10 and none", len(recs), errs)
	}

	// Garble the eighth batch: the segment is cut there at the restart,
	// losing offsets 7-9, and the next records reuse them.
	c = restartCluster(t, c, dir, func() {
		path := filepath.Join(dir, "partitions", topic+"-0", segmentFileName(0))
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pos := 0
		for range 7 {
			pos += 12 + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
		}
		raw[pos+12+int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))-1] ^= 0xFF // its last byte
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if hwm := c.PartitionInfo(topic, 0).HighWatermark; hwm != 7 {
		t.Fatalf("high watermark after the cut: %d, want 7", hwm)
	}
	produceN(t, c, topic, 5) // offsets 7-11 again

	recs, errs := pollRestarted(t, cl, 1, 15*time.Second)
	var loss *kgo.ErrDataLoss
	if len(errs) != 1 || !errors.As(errs[0], &loss) {
		t.Fatalf("after the cut: errors %v, %d records; want one ErrDataLoss", errs, len(recs))
	}
	if loss.ConsumedTo != 10 || loss.ResetTo != 7 {
		t.Errorf("data loss consumed to %d, reset to %d; want 10 and 7", loss.ConsumedTo, loss.ResetTo)
	}
	if len(recs) > 0 {
		t.Errorf("%d records at reused offsets delivered before the data loss", len(recs))
	}
}

func TestPersistCleanRestartKeepsPosition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const topic = "clean"
	c := newCluster(t, DataDir(dir), SyncWrites(), NumBrokers(1), SeedTopics(1, topic))
	produceN(t, c, topic, 4)
	cl := newPlainClient(t, c, kgo.ConsumeTopics(topic), kgo.FetchMaxWait(250*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if recs, errs := pollRestarted(t, cl, 4, 10*time.Second); len(recs) != 4 || len(errs) > 0 {
		t.Fatalf("before the restart: %d records, errors %v; want 4 and none", len(recs), errs)
	}
	epoch := c.PartitionInfo(topic, 0).Epoch

	c = restartCluster(t, c, dir, nil)
	if e := c.PartitionInfo(topic, 0).Epoch; e != epoch+1 {
		t.Errorf("leader epoch after the restart: %d, want %d", e, epoch+1)
	}
	// Nothing produced since the restart: the old epoch ends at the log
	// end, and the consumer keeps its place.
	if recs, errs := pollRestarted(t, cl, 1, 3*time.Second); len(recs) > 0 || len(errs) > 0 {
		t.Fatalf("idle after the restart: %d records, errors %v; want none", len(recs), errs)
	}
	produceN(t, c, topic, 3)
	recs, errs := pollRestarted(t, cl, 3, 10*time.Second)
	if len(errs) > 0 || len(recs) != 3 || recs[0].Offset != 4 {
		t.Fatalf("after the restart: %d records, errors %v; want offsets 4-6 and no error", len(recs), errs)
	}
}
