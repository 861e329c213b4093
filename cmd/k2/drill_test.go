package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// Every drill --list gives is run by TestFaultDrills or
// TestExternalServiceDrills, and docs/operations/drills.md lists it with
// its runbook and the test that runs it: a drill added to k2 is neither
// left out of the test tier nor of the operator's list.
func TestDrillsDocListsEveryDrill(t *testing.T) {
	out, e, code := run(t, "ops", "drill", "--list")
	if code != 0 {
		t.Fatalf("--list: exit %d %s", code, e)
	}
	listed := map[string]string{} // drill → its runbook, as --list names it
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(line, ".md)") {
			t.Fatalf("--list line %q", line)
		}
		listed[f[0]] = line[strings.LastIndexByte(line, '(')+1 : len(line)-1]
	}
	runBy := map[string]string{}
	for _, d := range embeddedDrills {
		runBy[d] = "TestFaultDrills"
	}
	for _, d := range externalDrills {
		if runBy[d] != "" {
			t.Errorf("%s is in both tests' lists", d)
		}
		runBy[d] = "TestExternalServiceDrills"
	}
	doc := filepath.Join("docs", "operations", "drills.md")
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), doc))
	if err != nil {
		t.Fatal(err)
	}
	// | `name` | fault | recovery | [runbook](runbooks/X.md) | `TestX` |
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|.*\\]\\((runbooks/[^)]+\\.md)\\) \\| `(Test\\w+)` \\|$")
	rows := map[string][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = [2]string{"docs/operations/" + m[2], m[3]}
	}
	for d, runbook := range listed {
		if runBy[d] == "" {
			t.Errorf("drill %s: neither TestFaultDrills nor TestExternalServiceDrills runs it", d)
		}
		switch r, ok := rows[d]; {
		case !ok:
			t.Errorf("%s has no row for drill %s", doc, d)
		case r[0] != runbook || r[1] != runBy[d]:
			t.Errorf("%s: drill %s with %s, run by %s; --list says %s, and %s runs it", doc, d, r[0], r[1], runbook, runBy[d])
		}
	}
	for d := range rows {
		if listed[d] == "" {
			t.Errorf("%s lists drill %s, which k2 ops drill --list does not give", doc, d)
		}
	}
	for d := range runBy {
		if listed[d] == "" {
			t.Errorf("the tests run drill %s, which k2 ops drill --list does not give", d)
		}
	}
}
