package stack

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/live"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// feedRunner is a feed ready to run, with its producer.
type feedRunner struct {
	name    string
	prod    *bus.Producer
	run     func(context.Context) error
	summary func() string
	// produced counts what the feed handed to Kafka, for the status line.
	produced func() (trades, quotes int64)
}

// close closes the feed's producer, waiting until deadline for the broker.
func (f *feedRunner) close(deadline time.Time) error {
	return closeProducer(f.prod, deadline, discardLog{})
}

type discardLog struct{}

func (discardLog) Error(string, ...any) {}

// newFeed builds the feed of the named exchange from the configuration.
// Its producer connects on first use, so bad settings fail before any I/O.
func (st *Stack) newFeed(ctx context.Context, name string) (*feedRunner, error) {
	ex, err := exchanges.Feed(name)
	if err != nil {
		return nil, err
	}
	if !st.parts.Embedded {
		// Topics missing on a fresh cluster would be auto-created with the
		// broker's defaults; where the cluster forbids creating them, the
		// producer reports what is missing.
		if err := bus.EnsureTopics(ctx, st.brokers, st.sec, Topology(st.cfg.Kafka)); err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n") // one line per topic
			st.log.Warn("could not create K2's topics; producing to those that exist", "error", first)
		}
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{
		Brokers: st.brokers, Security: st.sec, ClientID: "k2-feed-" + ex.Name, TopicPrefix: st.cfg.Kafka.TopicPrefix, Logger: st.log,
		Registerer: st.metrics, Exchanges: []string{ex.Code},
	}, st.reg)
	if err != nil {
		return nil, err
	}
	r := &feedRunner{name: ex.Name, prod: prod}
	if ex.Synthetic {
		err = st.synthFeed(r)
	} else {
		err = st.exchangeFeed(r, ex)
	}
	if err != nil {
		prod.Close(context.Background()) // nothing was produced yet
		return nil, err
	}
	return r, nil
}

func (st *Stack) synthFeed(r *feedRunner) error {
	f := st.cfg.Feed
	s, err := live.NewSynth(r.prod, live.SynthConfig{Seed: f.Seed, Symbols: upper(f.Symbols), Rate: f.Rate, Limit: f.MaxTrades, Logger: st.log})
	if err != nil {
		return err
	}
	r.run, r.produced = s.Run, s.Counts
	r.summary = func() string {
		t, q := s.Counts()
		return fmt.Sprintf("synth: %d trades, %d quotes produced", t, q)
	}
	return nil
}

func (st *Stack) exchangeFeed(r *feedRunner, ex *feed.Exchange) error {
	f := st.cfg.Feed
	if len(f.Symbols) == 0 {
		return fmt.Errorf("--symbols is required, e.g. %s", ex.Example)
	}
	assets := st.cfg.Assets.List()
	proto, err := ex.Live.Protocol(f.Symbols, assets)
	if err != nil {
		return err
	}
	endpoints := f.URLs
	if len(endpoints) == 0 {
		endpoints = ex.Live.Endpoints
	}
	for _, e := range endpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return fmt.Errorf("--url %q: want ws://host:port or wss://host", e)
		}
	}
	var backfill feed.Backfill
	if ex.Live.Backfill != nil {
		rest := f.RESTURL
		if rest == "" {
			rest = ex.Live.REST
			if len(f.URLs) > 0 {
				// A replay server answers REST on the port it streams on.
				rest = httpBase(f.URLs[0])
			}
		}
		if rest != "none" {
			backfill = ex.Live.Backfill(rest, f.APIKey, assets)
		}
	}
	fd, err := live.NewFeed(proto, live.SessionConfig{
		Endpoints: endpoints, RotateAfter: f.RotateAfter, StaleAfter: f.StaleAfter, PingInterval: f.PingInterval,
		Logger: st.log, Registerer: st.metrics,
	}, live.FeedConfig{Producer: r.prod, Backfill: backfill, Logger: st.log,
		Resume: st.lastTradeIDs(r.prod.TopicFor(md.Crypto, record.Trade.DataType, proto.Exchange()))})
	if err != nil {
		return err
	}
	st.health.Add("feed", func(context.Context) error {
		if !fd.Session().Connected() {
			return fmt.Errorf("%s: not connected (reconnecting)", ex.Name)
		}
		return nil
	})
	r.run = fd.Run
	r.produced = func() (int64, int64) {
		s := fd.Stats()
		return s.Trades, s.Quotes
	}
	r.summary = func() string {
		s, ss := fd.Stats(), fd.Session().Stats()
		return fmt.Sprintf("%s: %d frames, %d trades (%d backfilled), %d quotes, %d repeats dropped, %d gaps (%d trade ids), %d dead letters; %d connections, %d rotations, reconnects %v",
			ex.Name, s.Frames, s.Trades, s.Backfilled, s.Quotes, s.Duplicates, s.Gaps, s.Missing, s.DeadLetters, ss.Connects, ss.Rotations, ss.Reconnects)
	}
	return nil
}

// lastTradeIDs reads the highest trade id per symbol from the tail of the
// feed's trades topic: a restarted feed backfills from there.
func (st *Stack) lastTradeIDs(topic string) func(context.Context) (map[string]int64, error) {
	return func(ctx context.Context) (map[string]int64, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		// Every symbol that traded in the last 100,000 records of its
		// partition: minutes of a busy market, and a bounded read.
		recs, err := bus.LatestByKey(ctx, st.brokers, st.sec, topic, 100_000)
		if err != nil {
			return nil, err
		}
		dec := codec.NewDecoder(st.reg.SchemaByID)
		out := map[string]int64{}
		for sym, r := range recs {
			t, _, err := dec.Trade(ctx, r.Value)
			if err != nil {
				st.log.Warn("cannot read the last trade; not resuming this symbol", "topic", topic, "symbol", sym, "error", err)
				continue
			}
			if t.SourceSequence.Valid {
				out[t.Symbol] = t.SourceSequence.Int64
			}
		}
		return out, nil
	}
}

// httpBase is the http(s) origin of a ws(s) URL (checked before).
func httpBase(ws string) string {
	u, _ := url.Parse(ws)
	return map[string]string{"ws": "http", "wss": "https"}[u.Scheme] + "://" + u.Host
}

func upper(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToUpper(strings.TrimSpace(s))
	}
	return out
}
