package stack

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/replay"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The Grafana dashboards, one per row of the original's dashboard. The
// provisioned Prometheus data source has uid "prometheus"
// (deploy/grafana/provisioning).
var (
	dashboardsDir  = filepath.Join("deploy", "grafana", "dashboards")
	dashboardFiles = []string{"k2-api.json", "k2-pipeline.json", "k2-storage.json", "k2-query.json", "k2-system.json"}
	datasourceUID  = "prometheus"
)

type dashboard struct {
	UID           string
	Title         string
	SchemaVersion int
	Panels        []panel
	Templating    struct{ List []variable }
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *dsRef
	GridPos    *struct{ H, W, X, Y int }
	Targets    []target
	Panels     []panel // a collapsed row's
}

type target struct {
	Expr       string
	RefID      string
	Datasource *dsRef
}

type dsRef struct{ Type, UID string }

type variable struct {
	Name    string
	Current struct{ Value string }
}

func readDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	out := map[string]dashboard{}
	for _, name := range dashboardFiles {
		b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), dashboardsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = d
	}
	return out
}

// grafanaVar is a variable in a query: $name, ${name} or [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]`)

// expand replaces Grafana's variables in expr as Grafana would when the
// dashboard opens: the built-in intervals by 5m, the dashboard's own
// variables by their current values. An unknown variable is an error.
func expand(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		p := grafanaVar.FindStringSubmatch(m)
		name := p[1] + p[2] + p[3]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		if v, ok := vars[name]; ok {
			return v
		}
		unknown = append(unknown, name)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %v", unknown)
	}
	return out, nil
}

// panelQuery is one panel target's PromQL, variables expanded, and where it is.
type panelQuery struct{ where, expr string }

// dashboardQueries are every target's PromQL, expanded; the problems are
// the ways the dashboards are not well formed.
func dashboardQueries(t *testing.T) (queries []panelQuery, problems []string) {
	t.Helper()
	uids := map[string]string{}
	for name, d := range readDashboards(t) {
		bad := func(format string, args ...any) { problems = append(problems, name+": "+fmt.Sprintf(format, args...)) }
		if d.UID == "" || d.Title == "" {
			bad("no uid or title")
		}
		if other, ok := uids[d.UID]; ok {
			bad("uid %q is %s's too", d.UID, other)
		}
		uids[d.UID] = name
		if d.SchemaVersion < 36 {
			bad("schemaVersion %d (want 36 or later)", d.SchemaVersion)
		}
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Current.Value
		}
		ids := map[int]bool{}
		var all []panel
		for _, p := range d.Panels {
			all = append(all, p)
			all = append(all, p.Panels...)
		}
		if len(all) == 0 {
			bad("no panels")
		}
		for _, p := range all {
			if ids[p.ID] || p.ID <= 0 {
				bad("panel id %d is not unique and positive (%q)", p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
				bad("panel %d has no title or place", p.ID)
			}
			if p.Type == "row" {
				continue
			}
			where := fmt.Sprintf("%s: %q", name, p.Title)
			if len(p.Targets) == 0 {
				bad("%q has no target", p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != datasourceUID {
				bad("%q: data source %+v, want uid %q", p.Title, p.Datasource, datasourceUID)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != datasourceUID {
					bad("%q target %s: data source %+v, want uid %q", p.Title, tg.RefID, tg.Datasource, datasourceUID)
				}
				if tg.RefID == "" || refs[tg.RefID] {
					bad("%q: refId %q empty or repeated", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				expr, err := expand(tg.Expr, vars)
				if err == nil && strings.TrimSpace(expr) == "" {
					err = fmt.Errorf("no expression")
				}
				if err == nil {
					_, err = parser.ParseExpr(expr)
				}
				if err != nil {
					bad("%q target %s: %v", p.Title, tg.RefID, err)
					continue
				}
				queries = append(queries, panelQuery{where + " " + tg.RefID, expr})
			}
		}
	}
	return queries, problems
}

// Each dashboard is well formed: its own uid, unique panel ids, every
// panel titled and placed with at least one target on the provisioned
// data source, and every query valid PromQL once Grafana's variables are
// expanded. What the queries name is checked against a live K2 in
// TestAlertRulesReadWhatK2Exports.
func TestDashboardsAreWellFormed(t *testing.T) {
	t.Parallel()
	queries, problems := dashboardQueries(t)
	for _, p := range problems {
		t.Error(p)
	}
	if len(queries) < 5*5 {
		t.Errorf("%d queries in all: the dashboards are nearly empty", len(queries))
	}
	// The checks catch what they are for.
	if _, err := expand(`rate(k2_${nope}_total[$__rate_interval])`, nil); err == nil {
		t.Error("an unknown variable passes")
	}
	if got, _ := expand(`rate(k2_${exchange}_x[$__rate_interval])`, map[string]string{"exchange": "binance"}); got != "rate(k2_binance_x[5m])" {
		t.Errorf("expanded to %q", got)
	}
}

// dashboardsReadWhatIsExported checks every dashboard query against the
// series a live K2 exports (see unexported).
func dashboardsReadWhatIsExported(t *testing.T, exported series) {
	t.Helper()
	queries, problems := dashboardQueries(t)
	if len(problems) > 0 {
		t.Errorf("the dashboards are not well formed (TestDashboardsAreWellFormed): %d problems", len(problems))
	}
	for _, q := range queries {
		for _, p := range unexported(q.expr, exported) {
			t.Errorf("dashboard %s: %s", q.where, p)
		}
	}
}

// replayFeed runs a Binance feed role against recorded BTCUSDT traffic
// played at its own pace, producing to up's broker: the feed metrics the
// dashboards show exist only in a process with an exchange connection.
func replayFeed(t *testing.T, up *running) *running {
	t.Helper()
	c, err := replay.Load(testutil.Data(t, "binance", "ws", "spot_btcusdt_20240808.gz"))
	if err != nil {
		t.Fatal(err)
	}
	srv := replay.New(c, replay.Options{Speed: 1})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	cfg := testConfig(t)
	cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(up.Brokers(), ","), up.RegistryURL()
	cfg.Feed.Symbols, cfg.Feed.URLs, cfg.Feed.RESTURL = []string{"BTCUSDT"}, []string{"ws" + strings.TrimPrefix(hs.URL, "http")}, "none"
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	feed := start(t, "feed", cfg, Parts{Feed: "binance"})
	testutil.WaitFor(t, "the Binance feed's first records", 30*time.Second, func() bool {
		return ops.Sum(feed.Metrics(), "k2_binance_messages_received_total") > 0
	})
	return feed
}

// gatherAll is the series of several processes, as one Prometheus holds them.
func gatherAll(t *testing.T, gs ...prometheus.Gatherer) series {
	t.Helper()
	out := series{}
	for _, g := range gs {
		for name, labels := range gather(t, g) {
			if out[name] == nil {
				out[name] = map[string][]string{}
			}
			for l, vs := range labels {
				if _, ok := out[name][l]; !ok || vs != nil {
					out[name][l] = slices.Concat(out[name][l], vs)
				}
			}
		}
	}
	return out
}

// dashboardLink is the uid in a Grafana dashboard's address.
var dashboardLink = regexp.MustCompile(`/d/([^/?#]+)`)

// Each alert links the dashboard that plots what it reads: at least one
// metric of its expression is in a panel there, so whoever is paged sees
// the alert's series beside the rest. k2 ops alerts validate only checks
// that the dashboard exists.
func TestAlertsLinkTheDashboardOfWhatTheyRead(t *testing.T) {
	t.Parallel()
	plotted := map[string]map[string]bool{} // uid → metric names its panels read
	for name, d := range readDashboards(t) {
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Current.Value
		}
		plotted[d.UID] = map[string]bool{}
		var all []panel
		for _, p := range d.Panels {
			all = append(all, p)
			all = append(all, p.Panels...)
		}
		for _, p := range all {
			for _, tg := range p.Targets {
				expr, err := expand(tg.Expr, vars)
				if err != nil {
					t.Fatalf("%s %q: %v", name, p.Title, err)
				}
				for _, m := range metricNames(t, expr) {
					plotted[d.UID][m] = true
				}
			}
		}
	}
	for _, a := range readAlerts(t) {
		m := dashboardLink.FindStringSubmatch(a.Annotations["dashboard_url"])
		if m == nil {
			t.Errorf("%s: dashboard_url %q names no dashboard", a.Alert, a.Annotations["dashboard_url"])
			continue
		}
		shown, ok := plotted[m[1]]
		if !ok {
			t.Errorf("%s: dashboard %q is not in %s", a.Alert, m[1], dashboardsDir)
			continue
		}
		reads := metricNames(t, a.Expr)
		if !slices.ContainsFunc(reads, func(n string) bool { return shown[n] }) {
			t.Errorf("%s links dashboard %s, which plots none of %v", a.Alert, m[1], reads)
		}
	}
}

// metricNames are the metrics a PromQL expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !slices.Contains(out, vs.Name) {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}
