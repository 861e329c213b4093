package lake

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Compaction beside a live system rests after a group in proportion to
// the group's time, so it keeps to its share of a core; stopping ends the
// rest at once.
func TestCompactionKeepsToItsShare(t *testing.T) {
	o := CompactOptions{Share: 0.25}
	start := time.Now()
	if err := o.rest(context.Background(), 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if rested := time.Since(start); rested < 30*time.Millisecond {
		t.Errorf("rested %s after 10 ms of work at a quarter of a core; want at least 30 ms", rested)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.rest(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("a stopped compaction rests on: %v", err)
	}
	for _, share := range []float64{0, 1} {
		o := CompactOptions{Share: share}
		if err := o.rest(ctx, time.Hour); err != nil {
			t.Errorf("share %g rests: %v", share, err)
		}
	}
}
