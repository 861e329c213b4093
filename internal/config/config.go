// Package config is K2's configuration in one place: every setting, its
// default, its flag and its K2_* environment variable. Settings come in
// groups (the lake, Kafka, the sink, a feed…); each command registers the
// groups it uses, so its --help lists what it reads, and the packages that
// use a group take it as it is (sink.Config embeds Sink, query.Options
// embeds Query). A value comes from, in order of precedence, the command
// line, the environment, the --config file, then the default here, which
// runs everything embedded on one machine.
//
// A setting has one name and one meaning everywhere: --sink-batch-rows is
// the sink's batch in k2 up and k2 sink alike, --batch-rows a load's.
package config

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// EnvPrefix starts every environment variable K2 reads.
const EnvPrefix = "K2_"

// Config holds every setting.
type Config struct {
	ConfigFile string
	DataDir    string
	Log        Log
	Memory     Memory
	Lake       Lake
	Query      Query
	API        API
	Kafka      Kafka
	Embedded   Embedded
	HTTP       HTTP
	Sink       Sink
	Load       Load
	Feed       Feed
	Assets     Assets
	Maintain   Maintain
}

// Log is where and how a process logs.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // text or json
	// File receives the whole log as JSON lines, routine lines included;
	// the terminal then shows warnings and k2 up's status.
	File string
}

// Memory bounds the Go heap.
type Memory struct {
	// Limit is the heap's soft limit (GOMEMLIMIT in the environment wins):
	// the garbage collector works harder near it instead of letting
	// batches and fetch buffers grow the process. The sink's degradation
	// levels are fractions of it. "0" disables it.
	Limit      string
	LimitBytes int64 // parsed by Resolve
}

// Lake is where the tables are.
type Lake struct {
	Catalog   string // SQLite file or postgres:// URL (default <data-dir>/catalog.db)
	Warehouse string // directory or s3://bucket/prefix (default <data-dir>/warehouse)

	S3Endpoint  string
	S3Region    string
	S3PathStyle bool

	// SymbolPartition is the symbol field of the trades and quotes
	// partition spec when the tables are created: identity or bucket[N].
	SymbolPartition string
}

// Query tunes the query engine.
type Query struct {
	PoolSize       int           // DuckDB connections: queries run at once
	AcquireTimeout time.Duration // a query's wait for a connection
	Timeout        time.Duration // a query's deadline
	MemoryLimit    string        // DuckDB's memory limit, e.g. 2GB
	CacheBytes     int64         // local cache of S3 data files
}

// API is how the REST API serves.
type API struct {
	// TailAge and TailBytes bound the stream's records the API holds in
	// memory for fresh reads and event streams; a TailAge of 0 turns the
	// tail off (reads then see the lake only).
	TailAge   time.Duration
	TailBytes int64
	// SQL turns on POST /v1/sql: read-only DuckDB SQL over views of the
	// tables, each query in a sandboxed DuckDB of its own.
	SQL bool
	// SQLRows bounds the rows one SQL query returns (a request may ask
	// fewer); SQLTimeout bounds its time, SQLMemory its DuckDB memory.
	SQLRows    int
	SQLTimeout time.Duration
	SQLMemory  string
}

// Kafka is the cluster a process connects to.
type Kafka struct {
	// Brokers is the bootstrap list (default the address k2 up serves).
	Brokers string
	// Registry is the schema registry URL (default the one k2 up serves).
	Registry string
	// TopicPrefix goes before every topic name (several installations on
	// one cluster).
	TopicPrefix string
	// Partitions is the partition count of each exchange's topics;
	// ExchangePartitions overrides it per exchange ("BINANCE=12,ASX=3").
	Partitions         int
	ExchangePartitions string
}

// Embedded is where k2 up and k2 broker serve Kafka and the registry.
type Embedded struct {
	BrokerListen   string
	RegistryListen string
	// BrokerKeep is how long the embedded broker keeps records the sink
	// group has committed to the lake (0: the topics' retention, a week).
	BrokerKeep time.Duration
}

// HTTP is the one listener a long-running process serves /health,
// /metrics (and, in k2 up, the API and dashboard) on. Each role has its
// own default address, so roles run side by side on one host.
type HTTP struct {
	Listen string // host:port, or "off"
}

// HTTPOff turns the listener off.
const HTTPOff = "off"

// HTTPDefaults are each role's default --http-listen.
var HTTPDefaults = map[string]string{
	"up":       "127.0.0.1:8000",
	"broker":   "127.0.0.1:8001",
	"sink":     "127.0.0.1:8002",
	"feed":     "127.0.0.1:8003",
	"maintain": "127.0.0.1:8004",
	"api":      "127.0.0.1:8005",
}

// Sink is how the sink consumes and commits.
type Sink struct {
	Group string // consumer group: sinks in one group share the partitions
	// InstanceID makes the sink a static member of its group: restarted
	// with the same id it takes its partitions back at once.
	InstanceID string
	// Topics is a regular expression of the topics to consume (default:
	// every data topic under the topic prefix).
	Topics string
	// A batch closes at BatchRows rows, BatchBytes bytes of records or
	// BatchAge after its first record, whichever comes first. The age
	// bounds how stale the lake is; rows and bytes bound memory. Each
	// commit is a snapshot and a file per partition, so the age is
	// seconds to minutes, not a heartbeat: a quiet market then makes a
	// few commits a minute, not one a second.
	BatchRows  int
	BatchBytes int
	BatchAge   time.Duration
	// SheddingPolicy is a YAML file naming what the sink may drop under
	// pressure (resilience.Policy); empty sheds nothing.
	SheddingPolicy string
}

// Load is how a load batches its commits.
type Load struct {
	BatchRows int
	BatchAge  time.Duration
}

// Feed is a live feed's connection and, for the synthetic market, its
// shape. k2 up names these flags with the prefix "feed-".
type Feed struct {
	Symbols      []string
	URLs         []string
	RESTURL      string
	APIKey       string
	RotateAfter  time.Duration
	StaleAfter   time.Duration
	PingInterval time.Duration
	Rate         float64 // synth: trades a second
	Seed         uint64  // synth
	MaxTrades    int64   // synth: stop after this many (0: never)
}

// Assets split pair symbols such as BTCUSDT into base and quote.
type Assets struct {
	// QuoteAssets are the quote currencies (empty: marketdata's defaults);
	// Aliases map venue spellings to common codes ("XBT=BTC").
	QuoteAssets string
	Aliases     string
	assets      *marketdata.Assets // built by Resolve
}

// Maintain is how the tables are maintained: by k2 lake on demand, and
// by the maintenance that runs inside k2 up and as k2 maintain.
type Maintain struct {
	CompactMaxRows        int64 // rows merged into one output group (held in memory while sorted)
	CompactSmallFileBytes int64 // files smaller than this are compacted
	// A partition that received no file for CompactQuietAfter has all its
	// small files merged; a hot one has CompactFanIn files of a size tier
	// merged into one of the next.
	CompactQuietAfter time.Duration
	CompactFanIn      int
	// Snapshot retention: all of the last RetainDenseFor, then one per
	// RetainSparseEvery until ExpireOlderThan; the newest RetainLast always.
	ExpireOlderThan   time.Duration
	RetainLast        int
	RetainDenseFor    time.Duration
	RetainSparseEvery time.Duration
	OrphanMinAge      time.Duration // files younger than this are never orphans
	// MetadataMinAge: metadata files (table metadata, manifest lists,
	// manifests) no snapshot or metadata log references are removed every
	// cycle once this old; no commit takes that long between writing them
	// and landing.
	MetadataMinAge time.Duration
	// Every runs a maintenance cycle over every table: compaction, manifest
	// rewrite and expiry; orphans are removed every OrphanEvery. 0 turns
	// maintenance off in k2 up.
	Every       time.Duration
	OrphanEvery time.Duration
	// MaxManifests: a table's manifests are rewritten into few when its
	// current snapshot has more than this many.
	MaxManifests int
}

// Default is the embedded single-machine configuration: every default K2
// has, in one place.
func Default() Config {
	return Config{
		DataDir: "./k2-data",
		Log:     Log{Level: "info", Format: "text"},
		Memory:  Memory{Limit: "896MiB"}, // keeps k2 up under 1 GiB resident
		Lake:    Lake{SymbolPartition: "identity"},
		Query: Query{
			PoolSize: 4, AcquireTimeout: 30 * time.Second, Timeout: 30 * time.Second,
			MemoryLimit: "2GB", CacheBytes: 10 << 30,
		},
		API: API{TailAge: 10 * time.Minute, TailBytes: 256 << 20,
			SQL: false, SQLRows: 10_000, SQLTimeout: 30 * time.Second, SQLMemory: "1GB"},
		Kafka:    Kafka{Brokers: LocalBroker, Registry: "http://" + LocalRegistry, Partitions: 6},
		Embedded: Embedded{BrokerListen: LocalBroker, RegistryListen: LocalRegistry, BrokerKeep: 10 * time.Minute},
		Sink:     Sink{Group: "k2-sink", BatchRows: 200_000, BatchBytes: 256 << 20, BatchAge: 30 * time.Second},
		Load:     Load{BatchRows: 500_000, BatchAge: 30 * time.Second},
		Feed: Feed{
			StaleAfter: 30 * time.Second, PingInterval: 3 * time.Minute,
			Rate: 100, Seed: 1,
		},
		Assets: Assets{Aliases: "XBT=BTC,XDG=DOGE"},
		Maintain: Maintain{
			CompactMaxRows: 1_000_000, CompactSmallFileBytes: 64 << 20,
			CompactQuietAfter: 10 * time.Minute, CompactFanIn: 4,
			ExpireOlderThan: 7 * 24 * time.Hour, RetainLast: 10,
			RetainDenseFor: 10 * time.Minute, RetainSparseEvery: time.Hour,
			OrphanMinAge: 24 * time.Hour, MetadataMinAge: 5 * time.Minute,
			Every: time.Minute, OrphanEvery: time.Hour, MaxManifests: 16,
		},
	}
}

// MaxSQLRows bounds --api-sql-rows.
const MaxSQLRows = 100_000

// LocalBroker and LocalRegistry are where k2 up serves by default, and so
// where the other roles connect by default.
const (
	LocalBroker   = "127.0.0.1:9092"
	LocalRegistry = "127.0.0.1:8081"
)

// Resolve checks the settings and derives those that default from others.
func (c *Config) Resolve() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is empty")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.Lake.Catalog == "" {
		c.Lake.Catalog = filepath.Join(c.DataDir, "catalog.db")
	}
	if c.Lake.Warehouse == "" {
		c.Lake.Warehouse = filepath.Join(c.DataDir, "warehouse")
	}
	if c.Query.PoolSize < 1 || c.Query.PoolSize > 256 {
		return fmt.Errorf("--query-pool-size %d is outside 1 … 256", c.Query.PoolSize)
	}
	if c.API.SQLRows < 1 || c.API.SQLRows > MaxSQLRows {
		return fmt.Errorf("--api-sql-rows %d is outside 1 … %d", c.API.SQLRows, MaxSQLRows)
	}
	if c.API.SQLTimeout <= 0 {
		return fmt.Errorf("--api-sql-timeout %s: give a positive duration", c.API.SQLTimeout)
	}
	if n, err := ParseBytes(c.API.SQLMemory); err != nil || n == 0 {
		return fmt.Errorf("--api-sql-memory %q: want a size such as 1GB or 512MiB", c.API.SQLMemory)
	}
	if _, err := c.Kafka.PartitionsByExchange(); err != nil {
		return err
	}
	if c.Memory.LimitBytes, err = ParseBytes(c.Memory.Limit); err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if c.Assets.assets, err = parseAssets(c.Assets.QuoteAssets, c.Assets.Aliases); err != nil {
		return err
	}
	return nil
}

// Brokers is the bootstrap list.
func (k *Kafka) BrokerList() []string {
	var out []string
	for _, b := range strings.Split(k.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// PartitionsByExchange parses --exchange-partitions.
func (k *Kafka) PartitionsByExchange() (map[string]int32, error) {
	out := map[string]int32{}
	for _, kv := range strings.Split(k.ExchangePartitions, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		ex, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || err != nil || n < 1 || strings.TrimSpace(ex) == "" {
			return nil, fmt.Errorf("--exchange-partitions %q: want EXCHANGE=N pairs such as BINANCE=12,ASX=3", k.ExchangePartitions)
		}
		code := strings.ToUpper(strings.TrimSpace(ex))
		if _, err := marketdata.LookupExchange(code); err != nil {
			return nil, fmt.Errorf("--exchange-partitions: %w", err)
		}
		out[code] = int32(n)
	}
	return out, nil
}

// List is the asset list of --quote-assets and --asset-aliases.
func (a *Assets) List() *marketdata.Assets {
	if a.assets == nil {
		return marketdata.DefaultAssets
	}
	return a.assets
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

// Or gives a setting left unset (zero, or a negative number) its default:
// packages fill what a caller left out with config.Default's values.
func Or[T cmp.Ordered](setting *T, def T) {
	var zero T
	if *setting <= zero {
		*setting = def
	}
}
