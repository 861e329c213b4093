package stack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/resilience"
	"github.com/k2-market-data/k2/internal/sink"
)

func (st *Stack) newSink() error {
	dlq, err := st.Producer("k2-sink-dlq")
	if err != nil {
		return err
	}
	deg, shed, err := st.backpressure()
	if err != nil {
		return err
	}
	if st.parts.Unthrottled {
		deg = nil
	}
	s, err := sink.New(sink.Config{
		Sink: st.cfg.Sink, Brokers: st.brokers, Security: st.sec, TopicPrefix: st.cfg.Kafka.TopicPrefix,
		Degradation: deg, Shedder: shed, Logger: st.log, Registerer: st.metrics,
	}, st.lake, st.reg, dlq)
	if err != nil {
		return err
	}
	st.sink = s
	st.health.Add("sink", func(context.Context) error {
		if err := s.Refused(); err != nil {
			return err
		}
		if deg != nil && deg.Level() == resilience.CircuitBreak {
			return errors.New("paused: degradation level CIRCUIT_BREAK (lag or memory too high)")
		}
		return nil
	})
	return nil
}

// backpressure builds the sink's degradation levels and the shedding
// policy, if one is named. The memory budget is 1.25 × the heap's soft
// limit: the heap runs up to the limit in normal work (the collector then
// works harder), so only memory well past it, which the collector is not
// keeping down, reaches the top level and pauses the sink.
func (st *Stack) backpressure() (*resilience.Degradation, *resilience.Shedder, error) {
	var budget uint64
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim != math.MaxInt64 {
		budget = uint64(lim) / 4 * 5
	}
	deg, err := resilience.NewDegradation(resilience.Config{MemoryBudget: budget, Logger: st.log, Registerer: st.metrics})
	if err != nil {
		return nil, nil, err
	}
	path := st.cfg.Sink.SheddingPolicy
	if path == "" {
		return deg, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy: %w", err)
	}
	p, err := resilience.ParsePolicy(b, record.DataTypes())
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy %s: %w", path, err)
	}
	shed, err := resilience.NewShedder(p, st.metrics)
	if err != nil {
		return nil, nil, fmt.Errorf("--shedding-policy %s: %w", path, err)
	}
	return deg, shed, nil
}
