package sink

import (
	"fmt"
	"testing"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/ops"
)

func TestSequenceTracker(t *testing.T) {
	reg := ops.NewRegistry()
	tr := NewTracker(reg)
	const sec = md.Timestamp(1_000_000)
	day := md.Timestamp((24 * time.Hour).Microseconds())
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
	if got := ops.Sum(reg, "k2_sequence_resets_detected_total", "exchange", "ASX"); got != 1 {
		t.Errorf("k2_sequence_resets_detected_total is %v, want 1", got)
	}
	if got := ops.Sum(reg, "k2_sequence_gaps_detected_total", "symbol", "BHP", "severity", "small"); got != 2 {
		t.Errorf("small gaps of BHP counted %v, want 2", got)
	}
	// After a reset (a rewind, a rebalance) a record read again is the
	// first seen, not out of order.
	tr.Reset()
	if got := tr.Check("ASX", "BHP", 2, 19*sec+day); got != SeqOK {
		t.Errorf("after Reset: %s, want ok", got)
	}
	// Symbols are tracked apart.
	if got := tr.Check("ASX", "CBA", 500, 20*sec); got != SeqOK {
		t.Errorf("first CBA record: %s", got)
	}
}

// Symbols come from the records: past maxGapSymbols their gaps are counted
// under one series, so made-up symbols cannot grow the family without end;
// a symbol keeps its label across a Reset.
func TestSequenceGapSymbolsBounded(t *testing.T) {
	reg := ops.NewRegistry()
	tr := NewTracker(reg)
	for i := range maxGapSymbols + 100 {
		sym := fmt.Sprintf("S%05d", i)
		tr.Check("BINANCE", sym, 1, 1)
		if got := tr.Check("BINANCE", sym, 3, 2); got != SeqSmallGap {
			t.Fatalf("%s: %s", sym, got)
		}
	}
	tr.Reset()
	tr.Check("BINANCE", "S00000", 10, 3)
	tr.Check("BINANCE", "S00000", 12, 4)
	if got := ops.Sum(reg, "k2_sequence_gaps_detected_total", "symbol", "S00000", "severity", "small"); got != 2 {
		t.Errorf("S00000's small gaps %v, want 2", got)
	}
	if got := ops.Sum(reg, "k2_sequence_gaps_detected_total", "symbol", otherSymbols, "severity", "small"); got != 100 {
		t.Errorf("gaps of the symbols past the bound %v, want 100", got)
	}
	if got := ops.Sum(reg, "k2_sequence_gaps_detected_total", "severity", "small"); got != maxGapSymbols+100+1 {
		t.Errorf("all small gaps %v, want %d", got, maxGapSymbols+101)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "k2_sequence_gaps_detected_total" && len(mf.GetMetric()) != 2*(maxGapSymbols+1) {
			t.Errorf("%d series, want %d", len(mf.GetMetric()), 2*(maxGapSymbols+1))
		}
	}
}
