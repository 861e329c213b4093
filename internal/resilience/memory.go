package resilience

import (
	"bytes"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

// DefaultMemoryBudget is the memory budget when none is configured and
// GOMEMLIMIT is not set.
const DefaultMemoryBudget uint64 = 1 << 30 // 1 GiB

// defaultBudget is the GOMEMLIMIT if one is in effect (from the environment
// or debug.SetMemoryLimit), else DefaultMemoryBudget. The Go limit is the
// natural budget: it is where the garbage collector starts working hard, so
// degrading before it keeps the process out of a GC death spiral.
func defaultBudget() uint64 {
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim != math.MaxInt64 {
		return uint64(lim)
	}
	return DefaultMemoryBudget
}

// ProcessMemory returns the memory this process uses, in bytes: the larger
// of two measures.
//
//   - The Go runtime's own figure, runtime/metrics
//     /memory/classes/total:bytes minus /memory/classes/heap/released:bytes:
//     all memory the runtime has mapped and not returned to the OS. This is
//     exactly the quantity GOMEMLIMIT bounds (and GOMEMLIMIT is the default
//     budget), it is available on every platform, and reading it costs no
//     system call.
//   - The resident set size from /proc/self/statm, on Linux. It sees what the
//     Go runtime cannot: memory allocated through cgo (DuckDB, Arrow C
//     buffers) and by foreign threads, which is also what a container's
//     memory limit and the OOM killer count.
//
// Taking the larger errs toward degrading early rather than being killed.
// A call costs a few microseconds (one small /proc read): call it once per
// poll, next to Degradation.Observe, not per record.
// Unlike the original, which read whole-machine memory (psutil
// virtual_memory().percent), this measures only this process: another
// process's page cache or a busy neighbour does not degrade the consumer.
func ProcessMemory() uint64 {
	m := goMemory()
	if rss, ok := residentMemory(); ok && rss > m {
		return rss
	}
	return m
}

// goMemory is the runtime's mapped memory not released to the OS.
func goMemory() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	total, released := s[0].Value.Uint64(), s[1].Value.Uint64()
	if released > total {
		return 0
	}
	return total - released
}

// residentMemory reads the resident set size from /proc/self/statm
// ("size resident shared text lib data dt", in pages). ok is false where
// there is no /proc (macOS, Windows) or it cannot be parsed.
func residentMemory() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}
