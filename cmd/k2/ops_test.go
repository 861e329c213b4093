package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const firingCritical = `{"status":"success","data":{"alerts":[
 {"labels":{"alertname":"ConsumerLagCritical","severity":"critical","component":"ingestion"},
  "annotations":{"summary":"Consumer lag critically high"},"state":"firing","activeAt":"2026-01-02T01:00:00Z","value":"12000"},
 {"labels":{"alertname":"QueryTimeoutRate","severity":"high","component":"query"},
  "annotations":{"summary":"Queries time out"},"state":"firing","activeAt":"2026-01-02T01:00:00Z","value":"1"}]}}`

// k2 ops alerts check exits 2 only when a selected critical alert fires,
// and 1 with a one-line error when the server cannot be read.
func TestOpsAlertsCheckExitStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(firingCritical)) }))
	defer srv.Close()
	out, e, code := run(t, "ops", "alerts", "check", "--prometheus", srv.URL)
	if code != 2 || !strings.Contains(out, "ConsumerLagCritical  firing") || e != "k2: 1 critical alert firing\n" {
		t.Fatalf("critical firing: exit %d, %q\n%s", code, e, out)
	}
	out, _, code = run(t, "ops", "alerts", "check", "--prometheus", srv.URL, "--component", "query", "--json")
	if code != 0 || !strings.HasPrefix(out, `[{"name":"QueryTimeoutRate"`) {
		t.Fatalf("--component query --json: exit %d\n%s", code, out)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>")) }))
	defer bad.Close()
	if _, e, code := run(t, "ops", "alerts", "check", "--prometheus", bad.URL); code != 1 || !strings.Contains(e, bad.URL+"/api/v1/alerts: not a Prometheus alerts answer") {
		t.Fatalf("bad JSON: exit %d, %q", code, e)
	}
	if _, e, code := run(t, "ops", "alerts", "check", "--prometheus", srv.URL, "--state", "open"); code != 1 || !strings.Contains(e, `--state "open": want one of firing, pending, all`) {
		t.Fatalf("--state open: exit %d, %q", code, e)
	}
}

// Under --watch the command runs until its context ends, then exits by
// the last answer.
func TestOpsAlertsCheckWatchStops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(firingCritical)) }))
	defer srv.Close()
	root, _ := newRoot()
	var out strings.Builder
	root.SetOut(&out)
	root.SetArgs([]string{"ops", "alerts", "check", "--prometheus", srv.URL, "--watch", "10ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if code := report(err); code != 2 || strings.Count(out.String(), "ConsumerLagCritical") != 1 {
		t.Fatalf("exit %d; an unchanged answer shown more than once or never:\n%s", code, out.String())
	}
}

// validate exits 1 on problems, and says when promtool is not there.
func TestOpsAlertsValidate(t *testing.T) {
	repo := t.TempDir()
	rules := filepath.Join(repo, "rules.yml")
	os.WriteFile(rules, []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"), 0o644)
	t.Setenv("PATH", t.TempDir())
	out, e, code := run(t, "ops", "alerts", "validate", "--rules", rules, "--repo", repo)
	for _, want := range []string{
		"promtool not found on PATH: promtool check rules skipped (give --promtool)\n",
		rules + ": A: no severity label\n",
		"1 file, 1 alert (syntax and completeness): 7 problems\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 || e != "k2: alert rules: 7 problems\n" {
		t.Errorf("exit %d, %q", code, e)
	}
}
