package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// k2 bench api builds a small lake, runs k2 up over it with the live
// feed, loads both routes over HTTP, checks answers, profiles the server,
// and leaves no k2 up running and (without --keep) no lake behind.
func TestBenchAPILoadsBothRoutesAndLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(k2Binary(t), "--log-level", "warn", "--data-dir", dir, "bench", "api",
		"--trades", "5k", "--symbols", "5", "--feed-rate", "200", "--duration", "2s", "--warmup", "0",
		"--profile-for", "1s", "--check-every", "5", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("k2 bench api: %v: %s", err, stderr.String())
	}
	if left := processesUnder(t, dir); len(left) > 0 {
		t.Errorf("k2 processes still running after the benchmark: %q", left)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "k2-bench-api-*")); len(m) > 0 {
		t.Errorf("lake left behind without --keep: %v", m)
	}
	var rep struct {
		Results []struct {
			Name   string  `json:"name"`
			Rows   int     `json:"rows"`
			Value  float64 `json:"value"`
			Detail string  `json:"detail"`
		} `json:"results"`
		Checks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Detail string `json:"detail"`
		} `json:"checks"`
		Profiles []struct {
			Run    string            `json:"run"`
			Shares []json.RawMessage `json:"shares"`
			Top    []json.RawMessage `json:"top_functions"`
		} `json:"cpu_profiles"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	figures := map[string]float64{}
	for _, r := range rep.Results {
		figures[r.Name] = r.Value
		if r.Rows < 5000 {
			t.Errorf("%s: %d rows in the lake, want at least the 5,000 built", r.Name, r.Rows)
		}
	}
	for _, sc := range []string{"latest 100 trades", "1m bars of an hour"} {
		if figures[sc+", requests/s"] <= 0 || figures[sc+", p99"] <= 0 {
			t.Errorf("%s: %v req/s, p99 %v ms", sc, figures[sc+", requests/s"], figures[sc+", p99"])
		}
		if n, ok := figures[sc+", errors"]; !ok || n != 0 {
			t.Errorf("%s: %v errors (present %v), want 0:\n%s", sc, n, ok, out)
		}
	}
	if b := figures["latest 100 trades, mean answer"]; b < 20_000 {
		t.Errorf("latest 100 trades answer %v bytes on average, want the ~40 KB of 100 trades", b)
	}
	if len(rep.Checks) != 6 {
		t.Errorf("%d checks, want rate, p99 and errors for each of 2 scenarios", len(rep.Checks))
	}
	for _, c := range rep.Checks {
		if strings.HasSuffix(c.Name, "errors 0") && c.Status != "pass" {
			t.Errorf("%s: %s (%s)", c.Name, c.Status, c.Detail)
		}
	}
	if len(rep.Profiles) != 4 {
		t.Fatalf("%d profiles, want server and load generator for each scenario", len(rep.Profiles))
	}
	for _, p := range rep.Profiles {
		// The load generator may go unsampled in a second; the server not.
		if strings.Contains(p.Run, "server") && (len(p.Shares) == 0 || len(p.Top) == 0) {
			t.Errorf("profile %q: %d parts, %d top functions", p.Run, len(p.Shares), len(p.Top))
		}
	}
}
