package alerts

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// goodRule is one complete alert; tests damage a copy.
const goodRule = `groups:
  - name: g
    rules:
      - alert: SinkDown
        expr: up{job="k2-sink"} == 0
        for: 1m
        labels:
          severity: critical
          component: ingestion
          team: data-platform
        annotations:
          summary: "Sink {{ $labels.instance }} is down"
          description: The sink has not answered a scrape for a minute.
          runbook_url: docs/operations/runbooks/SinkDown.md
          dashboard_url: https://grafana.example/d/sink
`

// goodRunbook is SinkDown's runbook with every section; tests damage a copy.
const goodRunbook = `# SinkDown — the sink's process is not answering

## Symptoms
## Impact
## Diagnose
## Recover
## Verify
`

// fixture writes a repository holding rules, the dashboard "sink" (and
// SinkDown's runbook unless noRunbook) and returns its root and the rules
// file.
func fixture(t *testing.T, rules string, noRunbook bool) (repo, file string) {
	return fixtureRunbook(t, rules, noRunbook, goodRunbook)
}

func fixtureRunbook(t *testing.T, rules string, noRunbook bool, runbook string) (repo, file string) {
	t.Helper()
	repo = t.TempDir()
	file = filepath.Join(repo, "rules.yml")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	dash := filepath.Join(repo, DefaultDashboards, "sink.json")
	if err := os.MkdirAll(filepath.Dir(dash), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dash, []byte(`{"uid": "sink", "title": "Sink", "panels": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if !noRunbook {
		rb := filepath.Join(repo, "docs", "operations", "runbooks", "SinkDown.md")
		if err := os.MkdirAll(filepath.Dir(rb), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rb, []byte(runbook), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo, file
}

func problems(r Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestValidateFixtures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, rules string
		noRunbook   bool
		runbook     string // SinkDown.md, when not goodRunbook
		want        string // the one problem, after "rules.yml: "
	}{
		{name: "good", rules: goodRule},
		{name: "missing runbook", rules: goodRule, noRunbook: true, want: "SinkDown: runbook docs/operations/runbooks/SinkDown.md does not exist"},
		{name: "runbook of another alert", rules: goodRule, runbook: strings.Replace(goodRunbook, "# SinkDown", "# SinkSlow", 1),
			want: "SinkDown: runbook docs/operations/runbooks/SinkDown.md does not start with the heading # SinkDown"},
		{name: "runbook title only", rules: goodRule, runbook: "# SinkDown\n",
			want: "SinkDown: runbook docs/operations/runbooks/SinkDown.md lacks the sections Symptoms, Impact, Diagnose, Recover, Verify (in this order: Symptoms, Impact, Diagnose, Recover, Verify)"},
		{name: "runbook without Verify", rules: goodRule, runbook: strings.Replace(goodRunbook, "## Verify\n", "", 1),
			want: "SinkDown: runbook docs/operations/runbooks/SinkDown.md lacks the sections Verify (in this order: Symptoms, Impact, Diagnose, Recover, Verify)"},
		{name: "missing label", rules: strings.Replace(goodRule, "          team: data-platform\n", "", 1), want: "SinkDown: no team label"},
		{name: "missing summary", rules: strings.Replace(goodRule, `          summary: "Sink {{ $labels.instance }} is down"`+"\n", "", 1), want: "SinkDown: no summary annotation"},
		{name: "missing dashboard", rules: strings.Replace(goodRule, "          dashboard_url: https://grafana.example/d/sink\n", "", 1), want: "SinkDown: no dashboard_url annotation"},
		{name: "dashboard that does not exist", rules: strings.Replace(goodRule, "/d/sink", "/d/kafka-consumer", 1),
			want: `SinkDown: dashboard_url https://grafana.example/d/kafka-consumer names dashboard "kafka-consumer", which is not one of %DASH% (sink)`},
		{name: "dashboard with a slug", rules: strings.Replace(goodRule, "/d/sink", "/grafana/d/sink/sink-health?orgId=1", 1)},
		{name: "dashboard by its file", rules: strings.Replace(goodRule, "https://grafana.example/d/sink", "deploy/grafana/dashboards/sink.json", 1),
			want: "SinkDown: dashboard_url deploy/grafana/dashboards/sink.json is not a Grafana dashboard's address (http(s)://<grafana>/d/<uid>)"},
		{name: "dashboard list, not one", rules: strings.Replace(goodRule, "/d/sink", "/dashboards", 1),
			want: "SinkDown: dashboard_url https://grafana.example/dashboards is not a Grafana dashboard's address (http(s)://<grafana>/d/<uid>)"},
		{name: "unknown severity", rules: strings.Replace(goodRule, "severity: critical", "severity: urgent", 1), want: `SinkDown: severity "urgent" is not one of critical, high, medium`},
		{name: "runbook URL", rules: strings.Replace(goodRule, "runbook_url: docs", "runbook_url: https://example.com/docs", 1), want: "SinkDown: runbook_url https://example.com/docs/operations/runbooks/SinkDown.md is a URL, not a path in the repository"},
		{name: "runbook outside", rules: strings.Replace(goodRule, "runbook_url: docs", "runbook_url: ../docs", 1), want: "SinkDown: runbook_url ../docs/operations/runbooks/SinkDown.md is outside the repository"},
		{name: "bad PromQL", rules: strings.Replace(goodRule, `up{job="k2-sink"} == 0`, `sum by (instance (up) == 0`, 1), want: `SinkDown: group "g", rule 1: 5:15: could not parse expression: 1:18: parse error: unexpected "(" in grouping opts, expected "," or ")"`},
		{name: "bad YAML", rules: strings.Replace(goodRule, "    rules:", "    rules: [", 1), want: "yaml: line 3: did not find expected node content"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runbook := goodRunbook
			if c.runbook != "" {
				runbook = c.runbook
			}
			repo, file := fixtureRunbook(t, c.rules, c.noRunbook, runbook)
			r := Validate(context.Background(), Options{Files: []string{file}, Repo: repo})
			got := problems(r)
			if c.want == "" {
				if !r.OK() || r.Alerts != 1 {
					t.Fatalf("%d alerts, problems %q", r.Alerts, got)
				}
				return
			}
			want := []string{file + ": " + strings.ReplaceAll(c.want, "%DASH%", filepath.Join(repo, DefaultDashboards))}
			if r.OK() || !slices.Equal(got, want) {
				t.Fatalf("problems\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// An alert defined in two files is reported; so is a file that is not
// there.
func TestValidateRepeatsAndMissingFile(t *testing.T) {
	t.Parallel()
	repo, file := fixture(t, goodRule, false)
	second := filepath.Join(repo, "second.yml")
	if err := os.WriteFile(second, []byte(goodRule), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(repo, "missing.yml")
	r := Validate(context.Background(), Options{Files: []string{file, second, missing}, Repo: repo})
	want := []string{
		second + ": SinkDown: also defined in " + file,
		missing + ": open " + missing + ": no such file or directory",
	}
	if got := problems(r); !slices.Equal(got, want) {
		t.Fatalf("problems\n%q\nwant\n%q", got, want)
	}
}

// Without the dashboards no link can be checked: that is said once, not
// once per alert, and the rest is still checked.
func TestValidateWithoutDashboards(t *testing.T) {
	t.Parallel()
	second := strings.Replace(strings.ReplaceAll(goodRule, "SinkDown", "SinkSlow"), "name: g", "name: h", 1)
	repo, file := fixture(t, goodRule+strings.TrimPrefix(second, "groups:\n"), false)
	dir := filepath.Join(repo, DefaultDashboards)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r := Validate(context.Background(), Options{Files: []string{file}, Repo: repo})
	want := []string{
		dir + ": dashboard links not checked: stat " + dir + ": no such file or directory",
		file + ": SinkSlow: runbook docs/operations/runbooks/SinkSlow.md does not exist",
	}
	if got := problems(r); r.Alerts != 2 || !slices.Equal(got, want) {
		t.Fatalf("%d alerts, problems\n%q\nwant\n%q", r.Alerts, got, want)
	}
}

// A dashboard file Grafana could not be linked to is a problem: not JSON,
// no uid, or another's uid.
func TestValidateBadDashboards(t *testing.T) {
	t.Parallel()
	repo, file := fixture(t, goodRule, false)
	dir := filepath.Join(repo, DefaultDashboards)
	for name, text := range map[string]string{"broken.json": "{", "nouid.json": `{"title": "x"}`, "twin.json": `{"uid": "sink"}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := Validate(context.Background(), Options{Files: []string{file}, Repo: repo})
	want := []string{
		filepath.Join(dir, "broken.json") + ": dashboard: unexpected end of JSON input",
		filepath.Join(dir, "nouid.json") + ": dashboard has no uid",
		filepath.Join(dir, "twin.json") + `: dashboard uid "sink" is also ` + filepath.Join(dir, "sink.json") + "'s",
	}
	if got := problems(r); !slices.Equal(got, want) {
		t.Fatalf("problems\n%q\nwant\n%q", got, want)
	}
}

// promtool passes good rules.
func TestValidateRunsPromtool(t *testing.T) {
	t.Parallel()
	promtool := testsvc.Promtool(t)
	repo, file := fixture(t, goodRule, false)
	if r := Validate(context.Background(), Options{Files: []string{file}, Repo: repo, Promtool: promtool}); !r.OK() {
		t.Fatalf("good rules: %q", problems(r))
	}
}

// What a failing promtool says is reported, without its headings.
func TestValidateReportsPromtool(t *testing.T) {
	t.Parallel()
	repo, file := fixture(t, goodRule, false)
	fake := filepath.Join(t.TempDir(), "promtool")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"Checking $3\"\necho '  FAILED:'\necho 'rules are wrong'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := Validate(context.Background(), Options{Files: []string{file}, Repo: repo, Promtool: fake})
	if want := []string{file + ": promtool: rules are wrong"}; !slices.Equal(problems(r), want) {
		t.Fatalf("problems %q, want %q", problems(r), want)
	}
}

// The repository's rules parse and are complete, promtool accepts them,
// every alert's runbook exists with its sections and its dashboard link
// names one of deploy/grafana/dashboards.
func TestValidateRepositoryRules(t *testing.T) {
	t.Parallel()
	repo := testutil.RepoRoot(t)
	opts := Options{Files: []string{filepath.Join(repo, DefaultRules)}, Repo: repo}
	opts.Promtool = os.Getenv(testsvc.EnvPromtool) // checked too when the test services are up
	r := Validate(context.Background(), opts)
	if r.Alerts != 21 {
		t.Errorf("%d alerts, want 21", r.Alerts)
	}
	for _, p := range r.Problems {
		t.Errorf("%s", p)
	}
}
