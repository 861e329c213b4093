package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how Data ends a test. Like testing.T it stops the calling
// goroutine on Fatal and Skip; the embedded nil TB makes any other method
// Data might start calling panic rather than pass unnoticed.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatal(args ...any)                 { f.end(&f.failed, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.end(&f.failed, fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any)                  { f.end(&f.skipped, fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.end(&f.skipped, fmt.Sprintf(format, args...)) }

func (f *fakeTB) end(flag *bool, msg string) {
	*flag, f.msg = true, msg
	runtime.Goexit()
}

// data calls Data with a fake TB on its own goroutine, as testing runs a
// test, and returns how it ended.
func data(rel ...string) (f *fakeTB, path string) {
	f = &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = Data(f, rel...)
	}()
	<-done
	return f, path
}

// Absent data skips a test in a plain go test, and fails it where the suite
// must run everything: K2_TEST_REQUIRE_DATA=1, or K2_TEST_REQUIRE_SERVICES=1
// (scripts/test.sh, which CI runs).
func TestDataAbsentSkipsOrFails(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "present.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name                  string
		requireData, services string
		wantFail              string // the variable the failure names; "" means skip
	}{
		{"nothing required", "", "", ""},
		{"data required", "1", "", EnvRequireData},
		{"services required", "", "1", EnvRequireServices},
		{"both required", "1", "1", EnvRequireData},
		{"only 1 requires", "0", "true", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("K2_SHARED_DATA", dir)
			t.Setenv(EnvRequireData, c.requireData)
			t.Setenv(EnvRequireServices, c.services)

			f, _ := data("asx", "missing.csv")
			missing := filepath.Join(dir, "asx", "missing.csv")
			if f.failed == f.skipped {
				t.Fatalf("failed %v, skipped %v: want exactly one", f.failed, f.skipped)
			}
			if c.wantFail == "" && !f.skipped {
				t.Fatalf("failed (%s), want a skip", f.msg)
			}
			if c.wantFail != "" && (!f.failed || !strings.Contains(f.msg, c.wantFail+"=1")) {
				t.Fatalf("skipped or failed without naming %s=1: %s", c.wantFail, f.msg)
			}
			for _, want := range []string{missing, "K2_SHARED_DATA", "../shared/data"} {
				if !strings.Contains(f.msg, want) {
					t.Errorf("message %q does not say %q", f.msg, want)
				}
			}

			// Present data is returned, whatever is required.
			f, got := data("present.csv")
			if f.failed || f.skipped || got != filepath.Join(dir, "present.csv") {
				t.Fatalf("present file: %q, failed %v, skipped %v: %s", got, f.failed, f.skipped, f.msg)
			}
		})
	}
}
