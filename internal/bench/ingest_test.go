package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

// The freshness figure is only as good as the watcher's count: it must see
// every committed trade exactly once, across several commits.
func TestWatcherSeesEveryCommittedTradeOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	g := synth.New(synth.Config{Seed: 1, Rate: 1000})
	watch := &watcher{lake: l, seen: map[string]bool{}}
	for range 3 {
		if _, err := w.Commit(ctx, g.Trades(nil, 1000), nil); err != nil {
			t.Fatal(err)
		}
		if err := watch.check(ctx); err != nil {
			t.Fatal(err)
		}
		if err := watch.check(ctx); err != nil { // no new snapshot: nothing added
			t.Fatal(err)
		}
	}
	if len(watch.fresh) != 3000 {
		t.Fatalf("watcher saw %d of 3000 trades", len(watch.fresh))
	}
}
