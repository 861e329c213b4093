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
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
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
	Kafka      Kafka
	Embedded   Embedded
	HTTP       HTTP
	API        API
	Sink       Sink
	Load       Load
	Feed       Feed
	Assets     Assets
	Maintain   Maintain
	Backup     Backup
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
	// WarmShare bounds the share of one core (DuckDB's threads counted)
	// that warming the bars cache after a commit takes; 1: no rest.
	WarmShare float64
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
	// Security protects the connections to the brokers: TLS and SASL.
	Security KafkaSecurity
	// RegistryTLS and RegistryAuth protect the schema registry's: an
	// https:// URL is verified against RegistryTLS.CAFile (the system's
	// roots when empty), and a user sends HTTP basic auth.
	RegistryTLS  TLSFiles
	RegistryAuth Credentials
}

// Kafka security protocols, as Kafka's own clients name them.
const (
	Plaintext     = "PLAINTEXT"
	SSL           = "SSL"
	SASLPlaintext = "SASL_PLAINTEXT"
	SASLSSL       = "SASL_SSL"
)

// SASL mechanisms K2 speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaSecurity is how a process reaches a secured cluster
// (docs/operations/security.md).
type KafkaSecurity struct {
	// Protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string
	TLS      TLSFiles // with SSL and SASL_SSL
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*).
	Mechanism string
	SASL      Credentials
}

// TLSFiles are a client's TLS settings: the CA that signs the server's
// certificate (empty: the system's roots), a client certificate and key
// for servers that ask for one, and the name the certificate must carry
// (default: the host dialled).
type TLSFiles struct {
	CAFile, CertFile, KeyFile, ServerName string
}

// Credentials are a user and a password. The password never comes from
// the command line, where any user of the machine could read it: it is
// read from PasswordFile or from the environment variable PasswordEnv
// (Resolve), and never printed.
type Credentials struct {
	User         string
	PasswordFile string
	Password     Secret // filled by Resolve
}

// Secret is a value that prints as "[hidden]" (logs, %v, errors).
type Secret string

func (s Secret) String() string   { return "[hidden]" }
func (s Secret) GoString() string { return `"[hidden]"` }

// Environment variables of the passwords (they have no flag).
const (
	EnvKafkaSASLPassword = EnvPrefix + "KAFKA_SASL_PASSWORD"
	EnvRegistryPassword  = EnvPrefix + "REGISTRY_PASSWORD"
)

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
	// Timeouts against slow clients. ReadHeaderTimeout bounds a request's
	// headers (a client sending them byte by byte is cut off), ReadTimeout
	// the headers and body together, IdleTimeout a kept-alive connection
	// between requests. WriteTimeout bounds writing an answer; a streaming
	// answer (server-sent events, NDJSON replays) pushes it forward each
	// time it flushes, so it bounds a stalled client, not a stream's length.
	// 0 is no limit.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
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

// API is how the REST API serves: its security and limits (docs/api.md,
// "Security and limits"): who may call it, how often, with how large a
// body, from which web pages; its in-memory tail of the stream; its SQL
// route.
type API struct {
	// Keys are the API keys, each "name:key" or a bare key (named key-1,
	// key-2… by position); the name is what logs and rate limits know a
	// caller by, the key itself is kept only as its SHA-256 hash. With no
	// keys the API is open, and then only on a loopback listener.
	Keys []string
	// PublicPaths are answered without a key: a path ending in "/" is a
	// prefix ("/assets/"), any other is exact ("/" is the dashboard's page
	// only).
	PublicPaths []string
	// RateLimit is each caller's limit on each /v1 route, "N/s", "N/min"
	// or "N/h" (a bucket of N requests refilled evenly over the period);
	// "off" turns rate limiting off altogether. RouteRateLimits override it
	// per route template: "POST /v1/ohlcv/batch=20/min", or "=off".
	RateLimit       string
	RouteRateLimits []string
	// TrustedProxies are addresses or CIDR prefixes of reverse proxies
	// whose X-Forwarded-For names the client (for rate limits and logs
	// when the API is open); by default no one's is believed.
	TrustedProxies []string
	// MaxBody bounds a request's body, counted on the bytes read.
	MaxBody      string
	MaxBodyBytes int64 // parsed by Resolve
	// CORSOrigins are the web origins whose pages may call the API
	// ("https://dash.example.com", or "*" for any); none by default.
	CORSOrigins []string
	// TailAge and TailBytes bound the stream's records the API holds in
	// memory for fresh reads and event streams; a TailAge of 0 turns the
	// tail off (reads then see the lake only).
	TailAge   time.Duration
	TailBytes int64
	// LatestBytes bounds the memory of the symbols' latest records kept
	// for the latest-N reads (with a tail); the least read go first.
	LatestBytes int64
	// SQL turns on POST /v1/sql: read-only DuckDB SQL over views of the
	// tables, each query in a sandboxed DuckDB of its own.
	SQL bool
	// SQLRows bounds the rows one SQL query returns (a request may ask
	// fewer); SQLTimeout bounds its time, SQLMemory its DuckDB memory.
	SQLRows    int
	SQLTimeout time.Duration
	SQLMemory  string
	// PipelineMetrics are the /metrics addresses of the other roles (k2
	// sink, k2 feed, k2 maintain) whose pulse the dashboard's pipeline view
	// shows beside this process's own; PipelineStep is how often they are
	// read, PipelineHistory how much of their history is kept.
	PipelineMetrics []string
	PipelineStep    time.Duration
	PipelineHistory time.Duration
}

// RateOff turns a rate limit off.
const RateOff = "off"

// Rate is a parsed rate limit: N requests per period, in a bucket of N.
type Rate struct {
	N   int
	Per time.Duration
}

// Off tells a limit that lets everything through.
func (r Rate) Off() bool { return r.N <= 0 || r.Per <= 0 }

func (r Rate) String() string {
	if r.Off() {
		return RateOff
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "min", time.Hour: "h"}[r.Per]
	return strconv.Itoa(r.N) + "/" + unit
}

// ParseRate reads a rate limit: 100/min, 20/s, 1000/h; "off" or "0" is no
// limit.
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == RateOff || t == "0" {
		return Rate{}, nil
	}
	n, unit, ok := strings.Cut(t, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	per, known := map[string]time.Duration{
		"s": time.Second, "sec": time.Second, "second": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute,
		"h": time.Hour, "hour": time.Hour,
	}[strings.TrimSpace(unit)]
	if !ok || err != nil || count < 0 || !known {
		return Rate{}, fmt.Errorf("%q is not a rate such as 100/min, 20/s or off", s)
	}
	if count == 0 {
		return Rate{}, nil
	}
	return Rate{N: count, Per: per}, nil
}

// Rates parses RateLimit and RouteRateLimits: the default limit of a /v1
// route and each route template's own.
func (a *API) Rates() (Rate, map[string]Rate, error) {
	def, err := ParseRate(a.RateLimit)
	if err != nil {
		return Rate{}, nil, fmt.Errorf("--api-rate-limit: %w", err)
	}
	routes := map[string]Rate{}
	for _, kv := range a.RouteRateLimits {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		i := strings.LastIndex(kv, "=")
		if i < 0 || strings.TrimSpace(kv[:i]) == "" {
			return Rate{}, nil, fmt.Errorf("--api-route-rate-limits %q: want ROUTE=RATE, e.g. \"POST /v1/ohlcv/batch=20/min\"", kv)
		}
		r, err := ParseRate(kv[i+1:])
		if err != nil {
			return Rate{}, nil, fmt.Errorf("--api-route-rate-limits %q: %w", kv, err)
		}
		route := strings.Join(strings.Fields(kv[:i]), " ")
		if !strings.Contains(route, "/v1/") {
			return Rate{}, nil, fmt.Errorf("--api-route-rate-limits %q: %q is not a route template such as \"GET /v1/trades\"", kv, route)
		}
		routes[route] = r
	}
	return def, routes, nil
}

// APIKey is one configured key: the name it is known by and the key.
type APIKey struct{ Name, Key string }

// ParsedKeys reads Keys. Its errors name the entry by position, never
// the key.
func (a *API) ParsedKeys() ([]APIKey, error) {
	var out []APIKey
	names, keys := map[string]bool{}, map[string]bool{}
	for i, entry := range a.Keys {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, key, named := strings.Cut(entry, ":")
		if !named {
			name, key = fmt.Sprintf("key-%d", i+1), entry
		}
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		switch {
		case key == "":
			return nil, fmt.Errorf("--api-keys: entry %d (%q) has no key after its name", i+1, name)
		case name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return nil, fmt.Errorf("--api-keys: entry %d has an empty name or one with spaces or control characters", i+1)
		case names[name]:
			return nil, fmt.Errorf("--api-keys: the name %q is given twice", name)
		case keys[key]:
			return nil, fmt.Errorf("--api-keys: entry %d (%q) repeats an earlier key", i+1, name)
		}
		names[name], keys[key] = true, true
		out = append(out, APIKey{Name: name, Key: key})
	}
	return out, nil
}

// Proxies parses TrustedProxies.
func (a *API) Proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range a.TrustedProxies {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if ip, err := netip.ParseAddr(p); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("--api-trusted-proxies: %q is not an address or CIDR prefix such as 10.0.0.0/8", p)
		}
		out = append(out, pf.Masked())
	}
	return out, nil
}

func (a *API) resolve() error {
	if _, err := a.ParsedKeys(); err != nil {
		return err
	}
	if _, _, err := a.Rates(); err != nil {
		return err
	}
	if _, err := a.Proxies(); err != nil {
		return err
	}
	n, err := ParseBytes(a.MaxBody)
	if err != nil || n < 1 {
		return fmt.Errorf("--api-max-body %q: want a size such as 10MiB", a.MaxBody)
	}
	a.MaxBodyBytes = n
	for _, o := range a.CORSOrigins {
		if o = strings.TrimSpace(o); o == "" || o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("--api-cors-origins: %q is not an origin such as https://dash.example.com or http://localhost:3000", o)
		}
	}
	for _, p := range a.PublicPaths {
		if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("--api-public-paths: %q does not start with /", p)
		}
	}
	for _, m := range a.PipelineMetrics {
		u, err := url.Parse(strings.TrimSpace(m))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--api-pipeline-metrics: %q is not a /metrics address such as http://sink-host:8002/metrics", m)
		}
	}
	if a.PipelineStep < 100*time.Millisecond || a.PipelineHistory < a.PipelineStep {
		return fmt.Errorf("--api-pipeline-step %s and --api-pipeline-history %s: want a step of at least 100ms and a history of at least one step", a.PipelineStep, a.PipelineHistory)
	}
	return nil
}

// DefaultPublicPaths are answered without a key: health, readiness,
// metrics, the build, the API's documentation and the dashboard.
var DefaultPublicPaths = []string{"/health", "/ready", "/metrics", "/version", "/docs", "/openapi.json", "/", "/assets/"}

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
	// CompactShare bounds the share of one core compaction running beside
	// a live system takes: it rests after each group in proportion, so
	// queries do not queue behind it (0 or 1: no rest).
	CompactShare float64
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
	// BarsEvery brings the bar tables up to the trades this often, where
	// maintenance runs (0: the bar tables are not kept).
	BarsEvery time.Duration
	// MaxManifests: a table's manifests are rewritten into few when its
	// current snapshot has more than this many.
	MaxManifests int
}

// Backup is how k2 backup and k2 restore copy files.
type Backup struct {
	// Workers is how many files are copied at once: S3 answers each in
	// tens of milliseconds, so a few in flight keep it busy.
	Workers int
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
			MemoryLimit: "2GB", CacheBytes: 10 << 30, WarmShare: 0.25,
		},
		Kafka: Kafka{Brokers: LocalBroker, Registry: "http://" + LocalRegistry, Partitions: 6,
			Security: KafkaSecurity{Protocol: Plaintext}},
		Embedded: Embedded{BrokerListen: LocalBroker, RegistryListen: LocalRegistry, BrokerKeep: 10 * time.Minute},
		// WriteTimeout is above --query-acquire-timeout plus --query-timeout,
		// so a slow query's answer is never cut off.
		HTTP: HTTP{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute},
		// The original's declared limits, applied: 100/min per key on each
		// /v1 route, 20/min on the batch of bars; the pipeline's pulse and
		// its history, read from memory, 300/min: a dashboard polls them
		// every 2 s, in every tab.
		API: API{
			PublicPaths: slices.Clone(DefaultPublicPaths), RateLimit: "100/min",
			RouteRateLimits: []string{"POST /v1/ohlcv/batch=20/min", "GET /v1/pipeline=300/min", "GET /v1/pipeline/history=300/min"}, MaxBody: "10MiB",
			TailAge: 10 * time.Minute, TailBytes: 256 << 20, LatestBytes: 64 << 20,
			SQL: false, SQLRows: 10_000, SQLTimeout: 30 * time.Second, SQLMemory: "1GB",
			PipelineStep: 2 * time.Second, PipelineHistory: 15 * time.Minute,
		},
		Sink: Sink{Group: "k2-sink", BatchRows: 200_000, BatchBytes: 256 << 20, BatchAge: 30 * time.Second},
		Load: Load{BatchRows: 500_000, BatchAge: 30 * time.Second},
		Feed: Feed{
			StaleAfter: 30 * time.Second, PingInterval: 3 * time.Minute,
			Rate: 100, Seed: 1,
		},
		Assets: Assets{Aliases: "XBT=BTC,XDG=DOGE"},
		Maintain: Maintain{
			CompactMaxRows: 1_000_000, CompactSmallFileBytes: 64 << 20,
			CompactQuietAfter: 10 * time.Minute, CompactFanIn: 4, CompactShare: 0.25,
			ExpireOlderThan: 7 * 24 * time.Hour, RetainLast: 10,
			RetainDenseFor: 10 * time.Minute, RetainSparseEvery: time.Hour,
			OrphanMinAge: 24 * time.Hour, MetadataMinAge: 5 * time.Minute,
			Every: time.Minute, OrphanEvery: time.Hour, MaxManifests: 16, BarsEvery: 10 * time.Second,
		},
		Backup: Backup{Workers: 4},
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
	if err := c.Kafka.resolveSecurity(); err != nil {
		return err
	}
	if c.Memory.LimitBytes, err = ParseBytes(c.Memory.Limit); err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if c.Assets.assets, err = parseAssets(c.Assets.QuoteAssets, c.Assets.Aliases); err != nil {
		return err
	}
	for name, d := range map[string]time.Duration{"read-header": c.HTTP.ReadHeaderTimeout, "read": c.HTTP.ReadTimeout,
		"write": c.HTTP.WriteTimeout, "idle": c.HTTP.IdleTimeout} {
		if d < 0 {
			return fmt.Errorf("--http-%s-timeout %s is negative (0 is no limit)", name, d)
		}
	}
	return c.API.resolve()
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
