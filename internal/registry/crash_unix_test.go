//go:build unix

package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// crashDirEnv tells the test binary, re-executed as a child, to act as a
// registry process that is killed with SIGKILL mid-life.
const crashDirEnv = "K2_REGISTRY_CRASH_DIR"

// TestCrashChild is the child's body; it is a no-op in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestKill9")
	}
	reg, err := Open(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	srv := httptest.NewServer(reg.Handler())
	cl, err := NewClient(srv.URL)
	if err != nil {
		os.Exit(2)
	}
	for i, text := range evolving(5) {
		id, err := cl.Register(context.Background(), "crash-value", text)
		if err != nil {
			fmt.Println("register:", err)
			os.Exit(2)
		}
		fmt.Printf("id %d %d\n", i, id) // acknowledged, so it must survive
	}
	// No Close, no flush: the way a kill -9 or an OOM kill ends a process.
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestKill9(t *testing.T) {
	t.Parallel()
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	acked := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "id" {
			continue
		}
		i, _ := strconv.Atoi(f[1])
		id, _ := strconv.Atoi(f[2])
		acked[i] = id
	}
	if len(acked) != 5 {
		t.Fatalf("child acknowledged %d registrations:\n%s", len(acked), out)
	}

	// The kernel released the dead process's lock, and every acknowledged
	// registration is there.
	e := start(t, dir)
	for i, text := range evolving(5) {
		ss, err := e.sr.LookupSchema(context.Background(), "crash-value", avroSchema(text))
		if err != nil || ss.ID != acked[i] || ss.Version != i+1 {
			t.Fatalf("schema %d after kill -9: %+v %v, want id %d", i, ss, err, acked[i])
		}
	}
	if id := e.register(t, "other-value", quoteV1); id != 6 {
		t.Fatalf("next id after kill -9: %d, want 6", id)
	}
}
