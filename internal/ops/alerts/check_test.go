package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// alertsJSON is what Prometheus answers on /api/v1/alerts.
const alertsJSON = `{"status":"success","data":{"alerts":[
 {"labels":{"alertname":"QueryTimeoutRate","severity":"high","component":"query","instance":"a:9090"},
  "annotations":{"summary":"Queries time out"},"state":"pending","activeAt":"2026-01-02T03:04:05.5+01:00","value":"1e+00"},
 {"labels":{"alertname":"ConsumerLagCritical","severity":"critical","component":"ingestion","topic":"t"},
  "annotations":{"summary":"Consumer lag\n critically high"},"state":"firing","activeAt":"2026-01-02T01:00:00Z","value":"12000"},
 {"labels":{"alertname":"DiskSpaceLow","severity":"medium","component":"infrastructure"},
  "annotations":{},"state":"firing","activeAt":"2026-01-02T00:00:00Z","value":"0.1"}
]}}`

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/alerts" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

func TestFetchFilterAndTable(t *testing.T) {
	t.Parallel()
	url := serve(t, answer(200, alertsJSON))
	all, err := Fetch(context.Background(), http.DefaultClient, url+"/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range all {
		names = append(names, a.Name)
	}
	// Firing first, then by severity.
	if got := strings.Join(names, " "); got != "ConsumerLagCritical DiskSpaceLow QueryTimeoutRate" {
		t.Fatalf("order %s", got)
	}
	if CriticalFiring(all) != 1 {
		t.Errorf("critical firing: %d", CriticalFiring(all))
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{State: "all"}, "ConsumerLagCritical DiskSpaceLow QueryTimeoutRate"},
		{Filter{State: "firing"}, "ConsumerLagCritical DiskSpaceLow"},
		{Filter{State: "pending"}, "QueryTimeoutRate"},
		{Filter{Severity: "critical"}, "ConsumerLagCritical"},
		{Filter{Component: "query"}, "QueryTimeoutRate"},
		{Filter{Name: regexp.MustCompile("^(Disk|Query)")}, "DiskSpaceLow QueryTimeoutRate"},
		{Filter{State: "pending", Severity: "critical"}, ""},
	} {
		var got []string
		for _, a := range c.f.Select(all) {
			got = append(got, a.Name)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%+v: %v, want %s", c.f, got, c.want)
		}
	}
	var b bytes.Buffer
	WriteTable(&b, all)
	want := `NAME                 STATE    SEVERITY  COMPONENT       SINCE                 SUMMARY
ConsumerLagCritical  firing   critical  ingestion       2026-01-02T01:00:00Z  Consumer lag critically high
DiskSpaceLow         firing   medium    infrastructure  2026-01-02T00:00:00Z  -
QueryTimeoutRate     pending  high      query           2026-01-02T02:04:05Z  Queries time out
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	WriteTable(&b, nil)
	if b.String() != "no alerts\n" {
		t.Errorf("empty table: %q", b.String())
	}
	// The JSON a script reads.
	js, _ := json.Marshal(all[0])
	for _, s := range []string{`"name":"ConsumerLagCritical"`, `"state":"firing"`, `"severity":"critical"`, `"since":"2026-01-02T01:00:00Z"`, `"value":"12000"`, `"topic":"t"`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("JSON %s lacks %s", js, s)
		}
	}
}

// Each failure says what went wrong and where.
func TestFetchErrors(t *testing.T) {
	t.Parallel()
	down := serve(t, answer(200, alertsJSON))
	closed := httptest.NewServer(nil)
	closed.Close()
	for _, c := range []struct {
		name, url, want string
	}{
		{"unreachable", closed.URL, "GET " + closed.URL + "/api/v1/alerts: dial tcp"},
		{"not a URL", "localhost:9090", `prometheus "localhost:9090": not an http(s) URL`},
		{"not 200", serve(t, answer(503, "overloaded")), "/api/v1/alerts: 503 Service Unavailable: overloaded"},
		{"Prometheus error", serve(t, answer(422, `{"status":"error","errorType":"execution","error":"boom"}`)), "/api/v1/alerts: 422 Unprocessable Entity: execution: boom"},
		{"malformed JSON", serve(t, answer(200, `{"status":"success","data":{"alerts":[`)), "/api/v1/alerts: not a Prometheus alerts answer: unexpected end of JSON input"},
		{"wrong path", down + "/prefix", "/prefix/api/v1/alerts: 404 Not Found: 404 page not found"},
	} {
		_, err := Fetch(context.Background(), http.DefaultClient, c.url)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// Watch shows the first answer and then only changes, errors included, and
// stops when its context is canceled.
func TestWatchShowsChangesUntilCanceled(t *testing.T) {
	t.Parallel()
	answers := []string{"a", "a", "b", "", "", "b"} // "" is a failed poll
	var polls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	var shown []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, time.Millisecond, func(context.Context) (string, error) {
			i := int(polls.Add(1)) - 1
			if i >= len(answers) {
				cancel()
				return "", ctx.Err()
			}
			if answers[i] == "" {
				return "", context.DeadlineExceeded
			}
			return answers[i], nil
		}, func(out string, err error) {
			if err != nil {
				out = "error"
			}
			shown = append(shown, out)
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not stop when its context was canceled")
	}
	if got := strings.Join(shown, " "); got != "a b error b" {
		t.Fatalf("shown %q, want a b error b", got)
	}
}
