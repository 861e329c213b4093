package alerts

import (
	"context"
	"time"
)

// Watch calls poll now and then every interval until ctx is done, and
// calls show with each poll's output only when it differs from the last
// one shown: a watcher reads changes, not the same table every few
// seconds. A poll's error is output like any other, so a server that
// stops answering, and one that answers again, are both shown once.
func Watch(ctx context.Context, interval time.Duration, poll func(context.Context) (string, error), show func(out string, err error)) {
	last, shown := "", false
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		out, err := poll(ctx)
		if ctx.Err() != nil {
			return
		}
		cur := out
		if err != nil {
			cur = "error: " + err.Error()
		}
		if !shown || cur != last {
			show(out, err)
			last, shown = cur, true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
