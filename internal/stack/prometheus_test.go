package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// A real Prometheus with deploy/prometheus/prometheus.yml (its k2 up
// target moved to where the test's runs, scraping every second) scrapes
// k2 up and loads every alert rule, none of them failing to evaluate.
func TestPrometheusScrapesK2AndLoadsTheRules(t *testing.T) {
	t.Parallel()
	bin := testsvc.Prometheus(t)
	cfg := testConfig(t)
	cfg.Feed.Rate = 200
	up := start(t, "up", cfg, Parts{Embedded: true, Sink: true, Maintain: true, API: true, Feed: "synth", FeedMayFail: true})

	root := testutil.RepoRoot(t)
	var conf map[string]any
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	conf["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	conf["rule_files"] = []string{filepath.Join(root, rulesDir, rulesFile)}
	moved := false
	for _, sc := range conf["scrape_configs"].([]any) {
		sc := sc.(map[string]any)
		for _, st := range sc["static_configs"].([]any) {
			targets := st.(map[string]any)["targets"].([]any)
			for i, tg := range targets {
				if tg == "127.0.0.1:8000" { // k2 up's default
					targets[i], moved = up.HTTPAddr(), true
				}
			}
		}
	}
	if !moved {
		t.Fatal("prometheus.yml has no target at k2 up's default address 127.0.0.1:8000")
	}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "prometheus.yml")
	out, _ := yaml.Marshal(conf)
	if err := os.WriteFile(confFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	log, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus.log:\n%s", b)
		}
	})
	base := "http://" + addr

	// k2 up is scraped: its up is 1 and its own series are stored.
	for _, q := range []string{`up{job="k2-api",instance="` + up.HTTPAddr() + `"}`, `sum(k2_kafka_messages_consumed_total)`} {
		testutil.WaitFor(t, "Prometheus to hold "+q, 60*time.Second, func() bool {
			var r struct {
				Data struct {
					Result []struct {
						Value [2]any `json:"value"`
					} `json:"result"`
				} `json:"data"`
			}
			return promGet(base+"/api/v1/query?query="+url.QueryEscape(q), &r) == nil &&
				len(r.Data.Result) > 0 && r.Data.Result[0].Value[1] != "0"
		})
	}
	// Every rule is loaded, and each has been evaluated without error (a
	// group evaluates first within its own interval, up to a minute).
	var problem string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := promGet(base+"/api/v1/rules?type=alert", &r); err != nil {
			problem = err.Error()
		} else {
			n := 0
			var bad []string
			for _, g := range r.Data.Groups {
				for _, rule := range g.Rules {
					n++
					if rule.Health != "ok" {
						bad = append(bad, fmt.Sprintf("%s: %s %s", rule.Name, rule.Health, rule.LastError))
					}
				}
			}
			switch {
			case n != 21:
				problem = fmt.Sprintf("%d alert rules loaded, want 21", n)
			case len(bad) > 0:
				problem = "not evaluated cleanly: " + strings.Join(bad, "; ")
			default:
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal(problem)
		}
	}
}

// promGet reads a Prometheus API answer into v.
func promGet(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
