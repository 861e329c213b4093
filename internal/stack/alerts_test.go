package stack

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The alert rules and their promtool unit tests. They are tested here,
// beside the process whose /metrics they read.
var (
	rulesDir      = filepath.Join("deploy", "prometheus", "rules")
	rulesFile     = "k2-alerts.yml"
	ruleTestsFile = "k2-alerts_test.yml"
)

// external are the series the rules read that no K2 process exports, with
// their labels: Prometheus's own up, postgres_exporter's pg_up and
// node_exporter's file system and memory gauges.
var external = map[string][]string{
	"up":                             nil,
	"pg_up":                          nil,
	"node_filesystem_avail_bytes":    {"device", "fstype", "mountpoint"},
	"node_filesystem_size_bytes":     {"device", "fstype", "mountpoint"},
	"node_memory_MemAvailable_bytes": nil,
	"node_memory_MemTotal_bytes":     nil,
}

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = []string{"job", "instance"}

// laterValues are label values K2 gives that no series has when the test
// gathers: no request has failed yet (statusClass in internal/api).
var laterValues = map[string][]string{"k2_http_requests_total status": {"5xx"}}

type alertRule struct {
	Alert       string
	Expr        string
	Labels      map[string]string
	Annotations map[string]string
}

func readAlerts(t *testing.T) []alertRule {
	t.Helper()
	var f struct{ Groups []struct{ Rules []alertRule } }
	readYAML(t, rulesFile, &f)
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), rulesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// promtool validates the rules and runs their unit tests.
func TestAlertRulesPassPromtool(t *testing.T) {
	t.Parallel()
	promtool := testsvc.Promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", ruleTestsFile}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Join(testutil.RepoRoot(t), rulesDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Each of the seed's 21 alerts has its severity, component and team, says
// what happened and where to look (its runbook a path in this repository),
// and has a unit test where it fires and one where it stays silent.
func TestAlertsAreLabelledAndTested(t *testing.T) {
	t.Parallel()
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, ruleTestsFile, &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, g := range tests.Tests {
		for _, a := range g.AlertRuleTest {
			fires[a.Alertname] = fires[a.Alertname] || len(a.ExpAlerts) > 0
			silent[a.Alertname] = silent[a.Alertname] || len(a.ExpAlerts) == 0
		}
	}
	alerts := readAlerts(t)
	if len(alerts) != 21 {
		t.Errorf("%d alerts; the seed report has 21", len(alerts))
	}
	seen := map[string]bool{}
	for _, a := range alerts {
		if seen[a.Alert] {
			t.Errorf("%s: twice", a.Alert)
		}
		seen[a.Alert] = true
		if !slices.Contains([]string{"critical", "high", "medium"}, a.Labels["severity"]) {
			t.Errorf("%s: severity %q", a.Alert, a.Labels["severity"])
		}
		for _, l := range []string{"component", "team"} {
			if a.Labels[l] == "" {
				t.Errorf("%s: no %s label", a.Alert, l)
			}
		}
		for _, n := range []string{"summary", "description", "dashboard_url"} {
			if a.Annotations[n] == "" {
				t.Errorf("%s: no %s annotation", a.Alert, n)
			}
		}
		if want := "docs/operations/runbooks/" + a.Alert + ".md"; a.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, a.Annotations["runbook_url"], want)
		}
		if !fires[a.Alert] || !silent[a.Alert] {
			t.Errorf("%s: %s lacks a test where it fires and one where it is silent", a.Alert, ruleTestsFile)
		}
	}
}

// Every metric an alert or a dashboard panel reads is one a K2 process
// exports (scraped over HTTP from k2 up, which runs every part, and from a
// feed role connected to an exchange, both under load) or one of the
// exporters' listed above, and so is every label it selects or groups by:
// an alert on a name nobody exports is silent forever, a panel on one is
// empty. The scrapes hold the runtime and process collectors, and their
// labels are bounded: no family past maxSeries, no value that looks drawn
// from the data (an id, a time, a raw path).
func TestAlertRulesReadWhatK2Exports(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Feed.Rate = 200
	cfg.API.RouteRateLimits = append(cfg.API.RouteRateLimits, "GET /v1/stats=1/min")
	up := start(t, "up", cfg, Parts{Embedded: true, Sink: true, Maintain: true, API: true, Feed: "synth", FeedMayFail: true})
	feed := replayFeed(t, up)
	// Some series exist once there is something to count: the sink's
	// partitions and sequences, a request answered, refused or failed.
	testutil.WaitFor(t, "the first commit", 30*time.Second, func() bool { return up.Sink().Stats().Written > 0 })
	for _, c := range []struct {
		path string
		code int
	}{
		{"/health", 200}, {"/v1/symbols", 200}, {"/v1/trades?limit=5", 200}, {"/v1/trades?symbol=BTCUSDT&limit=5", 200},
		{"/v1/bars/1m?symbol=BTCUSDT&limit=5", 200}, {"/v1/trades?limit=abc", 400}, {"/v1/stats", 200}, {"/v1/stats", 429},
		// Paths with what a client chose in them, which a route label
		// must not carry (the bounded-labels check below).
		{"/v1/bars/5m?symbol=ETHUSDT&start=2024-08-08T23:54:00Z&limit=5", 200}, {"/v1/trades/3735683259", 404},
		{"/v1/orders/8f14e45f-ceea-467f-a0f1-9d2b4b2c1a10", 404}, {"/nothing/2024-08-08T23:54:00Z", 404},
	} {
		if code, body := up.get(t, c.path); code != c.code {
			t.Fatalf("%s: %d %.200s; want %d", c.path, code, body, c.code)
		}
	}
	// A body over the API's limit (10 MiB), which the size-limit family
	// counts from its first.
	big := strings.NewReader(`{"symbol":"` + strings.Repeat("A", 11<<20) + `"}`)
	if resp, err := http.Post("http://"+up.HTTPAddr()+"/v1/trades/query", "application/json", big); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an 11 MiB body: %s, want 413", resp.Status)
	}
	// What Prometheus would store: each process's /metrics read over its
	// HTTP listener while both feeds run, not the registries in memory.
	scrapes := []struct {
		role string
		g    prometheus.Gatherer
	}{{"up", scrape(t, up)}, {"feed", scrape(t, feed)}}
	for _, s := range scrapes {
		got := gather(t, s.g)
		// The runtime and process collectors, which the system dashboard
		// reads.
		for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
			if _, ok := got[name]; !ok {
				t.Errorf("%s's /metrics has no %s", s.role, name)
			}
		}
		for _, p := range unbounded(t, s.g) {
			t.Errorf("%s's /metrics: %s", s.role, p)
		}
	}
	exported := gatherAll(t, scrapes[0].g, scrapes[1].g)
	dashboardsReadWhatIsExported(t, exported)

	for _, a := range readAlerts(t) {
		for _, p := range unexported(a.Expr, exported) {
			t.Errorf("%s: %s", a.Alert, p)
		}
	}
	// So does every query a runbook gives an operator to paste.
	maps.Copy(exported, feedSeries(t))
	maps.Copy(exported, laterSeries)
	for _, q := range runbookQueries(t) {
		for _, p := range unexported(q.expr, exported) {
			t.Errorf("%s: %s: %s", q.where, q.expr, p)
		}
	}
	// Every family the original exported (reference §6.2) that applies to
	// K2 is exported under the name docs/operations/metrics.md maps it to.
	for _, name := range originalFamilies(t) {
		// Load shedding drops data, so K2 runs it only with a policy an
		// operator gives (internal/resilience tests its family).
		if !exportedFamily(exported, name) && name != "k2_messages_shed_total" {
			t.Errorf("%s, which docs/operations/metrics.md maps an original family to, is not exported", name)
		}
	}
	// The original's defects are caught.
	for _, expr := range []string{
		`kafka_consumer_lag_messages > 1000000`,
		`k2_circuit_breaker_state{state="open"} == 1`,
		`sum(rate(k2_http_requests_total{status_code=~"5.."}[5m]))`,
		`sum by (endpoint) (rate(k2_http_requests_total[5m]))`,
		`rate(kafka_consumer_rebalances_total[15m]) > 0.1`,
		`k2_consumer_errors_total{error_type="rebalance"}`,
	} {
		if len(unexported(expr, exported)) == 0 {
			t.Errorf("%s passes the check", expr)
		}
	}
}

// series are the names Prometheus would store, with each label's values
// (none recorded for le and quantile).
type series map[string]map[string][]string

// gather reads the registry as Prometheus would store it: a histogram as
// its _bucket (with le), _sum and _count series.
func gather(t *testing.T, g prometheus.Gatherer) series {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := series{}
	add := func(name string, lps []*dto.LabelPair, extra ...string) {
		if out[name] == nil {
			out[name] = map[string][]string{}
		}
		for _, lp := range lps {
			out[name][lp.GetName()] = append(out[name][lp.GetName()], lp.GetValue())
		}
		for _, l := range extra {
			if _, ok := out[name][l]; !ok {
				out[name][l] = nil
			}
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m.GetLabel(), "le")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel(), "quantile")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return out
}

// unexported says what an expression reads that is not exported: metric
// names, label names, and label values K2 never gives.
func unexported(expr string, exported series) []string {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	// labelsOf is what a selector's series can be told apart by.
	labelsOf := func(vs *parser.VectorSelector) ([]string, bool) {
		if l, ok := external[vs.Name]; ok {
			return slices.Concat(l, scrapeLabels), true
		}
		fam, ok := exported[vs.Name]
		if !ok {
			return nil, false
		}
		out := slices.Clone(scrapeLabels)
		for l := range fam {
			out = append(out, l)
		}
		return out, true
	}
	// under is every label the selectors below n have.
	under := func(n parser.Node) []string {
		var out []string
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				l, _ := labelsOf(vs)
				out = append(out, l...)
			}
			return nil
		})
		return out
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			known, ok := labelsOf(n)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: no K2 process or listed exporter exports it", n.Name))
				return nil
			}
			for _, m := range n.LabelMatchers {
				switch {
				case m.Name == labels.MetricName:
				case !slices.Contains(known, m.Name):
					problems = append(problems, fmt.Sprintf("%s has no label %s (it has %v)", n.Name, m.Name, known))
				case (m.Type == labels.MatchEqual || m.Type == labels.MatchNotEqual) && !gives(exported, n.Name, m.Name, m.Value):
					problems = append(problems, fmt.Sprintf("no series of %s has %s=%q", n.Name, m.Name, m.Value))
				}
			}
		case *parser.AggregateExpr:
			known := under(n.Expr)
			for _, l := range n.Grouping {
				if !slices.Contains(known, l) {
					problems = append(problems, fmt.Sprintf("%s by %s: none of its series has that label", n.Op, l))
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				known := append(under(n.LHS), under(n.RHS)...)
				for _, l := range n.VectorMatching.MatchingLabels {
					if !slices.Contains(known, l) {
						problems = append(problems, fmt.Sprintf("matching on %s: neither side has that label", l))
					}
				}
			}
		}
		return nil
	})
	return problems
}

// gives says whether K2 gives series of name the label value; true where
// the test cannot tell: an exporter's label, one Prometheus adds, a bucket
// bound.
func gives(exported series, name, label, value string) bool {
	values := exported[name][label]
	return values == nil || slices.Contains(values, value) || slices.Contains(laterValues[name+" "+label], value)
}

// originalFamilies are the K2 metric names docs/operations/metrics.md's
// table of the original's families (reference §6.2) names: the K2 column,
// or the original's name where that says "same name(s)". Rows "not
// applicable" and names with a pattern in them (k2_<exchange>_…) name no
// one family.
func originalFamilies(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "operations", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	from := strings.Index(doc, "## The original's metrics")
	if from < 0 {
		t.Fatal("docs/operations/metrics.md has no section on the original's metrics")
	}
	doc = doc[from+3:]
	if end := strings.Index(doc, "\n## "); end >= 0 {
		doc = doc[:end]
	}
	code := regexp.MustCompile("`([^`]+)`")
	family := regexp.MustCompile(`^(k2|go|process)_[a-z0-9_]+$`)
	names := func(cell string) (out []string) {
		for _, m := range code.FindAllStringSubmatch(cell, -1) {
			if family.MatchString(m[1]) {
				out = append(out, m[1])
			}
		}
		return out
	}
	var out []string
	for _, line := range strings.Split(doc, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "original" {
			continue
		}
		original, k2 := cells[1], cells[2]
		switch {
		case strings.HasPrefix(strings.TrimSpace(k2), "not applicable"):
		case strings.HasPrefix(strings.TrimSpace(k2), "same name"):
			out = append(out, names(original)...)
			out = append(out, names(k2)...)
		default:
			out = append(out, names(k2)...)
		}
	}
	if len(out) < 40 {
		t.Fatalf("only %d families read from docs/operations/metrics.md's table of the original's", len(out))
	}
	return out
}

// exportedFamily says whether a family is among the series, a histogram
// by its _count.
func exportedFamily(s series, name string) bool {
	_, ok := s[name]
	_, hist := s[name+"_count"]
	return ok || hist
}
