// Package testutil finds the shared real-market data that tests read. When
// the data is absent a test skips with a clear message, or fails where the
// environment requires the data (make test and CI): see Data.
package testutil

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables that turn absent data from a skip into a failure.
// scripts/test.sh (make test, CI) sets EnvRequireServices; EnvRequireData
// asks for the data alone, e.g. in a `go test ./...` without services.
const (
	EnvRequireData     = "K2_TEST_REQUIRE_DATA"
	EnvRequireServices = "K2_TEST_REQUIRE_SERVICES"
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

// dataRequired names the variable that makes absent data a failure, or
// returns "" when a test should skip: the one place that decides, so that
// a suite meant to run everything never passes by skipping silently.
func dataRequired() string {
	for _, name := range []string{EnvRequireData, EnvRequireServices} {
		if os.Getenv(name) == "1" {
			return name
		}
	}
	return ""
}

// Data returns the path of a file or directory under the shared data
// directory. When it is absent the test is skipped with a message saying
// how to provide it, or fails with that message when K2_TEST_REQUIRE_DATA=1
// or K2_TEST_REQUIRE_SERVICES=1.
func Data(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{DataDir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("real market data %s is absent (set K2_SHARED_DATA or place ../shared/data beside the repository): %v", p, err)
		if name := dataRequired(); name != "" {
			t.Fatalf("%s (%s=1)", msg, name)
		}
		t.Skip(msg)
	}
	return p
}

// ForLines calls fn with every line of a file and its number from 1,
// gunzipping a .gz file; the slice is valid during the call only.
func ForLines(t testing.TB, path string, fn func(n int, line []byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		defer gz.Close()
		r = gz
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20) // depth snapshots are long lines
	n := 0
	for sc.Scan() {
		n++
		fn(n, sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port free right now, for a
// process that must come back on the same address after a restart.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
