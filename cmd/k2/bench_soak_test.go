package main

import (
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// k2 bench soak runs k2 up as a child for a while, reports a sample per
// interval, judges the targets, draws the plot, and leaves no k2 up
// running and no scratch directory behind.
func TestBenchSoakSamplesAPlotAndLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	plotPath := filepath.Join(dir, "soak.png")
	cmd := exec.Command(k2Binary(t), "--log-level", "warn", "--data-dir", dir, "bench", "soak",
		"--for", "40s", "--every", "10s", "--rate", "200", "--json", "--plot", plotPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("k2 bench soak: %v: %s", err, stderr.String())
	}
	if left := processesUnder(t, dir); len(left) > 0 {
		t.Errorf("k2 processes still running after the soak: %q", left)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "k2-bench-soak-*")); len(m) > 0 {
		t.Errorf("scratch directory left behind: %v", m)
	}

	var rep struct {
		Samples []struct {
			Tables []struct {
				Table        string   `json:"table"`
				Rows         int64    `json:"rows"`
				DataFiles    int64    `json:"data_files"`
				Snapshots    int      `json:"snapshots"`
				MetadataJSON int64    `json:"metadata_json_bytes"`
				CommitP50    *float64 `json:"commit_p50_ms"`
				CommitP99    *float64 `json:"commit_p99_ms"`
			} `json:"tables"`
			LatestP50 *float64 `json:"latest_100_p50_ms"`
			LatestP99 *float64 `json:"latest_100_p99_ms"`
			BarsP50   *float64 `json:"bars_1m_p50_ms"`
			BarsP99   *float64 `json:"bars_1m_p99_ms"`
			CPU       *float64 `json:"cpu_cores"`
			RSS       int64    `json:"rss_bytes"`
		} `json:"samples"`
		Checks []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"checks"`
		Plot string `json:"plot"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := rep.Samples
	if len(s) < 3 {
		t.Fatalf("%d samples in 40s at one per 10s, want at least 3:\n%s", len(s), out)
	}
	first, last := s[0], s[len(s)-1]
	var tables []string
	for i, tb := range last.Tables {
		tables = append(tables, tb.Table)
		if tb.Rows <= first.Tables[i].Rows || tb.DataFiles == 0 || tb.Snapshots == 0 || tb.MetadataJSON == 0 {
			t.Errorf("%s: rows %d → %d, %d files, %d snapshots, metadata.json %d bytes: want growing rows, files and snapshots",
				tb.Table, first.Tables[i].Rows, tb.Rows, tb.DataFiles, tb.Snapshots, tb.MetadataJSON)
		}
	}
	if !slices.Equal(tables, []string{"trades", "quotes"}) {
		t.Errorf("tables %v", tables)
	}
	commits, queries := false, false
	for _, x := range s {
		if x.CPU == nil || *x.CPU <= 0 || x.RSS <= 0 {
			t.Errorf("sample without k2 up's CPU or RSS: cpu %v rss %d", x.CPU, x.RSS)
		}
		for _, tb := range x.Tables {
			commits = commits || tb.CommitP50 != nil && tb.CommitP99 != nil && *tb.CommitP50 > 0 && *tb.CommitP99 >= *tb.CommitP50
		}
		queries = queries || x.LatestP50 != nil && x.LatestP99 != nil && x.BarsP50 != nil && x.BarsP99 != nil
	}
	if !commits || !queries {
		t.Errorf("commit quantiles in some sample: %v; query quantiles: %v\n%s", commits, queries, out)
	}
	judged := map[string]bool{}
	for _, c := range rep.Checks {
		judged[c.Name] = c.Status == "pass" || c.Status == "fail" || c.Status == "n/a"
	}
	if !judged["memory: k2 up RSS"] || !judged["flat: k2 up RSS"] || !judged["flat: trades data files"] {
		t.Errorf("checks %+v", rep.Checks)
	}

	if rep.Plot != plotPath {
		t.Errorf("plot written to %q, want %q", rep.Plot, plotPath)
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 600 || b.Dx() > 4000 || b.Dy() > 4000 {
		t.Errorf("plot is %dx%d pixels", b.Dx(), b.Dy())
	}
}

// processesUnder lists the command lines of running processes that name
// dir (Linux; elsewhere none are found).
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		if line := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(line, dir) {
			out = append(out, line)
		}
	}
	return out
}
