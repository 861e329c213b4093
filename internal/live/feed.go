package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// FeedConfig says where a feed's records go.
type FeedConfig struct {
	Producer *bus.Producer
	// Backfill recovers the trades a reconnect missed (nil: gaps are only
	// counted and logged).
	Backfill feed.Backfill
	// MaxBackfill bounds the trade ids one gap may fetch (default 100,000:
	// minutes of a busy symbol, a hundred REST pages); a longer outage is
	// history for k2 load binance-csv, not for a feed holding its stream.
	MaxBackfill int64
	// Resume returns the highest trade id already produced per symbol, so
	// a restarted feed (after a crash, say) sees the hole its downtime left
	// and backfills it (nil: start afresh).
	Resume func(ctx context.Context) (map[string]int64, error)
	Logger *slog.Logger
}

// Feed turns a session's frames into trades and quotes in Kafka. It drops
// what a reconnect or rotation delivers twice (by the exchange's ids),
// fills holes in contiguous trade ids, and dead-letters frames it cannot
// read, going on with the next.
type Feed struct {
	proto feed.Protocol
	sess  *Session
	cfg   FeedConfig
	m     *metrics
	log   *slog.Logger
	asset md.AssetClass

	lastTrade map[string]int64 // symbol → highest trade id produced
	lastQuote map[string]int64 // symbol → highest quote sequence produced
	errLog    rate.Sometimes

	stats struct {
		sync.Mutex
		FeedStats
	}
}

// FeedStats count what the feed did with what it received.
type FeedStats struct {
	Frames      int64 `json:"frames"`
	Trades      int64 `json:"trades"` // produced, backfilled ones included
	Quotes      int64 `json:"quotes"`
	Funding     int64 `json:"funding,omitempty"` // mark price and funding records
	Duplicates  int64 `json:"duplicates"`
	Gaps        int64 `json:"gaps"`
	Missing     int64 `json:"missing"`    // trade ids the gaps spanned
	Backfilled  int64 `json:"backfilled"` // of them, recovered
	DeadLetters int64 `json:"dead_letters"`
	Skipped     int64 `json:"skipped"` // control frames: answers, heartbeats, other streams
}

// NewFeed prepares a feed of p through a session configured by sc.
func NewFeed(p feed.Protocol, sc SessionConfig, cfg FeedConfig) (*Feed, error) {
	if cfg.Producer == nil {
		return nil, errors.New("live: feed without a producer")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBackfill <= 0 {
		cfg.MaxBackfill = 100_000
	}
	ex, err := md.LookupExchange(p.Exchange())
	if err != nil {
		return nil, err
	}
	if sc.Logger == nil {
		sc.Logger = cfg.Logger
	}
	s, err := NewSession(p, sc)
	if err != nil {
		return nil, err
	}
	return &Feed{proto: p, sess: s, cfg: cfg, m: s.m, log: cfg.Logger.With("exchange", p.Exchange()),
		asset: ex.AssetClass, lastTrade: map[string]int64{}, lastQuote: map[string]int64{},
		errLog: rate.Sometimes{Interval: time.Second}}, nil
}

// Session is the feed's connection manager.
func (f *Feed) Session() *Session { return f.sess }

// Stats returns the counters.
func (f *Feed) Stats() FeedStats {
	f.stats.Lock()
	defer f.stats.Unlock()
	return f.stats.FeedStats
}

func (f *Feed) count(fn func(*FeedStats)) {
	f.stats.Lock()
	fn(&f.stats.FeedStats)
	f.stats.Unlock()
}

// Run connects and produces until ctx ends, then waits for what was
// produced to be acknowledged.
func (f *Feed) Run(ctx context.Context) error {
	if f.cfg.Resume != nil {
		// Best effort: a feed that cannot read its topic still captures
		// the market, only without recovering its own downtime.
		last, err := f.cfg.Resume(ctx)
		if err != nil {
			f.log.Warn("cannot read where the last run stopped; its downtime is not backfilled", "error", err)
		}
		for sym, id := range last {
			f.lastTrade[sym] = id
		}
		if len(last) > 0 {
			f.log.Info("resuming after the trades already in Kafka", "last_trade_ids", last)
		}
	}
	done := make(chan error, 1)
	go func() { done <- f.sess.Run(ctx) }()
	// Records are produced under a context that outlives ctx, so what was
	// handed to the producer before the end is still delivered by Flush.
	pctx := context.WithoutCancel(ctx)
	var err error
	for fr := range f.sess.Frames() {
		if ctx.Err() != nil || err != nil {
			continue // drain: the session is closing
		}
		err = f.handle(pctx, fr)
	}
	err = errors.Join(err, <-done)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopFlush)
	defer cancel()
	return errors.Join(err, f.cfg.Producer.Flush(fctx))
}

// handle turns one frame into records. Only a producer that refuses
// (closed) stops the feed; anything wrong with the frame is dead-lettered.
func (f *Feed) handle(ctx context.Context, fr Frame) error {
	f.count(func(s *FeedStats) { s.Frames++ })
	if err := md.CheckUTF8("the frame", fr.Data); err != nil {
		return f.deadLetter(ctx, fr, err)
	}
	ev, err := f.proto.Parse(fr.Data, md.Timestamp(fr.Received.UnixMicro()))
	if err != nil {
		return f.deadLetter(ctx, fr, err)
	}
	if ev.Skipped != "" && ev.Empty() {
		f.count(func(s *FeedStats) { s.Skipped++ })
		return nil
	}
	for i := range ev.Trades {
		if err := f.trade(ctx, &ev.Trades[i]); err != nil {
			return err
		}
	}
	for i := range ev.Quotes {
		q := &ev.Quotes[i]
		if q.SourceSequence.Valid {
			if last, ok := f.lastQuote[q.Symbol]; ok && q.SourceSequence.Int64 <= last {
				f.m.duplicates.WithLabelValues("quote").Inc()
				f.count(func(s *FeedStats) { s.Duplicates++ })
				continue
			}
			f.lastQuote[q.Symbol] = q.SourceSequence.Int64
		}
		if err := bus.Produce(ctx, f.cfg.Producer, record.Quote, q); err != nil {
			return err
		}
		f.m.received.WithLabelValues(q.Symbol).Inc()
		f.count(func(s *FeedStats) { s.Quotes++ })
	}
	for i := range ev.Funding {
		if err := bus.Produce(ctx, f.cfg.Producer, record.Funding, &ev.Funding[i]); err != nil {
			return err
		}
		f.m.received.WithLabelValues(ev.Funding[i].Symbol).Inc()
		f.count(func(s *FeedStats) { s.Funding++ })
	}
	return nil
}

// trade produces t unless it was seen already; a jump in its id first
// fills the hole from the backfill.
func (f *Feed) trade(ctx context.Context, t *md.Trade) error {
	if t.SourceSequence.Valid {
		id := t.SourceSequence.Int64
		last, ok := f.lastTrade[t.Symbol]
		switch {
		case ok && id <= last:
			f.m.duplicates.WithLabelValues("trade").Inc()
			f.count(func(s *FeedStats) { s.Duplicates++ })
			return nil
		case ok && id > last+1:
			if err := f.fill(ctx, t.Symbol, last+1, id-1); err != nil {
				return err
			}
		}
		f.lastTrade[t.Symbol] = id
	}
	if err := bus.Produce(ctx, f.cfg.Producer, record.Trade, t); err != nil {
		return err
	}
	f.m.received.WithLabelValues(t.Symbol).Inc()
	f.count(func(s *FeedStats) { s.Trades++ })
	return nil
}

// fill counts a hole of trade ids from..to and recovers what it can.
func (f *Feed) fill(ctx context.Context, symbol string, from, to int64) error {
	missing := to - from + 1
	f.m.gaps.WithLabelValues(symbol).Inc()
	f.count(func(s *FeedStats) { s.Gaps++; s.Missing += missing })
	if f.cfg.Backfill == nil {
		f.log.Warn("trade ids skipped; no REST endpoint to backfill from", "symbol", symbol, "from", from, "to", to, "missing", missing)
		return nil
	}
	got := int64(0)
	if missing > f.cfg.MaxBackfill {
		f.log.Error("gap too long to backfill from the stream; load it from historical files", "symbol", symbol,
			"from", from, "to", to, "missing", missing, "max_backfill", f.cfg.MaxBackfill)
		return nil
	}
	for next := from; next <= to; {
		trades, err := f.cfg.Backfill(ctx, symbol, next, to)
		if err != nil {
			f.log.Error("backfill failed; the gap stays", "symbol", symbol, "from", next, "to", to, "error", err)
			break
		}
		progressed := false
		for i := range trades {
			t := &trades[i]
			id := t.SourceSequence.Int64
			if !t.SourceSequence.Valid || id < next || id > to {
				continue
			}
			if err := bus.Produce(ctx, f.cfg.Producer, record.Trade, t); err != nil {
				return err
			}
			next, got, progressed = id+1, got+1, true
			f.m.backfilled.WithLabelValues(symbol).Inc()
			f.m.received.WithLabelValues(symbol).Inc()
		}
		if !progressed {
			break // the exchange has no more: the rest is truly gone
		}
	}
	f.count(func(s *FeedStats) { s.Backfilled += got; s.Trades += got })
	f.log.Warn("trade ids skipped by the stream", "symbol", symbol, "from", from, "to", to, "missing", missing, "backfilled", got)
	return nil
}

// deadLetter sends a frame the feed cannot read to the exchange's trades
// dead-letter topic, with why and where in headers.
func (f *Feed) deadLetter(ctx context.Context, fr Frame, err error) error {
	reason := md.ReasonOf(err)
	f.m.messageErrors.WithLabelValues(reason).Inc()
	f.count(func(s *FeedStats) { s.DeadLetters++ })
	f.errLog.Do(func() {
		f.log.Warn("frame dead-lettered", "reason", reason, "error", err, "endpoint", fr.Endpoint, "frame", truncate(fr.Data, 200))
	})
	topic := f.cfg.Producer.TopicFor(f.asset, record.Trade.DataType, f.proto.Exchange())
	return f.cfg.Producer.DeadLetter(ctx, topic, nil, fr.Data, reason, err,
		kgo.RecordHeader{Key: bus.HeaderSource, Value: []byte(fr.Endpoint)})
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return fmt.Sprintf("%s… (%d bytes)", b[:n], len(b))
}
