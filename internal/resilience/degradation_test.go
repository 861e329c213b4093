package resilience

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/ops"
)

// Memory budget of the tests: thresholds 700/800/900/950 bytes, recovery
// marks (×0.9) 630/720/810/855. Lag recovery marks (×0.5) are
// 50k/250k/500k/2.5M.
const budget = 1000

var memAt = [NumLevels]uint64{0, 700, 800, 900, 950}

// clock is a manual clock: tests step through cool-downs without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest builds a manager with the default thresholds, a 1000-byte budget,
// a manual clock and a JSON log in the returned buffer.
func newTest(t *testing.T) (*Degradation, *clock, *bytes.Buffer) {
	t.Helper()
	return newTestIn(t, nil)
}

// newTestIn is newTest with the metrics in reg.
func newTestIn(t *testing.T, reg *ops.Registry) (*Degradation, *clock, *bytes.Buffer) {
	t.Helper()
	clk := newClock()
	var logs bytes.Buffer
	cfg := Config{
		MemoryBudget: budget,
		Now:          clk.Now,
		Logger:       slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	if reg != nil {
		cfg.Registerer = reg
	}
	d, err := NewDegradation(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, clk, &logs
}

func expect(t *testing.T, d *Degradation, lag int64, mem uint64, want Level) {
	t.Helper()
	if got := d.Observe(lag, mem); got != want {
		t.Fatalf("Observe(lag %d, mem %d) = %s, want %s", lag, mem, got, want)
	}
	if got := d.Level(); got != want {
		t.Fatalf("Level() = %s after Observe returned %s", got, want)
	}
}

func TestLevelNames(t *testing.T) {
	for l, name := range []string{"NORMAL", "SOFT", "GRACEFUL", "AGGRESSIVE", "CIRCUIT_BREAK"} {
		if Level(l).String() != name {
			t.Errorf("Level(%d) = %s, want %s", l, Level(l), name)
		}
		for _, s := range []string{name, strings.ToLower(name), strings.ReplaceAll(strings.ToLower(name), "_", "-")} {
			if got, err := ParseLevel(s); err != nil || got != Level(l) {
				t.Errorf("ParseLevel(%q) = %v, %v", s, got, err)
			}
		}
		var back Level
		b, _ := Level(l).MarshalText()
		if err := back.UnmarshalText(b); err != nil || back != Level(l) {
			t.Errorf("text round trip of %s: %v, %v", Level(l), back, err)
		}
	}
	if Level(7).String() != "Level(7)" {
		t.Errorf("invalid level prints %q", Level(7))
	}
	if _, err := ParseLevel("PANIC"); err == nil || !strings.Contains(err.Error(), "GRACEFUL") {
		t.Errorf("ParseLevel(PANIC) error %v should list the levels", err)
	}
}

func TestDefaults(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64) // no Go memory limit
	defer debug.SetMemoryLimit(old)
	d, err := NewDegradation(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config()
	if c.LagThresholds != [4]int64{100_000, 500_000, 1_000_000, 5_000_000} ||
		c.MemoryFractions != [4]float64{.70, .80, .90, .95} ||
		c.MemoryBudget != 1<<30 || c.Cooldown != 30*time.Second ||
		c.LagRecovery != 0.5 || c.MemoryRecovery != 0.9 || c.Now == nil || c.Logger == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if d.Level() != Normal || len(d.History()) != 0 {
		t.Fatal("a new manager is at NORMAL with no history")
	}

	debug.SetMemoryLimit(512 << 20) // as GOMEMLIMIT=512MiB would
	d, err = NewDegradation(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Config().MemoryBudget; got != 512<<20 {
		t.Fatalf("budget with a Go memory limit = %d, want %d", got, 512<<20)
	}
	if d, _ := NewDegradation(Config{MemoryBudget: 4 << 30}); d.Config().MemoryBudget != 4<<30 {
		t.Fatal("an explicit budget wins over the Go memory limit")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{LagThresholds: [4]int64{100, 50, 200, 300}}, "LagThresholds[GRACEFUL] = 50: must be above LagThresholds[SOFT] = 100"},
		{Config{LagThresholds: [4]int64{0, 50, 200, 300}}, "LagThresholds[SOFT] = 0: must be positive"},
		{Config{MemoryFractions: [4]float64{.7, .8, .8, .95}}, "MemoryFractions[AGGRESSIVE] = 0.8: must be above"},
		{Config{MemoryFractions: [4]float64{-.1, .8, .9, .95}}, "MemoryFractions[SOFT] = -0.1: must be positive"},
		{Config{MemoryFractions: [4]float64{math.NaN(), .8, .9, .95}}, "MemoryFractions[SOFT] = NaN"},
		{Config{Cooldown: -time.Second}, "Cooldown = -1s: must not be negative"},
		{Config{LagRecovery: 1.5}, "LagRecovery = 1.5: must be in (0, 1]"},
		{Config{MemoryRecovery: -1}, "MemoryRecovery = -1: must be in (0, 1]"},
	} {
		_, err := NewDegradation(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

// Each lag threshold raises the level exactly at the threshold, not one
// message before.
func TestLagThresholdsUp(t *testing.T) {
	d, _, _ := newTest(t)
	expect(t, d, 0, 0, Normal)
	for l := Soft; l <= CircuitBreak; l++ {
		thr := DefaultLagThresholds[l-1]
		expect(t, d, thr-1, 0, l-1)
		expect(t, d, thr, 0, l)
	}
	expect(t, d, math.MaxInt64, 0, CircuitBreak)
}

// Each level is left exactly when lag falls below half its threshold (with
// memory low and the cool-down over), one level per cool-down.
func TestLagThresholdsDown(t *testing.T) {
	d, clk, _ := newTest(t)
	expect(t, d, 5_000_000, 0, CircuitBreak)
	for l := CircuitBreak; l > Normal; l-- {
		mark := DefaultLagThresholds[l-1] / 2
		clk.Advance(30 * time.Second)
		expect(t, d, mark, 0, l) // not below the mark
		expect(t, d, mark-1, 0, l-1)
	}
	if d.Level() != Normal {
		t.Fatal("not back to NORMAL")
	}
}

func TestMemoryThresholds(t *testing.T) {
	d, clk, _ := newTest(t)
	for l := Soft; l <= CircuitBreak; l++ {
		expect(t, d, 0, memAt[l]-1, l-1)
		expect(t, d, 0, memAt[l], l)
	}
	h := d.History()
	if !strings.Contains(h[0].Reason, "memory 700 >= 700 bytes (70% of budget 1000)") {
		t.Fatalf("reason %q", h[0].Reason)
	}
	for l := CircuitBreak; l > Normal; l-- {
		mark := memAt[l] * 9 / 10
		clk.Advance(30 * time.Second)
		expect(t, d, 0, mark, l)
		expect(t, d, 0, mark-1, l-1)
	}
}

// The level is the worse of the two inputs.
func TestWorseInputWins(t *testing.T) {
	d, _, _ := newTest(t)
	expect(t, d, 150_000, 900, Aggressive) // lag says SOFT, memory AGGRESSIVE
	d, _, _ = newTest(t)
	expect(t, d, 1_000_000, 710, Aggressive) // lag says AGGRESSIVE, memory SOFT
	if r := d.History()[0].Reason; r != "lag 1000000 >= 1000000" {
		t.Fatalf("reason %q names only the input that decided", r)
	}
	d, _, _ = newTest(t)
	expect(t, d, 500_000, 800, Graceful)
	if r := d.History()[0].Reason; !strings.Contains(r, "lag") || !strings.Contains(r, "memory") {
		t.Fatalf("reason %q should name both inputs", r)
	}
}

// Degrading jumps straight to the level called for, even inside a
// cool-down; recovering never skips a level.
func TestJumpsUpStepsDown(t *testing.T) {
	d, clk, _ := newTest(t)
	expect(t, d, 5_000_000, 0, CircuitBreak)
	h := d.History()
	if len(h) != 1 || h[0].From != Normal || h[0].To != CircuitBreak {
		t.Fatalf("one jump NORMAL→CIRCUIT_BREAK, history %+v", h)
	}

	d, clk, _ = newTest(t)
	expect(t, d, 100_000, 0, Soft)
	clk.Advance(time.Second) // well inside the cool-down
	expect(t, d, 0, 920, Aggressive)
	expect(t, d, 6_000_000, 0, CircuitBreak)

	clk.Advance(time.Hour) // however long it has been, one step per observation
	expect(t, d, 0, 0, Aggressive)
	expect(t, d, 0, 0, Aggressive) // the step restarted the cool-down
	clk.Advance(29 * time.Second)
	expect(t, d, 0, 0, Aggressive)
	clk.Advance(time.Second)
	expect(t, d, 0, 0, Graceful)

	var path []string
	for _, tr := range d.History() {
		path = append(path, tr.From.String()+"→"+tr.To.String())
	}
	if got := strings.Join(path, " "); got != "NORMAL→SOFT SOFT→AGGRESSIVE AGGRESSIVE→CIRCUIT_BREAK CIRCUIT_BREAK→AGGRESSIVE AGGRESSIVE→GRACEFUL" {
		t.Fatalf("path %s", got)
	}
}

// Lag oscillating around a threshold changes the level once, however long
// it goes on: recovery needs lag under half the threshold.
func TestNoFlapping(t *testing.T) {
	d, clk, _ := newTest(t)
	for i := range 1000 {
		lag := int64(99_000)
		if i%2 == 1 {
			lag = 101_000
		}
		d.Observe(lag, 0)
		clk.Advance(time.Minute) // the cool-down is always over
	}
	if h := d.History(); len(h) != 1 || h[0].To != Soft {
		t.Fatalf("%d transitions, want only NORMAL→SOFT: %+v", len(h), h)
	}
	// The same around GRACEFUL's threshold, with memory also oscillating
	// around SOFT's.
	for i := range 1000 {
		lag, mem := int64(490_000), uint64(690)
		if i%2 == 1 {
			lag, mem = 510_000, 710
		}
		d.Observe(lag, mem)
		clk.Advance(time.Minute)
	}
	if h := d.History(); len(h) != 2 || h[1].To != Graceful || d.Level() != Graceful {
		t.Fatalf("want NORMAL→SOFT→GRACEFUL and no more: %+v", h)
	}
}

// Recovery needs the cool-down, lag below its mark and memory below its
// mark, all three.
func TestRecoveryNeedsAllConditions(t *testing.T) {
	d, clk, _ := newTest(t)
	expect(t, d, 500_000, 0, Graceful) // marks: lag < 250k, memory < 720
	clk.Advance(time.Minute)
	expect(t, d, 0, 720, Graceful)       // memory not below its mark
	expect(t, d, 250_000, 0, Graceful)   // lag not below its mark
	expect(t, d, 250_000, 720, Graceful) // neither
	expect(t, d, 249_999, 719, Soft)     // both
	expect(t, d, 0, 0, Soft)             // cool-down restarted
	clk.Advance(30*time.Second - time.Nanosecond)
	expect(t, d, 0, 0, Soft)
	clk.Advance(time.Nanosecond)
	expect(t, d, 0, 0, Normal)
	expect(t, d, -5, 0, Normal) // negative lag is no lag
}

func TestHistoryBounded(t *testing.T) {
	d, clk, _ := newTest(t)
	const n = 130 // 260 transitions
	for range n {
		expect(t, d, 100_000, 0, Soft)
		clk.Advance(time.Minute)
		expect(t, d, 0, 0, Normal)
		clk.Advance(time.Minute)
	}
	h := d.History()
	if len(h) != HistorySize {
		t.Fatalf("history holds %d, want %d", len(h), HistorySize)
	}
	for i := 1; i < len(h); i++ {
		if !h[i].At.After(h[i-1].At) {
			t.Fatalf("history not oldest first at %d", i)
		}
	}
	last := h[len(h)-1]
	if last.From != Soft || last.To != Normal || !last.At.Equal(clk.Now().Add(-time.Minute)) {
		t.Fatalf("last transition %+v", last)
	}
	if first := h[0]; first.From != Normal || first.To != Soft || first.Lag != 100_000 {
		t.Fatalf("first kept transition %+v", first)
	}
	h[0].Reason = "changed" // a copy
	if d.History()[0].Reason == "changed" {
		t.Fatal("History returned internal storage")
	}
}

func TestShouldPause(t *testing.T) {
	d, clk, _ := newTest(t)
	for _, tc := range []struct {
		lag   int64
		mem   uint64
		pause bool
	}{
		{0, 0, false}, {1_000_000, 0, false}, {4_999_999, 949, false},
		{5_000_000, 0, false},   // lag alone: pausing could not lower it
		{5_000_000, 950, true},  // memory at the top level
		{0, 900, true},          // still above the recovery mark (0.9 × 950)
		{6_000_000, 854, false}, // below it: consume, though the level stays
	} {
		d.Observe(tc.lag, tc.mem)
		if d.ShouldPause() != tc.pause {
			t.Fatalf("lag %d mem %d at %s: ShouldPause %v", tc.lag, tc.mem, d.Level(), !tc.pause)
		}
	}
	clk.Advance(time.Minute)
	expect(t, d, 0, 0, Aggressive)
	if d.ShouldPause() {
		t.Fatal("pauses below CIRCUIT_BREAK")
	}
}

func TestLogging(t *testing.T) {
	d, clk, logs := newTest(t)
	d.Observe(1_000_000, 0)
	d.Observe(1_000_000, 0) // no transition, no line
	clk.Advance(time.Minute)
	d.Observe(0, 0)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines, got %q", logs.String())
	}
	var up, down map[string]any
	if json.Unmarshal([]byte(lines[0]), &up) != nil || json.Unmarshal([]byte(lines[1]), &down) != nil {
		t.Fatal(logs.String())
	}
	if up["level"] != "WARN" || up["from"] != "NORMAL" || up["to"] != "AGGRESSIVE" || up["lag"] != 1e6 || up["reason"] != "lag 1000000 >= 1000000" {
		t.Errorf("degrade line %v", up)
	}
	if down["level"] != "INFO" || down["from"] != "AGGRESSIVE" || down["to"] != "GRACEFUL" || down["memory_budget_bytes"] != 1000.0 {
		t.Errorf("recover line %v", down)
	}
}

func TestMetrics(t *testing.T) {
	reg := ops.NewRegistry()
	d, clk, _ := newTestIn(t, reg)
	if missing, err := reg.Missing(); err != nil || len(missing) > 0 {
		t.Fatalf("families without series at the start: %v %v", missing, err)
	}
	tr := func(from, to Level) float64 {
		return ops.Sum(reg, "k2_degradation_transitions_total", "from_level", from.String(), "to_level", to.String())
	}
	bp := func(l Level) float64 { return ops.Sum(reg, "k2_backpressure_events_total", "level", l.String()) }
	gauge := func() float64 { return ops.Sum(reg, "k2_degradation_level") }
	var bp0 [NumLevels]float64
	up0, jump0, down0 := 0.0, 0.0, 0.0

	if gauge() != 0 {
		t.Fatal("gauge not 0 for a new manager")
	}
	d.Observe(0, 0)
	d.Observe(200_000, 0)
	if gauge() != 1 {
		t.Fatalf("gauge %v at SOFT", gauge())
	}
	d.Observe(300_000, 0)
	d.Observe(9_000_000, 0)
	d.Observe(9_000_000, 0)
	d.Observe(9_000_000, 0)
	if gauge() != 4 {
		t.Fatalf("gauge %v at CIRCUIT_BREAK", gauge())
	}
	clk.Advance(time.Minute)
	d.Observe(0, 0)
	if gauge() != 3 {
		t.Fatalf("gauge %v at AGGRESSIVE", gauge())
	}

	if got := tr(Normal, Soft) - up0; got != 1 {
		t.Errorf("NORMAL→SOFT counted %v", got)
	}
	if got := tr(Soft, CircuitBreak) - jump0; got != 1 {
		t.Errorf("SOFT→CIRCUIT_BREAK counted %v", got)
	}
	if got := tr(CircuitBreak, Aggressive) - down0; got != 1 {
		t.Errorf("CIRCUIT_BREAK→AGGRESSIVE counted %v", got)
	}
	// Observations above NORMAL, by resulting level: SOFT 2, CB 3, AGG 1.
	for l, want := range map[Level]float64{Soft: 2, Graceful: 0, Aggressive: 1, CircuitBreak: 3} {
		if got := bp(l) - bp0[l]; got != want {
			t.Errorf("backpressure{level=%s} +%v, want +%v", l, got, want)
		}
	}
	for _, labels := range series(t, reg, "k2_backpressure_events_total") {
		if labels["level"] == "NORMAL" {
			t.Error("observations at NORMAL are not backpressure")
		}
	}
}

// series returns the label sets of metric name in reg.
func series(t *testing.T, reg *ops.Registry, name string) []map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, labels)
		}
	}
	return out
}

// Run with -race: observers, readers and History in parallel.
func TestConcurrent(t *testing.T) {
	d, clk, _ := newTest(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				d.Observe(int64((i*g)%6_000_000), uint64(i%1000))
				_ = d.Level()
				_ = d.ShouldPause()
				if i%100 == 0 {
					_ = d.History()
					clk.Advance(time.Minute)
				}
			}
		})
	}
	wg.Wait()
	h := d.History()
	for i := 1; i < len(h); i++ {
		if h[i].From != h[i-1].To {
			t.Fatalf("history not a chain at %d: %+v then %+v", i, h[i-1], h[i])
		}
	}
	if len(h) > 0 && h[len(h)-1].To != d.Level() {
		t.Fatal("last transition is not the current level")
	}
}
