package main

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// A roll of the bar tables killed with -9 at any moment leaves them as
// they were or as a whole roll makes them: while trades commit, rolls are
// killed at random points, and afterwards one roll brings every bar table
// to exactly the bars of the trades (k2 lake bars --verify), with no
// trade counted twice.
func TestBarTablesSurviveKill9(t *testing.T) {
	bin := k2Binary(t)
	dir := t.TempDir()
	ctx := context.Background()
	l := laketest.OpenIn(t, dir)
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	// Recent trades, so every table keeps them: 30 hours up to now.
	gen := synth.New(synth.Config{Seed: 3, Rate: 4, Start: md.TimestampOf(time.Now().Add(-30 * time.Hour))})
	rng := rand.New(rand.NewPCG(4, 5))
	roll := func(args ...string) *exec.Cmd {
		return exec.Command(bin, append([]string{"--data-dir", dir, "--log-level", "warn", "lake", "bars"}, args...)...)
	}
	// Each roll is killed at a random point of the time the last whole
	// roll took (every third runs to its end, to measure that).
	killed, last := 0, time.Second
	for i := range 12 {
		if _, err := w.Commit(ctx, gen.Trades(nil, 40_000), nil); err != nil {
			t.Fatal(err)
		}
		cmd := roll()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		kill := time.After(time.Duration(rng.Int64N(int64(last))))
		if i%3 == 0 {
			kill = nil
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("roll %d: %v", i, err)
			}
			last = time.Since(began)
		case <-kill:
			cmd.Process.Kill() // SIGKILL
			<-done
			killed++
		}
	}
	if killed < 5 {
		t.Errorf("only %d of 12 rolls were killed before they finished", killed)
	}
	out, err := roll("--verify").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Fatalf("the roll after the kills: %v\n%s", err, out)
	}
	t.Logf("%d rolls killed; then:\n%s", killed, out)
}
