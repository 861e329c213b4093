package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "1GiB": 1 << 30, "896MiB": 896 << 20, "2GB": 2e9, "64 KiB": 64 << 10, "0": 0, "1.5GiB": 3 << 29,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1GiB", "1XB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func TestExchangePartitions(t *testing.T) {
	c := Default()
	c.Kafka.ExchangePartitions = "binance=12, ASX=3"
	got, err := c.Kafka.PartitionsByExchange()
	if err != nil || got["BINANCE"] != 12 || got["ASX"] != 3 || len(got) != 2 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"BINANCE", "BINANCE=0", "=3", "ASX=three", "NYSE=4"} {
		c.Kafka.ExchangePartitions = bad
		if err := c.Resolve(); err == nil {
			t.Errorf("accepted --exchange-partitions %q", bad)
		}
	}
}

func TestResolveRejectsABadMemoryLimit(t *testing.T) {
	c := Default()
	c.Memory.Limit = "much"
	if err := c.Resolve(); err == nil {
		t.Fatal("accepted --memory-limit much")
	}
	c.Memory.Limit = "512MiB"
	if err := c.Resolve(); err != nil || c.Memory.LimitBytes != 512<<20 {
		t.Fatalf("%v %d", err, c.Memory.LimitBytes)
	}
}

func TestAssetList(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if sym, quote, err := c.Assets.List().Symbol("XBT/USD"); err != nil || sym != "BTCUSD" || quote != "USD" {
		t.Fatalf("default aliases: %s %s %v", sym, quote, err)
	}
	c.Assets.QuoteAssets, c.Assets.Aliases = "usd, PYUSD", "XBT=BTC"
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if sym, quote, err := c.Assets.List().Symbol("SOLPYUSD"); err != nil || sym != "SOLPYUSD" || quote != "PYUSD" {
		t.Fatalf("configured quote asset: %s %s %v", sym, quote, err)
	}
	if _, _, err := c.Assets.List().Symbol("BTCUSDT"); err == nil {
		t.Fatal("USDT split although not configured")
	}
	for _, bad := range [][2]string{{"US-D", ""}, {"", "XBT"}, {"", "XBT=B/C"}} {
		c.Assets.QuoteAssets, c.Assets.Aliases = bad[0], bad[1]
		if err := c.Resolve(); err == nil {
			t.Errorf("accepted --quote-assets %q --asset-aliases %q", bad[0], bad[1])
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100/min": {100, time.Minute}, "20/s": {20, time.Second}, " 5 / hour ": {5, time.Hour}, "1000/h": {1000, time.Hour},
		"off": {}, "OFF": {}, "0": {}, "0/min": {},
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "100", "100/day", "-1/s", "lots/min", "100/"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	if s := (Rate{100, time.Minute}).String(); s != "100/min" {
		t.Errorf("String: %s", s)
	}
}

// The defaults are the original's declared limits, made to apply.
func TestAPIDefaults(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	def, routes, err := c.API.Rates()
	if err != nil || def != (Rate{100, time.Minute}) || routes["POST /v1/ohlcv/batch"] != (Rate{20, time.Minute}) {
		t.Fatalf("rates %v %v %v", def, routes, err)
	}
	if c.API.MaxBodyBytes != 10<<20 || len(c.API.Keys) != 0 || len(c.API.CORSOrigins) != 0 || len(c.API.TrustedProxies) != 0 {
		t.Fatalf("%+v", c.API)
	}
	if c.HTTP.ReadHeaderTimeout <= 0 || c.HTTP.ReadTimeout <= 0 || c.HTTP.IdleTimeout <= 0 ||
		c.HTTP.WriteTimeout <= c.Query.AcquireTimeout+c.Query.Timeout {
		t.Fatalf("timeouts %+v: the write timeout must outlast a query's wait and run", c.HTTP)
	}
}

func TestAPIKeysAndTheirErrors(t *testing.T) {
	a := API{Keys: []string{"dash:k-one", "k-two", " ops : k-three "}}
	keys, err := a.ParsedKeys()
	if err != nil || len(keys) != 3 || keys[0] != (APIKey{"dash", "k-one"}) || keys[1] != (APIKey{"key-2", "k-two"}) || keys[2] != (APIKey{"ops", "k-three"}) {
		t.Fatalf("%v %v", keys, err)
	}
	for _, bad := range [][]string{{"dash:"}, {":secret-1"}, {"a b:secret-1"}, {"dash:secret-1", "dash:secret-2"}, {"a:secret-1", "b:secret-1"}} {
		a := API{Keys: bad}
		_, err := a.ParsedKeys()
		if err == nil {
			t.Errorf("accepted %q", bad)
			continue
		}
		// An error names the entry, never the key.
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the key: %v", bad, err)
		}
	}
}

// --api-keys never shows a key: not in --help, not in an error of the
// environment variable (which cannot fail), and a YAML list sets it.
func TestAPIKeysFlagHidesTheKeys(t *testing.T) {
	c := Default()
	fs := pflag.NewFlagSet("k2", pflag.ContinueOnError)
	c.RegisterAPI(fs)
	t.Setenv("K2_API_KEYS", `dash:se"cret,ops:other`)
	if err := Apply(fs, "", func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if len(c.API.Keys) != 2 || c.API.Keys[0] != `dash:se"cret` {
		t.Fatalf("%q", c.API.Keys)
	}
	if s := fs.Lookup("api-keys").Value.String(); strings.Contains(s, "cret") {
		t.Fatalf("String shows the keys: %s", s)
	}
	t.Setenv("K2_API_KEYS", "")
	os.Unsetenv("K2_API_KEYS")
	path := filepath.Join(t.TempDir(), "k2.yaml")
	os.WriteFile(path, []byte("api-keys: [\"a:one\", \"b:two\", \"three\"]\n"), 0o600)
	c = Default()
	fs = pflag.NewFlagSet("k2", pflag.ContinueOnError)
	c.RegisterAPI(fs)
	if err := Apply(fs, path, func(string) bool { return true }); err != nil || len(c.API.Keys) != 3 || c.API.Keys[2] != "three" {
		t.Fatalf("%q %v", c.API.Keys, err)
	}
}

func TestResolveRejectsBadAPISettings(t *testing.T) {
	for name, set := range map[string]func(*Config){
		"rate":        func(c *Config) { c.API.RateLimit = "fast" },
		"route rate":  func(c *Config) { c.API.RouteRateLimits = []string{"POST /v1/ohlcv/batch"} },
		"route":       func(c *Config) { c.API.RouteRateLimits = []string{"trades=10/s"} },
		"max body":    func(c *Config) { c.API.MaxBody = "0" },
		"origin":      func(c *Config) { c.API.CORSOrigins = []string{"localhost:3000"} },
		"origin path": func(c *Config) { c.API.CORSOrigins = []string{"http://localhost:3000/app"} },
		"proxy":       func(c *Config) { c.API.TrustedProxies = []string{"10.0.0.0/33"} },
		"public":      func(c *Config) { c.API.PublicPaths = []string{"health"} },
		"timeout":     func(c *Config) { c.HTTP.WriteTimeout = -time.Second },
		"key":         func(c *Config) { c.API.Keys = []string{"name:"} },
	} {
		c := Default()
		c.DataDir = t.TempDir()
		set(&c)
		if err := c.Resolve(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := Default()
	c.DataDir = t.TempDir()
	c.API.RateLimit, c.API.RouteRateLimits = "off", []string{"GET /v1/trades = 5/s", "GET  /v1/stats=off"}
	c.API.CORSOrigins, c.API.TrustedProxies = []string{"http://localhost:3000", "*"}, []string{"127.0.0.1", "10.0.0.0/8", "::1"}
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	def, routes, _ := c.API.Rates()
	if !def.Off() || routes["GET /v1/trades"] != (Rate{5, time.Second}) || !routes["GET /v1/stats"].Off() {
		t.Fatalf("%v %v", def, routes)
	}
	if p, err := c.API.Proxies(); err != nil || len(p) != 3 || !p[0].Contains(netip.MustParseAddr("127.0.0.1")) || !p[1].Contains(netip.MustParseAddr("10.2.3.4")) {
		t.Fatalf("%v %v", p, err)
	}
}
