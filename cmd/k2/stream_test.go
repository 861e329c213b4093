package main

// End-to-end tests of the stream into the lake with real processes: the
// k2 binary runs as broker and as sink, and is killed with SIGKILL.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/feed/asx"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

const (
	asxTrades = "market.equities.trades.asx"
	asxQuotes = "market.equities.quotes.asx"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// k2Binary builds the k2 command once per test run.
func k2Binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "k2-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "k2")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// bhpStream is every BHP trade and quote of the ASX sample.
type bhpStream struct {
	ref    md.ReferenceData
	trades []md.Trade
	quotes []md.Quote
}

var (
	bhpOnce sync.Once
	bhpData bhpStream
	bhpErr  error
)

func loadBHP(t *testing.T) bhpStream {
	t.Helper()
	dir := testutil.Data(t, "asx")
	bhpOnce.Do(func() {
		f, err := os.Open(filepath.Join(dir, "reference-data", "company_info.csv"))
		if err != nil {
			bhpErr = err
			return
		}
		defer f.Close()
		now := md.Now()
		companies, err := asx.ReadCompanies(f, now)
		if err != nil {
			bhpErr = err
			return
		}
		for _, c := range companies {
			if c.Symbol == "BHP" {
				bhpData.ref = c
			}
		}
		tp, qp := asx.NewTradeParser(bhpData.ref, now), asx.NewQuoteParser(bhpData.ref, now)
		bhpErr = eachLine(filepath.Join(dir, "trades", bhpData.ref.CompanyID+".csv"), func(line string) error {
			tr, err := tp.Parse(line)
			bhpData.trades = append(bhpData.trades, tr)
			return err
		})
		if bhpErr == nil {
			bhpErr = eachLine(filepath.Join(dir, "quotes", bhpData.ref.CompanyID+".csv"), func(line string) error {
				q, err := qp.Parse(line)
				bhpData.quotes = append(bhpData.quotes, q)
				return err
			})
		}
	})
	if bhpErr != nil {
		t.Fatal(bhpErr)
	}
	return bhpData
}

func eachLine(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		if err := fn(sc.Text()); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// produce streams BHP's reference data, then its trades and quotes
// interleaved, chunk records at a time with a pause between chunks, so
// that the stream lasts long enough to be interrupted.
func (s bhpStream) produce(ctx context.Context, p *bus.Producer, chunk int, pause time.Duration) error {
	if err := bus.Produce(ctx, p, record.Reference, &s.ref); err != nil {
		return err
	}
	for i, j := 0, 0; i < len(s.trades) || j < len(s.quotes); {
		for n := 0; n < chunk/2 && i < len(s.trades); n, i = n+1, i+1 {
			if err := bus.Produce(ctx, p, record.Trade, &s.trades[i]); err != nil {
				return err
			}
		}
		for n := 0; n < chunk/2 && j < len(s.quotes); n, j = n+1, j+1 {
			if err := bus.Produce(ctx, p, record.Quote, &s.quotes[j]); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return p.Flush(ctx)
}

// cluster is a Kafka cluster and schema registry for the stream tests,
// with the lake the sink writes.
type cluster struct {
	brokers  string
	registry string
	prefix   string
	dataDir  string
	reg      *registry.Client
	adm      *kadm.Client
	lake     *lake.Lake
	// crash kills the broker with SIGKILL and starts it again.
	crash         func(t *testing.T)
	brokerCrashed bool
	// nothingToCompact is set when every commit came in one batch (every
	// kill landed before the sink's first commit), so maintenance had no
	// two files of a partition to merge.
	nothingToCompact bool
}

// embeddedStack runs `k2 broker` as its own process on fixed ports, so
// that it can be killed and restarted where clients expect it.
func embeddedStack(t *testing.T) *cluster {
	t.Helper()
	bin := k2Binary(t)
	dir := t.TempDir()
	kafkaAddr, regAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, "--log-level", "warn", "--data-dir", dir,
			"broker", "--broker-listen", kafkaAddr, "--registry-listen", regAddr, "--http-listen", "off")
		cmd.Stderr = logFile(t, dir, "broker")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The broker prints one line once it serves.
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "K2 broker") {
			t.Fatalf("k2 broker: %q %v (log in %s)", line, err, dir)
		}
	}
	start()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	s := &cluster{brokers: kafkaAddr, registry: "http://" + regAddr, dataDir: dir}
	s.crash = func(t *testing.T) {
		cmd.Process.Kill()
		cmd.Wait()
		start()
	}
	s.open(t)
	return s
}

// kafkaStack uses the real Apache Kafka of the test services, with topics
// under a prefix of this test's own and an in-process schema registry.
func kafkaStack(t *testing.T) *cluster {
	t.Helper()
	brokers := testsvc.Kafka(t)
	k2Binary(t) // built before the clock starts
	dir := t.TempDir()
	r, err := registry.Open(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() { srv.Close(); r.Close() })
	s := &cluster{brokers: brokers, registry: srv.URL, prefix: testsvc.KafkaTopicPrefix(t), dataDir: dir,
		crash: func(t *testing.T) { testsvc.CrashRestartKafka(t) }}
	s.open(t)
	topo := bus.DefaultTopology()
	topo.Prefix = s.prefix
	if _, err := bus.CreateTopics(context.Background(), s.adm, topo); err != nil {
		t.Fatal(err)
	}
	return s
}

// open connects the admin client, registry client and lake.
func (s *cluster) open(t *testing.T) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(s.brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.adm = kadm.NewClient(cl)
	if s.reg, err = registry.NewClient(s.registry); err != nil {
		t.Fatal(err)
	}
	// Opening the lake here creates the tables before any sink starts.
	s.lake, err = lake.Open(context.Background(), lake.Options{Tables: record.Tables(),
		Catalog: filepath.Join(s.dataDir, "catalog.db"), Warehouse: filepath.Join(s.dataDir, "warehouse"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.lake.Close() })
}

func (s *cluster) producer(t *testing.T) *bus.Producer {
	t.Helper()
	p, err := bus.NewProducer(bus.ProducerConfig{Brokers: strings.Split(s.brokers, ","), TopicPrefix: s.prefix}, s.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Bounded: a test that failed with its broker down must not hang
		// here flushing until the package's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	return p
}

// sinkProc is a `k2 sink` process and its log.
type sinkProc struct {
	*exec.Cmd
	log string
}

// started waits until the sink has said it is consuming, so that it
// handles signals from then on.
func (p sinkProc) started(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), "sink started") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink did not start (log %s)", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killOnCommit is a log writer that kills the sink the moment it reports
// a lake commit: before it can commit the group's offsets, most of the
// time, which is the window the table's offsets exist for.
type killOnCommit struct {
	out    io.Writer
	cmd    *exec.Cmd
	killed chan struct{}
	once   sync.Once
}

func (k *killOnCommit) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("Iceberg transaction committed")) {
		k.once.Do(func() {
			k.cmd.Process.Kill()
			close(k.killed)
		})
	}
	return k.out.Write(p)
}

// sink starts `k2 sink` as a process of its own.
func (s *cluster) sink(t *testing.T, n int) sinkProc {
	t.Helper()
	return s.startSink(t, n, nil)
}

// startSink starts a sink; with kill set it is killed right after its
// first lake commit, and kill is closed then.
func (s *cluster) startSink(t *testing.T, n int, kill chan struct{}) sinkProc {
	t.Helper()
	cmd := exec.Command(k2Binary(t), "--log-level", "info", "--data-dir", s.dataDir,
		"sink", "--brokers", s.brokers, "--registry", s.registry, "--topic-prefix", s.prefix, "--http-listen", "off",
		"--sink-group", s.group(), "--sink-batch-age", "200ms", "--sink-batch-rows", "20000", "--sink-instance-id", "sink-under-test")
	log := logFile(t, s.dataDir, fmt.Sprintf("sink-%d", n))
	cmd.Stderr = log
	if kill != nil {
		cmd.Stderr = &killOnCommit{out: log, cmd: cmd, killed: kill}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return sinkProc{cmd, log.Name()}
}

// caughtUp reports whether the tables record the end offsets of both
// topics. Where the broker itself was killed, the producer may have
// written a batch twice, and a sink batch of nothing but such repeats
// moves only the group's offsets (there is no Iceberg snapshot without
// rows to carry them), so with brokerCrashed the group's offset at the
// end also counts; the exact set of stored ids is checked either way.
func (s *cluster) caughtUp(ctx context.Context, t *testing.T) bool {
	t.Helper()
	ends, err := s.adm.ListEndOffsets(ctx, s.prefix+asxTrades, s.prefix+asxQuotes)
	if err != nil || ends.Error() != nil {
		return false // the broker may be restarting
	}
	stored := lake.Offsets{}
	for _, name := range []string{"trades", "quotes"} {
		tbl, err := s.lake.Load(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		stored.Merge(lake.TableOffsets(tbl))
	}
	var group kadm.OffsetResponses
	if s.brokerCrashed {
		if group, err = s.adm.FetchOffsets(ctx, s.group()); err != nil {
			return false
		}
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		got, _ := stored.Get(o.Topic, o.Partition)
		if o.Offset == 0 || got == o.Offset {
			return
		}
		if c, ok := group.Lookup(o.Topic, o.Partition); ok && c.At == o.Offset && got < o.Offset {
			return
		}
		done = false
	})
	return done
}

// group is the sinks' consumer group.
func (s *cluster) group() string { return s.prefix + "k2-sink" }

// storedRows is the trades table's row count from its current snapshot.
func (s *cluster) storedRows(ctx context.Context, t *testing.T) int64 {
	tbl, err := s.lake.Load(ctx, "trades")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if snap := tbl.CurrentSnapshot(); snap != nil && snap.Summary != nil {
		fmt.Sscan(snap.Summary.Properties["total-records"], &n)
	}
	return n
}

// verify checks that every BHP trade and quote is stored exactly once and
// that the tables' offsets are the topics' end offsets.
func (s *cluster) verify(t *testing.T, data bhpStream) {
	t.Helper()
	ctx := context.Background()
	if !s.caughtUp(ctx, t) {
		t.Error("the tables' offsets are not the topics' end offsets")
	}
	trades := laketest.Keys(t, s.lake, "trades", "trade_id")
	quotes := laketest.Keys(t, s.lake, "quotes", "quote_id")
	for name, c := range map[string]struct {
		got  map[string]int
		want []string
	}{
		"trades": {trades, ids(data.trades, func(t md.Trade) string { return t.TradeID })},
		"quotes": {quotes, ids(data.quotes, func(q md.Quote) string { return q.QuoteID })},
	} {
		if rep := laketest.Repeated(c.got); len(rep) > 0 {
			t.Errorf("%s stored more than once: %d ids, e.g. %v", name, len(rep), rep[:min(5, len(rep))])
		}
		var missing []string
		for _, id := range c.want {
			if c.got[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 || len(c.got) != len(c.want) {
			t.Errorf("%s: %d distinct stored, %d produced, %d missing (e.g. %v)", name, len(c.got), len(c.want), len(missing), missing[:min(5, len(missing))])
		}
	}
	t.Logf("%d distinct trades and %d distinct quotes stored", len(trades), len(quotes))
}

func ids[T any](rows []T, id func(T) string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = id(r)
	}
	return out
}

// waitCaughtUp waits until the sink has stored everything produced.
func (s *cluster) waitCaughtUp(t *testing.T, sink sinkProc) {
	t.Helper()
	sink.started(t)
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	for !s.caughtUp(ctx, t) {
		if time.Now().After(deadline) {
			t.Fatalf("the sink did not catch up; logs in %s", s.dataDir)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A clean stop commits what the sink holds and exits 0.
	sink.Process.Signal(syscall.SIGTERM)
	if err := sink.Wait(); err != nil {
		t.Errorf("sink stopped with %v; logs in %s", err, s.dataDir)
	}
}

// maintain runs `k2 maintain` on the tables beside the sinks, often
// enough to compact and expire while they commit; the exactly-once
// checks then hold with maintenance running.
func (s *cluster) maintain(t *testing.T) {
	t.Helper()
	cmd := exec.Command(k2Binary(t), "--log-level", "info", "--data-dir", s.dataDir, "maintain", "--http-listen", "off",
		"--maintain-every", "300ms", "--compact-quiet-after", "1s", "--retain-dense-for", "2s", "--retain-last", "3")
	log := logFile(t, s.dataDir, "maintain")
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("k2 maintain stopped with %v; log %s", err, log.Name())
		}
		if b, _ := os.ReadFile(log.Name()); !s.nothingToCompact && !bytes.Contains(b, []byte("table compacted")) {
			t.Errorf("k2 maintain compacted nothing while the sinks ran; log %s", log.Name())
		}
	})
}

// exactlyOnceThroughSinkKills streams BHP while the sink process is
// killed with SIGKILL at random moments, then checks every record is
// stored once.
func exactlyOnceThroughSinkKills(t *testing.T, s *cluster) {
	data := loadBHP(t)
	ctx := context.Background()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("kill schedule seed %d", seed)
	s.maintain(t)

	produced := make(chan error, 1)
	go func() { produced <- data.produce(ctx, s.producer(t), 1_000, 25*time.Millisecond) }()
	producing := true
	var kills, midStream int
	var rowsAtKill []int64
	for n := 0; producing || kills < 5; n++ {
		// Every other kill comes right after a lake commit, the rest at
		// random moments.
		var atCommit chan struct{}
		if n%2 == 1 {
			atCommit = make(chan struct{})
		}
		sink := s.startSink(t, n, atCommit)
		select {
		case <-atCommit:
		case <-time.After(time.Duration(300+rng.IntN(900)) * time.Millisecond):
		}
		select {
		case err := <-produced:
			if err != nil {
				t.Fatal(err)
			}
			producing = false
		default:
		}
		sink.Process.Kill()
		sink.Wait()
		kills++
		rows := s.storedRows(ctx, t)
		rowsAtKill = append(rowsAtKill, rows)
		if rows < int64(len(data.trades)) {
			midStream++
		}
	}
	t.Logf("%d kills; trades stored at each: %v", kills, rowsAtKill)
	s.nothingToCompact = slices.Max(rowsAtKill) == 0
	if midStream < 3 {
		t.Errorf("only %d kills happened before every trade was stored", midStream)
	}
	if !slices.IsSorted(rowsAtKill) {
		t.Errorf("the table shrank between kills: %v", rowsAtKill)
	}
	s.waitCaughtUp(t, s.sink(t, kills))
	s.verify(t, data)
	logs, _ := filepath.Glob(filepath.Join(s.dataDir, "sink-*.log"))
	var resumed, dups int
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		resumed += strings.Count(string(b), "resuming from the lake's offset")
		dups += strings.Count(string(b), "every row already stored")
	}
	t.Logf("partitions resumed from the table's offsets ahead of the group's: %d; batches found already stored: %d", resumed, dups)
}

// brokerCrashMidStream kills the broker with SIGKILL while records are
// produced and consumed; producer and sink carry on once it is back.
func brokerCrashMidStream(t *testing.T, s *cluster) {
	data := loadBHP(t)
	ctx := context.Background()
	s.maintain(t)
	sink := s.sink(t, 0)
	produced := make(chan error, 1)
	go func() { produced <- data.produce(ctx, s.producer(t), 1_000, 20*time.Millisecond) }()
	deadline := time.Now().Add(time.Minute)
	for s.storedRows(ctx, t) < int64(len(data.trades))/4 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing stored before the crash; logs in %s", s.dataDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := s.storedRows(ctx, t)
	s.brokerCrashed = true
	s.crash(t)
	t.Logf("broker killed and restarted with %d of %d trades stored", before, len(data.trades))
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}
	s.waitCaughtUp(t, sink)
	s.verify(t, data)
}

func TestExactlyOnceThroughSinkKillsEmbedded(t *testing.T) {
	exactlyOnceThroughSinkKills(t, embeddedStack(t))
}

func TestExactlyOnceThroughSinkKillsKafka(t *testing.T) {
	exactlyOnceThroughSinkKills(t, kafkaStack(t))
}

func TestBrokerCrashMidStreamEmbedded(t *testing.T) {
	brokerCrashMidStream(t, embeddedStack(t))
}

func TestBrokerCrashMidStreamKafka(t *testing.T) {
	brokerCrashMidStream(t, kafkaStack(t))
}

// logFile opens a process's log under dir, appending across restarts.
func logFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			if b, err := os.ReadFile(f.Name()); err == nil {
				t.Logf("%s:\n%s", f.Name(), tail(string(b), 40))
			}
		}
	})
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// k2 up killed with SIGKILL while `k2 load` streams BHP through it comes
// back on the same data dir and stores every record once.
func TestUpRecoversAfterKill9(t *testing.T) {
	data := loadBHP(t)
	bin := k2Binary(t)
	src := testutil.Data(t, "asx")
	asxDir := t.TempDir()
	for _, f := range []string{"reference-data/company_info.csv", "trades/" + data.ref.CompanyID + ".csv", "quotes/" + data.ref.CompanyID + ".csv"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(asxDir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(asxDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	kafkaAddr, regAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	s := &cluster{brokers: kafkaAddr, registry: "http://" + regAddr, dataDir: dir}
	s.open(t)
	var up *exec.Cmd
	start := func() {
		up = exec.Command(bin, "--log-level", "info", "--data-dir", dir, "up", "--broker-listen", kafkaAddr, "--registry-listen", regAddr,
			"--http-listen", "off", "--feed", "none", "--sink-batch-age", "200ms", "--sink-batch-rows", "20000",
			"--maintain-every", "300ms", "--compact-quiet-after", "1s", "--retain-dense-for", "2s", "--retain-last", "3")
		up.Stderr = logFile(t, dir, "up")
		out, err := up.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := up.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "K2 up") {
			t.Fatalf("k2 up: %q %v (log in %s)", line, err, dir)
		}
	}
	start()
	t.Cleanup(func() {
		if up.ProcessState == nil {
			up.Process.Kill()
			up.Wait()
		}
	})
	load := exec.Command(bin, "--log-level", "warn", "--data-dir", t.TempDir(), "load", "asx", asxDir,
		"--via-kafka", "--brokers", kafkaAddr, "--registry", "http://"+regAddr)
	load.Stderr = logFile(t, dir, "load")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for rows := s.storedRows(ctx, t); rows == 0 || rows >= int64(len(data.trades)); rows = s.storedRows(ctx, t) {
		if time.Now().After(deadline) || rows >= int64(len(data.trades)) {
			t.Fatalf("could not catch the sink mid-stream (%d trades stored); logs in %s", rows, dir)
		}
		time.Sleep(5 * time.Millisecond)
	}
	up.Process.Kill()
	up.Wait()
	s.brokerCrashed = true
	t.Logf("k2 up killed with %d of %d trades stored", s.storedRows(ctx, t), len(data.trades))
	start()
	if err := load.Wait(); err != nil {
		t.Fatalf("k2 load through Kafka: %v; logs in %s", err, dir)
	}
	deadline = time.Now().Add(3 * time.Minute)
	for !s.caughtUp(ctx, t) {
		if time.Now().After(deadline) {
			t.Fatalf("k2 up did not catch up; logs in %s", dir)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.verify(t, data) // while k2 up, which is also the broker, still runs
	up.Process.Signal(syscall.SIGTERM)
	if err := up.Wait(); err != nil {
		t.Errorf("k2 up stopped with %v; logs in %s", err, dir)
	}
}
