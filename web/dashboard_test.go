package web_test

// The dashboard in a real browser: k2 up with BHP loaded in two commits and
// the synthetic feed on, and web/e2e/dashboard.test.mjs driving the system's
// Chromium through Playwright against it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/testutil"
)

// missingTool skips the test for a tool it lacks, or fails it under
// K2_TEST_REQUIRE_SERVICES=1 (CI).
func missingTool(t *testing.T, what string) {
	t.Helper()
	msg := what + " (cd web && npm ci; Chromium: apt-get install chromium, or K2_TEST_CHROMIUM)"
	if os.Getenv(testutil.EnvRequireServices) == "1" {
		t.Fatalf("%s; %s=1", msg, testutil.EnvRequireServices)
	}
	t.Skip(msg)
}

// nodeWith finds node and the npm packages a test runs.
func nodeWith(t *testing.T, packages ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missingTool(t, "node is not on PATH")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join("node_modules", p)); err != nil {
			missingTool(t, "web/node_modules lacks "+p)
		}
	}
	return node
}

// browserTools finds node, Playwright and Chromium.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	node = nodeWith(t, "playwright-core")
	chromium = os.Getenv("K2_TEST_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missingTool(t, "no Chromium at "+chromium)
	}
	return node, chromium
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// partialASX writes the ASX sample with BHP's trades cut in the middle of
// 11 March 2014 (and its quotes to 10 March): loaded before the whole
// sample, it makes an older snapshot in which that day's chart differs.
func partialASX(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, dir := range []string{"trades", "quotes", "reference-data"} {
		if err := os.MkdirAll(filepath.Join(dst, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(src, "reference-data", "company_info.csv"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, "reference-data", "company_info.csv"), b, 0o644)
	cut := func(kind string, keep func(date string, nth, ofDay int) bool) {
		b, err := os.ReadFile(filepath.Join(src, kind, "7078.csv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		perDay := map[string]int{}
		for _, l := range lines {
			perDay[strings.SplitN(l, ",", 2)[0]]++
		}
		var out strings.Builder
		seen := map[string]int{}
		for _, l := range lines {
			d := strings.SplitN(l, ",", 2)[0]
			seen[d]++
			if keep(d, seen[d], perDay[d]) {
				out.WriteString(l)
			}
		}
		os.WriteFile(filepath.Join(dst, kind, "7078.csv"), []byte(out.String()), 0o644)
	}
	cut("trades", func(d string, n, of int) bool { return d == "03/10/2014" || d == "03/11/2014" && n <= of/2 })
	cut("quotes", func(d string, _, _ int) bool { return d == "03/10/2014" })
	return dst
}

func TestDashboardInBrowser(t *testing.T) {
	node, chromium := browserTools(t)
	asx := testutil.Data(t, "asx")
	dir := t.TempDir()
	k2 := filepath.Join(dir, "k2")
	run(t, "go", "build", "-o", k2, "../cmd/k2")
	data := filepath.Join(dir, "data")
	run(t, k2, "--data-dir", data, "--log-level", "warn", "load", "asx", partialASX(t, asx))
	// A second apart: a time at a whole second (the as-of field's step)
	// falls between the two loads' commits.
	time.Sleep(time.Second)
	run(t, k2, "--data-dir", data, "--log-level", "warn", "load", "asx", asx)

	httpAddr, broker, registry := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	up := exec.CommandContext(ctx, k2, "--data-dir", data, "--log-level", "warn", "up",
		"--http-listen", httpAddr, "--broker-listen", broker, "--registry-listen", registry,
		"--api-rate-limit", "off", "--feed", "synth", "--symbols", "BTCUSD", "--rate", "1000")
	up.Cancel = func() error { return up.Process.Signal(os.Interrupt) }
	up.WaitDelay = 15 * time.Second
	logs, _ := up.StderrPipe()
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	logged := make(chan struct{})
	go func() { // k2's warnings, in the test's log
		defer close(logged)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			t.Log("k2 up:", sc.Text())
		}
	}()
	t.Cleanup(func() {
		cancel()
		up.Wait()
		<-logged
	})
	// Ready when the sink has committed the feed's first trades: the
	// picker lists BTCUSD, and the lake has a snapshot after the loads'.
	base := "http://" + httpAddr
	deadline := time.Now().Add(90 * time.Second)
	for {
		if res, err := http.Get(base + "/v1/symbols?format=list"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(b), `"BTCUSD"`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the synthetic feed's trades were not in the lake within 90 s")
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A sink's /metrics, as a cluster's k2 api reads it beside its own:
	// seven partitions behind by 100 to 700 messages, so that the pipeline
	// view's lag per partition has lines known in advance (k2 up's own
	// sink keeps up with the feed, and shows none).
	const lagTopic = "market.crypto.trades.sinkbehind"
	sinkMetrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE k2_kafka_consumer_lag_messages gauge")
		for i := range 7 {
			fmt.Fprintf(w, "k2_kafka_consumer_lag_messages{topic=%q,partition=\"%d\"} %d\n", lagTopic, i, (i+1)*100)
		}
	}))
	t.Cleanup(sinkMetrics.Close)

	// A second listener over the same lake and broker that asks for a key:
	// k2 api, the role a cluster runs, with one key.
	keyedAddr := testutil.FreeAddr(t)
	const key = "dash-7f3a91c2"
	keyed := exec.CommandContext(ctx, k2, "--data-dir", data, "--log-level", "warn", "api",
		"--http-listen", keyedAddr, "--brokers", broker, "--registry", "http://"+registry,
		"--api-keys", "dash:"+key, "--api-rate-limit", "off", "--api-pipeline-metrics", sinkMetrics.URL+"/metrics")
	keyed.Cancel = func() error { return keyed.Process.Signal(os.Interrupt) }
	keyed.WaitDelay = 15 * time.Second
	keyed.Stderr = testWriter{t, "k2 api: "}
	if err := keyed.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); keyed.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if res, err := http.Get("http://" + keyedAddr + "/ready"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("k2 api with a key was not ready within 30 s")
		}
	}

	artifacts := os.Getenv("K2_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.ArtifactDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", "--test-reporter", "spec", filepath.Join("e2e", "dashboard.test.mjs"))
	cmd.Env = append(os.Environ(), "K2_URL="+base, "K2_KEYED_URL=http://"+keyedAddr, "K2_KEY="+key, "K2_LAG_TOPIC="+lagTopic,
		"K2_ARTIFACTS="+artifacts, "K2_TEST_CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the browser test failed: %v", err)
	}
	t.Log(fmt.Sprintf("screenshots in %s", artifacts))
}

// testWriter logs a process's output in the test's log, a line a write.
type testWriter struct {
	t      *testing.T
	prefix string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
