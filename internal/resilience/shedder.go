package resilience

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// Symbol tiers. A symbol in Policy.CriticalSymbols is Tier1, in
// Policy.HighPrioritySymbols Tier2; every other symbol is Tier3.
const (
	Tier1 = 1
	Tier2 = 2
	Tier3 = 3
)

var tierLabels = [4]string{"", "tier1", "tier2", "tier3"}

// Policy says which records a Shedder may drop, and from which level. It is
// the shape of the `shedding` section of the YAML configuration:
//
//	critical_symbols: [BHP, CBA, CSL]      # tier 1
//	high_priority_symbols: [REA, QAN]      # tier 2; everything else is tier 3
//	data_types:
//	  reference_data: {from: GRACEFUL}     # every symbol, from GRACEFUL up
//	  trades: {tier3_from: AGGRESSIVE}     # tier-3 trades only, from AGGRESSIVE up
//
// The zero Policy sheds nothing, at every level: dropping market data is a
// loss the operator must choose, per data type and tier, never a default.
// (The original's fixed tiers shed every non-ASX symbol at AGGRESSIVE, i.e.
// every crypto trade.) Levels are names as ParseLevel reads them.
type Policy struct {
	// CriticalSymbols are tier 1.
	CriticalSymbols []string `yaml:"critical_symbols,omitempty" json:"critical_symbols,omitempty"`
	// HighPrioritySymbols are tier 2. A symbol may not be in both lists.
	// Symbols match exactly, case included, as records carry them
	// (BHP, BTCUSDT, BTC/USD).
	HighPrioritySymbols []string `yaml:"high_priority_symbols,omitempty" json:"high_priority_symbols,omitempty"`
	// DataTypes maps a data type (trades, quotes, reference_data) to the
	// levels from which its records may be shed. A data type not listed is
	// never shed.
	DataTypes map[string]DataTypeRule `yaml:"data_types,omitempty" json:"data_types,omitempty"`
}

// DataTypeRule gives the level from which a data type's records may be
// shed: From for every tier, TierNFrom for one tier; where both apply, the
// lower level wins. An empty field means never. A higher tier may not be
// shed from a lower level than a lower tier (critical symbols go last), and
// NORMAL is not allowed: shedding without pressure would be a filter.
type DataTypeRule struct {
	From      string `yaml:"from,omitempty" json:"from,omitempty"`
	Tier1From string `yaml:"tier1_from,omitempty" json:"tier1_from,omitempty"`
	Tier2From string `yaml:"tier2_from,omitempty" json:"tier2_from,omitempty"`
	Tier3From string `yaml:"tier3_from,omitempty" json:"tier3_from,omitempty"`
}

// never is the "from" level of a tier that is never shed: above every level.
const never Level = NumLevels

// ParsePolicy reads a Policy from YAML (the content of the shedding
// section) and validates it. Unknown keys are errors, so a misspelt
// "tier3from" cannot silently disable a rule. Empty input is the empty
// Policy. dataTypes are the data types a rule may name (K2's record kinds,
// as in topic names): a policy naming anything else is rejected, so a
// misspelt type is an error at start-up, not a rule that never applies.
func ParsePolicy(b []byte, dataTypes []string) (Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("shedding policy: %w", err)
	}
	if err := p.Validate(dataTypes); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Validate reports every problem in p, each naming its field
// (e.g. "data_types.trades.tier3_from"); rules may name only dataTypes.
func (p Policy) Validate(dataTypes []string) error {
	var errs []error
	for dt := range p.DataTypes {
		if !slices.Contains(dataTypes, dt) {
			errs = append(errs, fmt.Errorf("shedding policy: data_types.%s: unknown data type %q (want %s)", dt, dt, strings.Join(dataTypes, ", ")))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	_, err := p.compile()
	return errors.Join(append(errs, err)...)
}

// compiled is a validated Policy as the hot path needs it.
type compiled struct {
	tiers map[string]uint8
	// maybe is a prefilter of tiers: a symbol whose (length, first byte,
	// last byte) bit is clear is in no list, so tier 3 costs no map lookup.
	maybe [symFilterBits / 64]uint64
	// types holds the rules of the (at most three) data types the policy
	// names. A linear scan of three short strings beats hashing the key
	// for a map lookup, and this runs per record.
	types []*typeRule
	min   Level // lowest level at which anything is shed; never if nothing
}

type typeRule struct {
	dataType string
	from     [4]Level // index tier (1…3); never if that tier is not shed
	min      Level    // min over from[1:]
	counters [4][NumLevels]prometheus.Counter
}

func (p Policy) compile() (compiled, error) {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("shedding policy: "+format, a...))
	}
	c := compiled{tiers: map[string]uint8{}, min: never}

	addSymbols := func(field string, syms []string, tier uint8) {
		for i, s := range syms {
			switch prev, dup := c.tiers[s]; {
			case s == "":
				bad("%s[%d]: empty symbol", field, i)
			case strings.TrimSpace(s) != s:
				bad("%s[%d]: %q has leading or trailing spaces", field, i, s)
			case dup && prev != tier:
				bad("%s[%d]: %s is also in critical_symbols; a symbol has one tier", field, i, s)
			default:
				c.tiers[s] = tier
				h := symFilterHash(s)
				c.maybe[h/64] |= 1 << (h % 64)
			}
		}
	}
	addSymbols("critical_symbols", p.CriticalSymbols, Tier1)
	addSymbols("high_priority_symbols", p.HighPrioritySymbols, Tier2)

	names := make([]string, 0, len(p.DataTypes))
	for k := range p.DataTypes {
		names = append(names, k)
	}
	slices.Sort(names) // errors in a stable order
	for _, dt := range names {
		rule := p.DataTypes[dt]
		field := "data_types." + dt
		parse := func(key, v string) Level {
			if v == "" {
				return never
			}
			l, err := ParseLevel(v)
			switch {
			case err != nil:
				bad("%s.%s: %v", field, key, err)
				return never
			case l == Normal:
				bad("%s.%s: NORMAL would shed without any pressure; the lowest level is SOFT", field, key)
				return never
			}
			return l
		}
		all := parse("from", rule.From)
		r := &typeRule{dataType: dt}
		r.from[Tier1] = min(all, parse("tier1_from", rule.Tier1From))
		r.from[Tier2] = min(all, parse("tier2_from", rule.Tier2From))
		r.from[Tier3] = min(all, parse("tier3_from", rule.Tier3From))
		if rule == (DataTypeRule{}) {
			bad("%s: no level given; set from or tier1_from/tier2_from/tier3_from, or remove the entry", field)
			continue
		}
		if r.from[Tier1] < r.from[Tier2] || r.from[Tier1] < r.from[Tier3] {
			bad("%s.tier1_from: critical symbols would be shed from %s, before tier 2 (%s) or tier 3 (%s)",
				field, levelOrNever(r.from[Tier1]), levelOrNever(r.from[Tier2]), levelOrNever(r.from[Tier3]))
		}
		if r.from[Tier2] < r.from[Tier3] {
			bad("%s.tier2_from: high-priority symbols would be shed from %s, before tier 3 (%s)",
				field, levelOrNever(r.from[Tier2]), levelOrNever(r.from[Tier3]))
		}
		r.min = min(r.from[Tier1], r.from[Tier2], r.from[Tier3])
		if r.min == never {
			continue // every given level was invalid; already reported
		}
		c.types = append(c.types, r)
		c.min = min(c.min, r.min)
	}
	if len(errs) > 0 {
		return compiled{}, errors.Join(errs...)
	}
	return c, nil
}

func levelOrNever(l Level) string {
	if l == never {
		return "never"
	}
	return l.String()
}

// Shedder decides, per record, whether to keep it at a given level, and
// counts every record it drops in
// k2_messages_shed_total{data_type,symbol_tier,level}.
//
// Keep runs once per record, up to millions of times a second, so a
// Shedder is immutable after NewShedder: the symbol and data-type maps and
// the metric children are built once, and Keep takes no lock and allocates
// nothing. To change the policy, build a new Shedder and swap it in (e.g.
// through an atomic.Pointer). A nil *Shedder keeps everything.
type Shedder struct {
	c compiled
}

// NewShedder validates p and builds a Shedder for it, counting in reg (nil:
// kept to itself). Every series a policy can produce exists, at 0, from
// here on.
func NewShedder(p Policy, reg prometheus.Registerer) (*Shedder, error) {
	c, err := p.compile()
	if err != nil {
		return nil, err
	}
	shed := newShedMetrics(reg)
	for _, r := range c.types {
		for t := Tier1; t <= Tier3; t++ {
			for l := r.from[t]; l <= CircuitBreak; l++ {
				r.counters[t][l] = shed.WithLabelValues(r.dataType, tierLabels[t], l.String())
			}
		}
	}
	return &Shedder{c: c}, nil
}

// Enabled reports whether the policy sheds anything at any level.
func (s *Shedder) Enabled() bool { return s != nil && s.c.min != never }

// Keep reports whether a record of dataType for symbol is to be processed
// at level. When it returns false the record is dropped by policy and the
// drop is counted; the caller must not process it. Records of a data type
// the policy does not name, and every record below the lowest configured
// level, are kept without a map lookup.
func (s *Shedder) Keep(level Level, dataType, symbol string) bool {
	r, tier, keep := s.decide(level, dataType, symbol)
	if !keep {
		r.counters[tier][level].Inc()
	}
	return keep
}

// WouldKeep is Keep without counting: for previews and reports (how much
// would GRACEFUL shed?), not for records actually dropped.
func (s *Shedder) WouldKeep(level Level, dataType, symbol string) bool {
	_, _, keep := s.decide(level, dataType, symbol)
	return keep
}

// Tier is symbol's tier under this policy (Tier1, Tier2 or Tier3).
func (s *Shedder) Tier(symbol string) int {
	if s == nil {
		return Tier3
	}
	return int(s.tier(symbol))
}

const symFilterBits = 4096

// symFilterHash mixes a symbol's length and its first and last bytes; it
// only has to spread a few dozen listed symbols over symFilterBits.
func symFilterHash(s string) uint32 {
	if s == "" {
		return 0
	}
	h := uint32(len(s))*0x9E3779B1 ^ uint32(s[0])*0x85EBCA77 ^ uint32(s[len(s)-1])*0xC2B2AE3D
	return (h ^ h>>15) % symFilterBits
}

func (s *Shedder) tier(symbol string) uint8 {
	if h := symFilterHash(symbol); s.c.maybe[h/64]&(1<<(h%64)) == 0 {
		return Tier3
	}
	if t, ok := s.c.tiers[symbol]; ok {
		return t
	}
	return Tier3
}

func (s *Shedder) decide(level Level, dataType, symbol string) (*typeRule, uint8, bool) {
	// s.c.min ≥ SOFT, so the first test also rejects negative levels.
	if s == nil || level < s.c.min || level > CircuitBreak {
		return nil, 0, true
	}
	for _, r := range s.c.types {
		if r.dataType != dataType {
			continue
		}
		if level < r.min {
			return nil, 0, true
		}
		t := s.tier(symbol)
		return r, t, level < r.from[t]
	}
	return nil, 0, true
}
