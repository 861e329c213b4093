package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// embeddedDrills are the drills on K2's own processes and files.
var embeddedDrills = []string{"broker-kill", "registry-kill", "sink-kill", "api-kill", "up-kill", "broker-data-corrupt", "full-disk", "data-file-corrupt"}

// Every drill on K2's own processes and files runs on real processes and
// recovers with every produced trade stored once, within its RTO.
func TestFaultDrills(t *testing.T) {
	bin := k2Binary(t)
	drills := embeddedDrills
	if why := cannotMountTmpfs(t); why != "" {
		t.Logf("the full-disk drill, which mounts a tmpfs, is left out: %s", why)
		drills = slices.DeleteFunc(slices.Clone(drills), func(d string) bool { return d == "full-disk" })
	}
	report := filepath.Join(t.TempDir(), "drills.md")
	cmd := exec.Command(bin, "ops", "drill", "--repo", "../..", "--work", t.TempDir(), "--report", report, "--only", strings.Join(drills, ","))
	out, err := cmd.CombinedOutput()
	t.Logf("k2 ops drill:\n%s", out)
	if err != nil {
		b, _ := os.ReadFile(report)
		t.Fatalf("k2 ops drill: %v\n%s", err, b)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	// The summary table: | drill | result | faults | worst RTO (target) | produced | in lake | lost | duplicated | took | runbook |
	row := regexp.MustCompile(`(?m)^\| ([a-z-]+) \| (\w+) \| (\d+) \| (\S+) \(≤ 10s\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|`)
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		name, result := m[1], m[2]
		rto, err := time.ParseDuration(m[4])
		produced, _ := strconv.Atoi(m[5])
		inLake, _ := strconv.Atoi(m[6])
		if result != "PASS" || err != nil || rto <= 0 || rto > 10*time.Second || produced == 0 || inLake != produced || m[7] != "0" || m[8] != "0" {
			t.Errorf("%s: %s", name, m[0])
		}
		seen[name] = true
	}
	for _, d := range drills {
		if !seen[d] {
			t.Errorf("the report has no summary row for %s", d)
		}
	}
	// Each drill's own table has a row per fault, each passing.
	if n := strings.Count(string(b), "| **no** |"); n > 0 {
		t.Errorf("%d fault rows did not pass", n)
	}
	if strings.Count(string(b), "\n## ") != len(drills)+1 {
		t.Errorf("want a summary and a table per drill:\n%s", b)
	}
}

func TestDrillCommandErrors(t *testing.T) {
	out, _, code := run(t, "ops", "drill", "--list")
	for _, d := range embeddedDrills {
		if code != 0 || !strings.Contains(out, d) {
			t.Errorf("--list: %d, no %s in\n%s", code, d, out)
		}
	}
	if _, errText, code := run(t, "ops", "drill", "--only", "nope", "--repo", "../.."); code == 0 || !strings.Contains(errText, `no drill "nope": the drills are broker-kill,`) {
		t.Errorf("unknown drill: %d %q", code, errText)
	}
	if _, errText, code := run(t, "ops", "drill", "--repo", t.TempDir()); code == 0 || !strings.Contains(errText, "no docs/operations/runbooks") {
		t.Errorf("no runbooks: %d %q", code, errText)
	}
}

// cannotMountTmpfs says why this process cannot mount a tmpfs (not root,
// or a container without the right to mount), or "" when it can.
func cannotMountTmpfs(t *testing.T) string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("mount: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if err := exec.Command("umount", dir).Run(); err != nil {
		exec.Command("umount", "-l", dir).Run()
	}
	return ""
}
