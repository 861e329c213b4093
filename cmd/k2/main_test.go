package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/testutil"
)

// run executes k2 with args as a user would and returns stdout, the
// one-line error k2 prints, and the exit status.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root, _ := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--log-level", "error"}, args...))
	err := root.ExecuteContext(context.Background())
	r, w, _ := os.Pipe()
	saved := os.Stderr
	os.Stderr = w
	code = report(err)
	w.Close()
	os.Stderr = saved
	msg, _ := io.ReadAll(r)
	return out.String(), string(msg), code
}

// copyDir copies the ASX sample so a test can damage it.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsMalformedLineAndKeepsTheRest(t *testing.T) {
	src := testutil.Data(t, "asx")
	dir := t.TempDir()
	asx := filepath.Join(dir, "asx")
	copyDir(t, src, asx)
	// Replace line 1000 of BHP's trades with garbage.
	path := filepath.Join(asx, "trades", "7078.csv")
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	lines[999] = "03/10/2014,10:1x:00.000,abc,100,0,,\r"
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)

	data := filepath.Join(dir, "k2")
	dlq := filepath.Join(dir, "rejects.jsonl")
	out, errText, code := run(t, "--data-dir", data, "load", "asx", asx, "--dead-letter", dlq, "--no-progress")
	if code != 3 {
		t.Fatalf("exit %d, want 3 (rows rejected); stderr %q", code, errText)
	}
	if !strings.Contains(errText, "1 lines rejected") || strings.Count(strings.TrimSpace(errText), "\n") != 0 {
		t.Fatalf("error is not one clear line: %q", errText)
	}
	if !regexp.MustCompile(`rejected\s+1 → `).MatchString(out) {
		t.Fatalf("summary does not report the rejection:\n%s", out)
	}
	f, err := os.Open(dlq)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rej struct {
		File, Reason, Error, Raw string
		Line                     int64
	}
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("dead-letter file is empty")
	}
	if err := json.Unmarshal(sc.Bytes(), &rej); err != nil {
		t.Fatal(err)
	}
	if rej.File != "asx/trades/7078.csv" || rej.Line != 1000 || rej.Reason == "" || !strings.Contains(rej.Raw, "abc") {
		t.Fatalf("dead letter %+v: want file, line 1000, reason and the raw text", rej)
	}
	// Everything else arrived.
	out, _, code = run(t, "--data-dir", data, "query", "symbols", "--format", "json")
	var syms []struct {
		Symbol string
		Trades int64
	}
	if code != 0 || json.Unmarshal([]byte(out), &syms) != nil {
		t.Fatalf("symbols: %d %s", code, out)
	}
	for _, s := range syms {
		if s.Symbol == "BHP" && s.Trades != 91_630 {
			t.Fatalf("BHP trades %d, want 91,630", s.Trades)
		}
	}
	// vendor_data is read back in every format: BHP's first trade was on
	// venue X.
	for format, want := range map[string]string{"json": `"vendor_data":{"company_id":"7078","venue":"X"}`, "csv": "company_id=7078 venue=X", "table": "company_id=7078 venue=X"} {
		out, _, code = run(t, "--data-dir", data, "query", "trades", "--symbol", "BHP", "--order", "asc", "--limit", "1", "--format", format)
		if format == "json" {
			out = strings.Join(strings.Fields(out), "")
		}
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("--format %s: want %s in\n%s", format, want, out)
		}
	}
	// Accepting rejects exits 0; nothing new is written.
	out, _, code = run(t, "--data-dir", data, "load", "asx", asx, "--dead-letter", dlq, "--allow-rejects", "--no-progress")
	if code != 0 || !regexp.MustCompile(`written\s+0 rows`).MatchString(out) {
		t.Fatalf("re-load with --allow-rejects: exit %d\n%s", code, out)
	}
}

func TestQueryJSONShape(t *testing.T) {
	capture := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	data := t.TempDir()
	if _, e, code := run(t, "--data-dir", data, "load", "kraken-ws", capture, "--no-progress"); code != 0 {
		t.Fatalf("load: %s", e)
	}
	out, e, code := run(t, "--data-dir", data, "query", "trades", "--symbol", "btcusdt", "--order", "asc", "--limit", "2", "--format", "json")
	if code != 0 {
		t.Fatal(e)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("not a JSON array of 2 objects: %v\n%s", err, out)
	}
	r := rows[0]
	if r["trade_id"] != "KRAKEN-10218208" || r["price"] != "105433.6" || r["quantity"] != "0.00027625" ||
		r["timestamp"] != "2025-11-10T17:23:53.971744Z" || r["side"] != "BUY" || r["exchange"] != "KRAKEN" {
		t.Fatalf("first trade %v", r)
	}
	out, _, _ = run(t, "--data-dir", data, "query", "bars", "--symbol", "BTCUSDT", "--interval", "1h", "--format", "json")
	var bars []map[string]any
	json.Unmarshal([]byte(out), &bars)
	want := []string{"symbol", "exchange", "interval", "window_start", "window_end", "open", "high", "low", "close", "volume", "trade_count", "vwap"}
	if len(bars) == 0 || len(bars[0]) != len(want) {
		t.Fatalf("bars %s", out)
	}
	for _, k := range want {
		if _, ok := bars[0][k]; !ok {
			t.Fatalf("bar lacks %s: %v", k, bars[0])
		}
	}
	if _, isString := bars[0]["vwap"].(string); !isString {
		t.Fatalf("vwap is not a decimal string: %v", bars[0]["vwap"])
	}
	out, _, _ = run(t, "--data-dir", data, "query", "trades", "--symbol", "BTCUSDT", "--limit", "1", "--format", "csv")
	if !strings.HasPrefix(out, "timestamp,symbol,exchange,price,") || strings.Count(out, "\n") != 2 {
		t.Fatalf("csv %q", out)
	}
}

func TestBadInputGivesOneLineErrors(t *testing.T) {
	data := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"query", "trades", "--from", "10/03/2014"}, "--from: time \"10/03/2014\" is not RFC 3339"},
		{[]string{"query", "trades", "--order", "up"}, "--order \"up\" is not asc or desc"},
		{[]string{"query", "bars", "--symbol", "BHP", "--interval", "2m"}, "interval \"2m\" is not one of"},
		{[]string{"query", "summary", "NOPE", "2014-03-10"}, "unknown symbol \"NOPE\""},
		{[]string{"query", "trades", "--exchange", "NYSEX"}, "unknown exchange \"NYSEX\""},
		{[]string{"query", "trades", "--as-of-snapshot", "42"}, "has no snapshot 42"},
		{[]string{"query", "trades", "--format", "xml"}, "--format \"xml\" is not table, csv or json"},
		{[]string{"load", "binance-csv", filepath.Join(data, "missing.csv"), "--symbol", "BTCUSDT"}, "missing.csv: no such file"},
		{[]string{"load", "binance-csv", "x.csv", "--symbol", "FOOBAR"}, "unknown symbol FOOBAR"},
		{[]string{"query", "stats", "--catalog", "postgres://k2:secret@127.0.0.1:1/k2?connect_timeout=2"}, "catalog postgres://k2:xxxxx@127.0.0.1:1/k2"},
		{[]string{"feed", "binance"}, "--symbols is required, e.g. k2 feed binance --symbols BTCUSDT,ETHUSDT"},
		{[]string{"feed", "binance", "--symbols", "BTCXYZ", "--brokers", "127.0.0.1:1"}, `binance symbol "BTCXYZ": pair "BTCXYZ": no known quote asset suffix`},
		{[]string{"feed", "kraken", "--symbols", "BTCUSD", "--brokers", "127.0.0.1:1"}, `kraken symbol "BTCUSD": write pairs as BASE/QUOTE, e.g. BTC/USD`},
		{[]string{"feed", "binance", "--symbols", "BTCUSDT", "--url", "https://stream.binance.com", "--brokers", "127.0.0.1:1"}, `--url "https://stream.binance.com": want ws://host:port or wss://host`},
		{[]string{"feed", "synth", "--rate", "5000000", "--brokers", "127.0.0.1:1"}, "synthetic rate 5000000/s is above 2,000,000/s"},
		{[]string{"up", "--feed", "bitstamp"}, `unknown feed "bitstamp": want binance, binance-usdm, binance-coinm, kraken, synth or none`},
		{[]string{"feed", "synth", "--quote-assets", "US$"}, `--quote-assets: "US$" is not an asset code`},
		{[]string{"replay-server", "--file", filepath.Join(data, "missing.gz")}, "missing.gz: no such file"},
		{[]string{"replay-server", "--file", "x.gz", "--speed", "fast"}, `--speed: replay speed "fast": want max, or a non-negative factor such as 10x or 0.5x`},
	}
	for _, c := range cases {
		_, e, code := run(t, append([]string{"--data-dir", data}, c.args...)...)
		if code == 0 || !strings.Contains(e, c.want) || strings.Count(strings.TrimSpace(e), "\n") != 0 || !strings.HasPrefix(e, "k2: ") {
			t.Errorf("k2 %s: exit %d, stderr %q; want one line containing %q", strings.Join(c.args, " "), code, e, c.want)
		}
		if strings.Contains(e, "secret") {
			t.Errorf("password printed: %q", e)
		}
	}
}

func TestEnvironmentAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("K2_DATA_DIR", filepath.Join(dir, "from-env"))
	if _, e, code := run(t, "query", "stats"); code != 0 {
		t.Fatal(e)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-env", "catalog.db")); err != nil {
		t.Fatalf("K2_DATA_DIR ignored: %v", err)
	}
	cfg := filepath.Join(dir, "k2.yaml")
	os.WriteFile(cfg, []byte("data-dir: "+filepath.Join(dir, "from-file")+"\nquery-pool-size: 2\n"), 0o644)
	t.Setenv("K2_DATA_DIR", "")
	os.Unsetenv("K2_DATA_DIR")
	if _, e, code := run(t, "--config", cfg, "query", "stats"); code != 0 {
		t.Fatal(e)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-file", "catalog.db")); err != nil {
		t.Fatalf("config file ignored: %v", err)
	}
	os.WriteFile(cfg, []byte("data-dri: x\n"), 0o644)
	if _, e, code := run(t, "--config", cfg, "query", "stats"); code == 0 || !strings.Contains(e, "unknown settings data-dri") {
		t.Fatalf("typo in config file accepted: %q", e)
	}
	t.Setenv("K2_QUERY_POOL_SIZE", "many")
	if _, e, code := run(t, "--data-dir", dir, "query", "stats"); code == 0 || !strings.Contains(e, "K2_QUERY_POOL_SIZE") {
		t.Fatalf("bad environment value accepted: %q", e)
	}
}

func TestDemoRunsTwiceAndAddsNothing(t *testing.T) {
	data := t.TempDir()
	out, e, code := run(t, "--data-dir", data, "demo", "--trades", "20000")
	if code != 0 || !strings.Contains(out, "Stored 20000 new trades") || !strings.Contains(out, "k2 query bars") {
		t.Fatalf("first demo: exit %d %s\n%s", code, e, out)
	}
	out, _, code = run(t, "--data-dir", data, "demo", "--trades", "20000")
	if code != 0 || !strings.Contains(out, "Stored 0 new trades and 0 new quotes") {
		t.Fatalf("second demo added data:\n%s", out)
	}
}

// Smaller points a user meets on unseen files: a public-data CSV's header
// line is skipped, an empty file is said to be empty (exit 0), a 1d bar
// is the exchange-local date with or without --exchange, and a bar the
// time range cuts says it is partial.
func TestHeadersEmptyFilesAndBarEdges(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	src := readLines(t, testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2025-01-01.first210.csv"))
	withHeader := filepath.Join(dir, "BTCUSDT-trades-2025-01-01.csv")
	os.WriteFile(withHeader, []byte("id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n"+strings.Join(src, "\n")+"\n"), 0o644)
	out, e, code := run(t, "--data-dir", data, "load", "binance-csv", withHeader, "--no-progress")
	if code != 0 || !regexp.MustCompile(`written\s+210 rows`).MatchString(out) || !strings.Contains(out, "header 1") {
		t.Fatalf("a file with a header: exit %d %s\n%s", code, e, out)
	}
	empty := filepath.Join(dir, "ETHUSDT-trades-2025-01-01.csv")
	os.WriteFile(empty, nil, 0o644)
	out, e, code = run(t, "--data-dir", data, "load", "binance-csv", empty, "--no-progress")
	if code != 0 || !strings.Contains(out, "warning     "+empty+" is empty") || !regexp.MustCompile(`read\s+0 records`).MatchString(out) {
		t.Fatalf("an empty file: exit %d %s\n%s", code, e, out)
	}

	if _, e, code := run(t, "--data-dir", data, "load", "asx", testutil.Data(t, "asx"), "--no-progress"); code != 0 {
		t.Fatal(e)
	}
	bars := func(args ...string) []map[string]any {
		out, e, code := run(t, append([]string{"--data-dir", data, "query", "bars", "--symbol", "BHP", "--interval", "1d", "--order", "asc", "--format", "json"}, args...)...)
		var rows []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) == 0 {
			t.Fatalf("bars %v: %d %s %s", args, code, e, out)
		}
		return rows
	}
	without, with := bars(), bars("--exchange", "ASX")
	if fmt.Sprint(without) != fmt.Sprint(with) || without[0]["window_start"] != "2014-03-09T13:00:00.000000Z" {
		t.Fatalf("1d bars without --exchange %v, with %v: want Sydney's dates (13:00 UTC) both ways", without[0], with[0])
	}
	cut := bars("--from", "2014-03-11T00:00:00Z")
	if cut[0]["partial"] != true || cut[0]["window_start"] != "2014-03-10T13:00:00.000000Z" || cut[1]["partial"] != nil {
		t.Fatalf("bars from inside a day: %v, %v", cut[0], cut[1])
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}
