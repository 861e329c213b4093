package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"
)

// cpuUse is the cores in use over a while: by the server, by this process
// (the load generator), and by the whole machine; NaN where unknown.
type cpuUse struct{ server, load, machine float64 }

// others is what the rest of the machine used: other people's work on a
// shared machine.
func (c cpuUse) others() float64 { return max(0, c.machine-c.server-c.load) }

func (c cpuUse) String() string {
	return fmt.Sprintf("CPU: server %.2f cores, load generator %.2f, rest of the machine %.2f", c.server, c.load, c.others())
}

// cpuMeter starts following the cores in use; the function it returns
// says how many were used since.
func (b *apiBench) cpuMeter(ctx context.Context) func() cpuUse {
	serverCPU := func() float64 {
		if b.up == nil {
			return math.NaN()
		}
		m, err := scrapeMetrics(ctx, b.http, b.up.metricsURL)
		if err != nil {
			return math.NaN()
		}
		if rss, ok := m.value("process_resident_memory_bytes"); ok {
			b.peakRSS = max(b.peakRSS, rss)
		}
		if level, ok := m.value("k2_degradation_level"); ok {
			b.peakLevel = max(b.peakLevel, level)
		}
		v, ok := m.value("process_cpu_seconds_total")
		if !ok {
			return math.NaN()
		}
		return v
	}
	seconds := func(d time.Duration) float64 {
		if d < 0 {
			return math.NaN()
		}
		return d.Seconds()
	}
	start, s0, l0, m0 := time.Now(), serverCPU(), seconds(selfCPU()), seconds(machineCPU())
	return func() cpuUse {
		s1, l1, m1 := serverCPU(), seconds(selfCPU()), seconds(machineCPU())
		secs := time.Since(start).Seconds()
		return cpuUse{server: (s1 - s0) / secs, load: (l1 - l0) / secs, machine: (m1 - m0) / secs}
	}
}

// profile runs a scenario for o.ProfileFor while taking the server's CPU
// profile (/debug/pprof/profile) and this process's, and says where each
// spent its time.
func (b *apiBench) profile(ctx context.Context, sc apiScenario) ([]Profile, error) {
	secs := max(1, int(b.o.ProfileFor.Round(time.Second)/time.Second))
	var server, load bytes.Buffer
	var serverErr, loadErr error
	var use cpuUse
	run, err := b.measured(ctx, sc, 0, func() {
		cpu := b.cpuMeter(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { serverErr = b.fetchProfile(ctx, secs, &server) })
		if loadErr = pprof.StartCPUProfile(&load); loadErr == nil {
			time.Sleep(time.Duration(secs) * time.Second)
			pprof.StopCPUProfile()
		}
		wg.Wait()
		use = cpu()
	})
	if err != nil {
		return nil, err
	}
	if serverErr != nil {
		return nil, fmt.Errorf("the server's profile: %w", serverErr)
	}
	fmt.Fprintf(b.o.Progress, "  %s\n", runLine(run))
	var out []Profile
	add := func(who string, data []byte, suffix, used string) error {
		sum, err := summarizeProfile(data, apiParts, 15)
		if err != nil {
			return err
		}
		note := fmt.Sprintf("%.2f cores sampled over %.0f s%s", sum.cpu.Seconds()/sum.wall.Seconds(), sum.wall.Seconds(), used)
		if b.o.CPUProfile != "" {
			path := b.o.CPUProfile + "." + sc.key + "." + suffix
			if err := os.WriteFile(path, data, 0o644); err != nil {
				return err
			}
			note += "; saved: go tool pprof -top " + path
		}
		out = append(out, Profile{Run: sc.name + " (" + who + ")", Shares: sum.shares, Top: sum.top, Note: note})
		return nil
	}
	if err := add("server, k2 up", server.Bytes(), "server", fmt.Sprintf("; the process used %.2f (its /metrics)", use.server)); err != nil {
		return nil, err
	}
	if loadErr == nil {
		if err := add("load generator", load.Bytes(), "loadgen", fmt.Sprintf("; the process used %.2f; the rest of the machine %.2f", use.load, use.others())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchProfile reads the server's CPU profile over secs seconds.
func (b *apiBench) fetchProfile(ctx context.Context, secs int, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// apiParts name where a k2 up answering the API (and the load generator)
// spends its time; on a stack the innermost match wins. The live feed,
// broker and sink running beside the API are one part.
var apiParts = []profilePart{
	{"duckdb", "DuckDB (cgo)"},
	{"runtime.cgocall", "DuckDB (cgo)"},
	{"runtime._ExternalCode", "C/C++ threads (DuckDB's workers)"},
	{"runtime.gcAssistAlloc", "garbage collection (assists)"},
	{"runtime.mallocgc", "memory allocation"},
	{"encoding/json", "JSON encoding and decoding"},
	{"log/slog", "logging (access log)"},
	{"k2/internal/ops", "logging (access log)"},
	{"prometheus", "metrics"},
	{"k2/internal/api", "API handlers"},
	{"k2/internal/query", "query engine (Go side: plan, rows)"},
	{"iceberg-go", "Iceberg metadata"},
	{"tsenart/vegeta", "load generator (vegeta)"},
	{"k2/internal/bench", "load generator (answers checked)"},
	{"franz-go", "live feed, broker and sink"},
	{"hamba/avro", "live feed, broker and sink"},
	{"k2/internal/codec", "live feed, broker and sink"},
	{"k2/internal/feed", "live feed, broker and sink"},
	{"k2/internal/live", "live feed, broker and sink"},
	{"k2/internal/sink", "live feed, broker and sink"},
	{"k2/internal/lake", "live feed, broker and sink"},
	{"k2/internal/maintain", "live feed, broker and sink"},
	{"arrow-go", "Arrow columns (answers, the sink's files)"},
	{"klauspost/compress", "live feed, broker and sink"},
	{"modernc.org/sqlite", "catalog (SQLite)"},
	{"net/http", "HTTP (net/http)"},
	{"net.", "network I/O (net, poll, syscalls)"},
	{"internal/poll", "network I/O (net, poll, syscalls)"},
	{"syscall.", "network I/O (net, poll, syscalls)"},
	{"internal/runtime/syscall", "network I/O (net, poll, syscalls)"},
}
