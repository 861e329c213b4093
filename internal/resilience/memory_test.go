package resilience

import (
	"runtime"
	"testing"
)

func TestProcessMemory(t *testing.T) {
	g := goMemory()
	if g == 0 {
		t.Fatal("Go runtime memory reads 0")
	}
	rss, ok := residentMemory()
	if runtime.GOOS == "linux" && (!ok || rss == 0) {
		t.Fatalf("no RSS on Linux: %d, %v", rss, ok)
	}
	if p := ProcessMemory(); p < g || (ok && p < rss) {
		t.Fatalf("ProcessMemory %d below Go %d or RSS %d", p, g, rss)
	}

	// It measures this process: 256 MiB allocated here shows up.
	before := ProcessMemory()
	buf := make([]byte, 256<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1 // touch every page so it is resident too
	}
	after := ProcessMemory()
	runtime.KeepAlive(buf)
	if after < before+200<<20 {
		t.Fatalf("ProcessMemory rose from %d to %d after allocating 256 MiB", before, after)
	}
}

func BenchmarkProcessMemory(b *testing.B) {
	for b.Loop() {
		ProcessMemory()
	}
}
