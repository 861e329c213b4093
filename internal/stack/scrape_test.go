package stack

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads a process's /metrics over its HTTP listener in the text
// exposition format, as a Prometheus scrape does, and parses it: what a
// scraper stores, after the handler's encoding, not the registry in memory.
func scrape(t *testing.T, r *running) prometheus.Gatherer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.HTTPAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", r.Role(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", r.Role(), resp.Status)
	}
	if f := expfmt.ResponseFormat(resp.Header); f.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("scraping %s: Content-Type %q, not the text format", r.Role(), resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scraping %s: %v", r.Role(), err)
	}
	mfs := slices.SortedFunc(maps.Values(byName), func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })
}

// maxSeries bounds the series (label sets, before a histogram's buckets)
// of one family in one process's scrape. K2's labels come from its code
// and configuration: the largest family is the sink's dead letters, one
// series per topic and reason its kind can have (540 in k2 up: 24 topics);
// the next, the producers' errors (280). Twice the largest leaves room for
// an exchange or record kind more; a label that grows with the data (ids,
// times, paths, clients) passes it in hours of a live feed, and past it
// a few such families swamp a Prometheus of several instances.
const maxSeries = 1000

// constantFamilies have one series for the life of the process whose
// labels describe the binary (a revision is a hex id, a version may hold
// a date): bounded by being constant, not by their look.
var constantFamilies = []string{"k2_build_info", "go_info"}

// unboundedLooks are label values that a bounded vocabulary never has.
var unboundedLooks = []struct {
	what string
	re   *regexp.Regexp
}{
	{"a UUID", regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)},
	{"an id or epoch time (6 digits or more)", regexp.MustCompile(`[0-9]{6,}`)},
	{"a hex id", regexp.MustCompile(`(?i)\b[0-9a-f]{16,}\b`)},
	{"a date or time", regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}:[0-9]{2}`)},
	{"an IP address", regexp.MustCompile(`\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b`)},
	{"a query string", regexp.MustCompile(`\?.*=`)},
}

// pathLike is a value naming an HTTP path, with or without its method;
// routeTemplate is what such a value must be: literal segments (a word,
// v1) and {wildcards}, never a segment a client chose (an id, a symbol).
var (
	pathLike      = regexp.MustCompile(`^(?:[A-Z]+ )?/`)
	routeTemplate = regexp.MustCompile(`^(?:[A-Z]+ )?(?:/(?:[a-z][a-z0-9_.-]*|\{[a-z_]+(?:\.\.\.)?\}|\{\$\})?)+$`)
)

// unbounded says which families of a scrape have more series than
// maxSeries, and which label values look drawn from the data rather than
// from a vocabulary of K2's: each such value is a new series, for ever.
func unbounded(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	for _, mf := range mfs {
		if n := len(mf.GetMetric()); n > maxSeries {
			problems = append(problems, fmt.Sprintf("%s has %d series (more than %d)", mf.GetName(), n, maxSeries))
		}
		if slices.Contains(constantFamilies, mf.GetName()) {
			continue
		}
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				l, v := lp.GetName(), lp.GetValue()
				if seen[l+"="+v] {
					continue
				}
				seen[l+"="+v] = true
				if why := unboundedValue(v); why != "" {
					problems = append(problems, fmt.Sprintf("%s{%s=%q}: %s", mf.GetName(), l, v, why))
				}
			}
		}
	}
	return problems
}

// unboundedValue says why v looks unbounded ("" when it does not).
func unboundedValue(v string) string {
	for _, u := range unboundedLooks {
		if u.re.MatchString(v) {
			return "looks like " + u.what
		}
	}
	switch {
	case pathLike.MatchString(v) && !routeTemplate.MatchString(v):
		return "a path, not a route template"
	case len(v) > 100:
		return "free text (over 100 bytes)"
	case strings.Contains(v, " ") && !pathLike.MatchString(v):
		return "free text (has a space)"
	}
	return ""
}
