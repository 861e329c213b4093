package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// SynthConfig configures the synthetic live market.
type SynthConfig struct {
	Seed    uint64
	Symbols []string // default synth.DefaultSymbols
	// Rate is trades per second across the market (default: the
	// setting's); a quote
	// follows every QuoteEvery-th trade of a symbol (default 2).
	Rate       float64
	QuoteEvery int
	// Limit stops after this many trades (0: run until ctx ends).
	Limit  int64
	Logger *slog.Logger
}

// Synth produces a synthetic market into Kafka as if it were an exchange:
// a random walk with volatility clusters, spreads that widen with it, and
// sizes from a log-normal, at a steady rate with live timestamps. The same
// seed gives the same prices and sizes; each run's ids are its own, so a
// restarted feed adds to the lake instead of repeating it.
type Synth struct {
	cfg    SynthConfig
	prod   *bus.Producer
	trades atomic.Int64
	quotes atomic.Int64
}

// NewSynth prepares a synthetic feed.
func NewSynth(p *bus.Producer, cfg SynthConfig) (*Synth, error) {
	if p == nil {
		return nil, errors.New("live: synthetic feed without a producer")
	}
	config.Or(&cfg.Rate, config.Default().Feed.Rate)
	if cfg.Rate > 2_000_000 {
		return nil, fmt.Errorf("synthetic rate %.0f/s is above 2,000,000/s", cfg.Rate)
	}
	if cfg.QuoteEvery == 0 {
		cfg.QuoteEvery = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Synth{cfg: cfg, prod: p}, nil
}

// Counts are the trades and quotes produced so far.
func (s *Synth) Counts() (trades, quotes int64) { return s.trades.Load(), s.quotes.Load() }

// tick is how often the synthetic feed produces its share of the rate:
// often enough to look continuous, rarely enough to cost nothing idle.
const tick = 10 * time.Millisecond

// Run produces until ctx ends (or Limit is reached) and waits for what it
// produced to be acknowledged.
func (s *Synth) Run(ctx context.Context) error {
	start := time.Now()
	g := synth.New(synth.Config{
		Seed: s.cfg.Seed, Symbols: s.cfg.Symbols, Rate: s.cfg.Rate, QuoteEvery: s.cfg.QuoteEvery,
		Start: md.Timestamp(start.UnixMicro()), Run: strconv.FormatInt(start.UnixMilli(), 36), // a restart is always another millisecond
	})
	s.cfg.Logger.Info("synthetic market started", "symbols", len(g.Symbols()), "rate", s.cfg.Rate, "seed", s.cfg.Seed)
	t := time.NewTicker(tick)
	defer t.Stop()
	var trades []md.Trade
	var quotes []md.Quote
	var err error
	// A tick produces at most 100 ms of the rate: a producer that cannot
	// keep up lowers the rate rather than growing a backlog.
	most := max(1, int64(s.cfg.Rate/10))
	prev := md.Timestamp(start.UnixMicro()) // the last tick that produced
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-t.C:
			// Produce what the elapsed time calls for, so a slow tick
			// catches up rather than lowering the rate.
			n := min(int64(s.cfg.Rate*now.Sub(start).Seconds())-s.trades.Load(), most)
			if s.cfg.Limit > 0 {
				n = min(n, s.cfg.Limit-s.trades.Load())
			}
			if n <= 0 {
				continue
			}
			trades, quotes = trades[:0], quotes[:0]
			for range n {
				g.Next(&trades, &quotes)
			}
			// The tick's events are spread evenly over the time since the
			// last tick, in the order generated, rather than stamped alike.
			from, to := int64(prev), now.UnixMicro()
			at := func(i, n int) md.Timestamp { return md.Timestamp(from + (to-from)*int64(i+1)/int64(n)) }
			for i := range trades {
				ts := at(i, len(trades))
				trades[i].Timestamp, trades[i].IngestionTimestamp = ts, md.Timestamp(to)
				if err = bus.Produce(ctx, s.prod, record.Trade, &trades[i]); err != nil {
					break loop
				}
			}
			for i := range quotes {
				ts := at(i, len(quotes))
				quotes[i].Timestamp, quotes[i].IngestionTimestamp = ts, md.Timestamp(to)
				if err = bus.Produce(ctx, s.prod, record.Quote, &quotes[i]); err != nil {
					break loop
				}
			}
			prev = md.Timestamp(to)
			s.trades.Add(int64(len(trades)))
			s.quotes.Add(int64(len(quotes)))
			if s.cfg.Limit > 0 && s.trades.Load() >= s.cfg.Limit {
				break loop
			}
		}
	}
	if ctx.Err() != nil {
		err = nil
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopFlush)
	defer cancel()
	return errors.Join(err, s.prod.Flush(fctx))
}
