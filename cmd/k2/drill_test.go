package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/testutil"
)

// embeddedDrills are the drills on K2's own processes and files.
var embeddedDrills = []string{"broker-kill", "registry-kill", "sink-kill", "api-kill", "up-kill", "broker-data-corrupt", "broker-segment-torn", "full-disk", "data-file-corrupt"}

// Every drill on K2's own processes and files runs on real processes and
// recovers with every produced trade stored once, within its RTO.
func TestFaultDrills(t *testing.T) {
	bin := k2Binary(t)
	drills := embeddedDrills
	if why := cannotMountTmpfs(t); why != "" {
		// The test tier (CI runs as root) must drill a full disk too.
		if os.Getenv(testutil.EnvRequireServices) == "1" {
			t.Fatalf("the full-disk drill needs to mount a tmpfs: %s (%s=1)", why, testutil.EnvRequireServices)
		}
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
	checkDrillReport(t, b, drills)
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
