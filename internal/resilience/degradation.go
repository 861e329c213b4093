package resilience

import (
	"context"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config. The thresholds are the original's; the memory ones
// are now fractions of this process's budget, not of the machine's memory.
var (
	DefaultLagThresholds   = [4]int64{100_000, 500_000, 1_000_000, 5_000_000}
	DefaultMemoryFractions = [4]float64{0.70, 0.80, 0.90, 0.95}
)

// Default recovery settings (the original's).
const (
	DefaultCooldown       = 30 * time.Second
	DefaultLagRecovery    = 0.5
	DefaultMemoryRecovery = 0.9
)

// HistorySize is how many transitions History keeps.
const HistorySize = 100

// Config configures a Degradation. The zero value of every field means its
// documented default, so Config{} is the standard configuration.
type Config struct {
	// LagThresholds are the consumer lags, in messages, at or above which
	// SOFT, GRACEFUL, AGGRESSIVE and CIRCUIT_BREAK apply. All four must be
	// positive and strictly increasing. Default 100k, 500k, 1M, 5M.
	LagThresholds [4]int64

	// MemoryBudget is the process memory, in bytes, that MemoryFractions are
	// fractions of. Default: the Go memory limit (GOMEMLIMIT) if one is set,
	// else 1 GiB. Set it to the container's memory limit (minus headroom) when
	// GOMEMLIMIT is not used.
	MemoryBudget uint64

	// MemoryFractions are the fractions of MemoryBudget at or above which
	// SOFT, GRACEFUL, AGGRESSIVE and CIRCUIT_BREAK apply. All four must be
	// positive and strictly increasing. Default 0.70, 0.80, 0.90, 0.95.
	MemoryFractions [4]float64

	// Cooldown is the time since the last transition before the level may
	// go down one step. Degrading ignores it. Default 30 s; negative is
	// invalid.
	Cooldown time.Duration

	// LagRecovery and MemoryRecovery are the hysteresis factors: the level
	// goes down only once lag < LagRecovery × the current level's lag
	// threshold and memory < MemoryRecovery × its memory threshold. Each in
	// (0, 1]; defaults 0.5 and 0.9.
	LagRecovery    float64
	MemoryRecovery float64

	// Now is the clock (default time.Now); tests inject one to step through
	// cool-downs without sleeping.
	Now func() time.Time

	// Logger receives one record per transition: WARN when degrading, INFO
	// when recovering. Default slog.Default().
	Logger *slog.Logger
	// Registerer takes the level and transition metrics (nil: kept to
	// itself).
	Registerer prometheus.Registerer
}

// resolve fills defaults and validates; errors name the field.
func (c Config) resolve() (Config, error) {
	if c.LagThresholds == ([4]int64{}) {
		c.LagThresholds = DefaultLagThresholds
	}
	for i, v := range c.LagThresholds {
		if v <= 0 {
			return c, fmt.Errorf("resilience: LagThresholds[%s] = %d: must be positive", Level(i+1), v)
		}
		if i > 0 && v <= c.LagThresholds[i-1] {
			return c, fmt.Errorf("resilience: LagThresholds[%s] = %d: must be above LagThresholds[%s] = %d", Level(i+1), v, Level(i), c.LagThresholds[i-1])
		}
	}
	if c.MemoryFractions == ([4]float64{}) {
		c.MemoryFractions = DefaultMemoryFractions
	}
	for i, v := range c.MemoryFractions {
		if !(v > 0) { // also rejects NaN
			return c, fmt.Errorf("resilience: MemoryFractions[%s] = %v: must be positive", Level(i+1), v)
		}
		if i > 0 && v <= c.MemoryFractions[i-1] {
			return c, fmt.Errorf("resilience: MemoryFractions[%s] = %v: must be above MemoryFractions[%s] = %v", Level(i+1), v, Level(i), c.MemoryFractions[i-1])
		}
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = defaultBudget()
	}
	switch {
	case c.Cooldown < 0:
		return c, fmt.Errorf("resilience: Cooldown = %s: must not be negative", c.Cooldown)
	case c.Cooldown == 0:
		c.Cooldown = DefaultCooldown
	}
	if c.LagRecovery == 0 {
		c.LagRecovery = DefaultLagRecovery
	}
	if !(c.LagRecovery > 0 && c.LagRecovery <= 1) {
		return c, fmt.Errorf("resilience: LagRecovery = %v: must be in (0, 1]", c.LagRecovery)
	}
	if c.MemoryRecovery == 0 {
		c.MemoryRecovery = DefaultMemoryRecovery
	}
	if !(c.MemoryRecovery > 0 && c.MemoryRecovery <= 1) {
		return c, fmt.Errorf("resilience: MemoryRecovery = %v: must be in (0, 1]", c.MemoryRecovery)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Transition is one change of level, as History reports it.
type Transition struct {
	At     time.Time `json:"at"`
	From   Level     `json:"from"`
	To     Level     `json:"to"`
	Lag    int64     `json:"lag"`          // messages, as observed
	Memory uint64    `json:"memory_bytes"` // as observed
	Reason string    `json:"reason"`
}

// Degradation turns consumer lag and process memory into a Level.
//
// The level is the worse of the lag level and the memory level, applied at
// once: a jump from NORMAL to CIRCUIT_BREAK takes one observation, because
// pressure that is already there does not wait. Recovery is slow on
// purpose: one level at a time, only after Cooldown since the last
// transition, and only when both lag and memory are well under the current
// level's thresholds (LagRecovery, MemoryRecovery). Without that margin a
// lag oscillating around a threshold would flip the level, and the
// consumer's behaviour, on every observation. With the defaults, going from
// CIRCUIT_BREAK back to NORMAL takes at least four cool-downs (2 minutes).
//
// Observe, Level, ShouldPause and History are safe for concurrent use.
// Level and ShouldPause take no lock, so a consumer may call them per
// record.
type Degradation struct {
	cfg Config
	m   *degradationMetrics

	// Index by level; [Normal] is unused (NORMAL has no threshold).
	lagAt, lagBelow [NumLevels]int64  // degrade at ≥ lagAt, recover at < lagBelow
	memAt, memBelow [NumLevels]uint64 // degrade at ≥ memAt, recover at < memBelow

	level   atomic.Int32
	lastMem atomic.Uint64 // memory at the last Observe

	mu         sync.Mutex
	lastChange time.Time
	history    [HistorySize]Transition
	histNext   int // where the next transition goes
	histLen    int
}

// NewDegradation builds a manager at NORMAL, with k2_degradation_level at 0.
func NewDegradation(cfg Config) (*Degradation, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	d := &Degradation{cfg: c, lastChange: c.Now(), m: newDegradationMetrics(c.Registerer)}
	for i := range 4 {
		l := Level(i + 1)
		d.lagAt[l] = c.LagThresholds[i]
		d.lagBelow[l] = int64(float64(c.LagThresholds[i]) * c.LagRecovery)
		d.memAt[l] = uint64(float64(c.MemoryBudget) * c.MemoryFractions[i])
		d.memBelow[l] = uint64(float64(d.memAt[l]) * c.MemoryRecovery)
	}
	d.m.level.Set(float64(Normal))
	return d, nil
}

// Config returns the configuration in effect, defaults filled in.
func (d *Degradation) Config() Config { return d.cfg }

// Level is the current level.
func (d *Degradation) Level() Level { return Level(d.level.Load()) }

// ShouldPause reports whether the consumer should stop fetching: at
// CIRCUIT_BREAK while memory is above that level's recovery mark. Pausing
// loses nothing (the records wait in Kafka) and lets the consumer write out
// what it holds, which is why the top level pauses instead of dropping.
// When lag alone holds the level at CIRCUIT_BREAK it does not pause:
// a paused consumer cannot lower its lag, so it would never resume.
func (d *Degradation) ShouldPause() bool {
	return d.Level() == CircuitBreak && d.lastMem.Load() >= d.memBelow[CircuitBreak]
}

// Observe applies one measurement of consumer lag (messages; negative is
// taken as 0) and process memory (bytes, e.g. ProcessMemory()) and returns
// the level after it. Call it once per poll or batch, not per record.
//
// It raises the level at once to the worse of the lag and memory levels,
// or, when neither calls for more, lowers it by one level if Cooldown has
// passed since the last transition and lag and memory are both below the
// current level's recovery marks. Every observation that leaves the level
// above NORMAL counts in k2_backpressure_events_total{level}.
func (d *Degradation) Observe(lag int64, memBytes uint64) Level {
	lag = max(lag, 0)
	d.lastMem.Store(memBytes)
	d.mu.Lock()
	now := d.cfg.Now()
	cur := Level(d.level.Load())
	lagLv, memLv := d.levelOf(lag, memBytes)
	target := max(lagLv, memLv)
	next := cur
	var reason string
	switch {
	case target > cur:
		next = target
		reason = d.degradeReason(target, lagLv, memLv, lag, memBytes)
	case cur > Normal && now.Sub(d.lastChange) >= d.cfg.Cooldown &&
		lag < d.lagBelow[cur] && memBytes < d.memBelow[cur]:
		next = cur - 1
		reason = fmt.Sprintf("lag %d < %d and memory %d < %d bytes, %s since the last transition",
			lag, d.lagBelow[cur], memBytes, d.memBelow[cur], now.Sub(d.lastChange).Round(time.Millisecond))
	}
	if next != cur {
		d.record(Transition{At: now, From: cur, To: next, Lag: lag, Memory: memBytes, Reason: reason})
	}
	d.mu.Unlock()
	if next > Normal {
		d.m.backpressure[next].Inc()
	}
	return next
}

// levelOf is the level each input alone calls for.
func (d *Degradation) levelOf(lag int64, mem uint64) (lagLv, memLv Level) {
	for l := CircuitBreak; l > Normal; l-- {
		if lag >= d.lagAt[l] {
			lagLv = l
			break
		}
	}
	for l := CircuitBreak; l > Normal; l-- {
		if mem >= d.memAt[l] {
			memLv = l
			break
		}
	}
	return lagLv, memLv
}

func (d *Degradation) degradeReason(target, lagLv, memLv Level, lag int64, mem uint64) string {
	var parts []string
	if lagLv == target {
		parts = append(parts, fmt.Sprintf("lag %d >= %d", lag, d.lagAt[target]))
	}
	if memLv == target {
		parts = append(parts, fmt.Sprintf("memory %d >= %d bytes (%.0f%% of budget %d)",
			mem, d.memAt[target], d.cfg.MemoryFractions[target-1]*100, d.cfg.MemoryBudget))
	}
	return strings.Join(parts, "; ")
}

// record applies a transition: level, gauge, counter, history and log.
// d.mu is held, so history, metrics and log lines are in transition order.
func (d *Degradation) record(t Transition) {
	d.level.Store(int32(t.To))
	d.lastChange = t.At
	d.m.level.Set(float64(t.To))
	d.m.transitions[t.From][t.To].Inc()
	d.history[d.histNext] = t
	d.histNext = (d.histNext + 1) % HistorySize
	d.histLen = min(d.histLen+1, HistorySize)

	lvl, msg := slog.LevelWarn, "degradation level raised"
	if t.To < t.From {
		lvl, msg = slog.LevelInfo, "degradation level lowered"
	}
	d.cfg.Logger.LogAttrs(context.Background(), lvl, msg,
		slog.String("from", t.From.String()),
		slog.String("to", t.To.String()),
		slog.Int64("lag", t.Lag),
		slog.Uint64("memory_bytes", t.Memory),
		slog.Uint64("memory_budget_bytes", d.cfg.MemoryBudget),
		slog.String("reason", t.Reason))
}

// History returns the last HistorySize transitions, oldest first.
func (d *Degradation) History() []Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Transition, 0, d.histLen)
	start := (d.histNext - d.histLen + HistorySize) % HistorySize
	for i := range d.histLen {
		out = append(out, d.history[(start+i)%HistorySize])
	}
	return out
}
