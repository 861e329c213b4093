// Package synth generates a synthetic market for demos, tests and
// benchmarks: trades and top-of-book quotes for a set of symbols, driven by
// a random walk whose volatility clusters (a GARCH(1,1) variance), with
// spreads that widen when the market is volatile and lognormal sizes.
//
// It is deterministic: the same seed and configuration produce the same
// stream, bit for bit, so a test can assert exact values and a benchmark
// always writes the same data.
package synth

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Code is the exchange code synthetic records carry.
const Code = "SYNTH"

// Config shapes the market.
type Config struct {
	Seed    uint64
	Symbols []string // default DefaultSymbols
	// Start is the first event time; Rate the average events per second of
	// simulated time across all symbols (the pace of timestamps, not of
	// generation, which is as fast as the caller asks).
	Start marketdata.Timestamp
	Rate  float64
	// QuoteEvery emits a quote after every n-th trade of a symbol (0: no quotes).
	QuoteEvery int
	// Run goes into every id (SYNTH-<run>-<n>), so that two runs of a live
	// synthetic feed never reuse an id; empty for none.
	Run string
}

// DefaultSymbols are the instruments of the default market.
var DefaultSymbols = []string{
	"BTCUSD", "ETHUSD", "SOLUSD", "XRPUSD", "BNBUSD", "ADAUSD", "DOGEUSD", "AVAXUSD", "DOTUSD", "LINKUSD",
	"LTCUSD", "ATOMUSD", "UNIUSD", "XLMUSD", "NEARUSD", "APTUSD", "ARBUSD", "OPUSD", "FILUSD", "ETCUSD",
}

// startPrices are plausible opening prices; unknown symbols start at 100.
var startPrices = map[string]float64{
	"BTCUSD": 64000, "ETHUSD": 3100, "SOLUSD": 145, "XRPUSD": 0.52, "BNBUSD": 560, "ADAUSD": 0.45,
	"DOGEUSD": 0.12, "AVAXUSD": 28, "DOTUSD": 6.2, "LINKUSD": 13.5, "LTCUSD": 71, "ATOMUSD": 7.1,
	"UNIUSD": 7.4, "XLMUSD": 0.095, "NEARUSD": 5.2, "APTUSD": 6.8, "ARBUSD": 0.62, "OPUSD": 1.6,
	"FILUSD": 4.1, "ETCUSD": 22,
}

type instrument struct {
	symbol  string
	tick    int64   // price increment in decimal units
	price   int64   // last price in decimal units
	lot     float64 // typical size
	sigma2  float64 // current per-trade return variance
	seq     int64
	weight  float64 // share of the market's activity
	nextQte int
}

// GARCH(1,1) per trade: σ² ← ω + α·r² + β·σ², long-run σ ≈ 1 bp.
const (
	garchAlpha = 0.08
	garchBeta  = 0.90
	longRunVar = 1e-4 * 1e-4
	garchOmega = longRunVar * (1 - garchAlpha - garchBeta)
)

// Generator produces the stream. It is not safe for concurrent use.
type Generator struct {
	cfg   Config
	rng   *rand.Rand
	insts []*instrument
	cum   []float64 // cumulative activity weights
	now   float64   // µs since epoch of the last event
}

// New builds a generator.
func New(cfg Config) *Generator {
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = DefaultSymbols
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1000
	}
	if cfg.Start == 0 {
		cfg.Start = marketdata.Timestamp(1_735_689_600_000_000) // 2025-01-01T00:00:00Z
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), now: float64(cfg.Start)}
	total := 0.0
	for i, s := range cfg.Symbols {
		p := startPrices[s]
		if p == 0 {
			p = 100
		}
		// A tick of about a millionth of the price, rounded to a power of ten.
		tick := int64(math.Pow(10, math.Floor(math.Log10(p*1e-6*1e8))))
		tick = max(tick, 1)
		inst := &instrument{
			symbol: s, tick: tick, price: int64(p*1e8) / tick * tick,
			lot: 1000 / p, sigma2: longRunVar, weight: 1 / float64(i+1), // Zipf: the first symbols trade most
		}
		total += inst.weight
		g.insts = append(g.insts, inst)
	}
	acc := 0.0
	for _, inst := range g.insts {
		acc += inst.weight / total
		g.cum = append(g.cum, acc)
	}
	return g
}

// Symbols returns the generated symbols.
func (g *Generator) Symbols() []string { return g.cfg.Symbols }

// Next appends the next event (a trade, sometimes followed by a quote) to ev.
func (g *Generator) Next(ev *[]marketdata.Trade, quotes *[]marketdata.Quote) {
	// Poisson arrivals at the configured rate, at least 1 µs apart.
	g.now += max(1, g.rng.ExpFloat64()*1e6/g.cfg.Rate)
	ts := marketdata.Timestamp(g.now)
	u := g.rng.Float64()
	i := 0
	for i < len(g.cum)-1 && u > g.cum[i] {
		i++
	}
	inst := g.insts[i]
	r := g.rng.NormFloat64() * math.Sqrt(inst.sigma2)
	inst.sigma2 = garchOmega + garchAlpha*r*r + garchBeta*inst.sigma2
	// Round to the nearest tick: truncating would drift the price down.
	next := int64(math.Round(float64(inst.price)*math.Exp(r)/float64(inst.tick))) * inst.tick
	inst.price = max(next, inst.tick)
	inst.seq++
	side := marketdata.Buy
	if r < 0 || (r == 0 && g.rng.IntN(2) == 0) {
		side = marketdata.Sell
	}
	qty := marketdata.Decimal(max(1, int64(inst.lot*math.Exp(g.rng.NormFloat64()*1.1-0.6)*1e8)/1000*1000))
	id := g.id(inst.seq)
	*ev = append(*ev, marketdata.Trade{
		MessageID: marketdata.MessageID("trade", inst.symbol, id), TradeID: id,
		Symbol: inst.symbol, Exchange: Code, AssetClass: marketdata.Crypto, Timestamp: ts,
		Price: marketdata.Decimal(inst.price), Quantity: qty, Currency: "USD", Side: side,
		TradeConditions: []string{}, SourceSequence: marketdata.SomeInt64(inst.seq),
		IngestionTimestamp: ts + 500,
	})
	if g.cfg.QuoteEvery > 0 && quotes != nil {
		inst.nextQte++
		if inst.nextQte >= g.cfg.QuoteEvery {
			inst.nextQte = 0
			*quotes = append(*quotes, g.quote(inst, ts))
		}
	}
}

// quote is the book after a trade: the spread widens with volatility.
func (g *Generator) quote(inst *instrument, ts marketdata.Timestamp) marketdata.Quote {
	half := max(1, int64(math.Sqrt(inst.sigma2)/1e-4*float64(1+g.rng.IntN(3)))) * inst.tick
	bid, ask := max(inst.price-half, inst.tick), inst.price+half
	size := func() marketdata.NullDecimal {
		return marketdata.SomeDecimal(marketdata.Decimal(max(1, int64(inst.lot*3*g.rng.ExpFloat64()*1e8)/1000*1000)))
	}
	id := g.id(inst.seq)
	return marketdata.Quote{
		MessageID: marketdata.MessageID("quote", inst.symbol, id), QuoteID: id,
		Symbol: inst.symbol, Exchange: Code, AssetClass: marketdata.Crypto, Timestamp: ts,
		BidPrice: marketdata.SomeDecimal(marketdata.Decimal(bid)), BidQuantity: size(),
		AskPrice: marketdata.SomeDecimal(marketdata.Decimal(ask)), AskQuantity: size(),
		Currency: "USD", SourceSequence: marketdata.SomeInt64(inst.seq), IngestionTimestamp: ts + 500,
	}
}

// id is the trade and quote id of a symbol's n-th event:
// SYNTH[-run]-000000000042 (appended by hand: fmt was a tenth of a
// generated trade's cost).
func (g *Generator) id(n int64) string {
	var buf [64]byte
	b := append(buf[:0], Code...)
	if g.cfg.Run != "" {
		b = append(append(b, '-'), g.cfg.Run...)
	}
	b = append(b, '-')
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	for range 12 - len(d) {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

// Trades appends n trades to dst and returns it.
func (g *Generator) Trades(dst []marketdata.Trade, n int) []marketdata.Trade {
	for range n {
		g.Next(&dst, nil)
	}
	return dst
}
