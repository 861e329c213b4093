package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// A flag that is a setting carries this annotation: it is also read from
// its K2_* variable and the --config file. A command's other flags
// (a query's --symbol, a benchmark's sizes) are parameters of one run and
// come from the command line only.
const settingAnnotation = "k2-setting"

// IsSetting reports whether a flag is a setting.
func IsSetting(f *pflag.Flag) bool {
	_, ok := f.Annotations[settingAnnotation]
	return ok
}

// settings marks every flag that fn adds to fs as a setting.
func settings(fs *pflag.FlagSet, fn func()) {
	before := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { before[f.Name] = true })
	fn()
	fs.VisitAll(func(f *pflag.Flag) {
		if !before[f.Name] {
			fs.SetAnnotation(f.Name, settingAnnotation, []string{"true"})
		}
	})
}

// RegisterCommon adds what every command reads: the data directory, the
// log and the config file.
func (c *Config) RegisterCommon(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for embedded state: catalog, warehouse, broker, registry, dead letters, caches")
		fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "debug, info, warn or error")
		fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "text or json")
		fs.StringVar(&c.Log.File, "log-file", c.Log.File, "also write the whole log, routine lines included, as JSON lines to this file")
	})
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "YAML file of settings keyed by flag name (data-dir: /srv/k2)")
}

// RegisterMemory adds --memory-limit.
func (c *Config) RegisterMemory(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Memory.Limit, "memory-limit", c.Memory.Limit, "soft limit of the Go heap (e.g. 1GiB, 512MiB; 0 for none); GOMEMLIMIT wins; the sink's back-pressure memory budget is 1.25 times it")
	})
}

// RegisterLake adds where the tables are.
func (c *Config) RegisterLake(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Lake.Catalog, "catalog", c.Lake.Catalog, "Iceberg catalog: a SQLite file or postgres://user:pass@host:5432/db (default <data-dir>/catalog.db)")
		fs.StringVar(&c.Lake.Warehouse, "warehouse", c.Lake.Warehouse, "table storage: a directory or s3://bucket/prefix (default <data-dir>/warehouse)")
		fs.StringVar(&c.Lake.S3Endpoint, "s3-endpoint", c.Lake.S3Endpoint, "S3 endpoint URL for MinIO or other S3-compatible stores (empty for AWS); credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS config files")
		fs.StringVar(&c.Lake.S3Region, "s3-region", c.Lake.S3Region, "S3 region (default from AWS_REGION, else us-east-1)")
		fs.BoolVar(&c.Lake.S3PathStyle, "s3-path-style", c.Lake.S3PathStyle, "use path-style S3 addressing (implied by --s3-endpoint)")
		fs.StringVar(&c.Lake.SymbolPartition, "symbol-partition", c.Lake.SymbolPartition, "symbol partition of new trades/quotes tables: identity or bucket[N]")
	})
}

// RegisterQuery adds the query engine's limits.
func (c *Config) RegisterQuery(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.IntVar(&c.Query.PoolSize, "query-pool-size", c.Query.PoolSize, "DuckDB connections, i.e. queries run at once")
		fs.DurationVar(&c.Query.AcquireTimeout, "query-acquire-timeout", c.Query.AcquireTimeout, "how long a query waits for a free connection")
		fs.DurationVar(&c.Query.Timeout, "query-timeout", c.Query.Timeout, "interrupt a query running longer than this")
		fs.StringVar(&c.Query.MemoryLimit, "query-memory-limit", c.Query.MemoryLimit, "DuckDB memory limit, e.g. 2GB")
		fs.Float64Var(&c.Query.WarmShare, "query-warm-share", c.Query.WarmShare, "warming the bars cache after a commit uses at most this share of one core (DuckDB's threads counted), so queries do not queue behind it; 1: no rest")
		fs.Int64Var(&c.Query.CacheBytes, "query-cache-bytes", c.Query.CacheBytes, "local cache of S3 data files read by queries, in bytes")
	})
}

// RegisterKafka adds the cluster a command connects to.
func (c *Config) RegisterKafka(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Kafka.Brokers, "brokers", c.Kafka.Brokers, "Kafka bootstrap brokers, comma separated (the default is where k2 up serves)")
		fs.StringVar(&c.Kafka.Registry, "registry", c.Kafka.Registry, "schema registry URL, http:// or https:// (the default is where k2 up serves)")
		c.registerTopics(fs)
		c.registerKafkaSecurity(fs)
	})
}

// RegisterEmbedded adds where k2 up and k2 broker serve Kafka and the
// schema registry, and the topics they create.
func (c *Config) RegisterEmbedded(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Embedded.BrokerListen, "broker-listen", c.Embedded.BrokerListen, "where to serve Kafka (host:port other processes reach)")
		fs.StringVar(&c.Embedded.RegistryListen, "registry-listen", c.Embedded.RegistryListen, "where to serve the schema registry")
		fs.DurationVar(&c.Embedded.BrokerKeep, "broker-keep", c.Embedded.BrokerKeep, "delete trades and quotes from the broker this long after the sink group (--sink-group) has committed them to the lake (0: keep them for the topics' retention, a week)")
		c.registerTopics(fs)
	})
}

// registerKafkaSecurity adds TLS and SASL for the brokers and the
// registry. Passwords have no flag: a file, or K2_KAFKA_SASL_PASSWORD and
// K2_REGISTRY_PASSWORD.
func (c *Config) registerKafkaSecurity(fs *pflag.FlagSet) {
	s := &c.Kafka.Security
	fs.StringVar(&s.Protocol, "kafka-security-protocol", s.Protocol, "PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (TLS and SASL)")
	fs.StringVar(&s.TLS.CAFile, "kafka-tls-ca-file", s.TLS.CAFile, "PEM file of the CA certificates the brokers' certificates are checked against (default: the system's)")
	fs.StringVar(&s.TLS.CertFile, "kafka-tls-cert-file", s.TLS.CertFile, "PEM client certificate, for brokers that require one (with --kafka-tls-key-file)")
	fs.StringVar(&s.TLS.KeyFile, "kafka-tls-key-file", s.TLS.KeyFile, "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&s.TLS.ServerName, "kafka-tls-server-name", s.TLS.ServerName, "name the brokers' certificates must carry (default: the host dialled)")
	fs.StringVar(&s.Mechanism, "kafka-sasl-mechanism", s.Mechanism, "SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&s.SASL.User, "kafka-sasl-user", s.SASL.User, "SASL user name")
	fs.StringVar(&s.SASL.PasswordFile, "kafka-sasl-password-file", s.SASL.PasswordFile, "file holding the SASL password (or set "+EnvKafkaSASLPassword+"; never on the command line)")
	r := &c.Kafka
	fs.StringVar(&r.RegistryTLS.CAFile, "registry-tls-ca-file", r.RegistryTLS.CAFile, "PEM file of the CA certificates an https:// registry's certificate is checked against (default: the system's)")
	fs.StringVar(&r.RegistryTLS.CertFile, "registry-tls-cert-file", r.RegistryTLS.CertFile, "PEM client certificate, for a registry that requires one (with --registry-tls-key-file)")
	fs.StringVar(&r.RegistryTLS.KeyFile, "registry-tls-key-file", r.RegistryTLS.KeyFile, "PEM private key of --registry-tls-cert-file")
	fs.StringVar(&r.RegistryTLS.ServerName, "registry-tls-server-name", r.RegistryTLS.ServerName, "name the registry's certificate must carry (default: the URL's host)")
	fs.StringVar(&r.RegistryAuth.User, "registry-user", r.RegistryAuth.User, "user for the registry's HTTP basic auth")
	fs.StringVar(&r.RegistryAuth.PasswordFile, "registry-password-file", r.RegistryAuth.PasswordFile, "file holding the registry password (or set "+EnvRegistryPassword+"; never on the command line)")
}

func (c *Config) registerTopics(fs *pflag.FlagSet) {
	fs.StringVar(&c.Kafka.TopicPrefix, "topic-prefix", c.Kafka.TopicPrefix, "prefix of every topic name, for installations sharing a Kafka cluster (e.g. staging.)")
	fs.IntVar(&c.Kafka.Partitions, "partitions", c.Kafka.Partitions, "partitions of each exchange's trade and quote topics when they are created")
	fs.StringVar(&c.Kafka.ExchangePartitions, "exchange-partitions", c.Kafka.ExchangePartitions, "partitions per exchange where they differ from --partitions, e.g. BINANCE=12,ASX=3")
}

// RegisterHTTP adds --http-listen with the role's default address.
func (c *Config) RegisterHTTP(fs *pflag.FlagSet, role string) {
	c.HTTP.Listen = HTTPDefaults[role]
	settings(fs, func() {
		fs.StringVar(&c.HTTP.Listen, "http-listen", c.HTTP.Listen, "serve /health and /metrics on this address (off: none); each role has its own default, so roles share a host")
		fs.DurationVar(&c.HTTP.ReadHeaderTimeout, "http-read-header-timeout", c.HTTP.ReadHeaderTimeout, "drop a connection whose request headers take longer than this to arrive (0: no limit)")
		fs.DurationVar(&c.HTTP.ReadTimeout, "http-read-timeout", c.HTTP.ReadTimeout, "drop a connection whose request, headers and body, takes longer than this to arrive (0: no limit)")
		fs.DurationVar(&c.HTTP.WriteTimeout, "http-write-timeout", c.HTTP.WriteTimeout, "drop a connection whose answer takes longer than this to write; a stream renews it each time it sends (0: no limit)")
		fs.DurationVar(&c.HTTP.IdleTimeout, "http-idle-timeout", c.HTTP.IdleTimeout, "close a kept-alive connection idle for this long (0: no limit)")
	})
}

// RegisterAPI adds the REST API's keys, public paths, rate limits, body
// limit and CORS origins, its in-memory tail and its SQL route.
func (c *Config) RegisterAPI(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.DurationVar(&c.API.TailAge, "api-tail-age", c.API.TailAge, "hold the stream's records this long in memory, so recent reads and event streams do not wait for the lake (0: no tail; reads see the lake only)")
		fs.Int64Var(&c.API.LatestBytes, "api-latest-bytes", c.API.LatestBytes, "keep each symbol's latest records in memory up to this many bytes in all, so latest-N reads never wait for the lake (with a tail)")
		fs.Int64Var(&c.API.TailBytes, "api-tail-bytes", c.API.TailBytes, "at most this many bytes of recent records in memory; past it the oldest go, and reads the lake cannot complete say so")
		fs.BoolVar(&c.API.SQL, "api-sql", c.API.SQL, "serve POST /v1/sql: read-only DuckDB SQL over views of the tables (off: the route answers 404)")
		fs.IntVar(&c.API.SQLRows, "api-sql-rows", c.API.SQLRows, "rows one /v1/sql query returns at most (a request may ask fewer)")
		fs.DurationVar(&c.API.SQLTimeout, "api-sql-timeout", c.API.SQLTimeout, "interrupt a /v1/sql query running longer than this (set-up included)")
		fs.StringVar(&c.API.SQLMemory, "api-sql-memory", c.API.SQLMemory, "DuckDB memory limit of one /v1/sql query, e.g. 1GB (it never spills to disk)")
		fs.Var((*secretList)(&c.API.Keys), "api-keys", "API keys, comma separated, each name:key or a bare key (better in K2_API_KEYS or the --config file than on the command line); none: the API is open, and may then only listen on a loopback address")
		fs.StringSliceVar(&c.API.PublicPaths, "api-public-paths", c.API.PublicPaths, "paths answered without an API key; one ending in / is a prefix, / alone is the dashboard's page")
		fs.StringVar(&c.API.RateLimit, "api-rate-limit", c.API.RateLimit, "requests each key (or, open, each client address) may make on each /v1 route: N/s, N/min or N/h; off: no rate limits at all")
		fs.StringSliceVar(&c.API.RouteRateLimits, "api-route-rate-limits", c.API.RouteRateLimits, "per route template, ROUTE=RATE or ROUTE=off, overriding --api-rate-limit")
		fs.StringSliceVar(&c.API.TrustedProxies, "api-trusted-proxies", c.API.TrustedProxies, "addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client (default: none is believed)")
		fs.StringVar(&c.API.MaxBody, "api-max-body", c.API.MaxBody, "largest request body, counted on the bytes read (e.g. 10MiB)")
		fs.StringSliceVar(&c.API.PipelineMetrics, "api-pipeline-metrics", c.API.PipelineMetrics, "/metrics addresses of the other roles (k2 sink, k2 feed, k2 maintain) whose rates, lag, breakers and dead letters the dashboard's pipeline view shows beside this process's, e.g. http://sink-host:8002/metrics")
		fs.DurationVar(&c.API.PipelineStep, "api-pipeline-step", c.API.PipelineStep, "read the pipeline's metrics this often, for the dashboard's pipeline view and GET /v1/pipeline")
		fs.DurationVar(&c.API.PipelineHistory, "api-pipeline-history", c.API.PipelineHistory, "keep this much of the pipeline's history in memory (GET /v1/pipeline/history)")
		fs.StringSliceVar(&c.API.CORSOrigins, "api-cors-origins", c.API.CORSOrigins, "web origins whose pages may call the API, e.g. http://localhost:3000,http://127.0.0.1:8080 (* for any; default none)")
	})
}

// secretList is a comma-separated list whose values never appear in
// --help, an error or a log: Set cannot fail (a bad entry is found by
// Resolve, named by position), and String shows only how many there are.
type secretList []string

func (s *secretList) Set(v string) error {
	*s = nil
	return s.Append(v)
}

func (s *secretList) Append(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*s = append(*s, item)
		}
	}
	return nil
}

func (s *secretList) Replace(items []string) error {
	*s = nil
	for _, item := range items {
		s.Append(item)
	}
	return nil
}

func (s *secretList) GetSlice() []string { return append([]string(nil), *s...) }
func (s *secretList) Type() string       { return "strings" }

func (s *secretList) String() string {
	if len(*s) == 0 {
		return "" // no default shown in --help
	}
	return fmt.Sprintf("[%d hidden]", len(*s))
}

// RegisterSinkGroup adds --sink-group: the sinks' consumer group, which
// the embedded broker also reads to know what the lake holds.
func (c *Config) RegisterSinkGroup(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Sink.Group, "sink-group", c.Sink.Group, "consumer group: sinks in one group share the partitions")
	})
}

// RegisterSink adds the sink's settings.
func (c *Config) RegisterSink(fs *pflag.FlagSet) {
	c.RegisterSinkGroup(fs)
	settings(fs, func() {
		fs.StringVar(&c.Sink.InstanceID, "sink-instance-id", c.Sink.InstanceID, "static group membership: a sink restarted with the same id takes its partitions back at once, without waiting out its session")
		fs.StringVar(&c.Sink.Topics, "sink-topics", c.Sink.Topics, "regular expression of the topics to consume (default: every data topic under --topic-prefix)")
		fs.IntVar(&c.Sink.BatchRows, "sink-batch-rows", c.Sink.BatchRows, "commit a batch at this many rows")
		fs.IntVar(&c.Sink.BatchBytes, "sink-batch-bytes", c.Sink.BatchBytes, "commit a batch at this many bytes of records")
		fs.DurationVar(&c.Sink.BatchAge, "sink-batch-age", c.Sink.BatchAge, "commit a batch this long after its first record (how stale the lake may be)")
		fs.StringVar(&c.Sink.SheddingPolicy, "shedding-policy", c.Sink.SheddingPolicy, "YAML file naming what the sink may drop under pressure, per data type and symbol tier (default: drop nothing)")
	})
}

// RegisterBackup adds how k2 backup and k2 restore copy files.
func (c *Config) RegisterBackup(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.IntVar(&c.Backup.Workers, "backup-workers", c.Backup.Workers, "files copied at once by k2 backup and k2 restore")
	})
}

// RegisterLoad adds how loads batch their commits.
func (c *Config) RegisterLoad(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.IntVar(&c.Load.BatchRows, "batch-rows", c.Load.BatchRows, "rows per commit of a load")
		fs.DurationVar(&c.Load.BatchAge, "batch-age", c.Load.BatchAge, "commit a load's batch at least this often")
	})
}

// FeedFlags say which of a feed's flags a command offers.
type FeedFlags struct {
	Live      bool // WebSocket feeds: --url, --rotate-after, --stale-after, --ping-interval
	Backfill  bool // REST backfill: --rest-url, --api-key
	Synthetic bool // the synthetic market: --rate, --seed, --max-trades
}

// RegisterFeed adds a feed's settings.
func (c *Config) RegisterFeed(fs *pflag.FlagSet, which FeedFlags) {
	settings(fs, func() {
		fs.StringSliceVar(&c.Feed.Symbols, "symbols", c.Feed.Symbols, "instruments in the exchange's spelling: BTCUSDT,ETHUSDT (binance), BTC/USD,ETH/USD (kraken); synth defaults to 20 USD pairs")
		if which.Live {
			fs.StringArrayVar(&c.Feed.URLs, "url", c.Feed.URLs, "WebSocket endpoint, repeatable: later ones are failovers (default: the exchange's own; a k2 replay-server's ws://host:port offline)")
			fs.DurationVar(&c.Feed.RotateAfter, "rotate-after", c.Feed.RotateAfter, "replace a connection this old, overlapping the new one (default: 30 min before the exchange's limit, 23h30m on binance)")
			fs.DurationVar(&c.Feed.StaleAfter, "stale-after", c.Feed.StaleAfter, "reconnect when a connection delivers nothing for this long")
			fs.DurationVar(&c.Feed.PingInterval, "ping-interval", c.Feed.PingInterval, "ping the exchange this often; an unanswered ping drops the connection")
		}
		if which.Backfill {
			fs.StringVar(&c.Feed.RESTURL, "rest-url", c.Feed.RESTURL, `REST API to backfill missed trades from (default: the exchange's own, or the --url host when --url is given; "none" only counts gaps)`)
			fs.StringVar(&c.Feed.APIKey, "api-key", c.Feed.APIKey, "API key sent with backfill requests (better in K2_API_KEY than on the command line)")
		}
		if which.Synthetic {
			fs.Float64Var(&c.Feed.Rate, "rate", c.Feed.Rate, "synth: trades a second across the market (up to 2,000,000)")
			fs.Uint64Var(&c.Feed.Seed, "seed", c.Feed.Seed, "synth: seed of prices and sizes")
			fs.Int64Var(&c.Feed.MaxTrades, "max-trades", c.Feed.MaxTrades, "synth: stop after this many trades (0: run until stopped)")
		}
	})
}

// RegisterAssets adds the asset list that splits pair symbols.
func (c *Config) RegisterAssets(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.StringVar(&c.Assets.QuoteAssets, "quote-assets", c.Assets.QuoteAssets, "quote currencies that split pair symbols (BTCUSDT → BTC/USDT), comma separated (default "+strings.Join(marketdata.DefaultQuoteAssets, ",")+")")
		fs.StringVar(&c.Assets.Aliases, "asset-aliases", c.Assets.Aliases, "venue asset spellings and their common codes, comma separated FROM=TO pairs")
	})
}

// RegisterCompact, RegisterExpire and RegisterOrphans add k2 lake's
// maintenance settings; RegisterMaintain adds them all and the schedule,
// for the maintenance k2 up and k2 maintain run.
func (c *Config) RegisterCompact(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.Int64Var(&c.Maintain.CompactMaxRows, "compact-max-rows", c.Maintain.CompactMaxRows, "rows merged into one output group (held in memory while sorted)")
		fs.Int64Var(&c.Maintain.CompactSmallFileBytes, "compact-small-file-bytes", c.Maintain.CompactSmallFileBytes, "files smaller than this are compacted")
	})
}

func (c *Config) RegisterExpire(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.DurationVar(&c.Maintain.ExpireOlderThan, "expire-older-than", c.Maintain.ExpireOlderThan, "expire snapshots older than this (time travel to them ends)")
		fs.IntVar(&c.Maintain.RetainLast, "retain-last", c.Maintain.RetainLast, "always keep this many newest snapshots")
		fs.DurationVar(&c.Maintain.RetainDenseFor, "retain-dense-for", c.Maintain.RetainDenseFor, "keep every snapshot younger than this")
		fs.DurationVar(&c.Maintain.RetainSparseEvery, "retain-sparse-every", c.Maintain.RetainSparseEvery, "older than --retain-dense-for, keep one snapshot per this much time")
	})
}

func (c *Config) RegisterMaintain(fs *pflag.FlagSet) {
	c.RegisterCompact(fs)
	c.RegisterExpire(fs)
	c.RegisterOrphans(fs)
	settings(fs, func() {
		fs.DurationVar(&c.Maintain.Every, "maintain-every", c.Maintain.Every, "run a maintenance cycle over the tables this often (0: no maintenance in k2 up)")
		fs.DurationVar(&c.Maintain.BarsEvery, "maintain-bars-every", c.Maintain.BarsEvery, "bring the bar tables (bars_1m … bars_1d) up to the trades this often (0: not kept)")
		fs.DurationVar(&c.Maintain.OrphanEvery, "remove-orphans-every", c.Maintain.OrphanEvery, "look for orphaned files this often")
		fs.DurationVar(&c.Maintain.MetadataMinAge, "metadata-min-age", c.Maintain.MetadataMinAge, "each cycle, remove unreferenced metadata files older than this")
		fs.DurationVar(&c.Maintain.CompactQuietAfter, "compact-quiet-after", c.Maintain.CompactQuietAfter, "a partition without a new file for this long has all its small files merged")
		fs.Float64Var(&c.Maintain.CompactShare, "compact-share", c.Maintain.CompactShare, "while maintenance compacts beside a live system, use at most this share of one core (it rests between groups), so queries do not queue behind it; 0 or 1: no rest")
		fs.IntVar(&c.Maintain.CompactFanIn, "compact-fan-in", c.Maintain.CompactFanIn, "in a partition still being written, merge this many files of one size into one")
		fs.IntVar(&c.Maintain.MaxManifests, "max-manifests", c.Maintain.MaxManifests, "rewrite a table's manifests into few when it has more than this many")
	})
}

func (c *Config) RegisterOrphans(fs *pflag.FlagSet) {
	settings(fs, func() {
		fs.DurationVar(&c.Maintain.OrphanMinAge, "orphan-min-age", c.Maintain.OrphanMinAge, "only remove files older than this (protects commits in flight)")
	})
}

// EnvName is the environment variable for a flag: data-dir → K2_DATA_DIR.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// WithoutSettings drops the K2_* variables from an environment, for a
// child k2 that must run on the settings it is given, not its parent's.
func WithoutSettings(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// Apply fills every setting of fs not given on the command line from its
// K2_* environment variable, then from the YAML file at path (if any).
// The file may hold settings of other commands (one file serves them all);
// a key that is a setting of no command (known) is an error, as is a
// command's parameter, which belongs on the command line. Errors name the
// variable or file key and the bad value.
func Apply(fs *pflag.FlagSet, path string, known func(key string) bool) error {
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
			if !known(k) {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("config file %s: unknown settings %s (keys are setting flag names such as data-dir)", path, strings.Join(unknown, ", "))
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || !IsSetting(f) {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := setFromFile(f, v); e != nil {
				err = fmt.Errorf("config file %s: %s: %q: %v", path, f.Name, v, e)
			}
		}
	})
	return err
}

// setFromFile sets a flag from a YAML value; a list sets each item, as
// repeating the flag would.
func setFromFile(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			items := make([]string, len(list))
			for i, x := range list {
				items[i] = fmt.Sprint(x)
			}
			return sv.Replace(items)
		}
	}
	return f.Value.Set(fmt.Sprint(v))
}

// ResetDefaults sets every flag of fs that the command line did not give
// back to its own default. Commands share one Config, and a setting whose
// default differs between commands (--http-listen: each role its own) was
// last written by whichever command registered it last.
func ResetDefaults(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			var items []string
			if d := strings.Trim(f.DefValue, "[]"); d != "" {
				items = strings.Split(d, ",")
			}
			err = sv.Replace(items)
			return
		}
		err = f.Value.Set(f.DefValue)
	})
	return err
}
