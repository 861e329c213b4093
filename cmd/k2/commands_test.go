package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/k2-market-data/k2/internal/config"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/stack"
	"github.com/k2-market-data/k2/internal/testutil"
)

// k2 lake compacts, rewrites manifests, expires and removes orphans by the
// rules its help states, and neither a compaction nor a manifest rewrite
// changes an answer.
func TestLakeCommands(t *testing.T) {
	data := t.TempDir()
	capture := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	k2 := func(args ...string) string {
		t.Helper()
		out, e, code := run(t, append([]string{"--data-dir", data}, args...)...)
		if code != 0 {
			t.Fatalf("k2 %s: exit %d: %s", strings.Join(args, " "), code, e)
		}
		return out
	}
	k2("load", "kraken-ws", capture, "--batch-rows", "200", "--no-progress")
	before := k2("query", "trades", "--symbol", "BTCUSDT", "--order", "asc", "--limit", "1000", "--format", "json")

	// Without flags each command applies its own default, as its help says.
	var expire []struct {
		OlderThan  string  `json:"older_than"`
		RetainLast int     `json:"retain_last"`
		Expired    []int64 `json:"expired_snapshot_ids"`
		Remaining  int     `json:"remaining_snapshots"`
	}
	decode(t, k2("lake", "expire-snapshots", "--dry-run", "--json", "--table", "trades"), &expire)
	if len(expire) != 1 || expire[0].OlderThan != "168h0m0s" || expire[0].RetainLast != 10 || len(expire[0].Expired) != 0 || expire[0].Remaining != 5 {
		t.Fatalf("expire-snapshots by default: %+v", expire)
	}
	var orphans []struct {
		MinAge string `json:"min_age"`
	}
	decode(t, k2("lake", "remove-orphans", "--dry-run", "--json", "--table", "trades"), &orphans)
	if len(orphans) != 1 || orphans[0].MinAge != "24h0m0s" {
		t.Fatalf("remove-orphans by default: %+v", orphans)
	}
	if help := k2("lake", "expire-snapshots", "--help"); !strings.Contains(help, "--expire-older-than duration") || !strings.Contains(help, "(default 168h0m0s)") {
		t.Errorf("expire-snapshots --help:\n%s", help)
	}

	// Five commits of 200 rows, a manifest each: rewrite-manifests
	// (QueryExecutionTimeSlow's runbook) merges them once there are more
	// than --max-manifests, as its output and k2 lake status say, and
	// changes no answer; run again it has nothing to do.
	manifests := func() int {
		t.Helper()
		m := regexp.MustCompile(`(?m)^  manifests +(\d+);`).FindStringSubmatch(k2("lake", "status", "--table", "trades"))
		if m == nil {
			t.Fatal("k2 lake status shows no manifests line")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if n := manifests(); n != 5 {
		t.Fatalf("%d manifests after five commits", n)
	}
	if out := k2("lake", "rewrite-manifests", "--table", "trades"); out != "market_data.trades: 5 manifests, nothing to rewrite\n" {
		t.Fatalf("rewrite-manifests under the default --max-manifests 16: %q", out)
	}
	if out := k2("lake", "rewrite-manifests", "--table", "trades", "--max-manifests", "2", "--dry-run"); out != "market_data.trades: would rewrite 5 manifests (more than 2)\n" {
		t.Fatalf("rewrite-manifests --dry-run: %q", out)
	}
	out := k2("lake", "rewrite-manifests", "--table", "trades", "--max-manifests", "2")
	m := regexp.MustCompile(`^market_data\.trades: rewrote 5 manifests into (\d+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rewrite-manifests --max-manifests 2: %q", out)
	}
	if after, _ := strconv.Atoi(m[1]); after >= 5 || after != manifests() {
		t.Fatalf("rewrite-manifests says %d manifests remain, k2 lake status %d", after, manifests())
	}
	if out := k2("lake", "rewrite-manifests", "--table", "trades", "--max-manifests", "2"); !strings.HasSuffix(out, "nothing to rewrite\n") {
		t.Fatalf("rewrite-manifests again: %q", out)
	}
	if after := k2("query", "trades", "--symbol", "BTCUSDT", "--order", "asc", "--limit", "1000", "--format", "json"); after != before {
		t.Fatal("rewriting the manifests changed the answer to the same query")
	}

	// Compaction merges the five commits' files; expiry with a tiny age
	// keeps the newest two snapshots.
	var compact []struct {
		Groups      int `json:"groups"`
		FilesBefore int `json:"files_rewritten"`
		FilesAfter  int `json:"files_written"`
	}
	decode(t, k2("lake", "compact", "--json", "--table", "trades"), &compact)
	if len(compact) != 1 || compact[0].Groups == 0 || compact[0].FilesAfter >= compact[0].FilesBefore {
		t.Fatalf("compact: %+v", compact)
	}
	if after := k2("query", "trades", "--symbol", "BTCUSDT", "--order", "asc", "--limit", "1000", "--format", "json"); after != before {
		t.Fatal("compaction changed the answer to the same query")
	}
	decode(t, k2("lake", "expire-snapshots", "--json", "--table", "trades", "--expire-older-than", "1ns", "--retain-last", "2"), &expire)
	if len(expire[0].Expired) != 5 || expire[0].Remaining != 2 {
		t.Fatalf("expire-snapshots --expire-older-than 1ns --retain-last 2 (7 snapshots: five appends, the rewrite, the compaction): %+v", expire)
	}
	if _, e, code := run(t, "--data-dir", data, "lake", "compact", "--table", "bars"); code == 0 || !strings.Contains(e, `unknown table "bars" (tables: trades, quotes, reference_data, funding_rates, bars_1m, bars_5m, bars_30m, bars_1h, bars_1d)`) {
		t.Fatalf("unknown table: %d %q", code, e)
	}
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
}

// k2 demo PATH reads the file with the configured asset list, and a lake
// holding an exchange this K2 does not know is an error, not a panic.
func TestDemoHonoursTheAssetListAndUnknownExchanges(t *testing.T) {
	vision := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv")
	small := testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2025-01-01.first210.csv")
	data := t.TempDir()
	out, e, code := run(t, "--data-dir", data, "demo", vision, "--asset-aliases", "BTC=XBT")
	if code != 0 || !strings.Contains(out, "XBTUSDT") || strings.Contains(out, " BTCUSDT ") {
		t.Fatalf("demo with --asset-aliases BTC=XBT: exit %d %s\n%s", code, e, out)
	}

	// Trades of an exchange unknown here, written past validation as an
	// older or newer K2 might have, and more of them than the file holds,
	// so the demo shows them first.
	other := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = other
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	l, err := stack.OpenLake(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	var trades []md.Trade
	for i := range 500 {
		id := "NYSE-" + strconv.Itoa(i)
		trades = append(trades, md.Trade{MessageID: md.MessageID("trade", "AAPL", id), TradeID: id, Symbol: "AAPL", Exchange: "NYSE",
			AssetClass: md.Equities, Timestamp: md.Now(), Price: md.MustDecimal("1"), Quantity: md.MustDecimal("1"),
			Currency: "USD", Side: md.Buy, TradeConditions: []string{}, IngestionTimestamp: md.Now()})
	}
	if _, err := w.Commit(context.Background(), trades, nil); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, e, code = run(t, "--data-dir", other, "demo", small)
	if code == 0 || !strings.Contains(e, `exchange "NYSE", which this K2 does not know`) {
		t.Fatalf("unknown exchange: exit %d %q", code, e)
	}
}

// Each command's help lists what that command reads, and nothing else.
func TestHelpListsTheCommandsOwnSettings(t *testing.T) {
	for _, c := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"query", "trades"}, []string{"--symbol", "--catalog", "--query-timeout", "--data-dir"},
			[]string{"--brokers", "--sink-batch-rows", "--shedding-policy", "--broker-listen", "--topic-prefix", "--memory-limit", "--http-listen", "--api-sql"}},
		{[]string{"sink"}, []string{"--brokers", "--sink-batch-rows", "--catalog", "--http-listen", "--http-read-header-timeout", "--shedding-policy"},
			[]string{"--query-timeout", "--broker-listen", "--symbols", "--batch-rows", "--api-keys"}},
		{[]string{"feed", "binance"}, []string{"--symbols", "--url", "--rest-url", "--brokers", "--http-listen"},
			[]string{"--catalog", "--sink-batch-rows", "--rate", "--query-pool-size"}},
		{[]string{"feed", "synth"}, []string{"--rate", "--seed", "--max-trades"}, []string{"--url", "--rest-url", "--catalog"}},
		{[]string{"up"}, []string{"--broker-listen", "--sink-batch-rows", "--symbols", "--rate", "--catalog", "--query-timeout", "--api-sql-timeout", "(default \"127.0.0.1:8000\")",
			"--api-keys", "--api-rate-limit", "--api-cors-origins", "--http-write-timeout"},
			[]string{"--brokers ", "--batch-rows "}},
		{[]string{"api"}, []string{"--catalog", "--query-timeout", "--query-pool-size", "(default \"127.0.0.1:8005\")", "--api-sql ", "--api-sql-rows", "--api-sql-memory", "--api-tail-age",
			"--api-keys", "--api-public-paths", "--api-rate-limit", "--api-route-rate-limits", "--api-max-body", "--api-trusted-proxies",
			"--brokers", "--registry"}, // the stream its tail reads
			[]string{"--sink-batch-rows", "--symbols", "--broker-listen"}},
		{[]string{"load", "asx"}, []string{"--batch-rows", "--via-kafka", "--brokers", "--catalog"}, []string{"--sink-batch-rows", "--query-timeout"}},
	} {
		out, _, code := run(t, append(c.args, "--help")...)
		settings := out[strings.Index(out, "Settings"):]
		if code != 0 || !strings.Contains(out, "Settings (also K2_* variables and --config keys)") {
			t.Fatalf("k2 %s --help: %d\n%s", strings.Join(c.args, " "), code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("k2 %s --help lacks %s", strings.Join(c.args, " "), w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("k2 %s --help lists %s, which it does not use", strings.Join(c.args, " "), n)
			}
		}
		// A query's own parameters are not settings: K2_SYMBOL must not
		// change what k2 query trades answers.
		if c.args[0] == "query" && strings.Contains(settings, "--symbol ") {
			t.Errorf("--symbol is listed as a setting:\n%s", settings)
		}
	}
}

// A setting has one meaning: wherever a command offers it, it has the
// same default and the same help, so one K2_* variable or config key
// means one thing. (--http-listen is each role's own address by design.)
func TestEverySettingMeansOneThing(t *testing.T) {
	root, _ := newRoot()
	seen := map[string]*pflag.Flag{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !config.IsSetting(f) || f.Name == "http-listen" {
				return
			}
			if prev, ok := seen[f.Name]; ok && (prev.DefValue != f.DefValue || prev.Usage != f.Usage) {
				t.Errorf("--%s means two things: %q (default %s) and, in %s, %q (default %s)",
					f.Name, prev.Usage, prev.DefValue, c.CommandPath(), f.Usage, f.DefValue)
			}
			seen[f.Name] = f
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if len(seen) < 40 {
		t.Fatalf("only %d settings found", len(seen))
	}
	roles := map[string]bool{}
	for _, addr := range config.HTTPDefaults {
		if roles[addr] {
			t.Errorf("two roles listen on %s by default", addr)
		}
		roles[addr] = true
	}
}

// One config file serves every command: a key another command reads is
// fine, a key no command reads is an error.
func TestConfigFileMayHoldOtherCommandsSettings(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/k2.yaml"
	write(t, cfg, "data-dir: "+dir+"\nsink-batch-rows: 1000\nsymbols: [BTCUSDT, ETHUSDT]\nquery-pool-size: 2\n")
	if _, e, code := run(t, "--config", cfg, "query", "stats"); code != 0 {
		t.Fatalf("a config file with other commands' settings: %q", e)
	}
	write(t, cfg, "symbol: BHP\n")
	if _, e, code := run(t, "--config", cfg, "query", "stats"); code == 0 || !strings.Contains(e, "unknown settings symbol") {
		t.Fatalf("a query parameter in the config file was accepted: %q", e)
	}
}

// k2 version names the build; so does k2_build_info.
func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !regexp.MustCompile(`^k2 \S+ \(revision \S+, go1\.\d+`).MatchString(out) {
		t.Fatalf("k2 version: %d %q", code, out)
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// k2 api without keys serves only this machine: on another address it
// does not start, and says which settings to give. K2_API_KEYS is read
// (a bad one is named by position, its key never shown).
func TestAPIRoleWithoutKeysStaysOnLoopback(t *testing.T) {
	data := t.TempDir()
	_, e, code := run(t, "--data-dir", data, "api", "--http-listen", "0.0.0.0:0")
	if code == 0 || !strings.Contains(e, "--api-keys") || !strings.Contains(e, "K2_API_KEYS") || !strings.Contains(e, "0.0.0.0:0") {
		t.Fatalf("k2 api on 0.0.0.0 without keys: exit %d %q", code, e)
	}
	t.Setenv("K2_API_KEYS", "ops:k-1a2b3c,dash:")
	_, e, code = run(t, "--data-dir", data, "api", "--http-listen", "0.0.0.0:0")
	if code == 0 || !strings.Contains(e, "--api-keys: entry 2") || strings.Contains(e, "k-1a2b3c") {
		t.Fatalf("a bad K2_API_KEYS: exit %d %q", code, e)
	}
}
