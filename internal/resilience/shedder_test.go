package resilience

import (
	"strings"
	"sync"
	"testing"

	"github.com/k2-market-data/k2/internal/ops"
)

// K2's data types, as the process passes them (record.DataTypes).
const (
	Trades        = "trades"
	Quotes        = "quotes"
	ReferenceData = "reference_data"
)

var (
	dataTypes  = []string{Trades, Quotes, ReferenceData}
	allTypes   = []string{Trades, Quotes, ReferenceData, "unknown_type"}
	allSymbols = []string{"BHP", "CBA", "REA", "BTCUSDT", "ETH/USD", ""}
	allLevels  = []Level{Normal, Soft, Graceful, Aggressive, CircuitBreak}
)

func TestDefaultPolicyKeepsEverything(t *testing.T) {
	empty, err := ParsePolicy(nil, dataTypes)
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := ParsePolicy([]byte("critical_symbols: [BHP]\n"), dataTypes) // tiers but no rules
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]Policy{"zero": {}, "empty YAML": empty, "tiers only": fromYAML} {
		s, err := NewShedder(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Enabled() {
			t.Errorf("%s policy reports Enabled", name)
		}
		for _, l := range allLevels {
			for _, dt := range allTypes {
				for _, sym := range allSymbols {
					if !s.Keep(l, dt, sym) {
						t.Fatalf("%s policy dropped %s %s at %s", name, dt, sym, l)
					}
				}
			}
		}
	}
	var nilShedder *Shedder
	if !nilShedder.Keep(CircuitBreak, Trades, "BTCUSDT") || nilShedder.Enabled() || nilShedder.Tier("BHP") != Tier3 {
		t.Fatal("a nil Shedder keeps everything")
	}
}

const examplePolicy = `
critical_symbols: [BHP, CBA]
high_priority_symbols: [REA]
data_types:
  reference_data:
    from: graceful
  trades:
    tier3_from: AGGRESSIVE
    tier2_from: CIRCUIT_BREAK
`

// drops is what examplePolicy must drop: quotes never, reference data from
// GRACEFUL in every tier, trades of tier 3 from AGGRESSIVE and of tier 2 at
// CIRCUIT_BREAK, critical trades never.
func drops(l Level, dt, sym string) bool {
	tier := map[string]int{"BHP": 1, "CBA": 1, "REA": 2}[sym]
	if tier == 0 {
		tier = 3
	}
	switch dt {
	case ReferenceData:
		return l >= Graceful
	case Trades:
		return tier == 3 && l >= Aggressive || tier == 2 && l >= CircuitBreak
	}
	return false
}

func TestConfiguredPolicy(t *testing.T) {
	reg := ops.NewRegistry()
	initial := shedCounts(t, reg)
	p, err := ParsePolicy([]byte(examplePolicy), dataTypes)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShedder(p, reg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Enabled() || s.Tier("CBA") != Tier1 || s.Tier("REA") != Tier2 || s.Tier("BTCUSDT") != Tier3 {
		t.Fatal("tiers")
	}
	tierOf := func(sym string) string { return tierLabels[s.Tier(sym)] }

	// Every reachable series exists before the first drop.
	have := map[string]bool{}
	for _, labels := range series(t, reg, "k2_messages_shed_total") {
		have[labels["data_type"]+"/"+labels["symbol_tier"]+"/"+labels["level"]] = true
	}
	for _, k := range []string{"trades/tier3/AGGRESSIVE", "trades/tier2/CIRCUIT_BREAK", "reference_data/tier1/GRACEFUL"} {
		if !have[k] {
			t.Errorf("series %s not created by NewShedder", k)
		}
	}

	before := shedCounts(t, reg)
	want := map[shedKey]float64{}
	const reps = 3
	for range reps {
		for _, l := range allLevels {
			for _, dt := range allTypes {
				for _, sym := range allSymbols {
					wantDrop := drops(l, dt, sym)
					if s.WouldKeep(l, dt, sym) == wantDrop {
						t.Fatalf("WouldKeep(%s, %s, %q) = %v", l, dt, sym, !wantDrop)
					}
					if s.Keep(l, dt, sym) == wantDrop {
						t.Fatalf("Keep(%s, %s, %q) = %v", l, dt, sym, !wantDrop)
					}
					if wantDrop {
						want[shedKey{dt, tierOf(sym), l}]++
					}
				}
			}
		}
	}
	// Each drop counted once under its data type, tier and level; nothing
	// else counted (WouldKeep counts nothing).
	after := shedCounts(t, reg)
	for k := range after {
		if got := after[k] - before[k]; got != want[k] {
			t.Errorf("k2_messages_shed_total{%s,%s,%s} +%v, want +%v", k.dt, k.tier, k.l, got, want[k])
		}
	}
	for k := range want {
		if _, ok := after[k]; !ok {
			t.Errorf("no series for %v", k)
		}
	}
	if want[shedKey{Trades, "tier3", Aggressive}] != 3*reps || want[shedKey{ReferenceData, "tier1", Graceful}] != 2*reps {
		t.Fatalf("test table wrong: %v", want)
	}
	// The policy added series only for what it can shed.
	symOfTier := map[string]string{"tier1": "BHP", "tier2": "REA", "tier3": "XYZ"}
	for k := range after {
		if _, old := initial[k]; !old && !drops(k.l, k.dt, symOfTier[k.tier]) {
			t.Errorf("series for something never shed: %v", k)
		}
	}

	// Levels outside the enum keep (and do not index out of range).
	for _, l := range []Level{-1, NumLevels, 99} {
		if !s.Keep(l, ReferenceData, "XYZ") {
			t.Errorf("dropped at invalid level %d", l)
		}
	}
}

// "from" applies to every tier, and the lower of from and tierN_from wins.
func TestFromAndTierLevels(t *testing.T) {
	s, err := NewShedder(Policy{
		CriticalSymbols: []string{"BTCUSDT"},
		DataTypes: map[string]DataTypeRule{
			Quotes: {From: "AGGRESSIVE", Tier3From: "SOFT"},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		l    Level
		sym  string
		keep bool
	}{
		{Normal, "ETHUSDT", true}, {Soft, "ETHUSDT", false}, {Graceful, "BTCUSDT", true},
		{Aggressive, "BTCUSDT", false}, {CircuitBreak, "ETHUSDT", false},
	} {
		if s.WouldKeep(tc.l, Quotes, tc.sym) != tc.keep {
			t.Errorf("%s %s: keep %v", tc.l, tc.sym, !tc.keep)
		}
	}
}

func TestInvalidPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"misspelt key", "data_types:\n  trades:\n    tier3from: AGGRESSIVE\n", []string{"field tier3from not found"}},
		{"unknown level", "data_types:\n  trades: {tier3_from: PANIC}\n",
			[]string{`data_types.trades.tier3_from: unknown level "PANIC"`}},
		{"NORMAL", "data_types:\n  quotes: {from: NORMAL}\n", []string{"data_types.quotes.from: NORMAL would shed without any pressure"}},
		{"unknown data type", "data_types:\n  trade: {from: SOFT}\n", []string{`data_types.trade: unknown data type "trade" (want trades, quotes, reference_data)`}},
		{"empty rule", "data_types:\n  quotes: {}\n", []string{"data_types.quotes: no level given"}},
		{"two tiers", "critical_symbols: [BHP]\nhigh_priority_symbols: [REA, BHP]\n",
			[]string{"high_priority_symbols[1]: BHP is also in critical_symbols"}},
		{"empty symbol", "critical_symbols: [BHP, '']\n", []string{"critical_symbols[1]: empty symbol"}},
		{"spaces", "high_priority_symbols: [' REA']\n", []string{`high_priority_symbols[0]: " REA" has leading or trailing spaces`}},
		{"critical first", "data_types:\n  trades: {tier1_from: SOFT, tier3_from: AGGRESSIVE}\n",
			[]string{"data_types.trades.tier1_from: critical symbols would be shed from SOFT, before tier 2 (never) or tier 3 (AGGRESSIVE)"}},
		{"critical only", "data_types:\n  trades: {tier1_from: CIRCUIT_BREAK}\n",
			[]string{"data_types.trades.tier1_from: critical symbols would be shed from CIRCUIT_BREAK"}},
		{"tier 2 before 3", "data_types:\n  trades: {tier2_from: GRACEFUL, tier3_from: AGGRESSIVE}\n",
			[]string{"data_types.trades.tier2_from: high-priority symbols would be shed from GRACEFUL, before tier 3 (AGGRESSIVE)"}},
		{"several at once", "critical_symbols: ['']\ndata_types:\n  quotes: {from: LOTS}\n  trades: {from: NORMAL}\n",
			[]string{"critical_symbols[0]", "data_types.quotes.from", "data_types.trades.from"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.yaml), dataTypes)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNewShedderValidates(t *testing.T) {
	p := Policy{DataTypes: map[string]DataTypeRule{Trades: {Tier3From: "SOFTER"}}}
	if err := p.Validate(dataTypes); err == nil {
		t.Fatal("Validate accepted an unknown level")
	}
	if s, err := NewShedder(p, nil); err == nil || s != nil {
		t.Fatal("NewShedder accepted an invalid policy")
	}
}

// Run with -race: Keep from many goroutines, no locks.
func TestShedderConcurrent(t *testing.T) {
	p, _ := ParsePolicy([]byte(examplePolicy), dataTypes)
	reg := ops.NewRegistry()
	s, _ := NewShedder(p, reg)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10_000 {
				s.Keep(Aggressive, Trades, "BTCUSDT")
				s.Keep(Aggressive, Trades, "BHP")
			}
		})
	}
	wg.Wait()
	if got := ops.Sum(reg, "k2_messages_shed_total", "data_type", Trades, "symbol_tier", "tier3", "level", "AGGRESSIVE"); got != 80_000 {
		t.Fatalf("counted %v drops, want 80000", got)
	}
}

func TestKeepDoesNotAllocate(t *testing.T) {
	p, _ := ParsePolicy([]byte(examplePolicy), dataTypes)
	s, _ := NewShedder(p, nil)
	sym := string([]byte("BTCUSDT")) // not a constant the compiler could intern
	for _, l := range allLevels {
		if n := testing.AllocsPerRun(1000, func() { s.Keep(l, Trades, sym) }); n != 0 {
			t.Errorf("Keep at %s allocates %v", l, n)
		}
	}
}

func BenchmarkKeep(b *testing.B) {
	p, _ := ParsePolicy([]byte(examplePolicy), dataTypes)
	configured, _ := NewShedder(p, nil)
	def, _ := NewShedder(Policy{}, nil)
	for _, bc := range []struct {
		name  string
		s     *Shedder
		level Level
		dt    string
		sym   string
	}{
		{"default/CIRCUIT_BREAK", def, CircuitBreak, Trades, "BTCUSDT"},
		{"configured/NORMAL", configured, Normal, Trades, "BTCUSDT"},
		{"configured/AGGRESSIVE/unlisted-type", configured, Aggressive, Quotes, "BTCUSDT"},
		{"configured/AGGRESSIVE/keep-tier1", configured, Aggressive, Trades, "BHP"},
		{"configured/AGGRESSIVE/drop-tier3", configured, Aggressive, Trades, "BTCUSDT"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.s.Keep(bc.level, bc.dt, bc.sym)
			}
		})
	}
	b.Run("configured/AGGRESSIVE/keep-tier1/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				configured.Keep(Aggressive, Trades, "BHP")
			}
		})
	})
	b.Run("configured/AGGRESSIVE/drop-tier3/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				configured.Keep(Aggressive, Trades, "BTCUSDT")
			}
		})
	})
}

type shedKey struct {
	dt, tier string
	l        Level
}

// shedCounts reads k2_messages_shed_total by gathering, not WithLabelValues,
// which would create the very series a test checks are absent.
func shedCounts(t *testing.T, reg *ops.Registry) map[shedKey]float64 {
	t.Helper()
	out := map[shedKey]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "k2_messages_shed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lv := map[string]string{}
			for _, lp := range m.GetLabel() {
				lv[lp.GetName()] = lp.GetValue()
			}
			l, err := ParseLevel(lv["level"])
			if err != nil {
				t.Fatal(err)
			}
			out[shedKey{lv["data_type"], lv["symbol_tier"], l}] = m.GetCounter().GetValue()
		}
	}
	return out
}

// The prefilter in front of the tier map never hides a listed symbol.
func TestTierPrefilter(t *testing.T) {
	tier1 := strings.Fields("BHP CBA CSL NAB WBC ANZ WES MQG RIO TLS WOW FMG NCM STO WPL AMC GMG TCL COL ALL BTCUSDT BTC/USD")
	tier2 := strings.Fields("REA QAN BXB ORG JHX CPU SHL ASX IAG APA S32 MIN SGP AGL RMD SEK ORI QBE MPL AZJ WHC LLC SCG EVN JBH DXS GPT MGR NST BOQ ILU ALX VCX SDF CHC TAH ALU IPL HVN ORA ETHUSDT")
	s, err := NewShedder(Policy{CriticalSymbols: tier1, HighPrioritySymbols: tier2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, sym := range tier1 {
		if s.Tier(sym) != Tier1 {
			t.Errorf("%s not tier 1", sym)
		}
	}
	for _, sym := range tier2 {
		if s.Tier(sym) != Tier2 {
			t.Errorf("%s not tier 2", sym)
		}
	}
	for _, sym := range []string{"", "B", "bhp", "BHPX", "XBHP", "SOLUSDT", "BTCUSD", "BTC/USDT", "ZZZ"} {
		if s.Tier(sym) != Tier3 {
			t.Errorf("%q not tier 3", sym)
		}
	}
}
