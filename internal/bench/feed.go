package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/live"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/replay"
)

// FeedOptions configure `k2 bench feed`.
type FeedOptions struct {
	// Captures are Binance capture files, played as one recording.
	Captures []string
	// Loops is how many times the capture is played, ids continuing, so a
	// short recording makes a long replay (default 20).
	Loops int
	// Exe is the k2 binary: the broker runs as its own process, so the
	// records it keeps do not count as the feed's memory.
	Exe      string
	Dir      string // scratch directory (removed afterwards unless Keep)
	Keep     bool
	Progress io.Writer
	Logger   *slog.Logger
}

// RunFeed replays a capture as fast as the feed takes it, through the
// Binance feed (WebSocket → parse → dedup → Avro → broker, acknowledged),
// and reports messages per second and how the feed's memory moves over
// the replay: it should stay flat once the first loop has warmed it up.
func RunFeed(ctx context.Context, o FeedOptions) (Report, error) {
	if len(o.Captures) == 0 {
		return Report{}, errors.New("bench feed: no capture (--capture FILE)")
	}
	if o.Loops <= 0 {
		o.Loops = 20
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rep := Report{Machine: DescribeMachine()}
	c, err := replay.Load(o.Captures...)
	if err != nil {
		return rep, err
	}
	if c.Exchange != replay.Binance {
		return rep, fmt.Errorf("bench feed: %s is a %s capture; the benchmark replays Binance", o.Captures[0], c.Exchange)
	}
	symbols, perLoop := subscribed(c)
	if perLoop == 0 {
		return rep, fmt.Errorf("bench feed: no @trade or @bookTicker frames in %s", strings.Join(o.Captures, ", "))
	}
	total := perLoop * int64(o.Loops)
	rep.Options = fmt.Sprintf("%s · %d frames of %s a loop × %d loops · broker in its own process · GOGC %d · memory limit %s",
		strings.Join(baseNames(o.Captures), " + "), perLoop, strings.Join(symbols, ","), o.Loops, gogc(), memLimit())

	root, err := os.MkdirTemp(o.Dir, "k2-bench-feed-")
	if err != nil {
		return rep, err
	}
	if !o.Keep {
		defer os.RemoveAll(root)
	}
	brokers, reg, stop, err := startBrokerProcess(ctx, o.Exe, root)
	if err != nil {
		return rep, err
	}
	defer stop()
	client, err := registry.NewClient(reg)
	if err != nil {
		return rep, err
	}
	prod, err := bus.NewProducer(bus.ProducerConfig{Brokers: []string{brokers}, ClientID: "k2-bench-feed", Logger: o.Logger}, client)
	if err != nil {
		return rep, err
	}
	defer prod.Close(context.Background())

	srv := replay.New(c, replay.Options{Speed: 0, Loops: o.Loops, Logger: o.Logger})
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rep, err
	}
	go srv.Serve(ln)
	proto, err := binance.NewProtocol(symbols, md.DefaultAssets)
	if err != nil {
		return rep, err
	}
	feed, err := live.NewFeed(proto, live.SessionConfig{Endpoints: []string{"ws://" + ln.Addr().String()}, Logger: o.Logger},
		live.FeedConfig{Producer: prod, Logger: o.Logger})
	if err != nil {
		return rep, err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	fmt.Fprintf(o.Progress, "replaying %d frames through the feed\n", total)
	start := time.Now()
	go func() { done <- feed.Run(fctx) }()

	// Sample memory as the replay goes. Between collections RSS holds
	// garbage too (GOGC decides how much), so the two points compared are
	// taken right after a full collection that returns free memory to the
	// OS: once the first loop has warmed up caches, buffers and maps, and
	// at the end. Two collections do not disturb the rate measurably.
	type sample struct {
		at       time.Duration
		handled  int64
		rss, hp  uint64
		produced int64
	}
	var samples []sample // the last one is after a collection
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var warm *sample // the first sample after loop 1: caches, buffers and maps at size
	for {
		st := feed.Stats()
		s := sample{at: time.Since(start), handled: st.Trades + st.Quotes + st.Duplicates, rss: rss(), hp: liveHeap(), produced: st.Trades + st.Quotes}
		samples = append(samples, s)
		if warm == nil && s.handled >= perLoop {
			debug.FreeOSMemory()
			s.rss, s.hp = rss(), liveHeap()
			warm = &s
		}
		if s.handled >= total {
			debug.FreeOSMemory()
			s.rss, s.hp = rss(), liveHeap()
			samples[len(samples)-1] = s
			break
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case err := <-done:
			return rep, fmt.Errorf("feed stopped after %d of %d frames: %v", s.handled, total, err)
		case <-tick.C:
		}
		if len(samples)%20 == 0 {
			fmt.Fprintf(o.Progress, "  %d of %d frames, RSS %d MiB\n", s.handled, total, s.rss>>20)
		}
	}
	handledAt := time.Since(start)
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return rep, err
	}
	acked := time.Since(start)
	st := feed.Stats()
	if st.Trades+st.Quotes != total || st.Gaps != 0 || st.DeadLetters != 0 {
		return rep, fmt.Errorf("feed produced %d of %d records (%d gaps, %d dead letters, %d repeats)", st.Trades+st.Quotes, total, st.Gaps, st.DeadLetters, st.Duplicates)
	}
	last := samples[len(samples)-1]
	var peak uint64
	for _, s := range samples {
		if s.at >= warm.at {
			peak = max(peak, s.rss)
		}
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	growth := func(a, b uint64) float64 { return mib(b) - mib(a) }
	rep.Results = append(rep.Results,
		Result{Name: "feed: frames parsed and produced (WebSocket → parse → Avro → broker)", Rows: int(total),
			Value: float64(total) / handledAt.Seconds(), Unit: "msgs/s", Detail: handledAt.Round(time.Millisecond).String()},
		Result{Name: "feed: frames produced and acknowledged", Rows: int(total),
			Value: float64(total) / acked.Seconds(), Unit: "msgs/s", Detail: acked.Round(time.Millisecond).String()},
		Result{Name: "RSS after the first loop (after a collection)", Rows: int(perLoop), Value: mib(warm.rss), Unit: "MiB",
			Detail: fmt.Sprintf("peak between collections %.0f MiB at GOGC %d", mib(peak), gogc())},
		Result{Name: "RSS growth from the first loop to the end", Rows: int(total), Value: growth(warm.rss, last.rss), Unit: "MiB",
			Detail: fmt.Sprintf("%.0f → %.0f MiB; target: flat, < 50 MiB", mib(warm.rss), mib(last.rss))},
		Result{Name: "live heap growth from the first loop to the end", Rows: int(total), Value: growth(warm.hp, last.hp), Unit: "MiB",
			Detail: fmt.Sprintf("%.1f → %.1f MiB", mib(warm.hp), mib(last.hp))},
	)
	return rep, nil
}

// subscribed are the capture's symbols and the frames a feed of them
// receives in one loop (trades and top-of-book quotes).
func subscribed(c *replay.Capture) (symbols []string, frames int64) {
	for i := range c.Frames {
		sym, kind, _ := strings.Cut(c.Frames[i].Stream, "@")
		if kind != "trade" && kind != "bookTicker" {
			continue
		}
		frames++
		if s := strings.ToUpper(sym); !slices.Contains(symbols, s) {
			symbols = append(symbols, s)
		}
	}
	slices.Sort(symbols)
	return symbols, frames
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// startBrokerProcess runs `k2 broker` under dir and returns its Kafka
// address and registry URL.
func startBrokerProcess(ctx context.Context, exe, dir string) (brokers, reg string, stop func(), err error) {
	if exe == "" {
		return "", "", nil, errors.New("bench feed: no k2 binary to run the broker")
	}
	cmd := exec.CommandContext(ctx, exe, "--log-level", "warn", "--data-dir", filepath.Join(dir, "broker"),
		"broker", "--broker-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--http-listen", "off")
	log, err := os.Create(filepath.Join(dir, "broker.log"))
	if err != nil {
		return "", "", nil, err
	}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("k2 broker: %w", err)
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		log.Close()
	}
	// "K2 broker · kafka 127.0.0.1:PORT · schema registry http://127.0.0.1:PORT · data DIR"
	line, err := bufio.NewReader(out).ReadString('\n')
	m := bannerPattern.FindStringSubmatch(line)
	if err != nil || m == nil {
		stop()
		b, _ := os.ReadFile(log.Name())
		return "", "", nil, fmt.Errorf("k2 broker did not start: %q %v %s", line, err, b)
	}
	return m[1], m[2], stop, nil
}

// bannerPattern reads where k2 broker serves from the line it prints.
var bannerPattern = regexp.MustCompile(`kafka (\S+) · schema registry (\S+)`)

// rss is the process's resident memory now (Linux), else the Go runtime's
// memory from the OS.
func rss() uint64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				if kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is the heap the last garbage collection found live.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
