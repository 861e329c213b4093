package resilience

import (
	"fmt"
	"strings"
)

// Level is a degradation level. Higher is worse; the numeric values are the
// original's and are what the k2_degradation_level gauge exports, so
// dashboards and alert rules written for v1 still apply.
type Level int32

// The levels, in order of severity.
const (
	Normal       Level = 0 // no pressure
	Soft         Level = 1 // lag or memory is building up
	Graceful     Level = 2 // sustained pressure
	Aggressive   Level = 3 // severe pressure
	CircuitBreak Level = 4 // stop consuming until pressure falls (ShouldPause)
)

// NumLevels is the number of levels; valid levels are 0 … NumLevels-1.
const NumLevels = 5

var levelNames = [NumLevels]string{"NORMAL", "SOFT", "GRACEFUL", "AGGRESSIVE", "CIRCUIT_BREAK"}

// String is the level's name (NORMAL, SOFT, GRACEFUL, AGGRESSIVE,
// CIRCUIT_BREAK), also used as the metric label value.
func (l Level) String() string {
	if l.Valid() {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", int32(l))
}

// Valid reports whether l is one of the five levels.
func (l Level) Valid() bool { return l >= Normal && l <= CircuitBreak }

// ParseLevel reads a level name, case-insensitively ("graceful" and
// "GRACEFUL" are the same; "circuit-break" is accepted for CIRCUIT_BREAK).
func ParseLevel(s string) (Level, error) {
	n := strings.ToUpper(strings.TrimSpace(s))
	n = strings.ReplaceAll(n, "-", "_")
	for i, name := range levelNames {
		if n == name {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want NORMAL, SOFT, GRACEFUL, AGGRESSIVE or CIRCUIT_BREAK)", s)
}

// MarshalText writes the level's name, so levels appear by name in JSON and
// YAML.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("invalid level %d", int32(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText reads a level name (see ParseLevel).
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
