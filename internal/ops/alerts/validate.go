// Package alerts checks K2's Prometheus alert rules before they are
// deployed (Validate) and reads the alerts a Prometheus server holds
// (Fetch, Watch): the work behind k2 ops alerts.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
)

// DefaultRules is the rules file k2 ops alerts validate reads when given
// none, relative to the repository root.
var DefaultRules = filepath.Join("deploy", "prometheus", "rules", "k2-alerts.yml")

// DefaultDashboards is the directory of the project's Grafana dashboards,
// one JSON file each, relative to the repository root: every dashboard_url
// must name the uid of one of them.
var DefaultDashboards = filepath.Join("deploy", "grafana", "dashboards")

// RunbookSections are the headings every alert's runbook has, in this
// order (docs/operations/runbooks/README.md): what the page looks like,
// what it costs, how to find the cause, how to fix it, how to know it is
// fixed.
var RunbookSections = []string{"Symptoms", "Impact", "Diagnose", "Recover", "Verify"}

// Severities are the levels an alert may have: the seed's three.
var Severities = []string{"critical", "high", "medium"}

// Every alert carries these, so whoever is paged knows how bad it is,
// whose it is, what happened and where to look.
var (
	requiredLabels      = []string{"severity", "component", "team"}
	requiredAnnotations = []string{"summary", "description", "runbook_url", "dashboard_url"}
)

// Problem is one thing wrong with a rules file; Alert is empty when the
// problem is the file's.
type Problem struct {
	File  string `json:"file"`
	Alert string `json:"alert,omitempty"`
	What  string `json:"problem"`
}

func (p Problem) String() string {
	if p.Alert == "" {
		return p.File + ": " + p.What
	}
	return p.File + ": " + p.Alert + ": " + p.What
}

// Options say what Validate reads.
type Options struct {
	Files []string
	// Repo is the directory runbook paths are relative to, and whose
	// DefaultDashboards hold the dashboards dashboard_url may name.
	Repo string
	// Promtool is the promtool to run `check rules` with; empty skips it.
	Promtool string
}

// Report is what Validate found.
type Report struct {
	Files    int       `json:"files"`
	Alerts   int       `json:"alerts"`
	Promtool string    `json:"promtool,omitempty"`
	Problems []Problem `json:"problems"`
}

// OK says whether nothing is wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Validate checks each file's syntax (Prometheus's rulefmt, which parses
// every expression with the PromQL parser and every template), runs promtool on the files that parse, and
// checks every alert is complete: labels, annotations, a runbook that
// exists in the repository and a dashboard link to one of its dashboards.
func Validate(ctx context.Context, opts Options) Report {
	r := Report{Files: len(opts.Files), Promtool: opts.Promtool, Problems: []Problem{}}
	seen := map[string]string{}
	// The dashboards are read at the first link to check, so that rules
	// without links need no dashboards; a directory that cannot be read is
	// one problem, and no link is checked then.
	var dash *dashboards
	uids := func() *dashboards {
		if dash == nil {
			dash = readDashboards(filepath.Join(opts.Repo, DefaultDashboards))
			r.Problems = append(r.Problems, dash.problems...)
		}
		return dash
	}
	for _, file := range opts.Files {
		groups, errs := rulefmt.ParseFile(file)
		for i, err := range errs {
			// rulefmt decodes twice, so a YAML error comes twice.
			if p := syntaxProblem(file, err); i == 0 || p != syntaxProblem(file, errs[i-1]) {
				r.Problems = append(r.Problems, p)
			}
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			for _, rule := range g.Rules {
				name := rule.Alert.Value
				if name == "" {
					continue // a recording rule: no one is paged by it
				}
				r.Alerts++
				add := func(format string, args ...any) {
					r.Problems = append(r.Problems, Problem{File: file, Alert: name, What: fmt.Sprintf(format, args...)})
				}
				if other, ok := seen[name]; ok {
					add("also defined in %s", other)
				}
				seen[name] = file
				checkAlert(opts.Repo, rule, add)
				if link := rule.Annotations["dashboard_url"]; link != "" {
					if d := uids(); d.err == nil {
						if what := d.linkProblem(link); what != "" {
							add("%s", what)
						}
					}
				}
			}
		}
		// promtool reads only files that parsed: on the others it would
		// repeat the parser's complaint.
		if opts.Promtool != "" && len(errs) == 0 {
			for _, line := range runPromtool(ctx, opts.Promtool, file) {
				r.Problems = append(r.Problems, Problem{File: file, What: "promtool: " + line})
			}
		}
	}
	return r
}

// syntaxProblem names the alert a parser error is about when it can.
func syntaxProblem(file string, err error) Problem {
	var re *rulefmt.Error
	if errors.As(err, &re) {
		return Problem{File: file, Alert: re.RuleName, What: fmt.Sprintf("group %q, rule %d: %v", re.Group, re.Rule, re.Err.Error())}
	}
	return Problem{File: file, What: strings.TrimPrefix(err.Error(), file+": ")}
}

func checkAlert(repo string, rule rulefmt.RuleNode, add func(string, ...any)) {
	for _, l := range requiredLabels {
		if rule.Labels[l] == "" {
			add("no %s label", l)
		}
	}
	if s := rule.Labels["severity"]; s != "" && !slices.Contains(Severities, s) {
		add("severity %q is not one of %s", s, strings.Join(Severities, ", "))
	}
	for _, a := range requiredAnnotations {
		if rule.Annotations[a] == "" {
			add("no %s annotation", a)
		}
	}
	if rb := rule.Annotations["runbook_url"]; rb != "" {
		if what := runbookProblem(repo, rb, rule.Alert.Value); what != "" {
			add("%s", what)
		}
	}
}

// runbookProblem says why a runbook_url does not lead to alert's runbook:
// it must be a path in the repository, so the runbook is reviewed with the
// rule, to a page titled with the alert's name that has every section.
func runbookProblem(repo, rb, alert string) string {
	if u, err := url.Parse(rb); err == nil && u.Scheme != "" {
		return fmt.Sprintf("runbook_url %s is a URL, not a path in the repository", rb)
	}
	if filepath.IsAbs(rb) || !filepath.IsLocal(filepath.FromSlash(rb)) {
		return fmt.Sprintf("runbook_url %s is outside the repository", rb)
	}
	fi, err := os.Stat(filepath.Join(repo, filepath.FromSlash(rb)))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("runbook %s does not exist", rb)
	case err != nil:
		return fmt.Sprintf("runbook %s: %v", rb, err)
	case fi.IsDir():
		return fmt.Sprintf("runbook %s is a directory", rb)
	}
	text, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(rb)))
	if err != nil {
		return fmt.Sprintf("runbook %s: %v", rb, err)
	}
	return runbookContentProblem(rb, alert, string(text))
}

// runbookContentProblem says what a runbook's text lacks: a first line
// "# <alert>" (or "# <alert> — what it means") and a "## " heading of each
// of RunbookSections, in order.
func runbookContentProblem(rb, alert, text string) string {
	first, rest, _ := strings.Cut(text, "\n")
	if title := strings.TrimSpace(strings.TrimPrefix(first, "# ")); !strings.HasPrefix(first, "# ") ||
		(title != alert && !strings.HasPrefix(title, alert+" ")) {
		return fmt.Sprintf("runbook %s does not start with the heading # %s", rb, alert)
	}
	next := 0 // the index in RunbookSections of the next heading expected
	for _, line := range strings.Split(rest, "\n") {
		h, ok := strings.CutPrefix(strings.TrimRight(line, " \r"), "## ")
		if ok && next < len(RunbookSections) && strings.TrimSpace(h) == RunbookSections[next] {
			next++
		}
	}
	if missing := RunbookSections[next:]; len(missing) > 0 {
		return fmt.Sprintf("runbook %s lacks the sections %s (in this order: %s)", rb,
			strings.Join(missing, ", "), strings.Join(RunbookSections, ", "))
	}
	return ""
}

// dashboards are the uids of a directory's Grafana dashboards.
type dashboards struct {
	dir      string
	uids     map[string]string // uid → file
	err      error             // the directory could not be read
	problems []Problem         // dashboards that could not be read
}

// readDashboards reads the uid of every *.json in dir. A file that is not
// a dashboard with a uid is a problem: Grafana would give it a random uid,
// so no link could name it.
func readDashboards(dir string) *dashboards {
	d := &dashboards{dir: dir, uids: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err == nil && len(files) == 0 {
		if _, err = os.Stat(dir); err == nil {
			err = errors.New("no *.json dashboards")
		}
	}
	if err != nil {
		d.err = err
		d.problems = append(d.problems, Problem{File: dir, What: fmt.Sprintf("dashboard links not checked: %v", err)})
		return d
	}
	for _, f := range files {
		var v struct {
			UID string `json:"uid"`
		}
		b, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		switch {
		case err != nil:
			d.problems = append(d.problems, Problem{File: f, What: fmt.Sprintf("dashboard: %v", err)})
		case v.UID == "":
			d.problems = append(d.problems, Problem{File: f, What: "dashboard has no uid"})
		case d.uids[v.UID] != "":
			d.problems = append(d.problems, Problem{File: f, What: fmt.Sprintf("dashboard uid %q is also %s's", v.UID, d.uids[v.UID])})
		default:
			d.uids[v.UID] = f
		}
	}
	return d
}

// grafanaLink is the path of a Grafana dashboard's address,
// [<sub path>]/d/<uid>[/<slug>], the uid its first group.
var grafanaLink = regexp.MustCompile(`(?:^|/)d/([^/]+)(?:/[^/]*)?$`)

// linkProblem says why a dashboard_url does not lead to one of d's
// dashboards: it must be a Grafana address whose uid is one of theirs.
func (d *dashboards) linkProblem(link string) string {
	u, err := url.Parse(link)
	var m []string
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		m = grafanaLink.FindStringSubmatch(u.Path)
	}
	if m == nil {
		return fmt.Sprintf("dashboard_url %s is not a Grafana dashboard's address (http(s)://<grafana>/d/<uid>)", link)
	}
	if _, ok := d.uids[m[1]]; !ok {
		known := slices.Sorted(maps.Keys(d.uids))
		return fmt.Sprintf("dashboard_url %s names dashboard %q, which is not one of %s (%s)", link, m[1], d.dir, strings.Join(known, ", "))
	}
	return ""
}

// runPromtool returns promtool's complaints about file, none when it
// passes.
func runPromtool(ctx context.Context, promtool, file string) []string {
	out, err := exec.CommandContext(ctx, promtool, "check", "rules", file).CombinedOutput()
	if err == nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "Checking ") || l == "FAILED:" {
			continue
		}
		lines = append(lines, l)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || len(lines) == 0 {
		lines = append(lines, fmt.Sprintf("%s check rules %s: %v", promtool, file, err))
	}
	return lines
}
