package web_test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The dashboard's unit tests (web/src/*.test.ts: event-stream parsing,
// exact decimals, live bars, the quote line, the pipeline's series, the
// API client's retries) under go test, so that make test and CI run
// them: bundled by build.mjs --tests, run by node --test.
func TestUnitTests(t *testing.T) {
	node := nodeWith(t, "esbuild")
	out := t.TempDir()
	run(t, node, "build.mjs", "--tests", "--out", out)
	sources, _ := filepath.Glob(filepath.Join("src", "*.test.ts"))
	built, _ := filepath.Glob(filepath.Join(out, "*.test.mjs"))
	// Every source test file bundled: one the build missed would pass unrun.
	if len(sources) == 0 || len(built) != len(sources) {
		t.Fatalf("%d test files in web/src, %d bundled in %s", len(sources), len(built), out)
	}
	cmd := exec.Command(node, append([]string{"--test", "--test-reporter", "spec"}, built...)...)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, res)
	}
	// The reporter's summary ("ℹ tests 20", "ℹ pass 20"): every test ran and passed.
	count := func(what string) string {
		m := regexp.MustCompile(`ℹ ` + what + ` (\d+)`).FindSubmatch(res)
		if m == nil {
			t.Fatalf("node --test's summary has no %s count:\n%s", what, res)
		}
		return string(m[1])
	}
	if tests, pass := count("tests"), count("pass"); tests == "0" || pass != tests {
		t.Fatalf("node --test: %s tests, %s passed:\n%s", tests, pass, res)
	}
	t.Logf("%s", res)
}
