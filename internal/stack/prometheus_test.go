package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/ops/alerts"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// A real Prometheus with deploy/prometheus/prometheus.yml (its targets
// moved to where the test's processes run, scraping every second) scrapes
// k2 up and every distributed role (broker, sink, feed, maintain, api)
// under its job, and loads every alert rule, none failing to evaluate.
func TestPrometheusScrapesK2AndLoadsTheRules(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Feed.Rate = 200
	up := start(t, "up", cfg, Parts{Embedded: true, Sink: true, Maintain: true, API: true, Feed: "synth", FeedMayFail: true})
	b := newBoundary(t)
	feed := start(t, "feed", b.remote(func(c *config.Config) { c.Feed.Rate = 200 }), Parts{Feed: "synth"})
	maint := start(t, "maintain", b.remote(func(c *config.Config) { c.Maintain.Every = time.Second }), Parts{Maintain: true})

	roles := map[string]*running{ // prometheus.yml's default target: the process there
		"127.0.0.1:8000": up, "127.0.0.1:8001": b.broker, "127.0.0.1:8002": b.sink,
		"127.0.0.1:8003": feed, "127.0.0.1:8004": maint, "127.0.0.1:8005": b.api,
	}
	moves := map[string]string{}
	for from, st := range roles {
		moves[from] = st.HTTPAddr()
	}
	base := startPrometheus(t, moves, filepath.Join(testutil.RepoRoot(t), rulesDir, rulesFile))

	// Every role is scraped under its job: its up is 1.
	jobs := map[string]string{"127.0.0.1:8000": "k2-api", "127.0.0.1:8001": "k2-broker", "127.0.0.1:8002": "k2-sink",
		"127.0.0.1:8003": "k2-feed", "127.0.0.1:8004": "k2-maintain", "127.0.0.1:8005": "k2-api"}
	var ups []string
	for from, job := range jobs {
		ups = append(ups, `up{job="`+job+`",instance="`+moves[from]+`"}`)
	}
	// And the roles' own series are stored.
	for _, q := range append(ups, `sum(k2_kafka_messages_consumed_total)`, `sum(k2_kafka_messages_produced_total{job="k2-feed"})`,
		`sum(k2_maintenance_runs_total{job="k2-maintain"})`) {
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

// startPrometheus runs Debian's Prometheus with deploy/prometheus/
// prometheus.yml, scraping and evaluating every second, its default
// targets moved as moves says (each must be in the file), with rules; it
// returns the server's URL. It stops with the test.
func startPrometheus(t *testing.T, moves map[string]string, rules string) string {
	t.Helper()
	bin := testsvc.Prometheus(t)
	var conf map[string]any
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	conf["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	conf["rule_files"] = []string{rules}
	moved := 0
	for _, sc := range conf["scrape_configs"].([]any) {
		for _, st := range sc.(map[string]any)["static_configs"].([]any) {
			targets := st.(map[string]any)["targets"].([]any)
			for i, tg := range targets {
				if to, ok := moves[tg.(string)]; ok {
					targets[i] = to
					moved++
				}
			}
		}
	}
	if moved != len(moves) {
		t.Fatalf("prometheus.yml has %d of the %d default targets %v", moved, len(moves), moves)
	}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "prometheus.yml")
	out, _ := yaml.Marshal(conf)
	if err := os.WriteFile(confFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
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
	return "http://" + addr
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

// drillFactor scales the rules down for the drills: a `for` of 15m
// becomes 15 s and a range of [10m] 10 s, so an alert goes through
// pending, firing and resolved within a test.
const drillFactor = 60

// scaledRules writes the alert rules with every `for` and range selector
// divided by factor and every group evaluated each second, and returns
// the file.
func scaledRules(t *testing.T, factor int) string {
	t.Helper()
	var f struct {
		Groups []map[string]any `yaml:"groups"`
	}
	readYAML(t, rulesFile, &f)
	scale := func(d string) string {
		v, err := model.ParseDuration(d)
		if err != nil {
			t.Fatalf("duration %q: %v", d, err)
		}
		return model.Duration(max(time.Duration(v)/time.Duration(factor), time.Second)).String()
	}
	ranges := regexp.MustCompile(`\[([0-9]+[smhdwy])(:[0-9]+[smhdwy])?\]`)
	for _, g := range f.Groups {
		g["interval"] = "1s"
		for _, r := range g["rules"].([]any) {
			r := r.(map[string]any)
			if d, ok := r["for"].(string); ok {
				r["for"] = scale(d)
			}
			r["expr"] = ranges.ReplaceAllStringFunc(r["expr"].(string), func(m string) string {
				p := ranges.FindStringSubmatch(m)
				out := "[" + scale(p[1])
				if p[2] != "" {
					out += ":" + scale(p[2][1:])
				}
				return out + "]"
			})
		}
	}
	out, _ := yaml.Marshal(f)
	path := filepath.Join(t.TempDir(), "k2-alerts-scaled.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// alertState is an alert's state in a Prometheus server: inactive,
// pending or firing.
func alertState(t *testing.T, base, name string) string {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := promGet(base+"/api/v1/alerts", &r); err != nil {
		return "unknown: " + err.Error()
	}
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name {
			return a.State
		}
	}
	return "inactive"
}

// A drill on live processes (broker, sink, feed) with the rules scaled
// down drillFactor times: while the feed runs NoDataIngested is silent;
// with the feed stopped it goes pending, then firing, from the sink's
// metrics as Prometheus scrapes them; a feed again resolves it.
func TestPrometheusDrillNoDataIngested(t *testing.T) {
	t.Parallel()
	b := newBoundary(t)
	feed := start(t, "feed", b.remote(func(c *config.Config) { c.Feed.Rate = 200 }), Parts{Feed: "synth"})
	base := startPrometheus(t, map[string]string{"127.0.0.1:8002": b.sink.HTTPAddr()}, scaledRules(t, drillFactor))

	flowing := `sum(rate(k2_kafka_messages_consumed_total[10s])) > 0`
	testutil.WaitFor(t, "Prometheus to see the sink consume", 60*time.Second, func() bool {
		var r struct {
			Data struct{ Result []any } `json:"data"`
		}
		return promGet(base+"/api/v1/query?query="+url.QueryEscape(flowing), &r) == nil && len(r.Data.Result) > 0
	})
	// Before the first records it may have been pending: it is not now.
	testutil.WaitFor(t, "NoDataIngested silent while data flows", 30*time.Second, func() bool {
		return alertState(t, base, "NoDataIngested") == "inactive"
	})
	feed.stop(t)
	for _, want := range []string{"pending", "firing"} {
		testutil.WaitFor(t, "NoDataIngested "+want, 60*time.Second, func() bool { return alertState(t, base, "NoDataIngested") == want })
	}
	// What k2 ops alerts check shows an operator: the alert firing, with
	// the labels and runbook the rules give it.
	all, err := alerts.Fetch(context.Background(), http.DefaultClient, base)
	if err != nil {
		t.Fatal(err)
	}
	firing := alerts.Filter{State: "firing", Name: regexp.MustCompile("^NoDataIngested$")}.Select(all)
	if len(firing) != 1 || firing[0].Severity != "high" || firing[0].Component != "ingestion" ||
		!strings.HasSuffix(firing[0].Annotations["runbook_url"], "NoDataIngested.md") {
		t.Fatalf("k2 ops alerts check's view of NoDataIngested: %+v", firing)
	}
	start(t, "feed", b.remote(func(c *config.Config) { c.Feed.Rate = 200 }), Parts{Feed: "synth"})
	testutil.WaitFor(t, "NoDataIngested to resolve", 60*time.Second, func() bool {
		return alertState(t, base, "NoDataIngested") == "inactive"
	})
}

// A drill on live processes with the rules scaled down drillFactor times:
// stopping the broker's process makes KafkaBrokerDown go pending, then
// firing (its scrape, which reports the topics' end offsets, is gone);
// the broker started again on its data and addresses resolves it, and the
// sink goes on consuming.
func TestPrometheusDrillKafkaBrokerDown(t *testing.T) {
	t.Parallel()
	bcfg := testConfig(t)
	bcfg.Embedded.BrokerListen, bcfg.Embedded.RegistryListen, bcfg.HTTP.Listen = testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	if err := bcfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	broker := start(t, "broker", bcfg, Parts{Embedded: true})
	scfg := testConfig(t)
	scfg.Kafka.Brokers, scfg.Kafka.Registry = strings.Join(broker.Brokers(), ","), broker.RegistryURL()
	if err := scfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	sink := start(t, "sink", scfg, Parts{Sink: true})
	fcfg := scfg
	fcfg.Feed.Rate = 100
	start(t, "feed", fcfg, Parts{Feed: "synth"}) // the topics exist
	base := startPrometheus(t, map[string]string{"127.0.0.1:8001": broker.HTTPAddr()}, scaledRules(t, drillFactor))

	brokerAlertQuiet(t, base)
	broker.stop(t)
	broker.Close()
	alertFires(t, base, "KafkaBrokerDown", 60*time.Second)
	consumed := sink.Sink().Stats().Consumed
	start(t, "broker", bcfg, Parts{Embedded: true})
	testutil.WaitFor(t, "KafkaBrokerDown to resolve", 60*time.Second, func() bool {
		return alertState(t, base, "KafkaBrokerDown") == "inactive"
	})
	testutil.WaitFor(t, "the sink to consume again", 60*time.Second, func() bool { return sink.Sink().Stats().Consumed > consumed })
}

// The same drill on a deployment with a Kafka cluster of its own, the
// test tier's Apache Kafka: the sink exports the end offsets of the topics
// it reads, asking the brokers at each scrape; with the broker stopped
// KafkaBrokerDown goes pending, then firing, and with the broker back on
// its data it resolves and the sink stores trades again.
func TestPrometheusDrillKafkaBrokerDownApacheKafka(t *testing.T) {
	t.Parallel()
	brokers := testsvc.Kafka(t)
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() { srv.Close(); reg.Close() })
	prefix := testsvc.KafkaTopicPrefix(t)
	remote := func(edit func(*config.Config)) config.Config {
		cfg := testConfig(t)
		cfg.Kafka.Brokers, cfg.Kafka.Registry, cfg.Kafka.TopicPrefix = brokers, srv.URL, prefix
		edit(&cfg)
		if err := cfg.Resolve(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// The feed makes the topics first: a sink started before them would
	// find them only at its next look (up to 10 s).
	start(t, "feed", remote(func(c *config.Config) { c.Feed.Rate = 100 }), Parts{Feed: "synth"})
	sink := start(t, "sink", remote(func(c *config.Config) { c.HTTP.Listen = testutil.FreeAddr(t) }), Parts{Sink: true})
	base := startPrometheus(t, map[string]string{"127.0.0.1:8002": sink.HTTPAddr()}, scaledRules(t, drillFactor))

	brokerAlertQuiet(t, base)
	var written int64
	testsvc.WhileKafkaDown(t, func() {
		alertFires(t, base, "KafkaBrokerDown", 60*time.Second)
		written = sink.Sink().Stats().Written
	})
	testutil.WaitFor(t, "KafkaBrokerDown to resolve", 60*time.Second, func() bool {
		return alertState(t, base, "KafkaBrokerDown") == "inactive"
	})
	testutil.WaitFor(t, "the sink to store trades again", 60*time.Second, func() bool { return sink.Sink().Stats().Written > written })
}

// brokerAlertQuiet waits until Prometheus holds the topics' end offsets
// and KafkaBrokerDown is inactive: before the first scrape nothing was
// there, and it may have fired then.
func brokerAlertQuiet(t *testing.T, base string) {
	t.Helper()
	testutil.WaitFor(t, "Prometheus to hold the topics' end offsets", 60*time.Second, func() bool {
		var r struct {
			Data struct{ Result []any } `json:"data"`
		}
		return promGet(base+"/api/v1/query?query=k2_kafka_topic_end_offset", &r) == nil && len(r.Data.Result) > 0
	})
	testutil.WaitFor(t, "KafkaBrokerDown silent with the broker up", 30*time.Second, func() bool {
		return alertState(t, base, "KafkaBrokerDown") == "inactive"
	})
}

// alertFires waits, each step at most within, for an alert to go pending
// and then firing.
func alertFires(t *testing.T, base, name string, within time.Duration) {
	t.Helper()
	for _, want := range []string{"pending", "firing"} {
		testutil.WaitFor(t, name+" "+want, within, func() bool { return alertState(t, base, name) == want })
	}
}

// A drill on live processes with the rules scaled down drillFactor times:
// a sink committing every record on its own (batches of one row: a
// snapshot per record, as slow as a lake taking a commit per record)
// cannot keep up with a feed of 2,000 trades a second; its lag, as
// Prometheus scrapes it, passes ConsumerLagCritical's 10,000 records and
// the alert goes pending, then firing. The runbook's remedy, the sink
// restarted on the same address with its default batches, catches up and
// resolves it while the feed runs, and the table then holds every trade
// the feed produced, once.
func TestPrometheusDrillConsumerLag(t *testing.T) {
	t.Parallel()
	const trades = 60_000
	b := newBoundary(t)
	sinkAddr := testutil.FreeAddr(t)
	sinkCfg := func(batchRows int) config.Config {
		return b.remote(func(c *config.Config) {
			c.HTTP.Listen, c.Sink.Group = sinkAddr, "lag-drill"
			c.Sink.BatchRows = batchRows
		})
	}
	slow := start(t, "sink", sinkCfg(1), Parts{Sink: true})
	start(t, "feed", b.remote(func(c *config.Config) { c.Feed.Rate, c.Feed.MaxTrades = 2000, trades }), Parts{Feed: "synth"})
	base := startPrometheus(t, map[string]string{"127.0.0.1:8002": sinkAddr}, scaledRules(t, drillFactor))
	alertFires(t, base, "ConsumerLagCritical", 90*time.Second)
	written := slow.Sink().Stats().Written
	slow.stop(t)
	slow.Close()
	fast := start(t, "sink", sinkCfg(0), Parts{Sink: true})
	// Resolved by the new sink's own scraped lag, not by its series being
	// gone: the sink has read past the backlog and Prometheus holds its
	// lag under the threshold.
	under := `sum by (instance, topic) (k2_kafka_consumer_lag_messages{instance="` + sinkAddr + `"}) < 10000`
	testutil.WaitFor(t, "ConsumerLagCritical to resolve on the caught-up sink's lag", 90*time.Second, func() bool {
		var r struct {
			Data struct{ Result []any } `json:"data"`
		}
		return fast.Sink().Stats().Consumed > 10_000 &&
			promGet(base+"/api/v1/query?query="+url.QueryEscape(under), &r) == nil && len(r.Data.Result) > 0 &&
			alertState(t, base, "ConsumerLagCritical") == "inactive"
	})
	testutil.WaitFor(t, "every trade in the table", 90*time.Second, func() bool {
		if laketest.Rows(t, fast.Lake(), "trades") >= trades {
			return true
		}
		time.Sleep(time.Second) // a scan of the table each time
		return false
	})
	keys := laketest.Keys(t, fast.Lake(), "trades", "symbol", "trade_id")
	if len(keys) != trades || len(laketest.Repeated(keys)) > 0 {
		t.Fatalf("trades table: %d distinct ids, %d repeated; want %d once each", len(keys), len(laketest.Repeated(keys)), trades)
	}
	t.Logf("the slow sink wrote %d rows before it was replaced", written)
}
