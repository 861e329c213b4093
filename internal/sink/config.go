package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/resilience"
)

// Config sets up a sink: the settings (config.Sink: group, batches,
// topics; zero values take config.Default's) and what it is wired to.
type Config struct {
	config.Sink
	Brokers  []string
	Security bus.Security // TLS and SASL (zero: PLAINTEXT)
	// TopicPrefix is the installation's topic prefix (bus.Topology.Prefix).
	TopicPrefix string
	// MaxPoll bounds records handled per poll (default 100,000).
	MaxPoll int
	// FetchBytes bounds what the client buffers (default 16 MiB). The
	// client fetches from a broker again only once the poll loop has taken
	// all it buffered, so a larger fetch is a longer wait: 64 MiB held a
	// draining sink idle 0.3 s at its start and again mid-run, and kept
	// more records live for the collector to scan.
	FetchBytes  int32
	Degradation *resilience.Degradation // back-pressure (optional)
	Shedder     *resilience.Shedder     // configured shedding (optional)
	// Memory measures the process for Degradation (default
	// resilience.ProcessMemory).
	Memory func() uint64
	Logger *slog.Logger
	// Registerer takes the sink's metrics (nil: kept to itself). A
	// process running two sinks gives each its own or labels them.
	Registerer prometheus.Registerer
}

func (c *Config) limits() record.Limits {
	return record.Limits{Rows: c.BatchRows, Bytes: c.BatchBytes, Age: c.BatchAge}
}

// withDefaults checks cfg and fills what it leaves out.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("sink: no brokers")
	}
	d := config.Default().Sink
	config.Or(&cfg.Group, d.Group)
	if cfg.Topics == "" {
		cfg.Topics = bus.TopicPattern(cfg.TopicPrefix)
	}
	if _, err := regexp.Compile(cfg.Topics); err != nil {
		return cfg, fmt.Errorf("sink topics %q: %w", cfg.Topics, err)
	}
	config.Or(&cfg.BatchRows, d.BatchRows)
	config.Or(&cfg.BatchBytes, d.BatchBytes)
	config.Or(&cfg.BatchAge, d.BatchAge)
	config.Or(&cfg.MaxPoll, 100_000)
	config.Or(&cfg.FetchBytes, 16<<20)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Memory == nil {
		cfg.Memory = resilience.ProcessMemory
	}
	return cfg, nil
}
