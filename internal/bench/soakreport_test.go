package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestFlatJudgement(t *testing.T) {
	minutes := func(n int) []float64 {
		at := make([]float64, n)
		for i := range at {
			at[i] = float64(60 * (i + 1))
		}
		return at
	}
	each := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	at := minutes(30) // a 30-minute soak sampled each minute: windows of 10 minutes
	nan := math.NaN()
	for _, c := range []struct {
		name         string
		v            []float64
		status       string
		before, last float64
	}{
		{"constant", each(30, func(int) float64 { return 100 }), checkPass, 100, 100},
		// minutes 11–20 against 21–30
		{"steady growth", each(30, func(i int) float64 { return float64(i + 1) }), checkFail, 15.5, 25.5},
		{"up 20%", each(30, func(i int) float64 { return map[bool]float64{true: 120, false: 100}[i >= 20] }), checkPass, 100, 120},
		{"up 26%", each(30, func(i int) float64 { return map[bool]float64{true: 126, false: 100}[i >= 20] }), checkFail, 100, 126},
		{"down 30%", each(30, func(i int) float64 { return map[bool]float64{true: 70, false: 100}[i >= 20] }), checkFail, 100, 70},
		{"warm-up is left out", each(30, func(i int) float64 { return map[bool]float64{true: 1000, false: 50}[i < 10] }), checkPass, 50, 50},
		{"missing figures are left out", each(30, func(i int) float64 { return map[bool]float64{true: nan, false: 10}[i%2 == 0] }), checkPass, 10, 10},
		{"zero stays zero", each(30, func(int) float64 { return 0 }), checkPass, 0, 0},
		{"zero then something", each(30, func(i int) float64 { return map[bool]float64{true: 1, false: 0}[i >= 20] }), checkFail, 0, 1},
		{"no figures in a window", each(30, func(i int) float64 { return map[bool]float64{true: nan, false: 10}[i >= 10 && i < 20] }), checkNotJudged, 0, 0},
	} {
		f := judgeFlat(at, c.v, 600, flatTolerance)
		if f.status() != c.status || !near(f.before, c.before) || !near(f.last, c.last) {
			t.Errorf("%s: %s, means %v → %v; want %s, %v → %v", c.name, f.status(), f.before, f.last, c.status, c.before, c.last)
		}
	}

	// A run under 20 minutes compares its last third with its middle third.
	w, rule := flatWindow(40 * time.Second)
	if w != 40*time.Second/3 || !strings.Contains(rule, "third") {
		t.Errorf("40s run: window %s (%s)", w, rule)
	}
	at = []float64{10, 20, 30, 40}
	if f := judgeFlat(at, []float64{1, 2, 3, 4}, w.Seconds(), flatTolerance); !f.judged || f.before != 2 || f.last != 3.5 {
		t.Errorf("40s run sampled every 10s: %+v, want 2 (20s) → 3.5 (30s, 40s)", f)
	}
	if w, _ := flatWindow(time.Hour); w != 10*time.Minute {
		t.Errorf("1h run: window %s, want 10m", w)
	}
}

// A streamed table passes at up to 1.5 times a bulk load's bytes per row.
func TestStorageJudgement(t *testing.T) {
	samples := []SoakSample{{Tables: []SoakTable{{Table: "trades", Rows: 1000, BytesPerRow: 20}, {Table: "quotes", Rows: 500, BytesPerRow: 40}}}}
	bulk := &bulkFigures{bytesPerRow: map[string]float64{"trades": 14, "quotes": 25}}
	got := judgeStorage(samples, bulk)
	if len(got) != 2 || got[0].Status != checkPass || got[1].Status != checkFail || !strings.Contains(got[1].Detail, "1.60×") {
		t.Fatalf("%+v; want trades passing at 1.43× and quotes failing at 1.60×", got)
	}
	if judgeStorage(samples, nil) != nil {
		t.Fatal("judged without a bulk load")
	}
}
