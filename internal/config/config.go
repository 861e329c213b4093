// Package config is K2's configuration in one place: every setting, its
// default, its flag and its K2_* environment variable. A value comes from,
// in order of precedence, the command line, the environment, the --config
// file, then the default that works for an embedded single-machine run.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/k2-market-data/k2/internal/marketdata"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable K2 reads.
const EnvPrefix = "K2_"

// Config holds the settings shared by all commands.
type Config struct {
	DataDir    string
	Catalog    string
	Warehouse  string
	ConfigFile string

	S3Endpoint  string
	S3Region    string
	S3PathStyle bool

	// SymbolPartition is the symbol field of the trades and quotes
	// partition spec when the tables are created: identity or bucket[N].
	SymbolPartition string

	LogLevel  string
	LogFormat string

	QueryPoolSize       int
	QueryAcquireTimeout time.Duration
	QueryTimeout        time.Duration
	QueryMemoryLimit    string
	QueryCacheBytes     int64

	// Brokers is the Kafka bootstrap list; empty means no Kafka for loads,
	// and the local embedded broker for commands that need one.
	Brokers string
	// Registry is the schema registry URL (default: the embedded one).
	Registry string
	// BrokerListen and RegistryListen are where k2 up and k2 broker serve.
	BrokerListen   string
	RegistryListen string
	// Partitions is the partition count of each exchange's topics;
	// ExchangePartitions overrides it per exchange ("BINANCE=12,ASX=3").
	Partitions         int
	ExchangePartitions string
	// TopicPrefix goes before every topic name (several installations on
	// one Kafka cluster).
	TopicPrefix string

	// MemoryLimit is the Go heap's soft limit (GOMEMLIMIT in the
	// environment wins): the garbage collector works harder near it
	// instead of letting batches and fetch buffers grow the process.
	// The sink's degradation levels are fractions of it. "0" disables it.
	MemoryLimit      string
	MemoryLimitBytes int64 // parsed by Resolve
	// SheddingPolicy is a YAML file naming what the sink may drop under
	// pressure (resilience.Policy); empty sheds nothing.
	SheddingPolicy string

	// QuoteAssets are the quote currencies that split a pair symbol such as
	// BTCUSDT into base and quote (empty: marketdata.DefaultQuoteAssets);
	// AssetAliases map venue spellings to common codes ("XBT=BTC").
	QuoteAssets  string
	AssetAliases string
	assets       *marketdata.Assets // built by Resolve
}

// LocalBroker and LocalRegistry are the embedded services' default addresses.
const (
	LocalBroker   = "127.0.0.1:9092"
	LocalRegistry = "127.0.0.1:8081"
)

// Default is the embedded single-machine configuration.
func Default() Config {
	return Config{
		DataDir:             "./k2-data",
		SymbolPartition:     "identity",
		LogLevel:            "info",
		LogFormat:           "text",
		QueryPoolSize:       4,
		QueryAcquireTimeout: 30 * time.Second,
		QueryTimeout:        30 * time.Second,
		QueryMemoryLimit:    "2GB",
		QueryCacheBytes:     10 << 30,
		BrokerListen:        LocalBroker,
		RegistryListen:      LocalRegistry,
		Partitions:          6,
		MemoryLimit:         "896MiB", // keeps k2 up under 1 GiB resident
		AssetAliases:        "XBT=BTC,XDG=DOGE",
	}
}

// Register adds the global flags to fs, with c's values as defaults.
func (c *Config) Register(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for embedded state: catalog, warehouse, dead letters, caches")
	fs.StringVar(&c.Catalog, "catalog", c.Catalog, "Iceberg catalog: a SQLite file or postgres://user:pass@host:5432/db (default <data-dir>/catalog.db)")
	fs.StringVar(&c.Warehouse, "warehouse", c.Warehouse, "table storage: a directory or s3://bucket/prefix (default <data-dir>/warehouse)")
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML file of settings keyed by flag name (data-dir: /srv/k2)")
	fs.StringVar(&c.S3Endpoint, "s3-endpoint", c.S3Endpoint, "S3 endpoint URL for MinIO or other S3-compatible stores (empty for AWS); credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS config files")
	fs.StringVar(&c.S3Region, "s3-region", c.S3Region, "S3 region (default from AWS_REGION, else us-east-1)")
	fs.BoolVar(&c.S3PathStyle, "s3-path-style", c.S3PathStyle, "use path-style S3 addressing (implied by --s3-endpoint)")
	fs.StringVar(&c.SymbolPartition, "symbol-partition", c.SymbolPartition, "symbol partition of new trades/quotes tables: identity or bucket[N]")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.IntVar(&c.QueryPoolSize, "query-pool-size", c.QueryPoolSize, "DuckDB connections, i.e. queries run at once")
	fs.DurationVar(&c.QueryAcquireTimeout, "query-acquire-timeout", c.QueryAcquireTimeout, "how long a query waits for a free connection")
	fs.DurationVar(&c.QueryTimeout, "query-timeout", c.QueryTimeout, "interrupt a query running longer than this")
	fs.StringVar(&c.QueryMemoryLimit, "query-memory-limit", c.QueryMemoryLimit, "DuckDB memory limit, e.g. 2GB")
	fs.Int64Var(&c.QueryCacheBytes, "query-cache-bytes", c.QueryCacheBytes, "local cache of S3 data files read by queries, in bytes")
	fs.StringVar(&c.Brokers, "brokers", c.Brokers, "Kafka bootstrap brokers, comma separated (empty: loads write to the lake directly; Kafka commands use the local broker "+LocalBroker+")")
	fs.StringVar(&c.Registry, "registry", c.Registry, "schema registry URL (default http://"+LocalRegistry+", the embedded one)")
	fs.StringVar(&c.BrokerListen, "broker-listen", c.BrokerListen, "where k2 up and k2 broker serve Kafka")
	fs.StringVar(&c.RegistryListen, "registry-listen", c.RegistryListen, "where k2 up and k2 broker serve the schema registry")
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partitions of each exchange's trade and quote topics when they are created")
	fs.StringVar(&c.ExchangePartitions, "exchange-partitions", c.ExchangePartitions, "partitions per exchange where they differ from --partitions, e.g. BINANCE=12,ASX=3")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", c.TopicPrefix, "prefix of every topic name, for installations sharing a Kafka cluster (e.g. staging.)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft limit of the Go heap (e.g. 1GiB, 512MiB; 0 for none); GOMEMLIMIT wins; the sink's back-pressure memory budget is 1.25 times it")
	fs.StringVar(&c.QuoteAssets, "quote-assets", c.QuoteAssets, "quote currencies that split pair symbols (BTCUSDT → BTC/USDT), comma separated (default "+strings.Join(marketdata.DefaultQuoteAssets, ",")+")")
	fs.StringVar(&c.AssetAliases, "asset-aliases", c.AssetAliases, "venue asset spellings and their common codes, comma separated FROM=TO pairs")
	fs.StringVar(&c.SheddingPolicy, "shedding-policy", c.SheddingPolicy, "YAML file naming what the sink may drop under pressure, per data type and symbol tier (default: drop nothing)")
}

// BrokerList returns the brokers to use, the local broker when none are set.
func (c *Config) BrokerList() []string {
	if strings.TrimSpace(c.Brokers) == "" {
		return []string{LocalBroker}
	}
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// RegistryURL returns the registry to use, the local one when none is set.
func (c *Config) RegistryURL() string {
	if c.Registry == "" {
		return "http://" + LocalRegistry
	}
	return c.Registry
}

// Resolve derives the settings that default from others.
func (c *Config) Resolve() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is empty")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.Catalog == "" {
		c.Catalog = filepath.Join(c.DataDir, "catalog.db")
	}
	if c.Warehouse == "" {
		c.Warehouse = filepath.Join(c.DataDir, "warehouse")
	}
	if c.QueryPoolSize < 1 || c.QueryPoolSize > 256 {
		return fmt.Errorf("--query-pool-size %d is outside 1 … 256", c.QueryPoolSize)
	}
	if _, err := c.PartitionsByExchange(); err != nil {
		return err
	}
	if c.MemoryLimitBytes, err = ParseBytes(c.MemoryLimit); err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if c.assets, err = parseAssets(c.QuoteAssets, c.AssetAliases); err != nil {
		return err
	}
	return nil
}

// Assets is the asset list of --quote-assets and --asset-aliases.
func (c *Config) Assets() *marketdata.Assets {
	if c.assets == nil {
		return marketdata.DefaultAssets
	}
	return c.assets
}

func parseAssets(quotes, aliases string) (*marketdata.Assets, error) {
	var qs []string
	for _, q := range strings.Split(quotes, ",") {
		if q = strings.ToUpper(strings.TrimSpace(q)); q != "" {
			if !isAssetCode(q) {
				return nil, fmt.Errorf("--quote-assets: %q is not an asset code (letters and digits)", q)
			}
			qs = append(qs, q)
		}
	}
	al := map[string]string{}
	for _, kv := range strings.Split(aliases, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		from, to, ok := strings.Cut(kv, "=")
		from, to = strings.ToUpper(strings.TrimSpace(from)), strings.ToUpper(strings.TrimSpace(to))
		if !ok || !isAssetCode(from) || !isAssetCode(to) {
			return nil, fmt.Errorf("--asset-aliases %q: want FROM=TO pairs such as XBT=BTC,XDG=DOGE", aliases)
		}
		al[from] = to
	}
	return marketdata.NewAssets(qs, al), nil
}

func isAssetCode(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// PartitionsByExchange parses --exchange-partitions.
func (c *Config) PartitionsByExchange() (map[string]int32, error) {
	out := map[string]int32{}
	for _, kv := range strings.Split(c.ExchangePartitions, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 1 || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--exchange-partitions %q: want EXCHANGE=N pairs such as BINANCE=12,ASX=3", c.ExchangePartitions)
		}
		code := strings.ToUpper(strings.TrimSpace(k))
		if _, err := marketdata.LookupExchange(code); err != nil {
			return nil, fmt.Errorf("--exchange-partitions: %w", err)
		}
		out[code] = int32(n)
	}
	return out, nil
}

// ParseBytes reads a size: 1073741824, 1GiB, 512MiB, 2GB, 64KiB.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 1GiB or 512MiB", s)
	}
	return int64(n * float64(mult)), nil
}

// EnvName is the environment variable for a flag: data-dir → K2_DATA_DIR.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Apply fills every flag of fs not given on the command line from its
// K2_* environment variable, then from the YAML file at path (if any).
// Errors name the variable or file key and the bad value.
func Apply(fs *pflag.FlagSet, path string) error {
	file := map[string]any{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown settings %s (keys are flag names such as data-dir)", path, strings.Join(unknown, ", "))
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := f.Value.Set(fmt.Sprint(v)); e != nil {
				err = fmt.Errorf("config file %s: %s: %q: %v", path, f.Name, v, e)
			}
		}
	})
	return err
}
