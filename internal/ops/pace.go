package ops

import (
	"context"
	"time"
)

// Rest paces background work beside a live system (compaction, warming
// caches): after a step that took busy, it waits so that the work keeps
// to share of one core, and queries do not queue behind it. A share of 0
// or 1 and more does not wait. It returns early with ctx's error.
func Rest(ctx context.Context, busy time.Duration, share float64) error {
	if share <= 0 || share >= 1 || busy <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(float64(busy) * (1/share - 1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
