package drill

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/feed/synth"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// trafficSymbols are the symbols of a drill's trades: several, so the
// stream spans partitions.
var trafficSymbols = []string{"BTCUSD", "ETHUSD", "SOLUSD", "XRPUSD"}

// Traffic is a steady stream of synthetic trades into the installation's
// Kafka, each with an id of the drill's own (SYNTH-<run>-<n>, per symbol),
// so the lake can be checked record by record.
type Traffic struct {
	Run  string // in every id
	p    *bus.Producer
	sent atomic.Int64
	// ids are the symbol/trade_id keys handed to the producer, in order:
	// a drill that must tell which records a broker lost compares them.
	idsMu sync.Mutex
	ids   []string
	stop  chan struct{}
	done  chan struct{}
	err   error

	once     sync.Once
	produced int64
	stopErr  error
}

// StartTraffic produces rate trades a second to the installation until
// Stop. While the broker is down the producer buffers and retries (it is
// idempotent: a retried batch is written once).
// The stream's ids carry run, which must be new to the installation. It
// stops, if the drill has not stopped it, when the drill ends.
func (e *Env) StartTraffic(ctx context.Context, in *Install, run string, rate int) (*Traffic, error) {
	run += in.RunID
	reg, err := registry.NewClient(in.Registry)
	if err != nil {
		return nil, err
	}
	p, err := bus.NewProducer(bus.ProducerConfig{Brokers: strings.Split(in.Brokers, ","), TopicPrefix: in.TopicPrefix, Security: in.Security, ClientID: "drill-" + run}, reg)
	if err != nil {
		return nil, err
	}
	t := &Traffic{Run: run, p: p, stop: make(chan struct{}), done: make(chan struct{})}
	e.Cleanup(func() {
		// A drill that failed with the broker down must not wait out the
		// flush.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t.Stop(ctx)
	})
	gen := synth.New(synth.Config{Seed: 12, Symbols: trafficSymbols, Run: run, Rate: float64(rate), Start: md.Now()})
	go func() {
		defer close(t.done)
		const tick = 20 * time.Millisecond
		per := max(1, rate*int(tick/time.Millisecond)/1000)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		var batch []md.Trade
		for {
			select {
			case <-t.stop:
				return
			case <-ctx.Done():
				t.err = ctx.Err()
				return
			case <-tk.C:
			}
			batch = gen.Trades(batch[:0], per)
			for i := range batch {
				if err := bus.Produce(ctx, p, record.Trade, &batch[i]); err != nil {
					t.err = fmt.Errorf("produce %s: %w", batch[i].TradeID, err)
					return
				}
				t.sent.Add(1)
				t.idsMu.Lock()
				t.ids = append(t.ids, batch[i].Symbol+"/"+batch[i].TradeID)
				t.idsMu.Unlock()
			}
		}
	}()
	return t, nil
}

// IDs are the symbol/trade_id keys of the trades sent so far.
func (t *Traffic) IDs() []string {
	t.idsMu.Lock()
	defer t.idsMu.Unlock()
	return append([]string(nil), t.ids...)
}

// Sent is how many trades have been handed to the producer so far.
func (t *Traffic) Sent() int64 { return t.sent.Load() }

// Stop ends the stream, waits for the broker to acknowledge every record
// and returns how many it acknowledged. A record it did not is an error:
// the counts would not be exact.
func (t *Traffic) Stop(ctx context.Context) (int64, error) {
	t.once.Do(func() { t.produced, t.stopErr = t.stopOnce(ctx) })
	return t.produced, t.stopErr
}

func (t *Traffic) stopOnce(ctx context.Context) (int64, error) {
	close(t.stop)
	<-t.done
	fctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	ferr := t.p.Flush(fctx)
	t.p.Close(fctx)
	st := t.p.Stats()
	switch {
	case t.err != nil:
		return st.Produced, t.err
	case ferr != nil:
		return st.Produced, fmt.Errorf("flush: %w", ferr)
	case st.Failed > 0 || st.Produced != t.sent.Load():
		return st.Produced, fmt.Errorf("%d of %d records acknowledged, %d failed", st.Produced, t.sent.Load(), st.Failed)
	}
	return st.Produced, nil
}
