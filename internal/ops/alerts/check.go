package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Alert is one alert as a Prometheus server holds it: pending while its
// condition has held for less than its `for`, then firing.
type Alert struct {
	Name        string            `json:"name"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Component   string            `json:"component"`
	Since       time.Time         `json:"since"`
	Summary     string            `json:"summary"`
	Value       string            `json:"value"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Fetch reads the alerts of the Prometheus server at base from its HTTP
// API (GET /api/v1/alerts), sorted by state (firing first), severity and
// name.
func Fetch(ctx context.Context, client *http.Client, base string) ([]Alert, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/api/v1/alerts")
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("prometheus %q: not an http(s) URL", base)
	}
	where := u.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", where, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", where, err)
	}
	// Prometheus answers errors with a JSON body too (status "error").
	var doc struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			Alerts []struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
				State       string            `json:"state"`
				ActiveAt    time.Time         `json:"activeAt"`
				Value       string            `json:"value"`
			} `json:"alerts"`
		} `json:"data"`
	}
	jsonErr := json.Unmarshal(body, &doc)
	switch {
	case resp.StatusCode != http.StatusOK && jsonErr == nil && doc.Error != "":
		return nil, fmt.Errorf("GET %s: %s: %s: %s", where, resp.Status, doc.ErrorType, doc.Error)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s: %s", where, resp.Status, snippet(body))
	case jsonErr != nil:
		return nil, fmt.Errorf("GET %s: not a Prometheus alerts answer: %v: %s", where, jsonErr, snippet(body))
	case doc.Status != "success":
		return nil, fmt.Errorf("GET %s: status %q: %s %s", where, doc.Status, doc.ErrorType, doc.Error)
	}
	out := make([]Alert, 0, len(doc.Data.Alerts))
	for _, a := range doc.Data.Alerts {
		out = append(out, Alert{
			Name: a.Labels["alertname"], State: a.State, Severity: a.Labels["severity"], Component: a.Labels["component"],
			Since: a.ActiveAt.UTC(), Summary: a.Annotations["summary"], Value: a.Value,
			Labels: a.Labels, Annotations: a.Annotations,
		})
	}
	slices.SortStableFunc(out, func(a, b Alert) int {
		if c := rank(a.State, []string{"firing", "pending"}) - rank(b.State, []string{"firing", "pending"}); c != 0 {
			return c
		}
		if c := rank(a.Severity, Severities) - rank(b.Severity, Severities); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// rank orders known values first, in their order.
func rank(v string, order []string) int {
	if i := slices.Index(order, v); i >= 0 {
		return i
	}
	return len(order)
}

// unwrapURLError drops net/http's repetition of method and URL, which the
// caller's message already has.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// snippet is the start of a body, on one line, for an error message.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// States are the values of Filter.State.
var States = []string{"firing", "pending", "all"}

// Filter selects alerts; an empty field selects all.
type Filter struct {
	State     string // firing, pending or all
	Severity  string
	Component string
	Name      *regexp.Regexp // matched anywhere in the alert's name
}

// Match says whether the filter selects a.
func (f Filter) Match(a Alert) bool {
	return (f.State == "" || f.State == "all" || f.State == a.State) &&
		(f.Severity == "" || f.Severity == a.Severity) &&
		(f.Component == "" || f.Component == a.Component) &&
		(f.Name == nil || f.Name.MatchString(a.Name))
}

// Select returns the alerts f matches.
func (f Filter) Select(alerts []Alert) []Alert {
	out := []Alert{}
	for _, a := range alerts {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	return out
}

// CriticalFiring counts the firing alerts of severity critical.
func CriticalFiring(alerts []Alert) int {
	n := 0
	for _, a := range alerts {
		if a.State == "firing" && a.Severity == "critical" {
			n++
		}
	}
	return n
}

// WriteTable prints alerts as a table, or says there are none.
func WriteTable(w io.Writer, alerts []Alert) error {
	if len(alerts) == 0 {
		_, err := fmt.Fprintln(w, "no alerts")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSEVERITY\tCOMPONENT\tSINCE\tSUMMARY")
	for _, a := range alerts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.State, dash(a.Severity), dash(a.Component),
			a.Since.Format(time.RFC3339), dash(strings.Join(strings.Fields(a.Summary), " ")))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
