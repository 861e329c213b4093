// Package testutil finds the shared real-market data that tests read and
// skips a test clearly when it is absent.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// DataDir returns the shared data directory: $K2_SHARED_DATA, or
// ../shared/data beside the repository.
func DataDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("K2_SHARED_DATA"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(t), "..", "shared", "data")
}

// Data returns the path of a file or directory under the shared data
// directory, skipping the test with a clear message when it is absent.
func Data(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{DataDir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real market data %s is absent (set K2_SHARED_DATA or place ../shared/data beside the repository): %v", p, err)
	}
	return p
}
