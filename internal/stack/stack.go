// Package stack assembles a K2 process. Each role — k2 up, k2 broker,
// k2 sink, k2 feed — and the benchmarks and end-to-end tests start a Stack
// with the parts they run; the Stack builds them from the configuration
// (whose defaults are config.Default's), wires them together with explicit
// addresses, serves /health and /metrics for them, runs them as one group,
// and stops them in order within StopTimeout.
//
// The files follow the parts: kafka.go (the embedded installation or a
// cluster, producers), lake.go (the lake, and the query engine for commands that open one), sink.go,
// feed.go, http.go (the listener, health and metrics), status.go (k2 up's
// status line).
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/k2-market-data/k2/internal/api"
	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/maintain"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/rollup"
	"github.com/k2-market-data/k2/internal/sink"
	"github.com/k2-market-data/k2/internal/tail"
)

// StopTimeout bounds a stop: a process asked to stop is gone within it,
// saying what it could not finish (records it could not deliver are
// reported; a batch it could not commit is read again on restart).
const StopTimeout = 10 * time.Second

// Parts says what a process runs.
type Parts struct {
	// Embedded serves Kafka and the schema registry in the process (k2 up,
	// k2 broker); otherwise the process connects to Config.Kafka.
	Embedded bool
	// Kafka connects to the cluster even without a sink or feed (loads
	// through Kafka, the topics commands).
	Kafka bool
	Lake  bool // open the lake (implied by Sink and Maintain)
	Sink  bool // consume the topics into the lake
	// Maintain runs table maintenance every Config.Maintain.Every (when
	// that is not 0).
	Maintain bool
	// API answers the REST API's routes on the HTTP listener (docs/api.md).
	API bool
	// Feed names the exchange to capture (feed/exchanges), "" none.
	Feed string
	// FeedMayFail keeps the process running when its feed fails (k2 up:
	// the rest still serves what it has); otherwise the failure stops it.
	FeedMayFail bool
	// Unthrottled sinks never pause for the process's memory: a benchmark
	// measures the pipeline itself, in a process that ran others before.
	Unthrottled bool
	// Status, when set, receives a short status every StatusEvery (k2 up
	// on a terminal).
	Status      io.Writer
	StatusEvery time.Duration
}

// Stack is one K2 process's parts, wired together.
type Stack struct {
	role  string
	cfg   config.Config
	parts Parts
	log   *slog.Logger

	metrics *ops.Registry
	health  *ops.Health
	http    *httpServer

	local   *bus.Local // the embedded installation, if any
	brokers []string
	sec     bus.Security // the cluster's TLS and SASL (zero when embedded)
	reg     *registry.Client
	regURL  string

	lake *lake.Lake
	sink *sink.Sink
	// maintainer keeps the tables compact (nil unless Parts.Maintain).
	maintainer *maintain.Maintainer
	// roller keeps the bar tables (nil unless maintaining with BarsEvery).
	roller *rollup.Roller
	// engine reads the lake for the API and the roller (nil: neither).
	engine *query.Engine
	// trim deletes from the embedded broker what the lake holds.
	trim *trimmer
	feed *feedRunner
	// tail holds the stream's recent records for the API (nil: none).
	tail *tail.Tail
	api  *api.Server

	closeOnce sync.Once
	closers   []func() // in the order things were opened
}

// Start builds the parts of a role's process from cfg (resolved) and
// starts the ones that serve: the HTTP listener, the embedded broker and
// registry. Run runs the rest.
func Start(ctx context.Context, role string, cfg config.Config, parts Parts, log *slog.Logger) (st *Stack, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st = &Stack{role: role, cfg: cfg, parts: parts, log: log, metrics: ops.NewRegistry(), health: ops.NewHealth(role)}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if st.http, err = st.startHTTP(); err != nil {
		return st, err
	}
	// The API's tail reads the stream.
	if parts.Embedded || parts.Kafka || parts.Sink || parts.Feed != "" || parts.API && cfg.API.TailAge > 0 {
		if err = st.connectKafka(ctx); err != nil {
			return st, err
		}
	}
	parts.Maintain = parts.Maintain && cfg.Maintain.Every > 0
	if parts.Lake || parts.Sink || parts.Maintain || parts.API {
		if err = st.openLake(ctx); err != nil {
			return st, err
		}
	}
	if parts.API {
		if err = st.serveAPI(); err != nil {
			return st, fmt.Errorf("API: %w", err)
		}
	}
	if parts.Sink {
		if err = st.newSink(); err != nil {
			return st, err
		}
	}
	if parts.Maintain {
		if err = st.newMaintainer(); err != nil {
			return st, err
		}
	}
	if parts.Feed != "" {
		if st.feed, err = st.newFeed(ctx, parts.Feed); err != nil {
			return st, fmt.Errorf("feed %s: %w", parts.Feed, err)
		}
	}
	return st, nil
}

// onClose adds a release to run when the stack closes, after the ones
// added later.
func (st *Stack) onClose(fn func()) { st.closers = append(st.closers, fn) }

// Run runs the sink, the feed and the status line until ctx ends or one of
// them (or a server) fails, then stops them: the feed first, so what it
// produced reaches the broker, then the sink, which commits what it holds.
// It returns the first failure, and what a stop could not deliver. Close
// then releases the rest (the servers, the lake).
func (st *Stack) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var failed error
	var mu sync.Mutex
	fail := func(what string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		mu.Lock()
		if failed == nil {
			failed = fmt.Errorf("%s: %w", what, err)
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	// The feed stops on its own context so that it stops before the sink.
	feedCtx, stopFeed := context.WithCancel(context.Background())
	defer stopFeed()
	feedDone := make(chan struct{})
	if st.feed != nil {
		go func() {
			defer close(feedDone)
			err := st.feed.run(feedCtx)
			switch {
			case feedCtx.Err() != nil: // stopping
			case st.parts.FeedMayFail && err != nil:
				st.log.Error("feed stopped; the rest of K2 goes on serving", "feed", st.parts.Feed, "error", err)
			case st.parts.FeedMayFail:
				st.log.Info("feed finished; the rest of K2 goes on serving", "feed", st.parts.Feed)
			case err != nil:
				fail("feed "+st.parts.Feed, err)
			default:
				cancel() // a feed with a limit is done, and so is a process that only runs it
			}
		}()
	} else {
		close(feedDone)
	}
	sinkDone := make(chan error, 1)
	sinkCtx, stopSink := context.WithCancel(context.Background())
	defer stopSink()
	if st.sink != nil {
		go func() {
			err := st.sink.Run(sinkCtx)
			if sinkCtx.Err() == nil {
				fail("sink", err)
			}
			sinkDone <- err
		}()
	} else {
		sinkDone <- nil
	}
	if st.parts.Status != nil {
		wg.Go(func() { st.status(ctx) })
	}
	if st.trim != nil {
		wg.Go(func() { st.trim.run(ctx, st.log) })
	}
	if st.tail != nil {
		wg.Go(func() { fail("API tail", st.tail.Run(ctx)) })
	}
	if st.api != nil {
		wg.Go(func() { st.api.Run(ctx) })
	}
	if st.maintainer != nil {
		// A cycle interrupted by the stop leaves nothing half done: each
		// of its commits is atomic, and files of one that did not land
		// are removed (or, if the process dies, by a later orphan pass).
		wg.Go(func() { fail("maintenance", st.maintainer.Run(ctx)) })
	}
	if st.roller != nil {
		// A roll stopped half-way commits nothing; the next computes again.
		wg.Go(func() { fail("bar tables", st.roller.Run(ctx, st.cfg.Maintain.BarsEvery)) })
	}
	wg.Go(func() {
		select {
		case err := <-st.http.errc:
			fail("http", err)
		case err := <-st.localErr():
			fail("embedded broker", err)
		case <-ctx.Done():
		}
	})
	<-ctx.Done()

	// Stop in order, within StopTimeout in all.
	deadline := time.Now().Add(StopTimeout)
	stopFeed()
	var errs []error
	if !waitUntil(feedDone, deadline) {
		errs = append(errs, fmt.Errorf("feed %s did not stop within %s", st.parts.Feed, StopTimeout))
	}
	if st.feed != nil {
		errs = append(errs, st.feed.close(deadline))
	}
	stopSink()
	select {
	case err := <-sinkDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("sink: %w (its uncommitted records are read again on restart)", err))
		}
	case <-time.After(time.Until(deadline)):
		errs = append(errs, errors.New("sink: did not finish its last commit in time; its uncommitted records are read again on restart"))
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(append([]error{failed}, errs...)...)
}

func waitUntil(done <-chan struct{}, deadline time.Time) bool {
	select {
	case <-done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

// Close releases everything Start opened, in reverse order.
func (st *Stack) Close() {
	st.closeOnce.Do(func() {
		for i := len(st.closers) - 1; i >= 0; i-- {
			st.closers[i]()
		}
	})
}

// Role is what the process runs as.
func (st *Stack) Role() string { return st.role }

// ServesAPI says whether the process answers the API and the dashboard.
func (st *Stack) ServesAPI() bool { return st.api != nil }

// Metrics is the registry /metrics serves.
func (st *Stack) Metrics() *ops.Registry { return st.metrics }

// Brokers is the Kafka bootstrap list the parts use.
func (st *Stack) Brokers() []string { return st.brokers }

// RegistryURL is the schema registry the parts use.
func (st *Stack) RegistryURL() string { return st.regURL }

// Lake is the open lake (nil unless Parts asked for it).
func (st *Stack) Lake() *lake.Lake { return st.lake }

// Sink is the sink (nil unless Parts.Sink).
func (st *Stack) Sink() *sink.Sink { return st.sink }

// FeedSummary says what the feed did so far ("" without a feed).
func (st *Stack) FeedSummary() string {
	if st.feed == nil {
		return ""
	}
	return st.feed.summary()
}
