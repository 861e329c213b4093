package sink

import (
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

func TestSequenceTracker(t *testing.T) {
	tr := NewTracker()
	const sec = md.Timestamp(1_000_000)
	day := md.Timestamp((24 * time.Hour).Microseconds())
	resets := promtest.ToFloat64(mResets.WithLabelValues("ASX"))
	for i, step := range []struct {
		seq  int64
		at   md.Timestamp
		want SeqEvent
	}{
		{1, 10 * sec, SeqOK},          // first seen
		{2, 11 * sec, SeqOK},          // next
		{5, 12 * sec, SeqSmallGap},    // 3 and 4 missing
		{16, 13 * sec, SeqSmallGap},   // 10 missing: still small
		{28, 14 * sec, SeqLargeGap},   // 11 missing
		{20, 15 * sec, SeqOutOfOrder}, // late, no pause
		{29, 16 * sec, SeqOK},         // the late one did not move the state
		{29, 17 * sec, SeqOutOfOrder}, // repeated
		{1, 17*sec + day, SeqReset},   // the next trading day starts again at 1
		{2, 18*sec + day, SeqOK},
	} {
		if got := tr.Check("ASX", "BHP", step.seq, step.at); got != step.want {
			t.Fatalf("step %d: seq %d → %s, want %s", i, step.seq, got, step.want)
		}
	}
	if got := promtest.ToFloat64(mResets.WithLabelValues("ASX")); got != resets+1 {
		t.Errorf("k2_sequence_resets_detected_total went from %v to %v", resets, got)
	}
	// Symbols are tracked apart.
	if got := tr.Check("ASX", "CBA", 500, 20*sec); got != SeqOK {
		t.Errorf("first CBA record: %s", got)
	}
}
