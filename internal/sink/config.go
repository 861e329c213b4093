package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/resilience"
)

// Config sets up a sink. Zero values take the defaults.
type Config struct {
	Brokers []string
	Group   string // consumer group (default k2-sink)
	// InstanceID makes the sink a static member of the group: restarted
	// with the same id (after a crash, a deploy) it takes its partitions
	// back at once instead of waiting for its old session to expire.
	InstanceID string
	// TopicPrefix is the installation's topic prefix (bus.Topology.Prefix).
	TopicPrefix string
	// Topics is a regular expression of the topics to consume (default
	// every data topic under TopicPrefix, bus.TopicPattern).
	Topics string
	// A batch closes at BatchRows rows, BatchBytes bytes of records or
	// BatchAge after its first record, whichever comes first. The age
	// bounds how stale the lake is; rows and bytes bound memory.
	BatchRows  int           // default 200,000
	BatchBytes int           // default 256 MiB
	BatchAge   time.Duration // default 1s
	// MaxPoll bounds records handled per poll (default 100,000).
	MaxPoll int
	// FetchBytes bounds what the client buffers (default 64 MiB).
	FetchBytes  int32
	Degradation *resilience.Degradation // back-pressure (optional)
	Shedder     *resilience.Shedder     // configured shedding (optional)
	// Memory measures the process for Degradation (default
	// resilience.ProcessMemory).
	Memory func() uint64
	Logger *slog.Logger
}

func (c *Config) limits() record.Limits {
	return record.Limits{Rows: c.BatchRows, Bytes: c.BatchBytes, Age: c.BatchAge}
}

// withDefaults checks cfg and fills what it leaves out.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("sink: no brokers")
	}
	if cfg.Group == "" {
		cfg.Group = "k2-sink"
	}
	if cfg.Topics == "" {
		cfg.Topics = bus.TopicPattern(cfg.TopicPrefix)
	}
	if _, err := regexp.Compile(cfg.Topics); err != nil {
		return cfg, fmt.Errorf("sink topics %q: %w", cfg.Topics, err)
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 200_000
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 20
	}
	if cfg.BatchAge <= 0 {
		cfg.BatchAge = time.Second
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 100_000
	}
	if cfg.FetchBytes <= 0 {
		cfg.FetchBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Memory == nil {
		cfg.Memory = resilience.ProcessMemory
	}
	return cfg, nil
}
