package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
	"github.com/k2-market-data/k2/internal/testutil"
)

// testConfig is the default configuration on free ports in a directory of
// the test's own.
func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Embedded.BrokerListen, cfg.Embedded.RegistryListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Sink.BatchAge = 100 * time.Millisecond
	if err := cfg.Resolve(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// running is a stack whose Run goes on in the background.
type running struct {
	*Stack
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, role string, cfg config.Config, parts Parts) *running {
	t.Helper()
	st, err := Start(context.Background(), role, cfg, parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Stack: st, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- st.Run(ctx) }()
	t.Cleanup(func() { r.stop(t); st.Close() })
	return r
}

// stop stops the stack and returns Run's error; it may be called again.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(StopTimeout + 5*time.Second):
		t.Fatalf("%s did not stop within %s", r.Role(), StopTimeout)
		return nil
	}
}

// get fetches a path of the stack's HTTP listener.
func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// families lists the metric families /metrics serves.
func (r *running) families(t *testing.T) []string {
	t.Helper()
	code, body := r.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// health reads /ready, the report of every check.
func (r *running) health(t *testing.T) (int, ops.Report) {
	t.Helper()
	code, body := r.get(t, "/ready")
	var rep ops.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/ready is not JSON: %q", body)
	}
	return code, rep
}

// Every long-running role serves /health, /ready and /metrics for what it runs,
// each on its own listener, every family present (at zero) before the
// first event, and each process's metrics its own: two processes' worth
// of roles run here in one, against one broker.
func TestEveryRoleServesItsHealthAndMetrics(t *testing.T) {
	t.Parallel()
	brokerCfg := testConfig(t)
	broker := start(t, "broker", brokerCfg, Parts{Embedded: true})
	remote := func() config.Config {
		cfg := testConfig(t)
		cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(broker.Brokers(), ","), broker.RegistryURL()
		return cfg
	}
	sinkCfg := remote()
	sink := start(t, "sink", sinkCfg, Parts{Sink: true})
	feedCfg := remote()
	feedCfg.Feed.Rate = 500
	feed := start(t, "feed", feedCfg, Parts{Feed: "synth"})

	testutil.WaitFor(t, "the sink's partitions", 30*time.Second, func() bool { return sink.Sink().Stats().Partitions > 0 })
	testutil.WaitFor(t, "the first commit", 30*time.Second, func() bool { return sink.Sink().Stats().Written > 0 })
	for _, c := range []struct {
		r      *running
		checks []string
		want   []string // families the role must export
		not    []string // and must not: another role's
	}{
		{broker, []string{"kafka", "schema_registry"},
			[]string{"k2_build_info", "k2_kafka_topic_end_offset", "k2_kafka_records_trimmed_total"},
			[]string{"k2_sink_paused", "k2_iceberg_transactions_total"}},
		{sink, []string{"kafka", "schema_registry", "lake", "sink"},
			[]string{"k2_build_info", "k2_sink_paused", "k2_kafka_consumer_lag_messages", "k2_sink_dead_letters_total",
				"k2_iceberg_transactions_total", "k2_iceberg_table_rows", "k2_degradation_level", "k2_sequence_resets_detected_total",
				"k2_kafka_messages_produced_total", // its dead-letter producer
				"k2_kafka_topic_end_offset"},       // the cluster it reads, for KafkaBrokerDown
			[]string{"k2_kafka_records_trimmed_total"}}, // the broker's, not the sink's
		{feed, []string{"kafka", "schema_registry"},
			[]string{"k2_build_info", "k2_kafka_messages_produced_total", "k2_kafka_produce_errors_total"},
			[]string{"k2_sink_paused", "k2_iceberg_transactions_total", "k2_kafka_topic_end_offset"}},
	} {
		role := c.r.Role()
		missing, err := c.r.Metrics().Missing()
		if err != nil || len(missing) > 0 {
			t.Errorf("%s: families without any series: %v %v", role, missing, err)
		}
		fams := c.r.families(t)
		// Every role's registry holds the Go runtime and process collectors.
		for _, f := range append(c.want, "go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total") {
			if !slices.Contains(fams, f) {
				t.Errorf("%s: /metrics lacks %s", role, f)
			}
		}
		for _, f := range c.not {
			if slices.Contains(fams, f) {
				t.Errorf("%s: /metrics has %s, which it does not run", role, f)
			}
		}
		code, rep := c.r.health(t)
		if code != http.StatusOK || rep.Status != "ok" || rep.Role != role || rep.Build.GoVersion == "" {
			t.Errorf("%s: /ready %d %+v", role, code, rep)
		}
		for _, name := range c.checks {
			if rep.Checks[name].Status != "ok" {
				t.Errorf("%s: /health check %s: %+v", role, name, rep.Checks[name])
			}
		}
	}
	// The feed's producer counts under its own client id, not the sink's.
	if n := ops.Sum(feed.Metrics(), "k2_kafka_messages_produced_total", "client", "k2-feed-synth"); n == 0 {
		t.Error("the feed's produced records are not counted")
	}
	if n := ops.Sum(sink.Metrics(), "k2_kafka_messages_produced_total"); n != 0 {
		t.Errorf("the sink's registry counts %v produced records: another process's", n)
	}

	// A broker gone makes the health of those that use it fail.
	if err := broker.stop(t); err != nil {
		t.Fatalf("broker stopped with %v", err)
	}
	broker.Close()
	testutil.WaitFor(t, "the feed's health to fail", 30*time.Second, func() bool {
		code, rep := feed.health(t)
		return code == http.StatusServiceUnavailable && rep.Checks["kafka"].Status == "failing"
	})
	// ... and the sink reports no end offset: KafkaBrokerDown's absent().
	testutil.WaitFor(t, "the sink to report no end offsets", 30*time.Second, func() bool {
		return !slices.Contains(sink.families(t), "k2_kafka_topic_end_offset")
	})
	// /health is liveness: the process still answers; restarting it would
	// not bring the broker back.
	if code, body := feed.get(t, "/health"); code != http.StatusOK || !strings.Contains(body, `"role": "feed"`) {
		t.Errorf("/health with the broker gone: %d %s", code, body)
	}
}

// k2 up on a terminal shows what it does every few seconds: the feed's
// rate, what reaches the lake, the lag, the last commit and the tables.
func TestStatusLineSaysWhatUpIsDoing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Feed.Rate = 400
	var out syncBuffer
	up := start(t, "up", cfg, Parts{Embedded: true, Sink: true, Feed: "synth", Status: &out, StatusEvery: 300 * time.Millisecond})
	testutil.WaitFor(t, "two status lines after the first commit", 30*time.Second, func() bool {
		return strings.Count(out.String(), "last commit") >= 2 && up.Sink().Stats().Written > 0
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], "http://"+up.HTTPAddr()+"/health") {
		t.Errorf("the first line does not say where to look: %q", lines[0])
	}
	last := lines[len(lines)-1]
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`feed synth [\d,]+ trades/s [\d,]+ quotes/s`),
		regexp.MustCompile(`lake \+[\d,]+ rows/s, lag [\d,]+, last commit [\d.]+m?s ago`),
		regexp.MustCompile(`trades [\d,]+ rows/[\d,]+ files · quotes [\d,]+ rows/[\d,]+ files`),
	} {
		if !want.MatchString(last) {
			t.Errorf("status %q does not match %s", last, want)
		}
	}
	if err := up.stop(t); err != nil {
		t.Fatal(err)
	}
}

// A stop is prompt even when the broker is gone with records still
// queued, and says what it could not deliver (Ctrl-C used to wait out the
// producer's two-minute delivery timeout).
func TestStopIsPromptWhenTheBrokerIsGone(t *testing.T) {
	t.Parallel()
	broker := start(t, "broker", testConfig(t), Parts{Embedded: true})
	cfg := testConfig(t)
	cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(broker.Brokers(), ","), broker.RegistryURL()
	cfg.Feed.Rate = 200_000
	feed := start(t, "feed", cfg, Parts{Feed: "synth"})
	testutil.WaitFor(t, "the feed to produce", 30*time.Second, func() bool {
		return ops.Sum(feed.Metrics(), "k2_kafka_messages_produced_total") > 1000
	})
	broker.stop(t)
	broker.Close()
	time.Sleep(500 * time.Millisecond) // records pile up for a broker that is not there
	began := time.Now()
	err := feed.stop(t)
	took := time.Since(began)
	if took > StopTimeout+2*time.Second {
		t.Errorf("stopping took %s", took)
	}
	if err == nil || !strings.Contains(err.Error(), "not delivered to Kafka") {
		t.Errorf("stop said %v; want how many records were not delivered", err)
	}
}

// A listener that cannot be opened stops the start with the flag to change.
func TestHTTPAddressInUseIsAClearError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.HTTP.Listen = ln.Addr().String()
	_, err = Start(context.Background(), "sink", cfg, Parts{Lake: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "--http-listen "+ln.Addr().String()) || !strings.Contains(err.Error(), "another k2 sink") {
		t.Fatalf("got %v", err)
	}
}

// A route added with Handle is served on the process's one listener,
// beside /health, /metrics and Go's profiles.
func TestHandleServesARouteBesideHealth(t *testing.T) {
	t.Parallel()
	st := start(t, "sink", testConfig(t), Parts{Lake: true})
	st.Handle("GET /api/v1/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") }))
	if code, body := st.get(t, "/api/v1/ping"); code != http.StatusOK || body != "pong" {
		t.Errorf("/api/v1/ping: %d %q", code, body)
	}
	if code, rep := st.health(t); code != http.StatusOK || rep.Checks["lake"].Status != "ok" {
		t.Errorf("/health: %d %+v", code, rep)
	}
	if code, body := st.get(t, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("/debug/pprof/: %d", code)
	}
	// /ready: each dependency with its status and how long its check took.
	if code, body := st.get(t, "/ready"); code != http.StatusOK || !strings.Contains(body, `"lake"`) || !strings.Contains(body, `"latency_ms"`) {
		t.Errorf("/ready: %d %s", code, body)
	}
}

// syncBuffer is a bytes.Buffer safe to write from the stack and read here.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
