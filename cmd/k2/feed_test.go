package main

// End-to-end tests of the live feeds on real recorded traffic: k2
// replay-server plays a capture over the exchange's protocol, a feed
// (k2 feed, or the one k2 up runs) captures it, and the lake is checked
// record by record.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/replay"
	"github.com/k2-market-data/k2/internal/testutil"
)

// btcCapture is the continuous BTCUSDT capture of 2024-08-08/09: its
// files, and the capture as the replay server loads it.
func btcCapture(t *testing.T) ([]string, *replay.Capture) {
	t.Helper()
	dir := testutil.Data(t, "binance", "ws")
	files := []string{filepath.Join(dir, "spot_btcusdt_20240808.gz"), filepath.Join(dir, "spot_btcusdt_20240809.gz")}
	btcOnce.Do(func() { btcLoaded, btcErr = replay.Load(files...) })
	if btcErr != nil {
		t.Fatal(btcErr)
	}
	return files, btcLoaded
}

var (
	btcOnce   sync.Once
	btcLoaded *replay.Capture
	btcErr    error
)

// Its trades: ids 3735683259–3735703162, no gaps.
const (
	firstBTCTrade = 3735683259
	btcTrades     = 19_904
	btcQuotes     = 73_174
)

// binanceIDs are the trade and quote ids the capture's frames carry, at
// positions from..to of its timeline (to < 0: the end).
func binanceIDs(t *testing.T, c *replay.Capture, from, to int) (trades, quotes []string) {
	t.Helper()
	if to < 0 {
		to = len(c.Frames)
	}
	for _, f := range c.Frames[from:to] {
		// (A map: encoding/json would match "T", the trade time, to "t".)
		var ev map[string]json.RawMessage
		kind := f.Stream[strings.IndexByte(f.Stream, '@')+1:]
		if kind != "trade" && kind != "bookTicker" {
			continue
		}
		if err := json.Unmarshal(f.Payload(), &ev); err != nil {
			t.Fatal(err)
		}
		if kind == "trade" {
			trades = append(trades, "BINANCE-"+string(ev["t"]))
		} else {
			quotes = append(quotes, "BINANCE-"+string(ev["u"]))
		}
	}
	return trades, quotes
}

// replayServer runs `k2 replay-server` on a free port and returns its
// WebSocket address.
func replayServer(t *testing.T, dir string, args ...string) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(k2Binary(t), append([]string{"--log-level", "info", "replay-server", "--listen", addr}, args...)...)
	cmd.Stderr = logFile(t, dir, "replay-server")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "replaying ") {
		t.Fatalf("k2 replay-server: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return "ws://" + addr
}

// feedProc is a process running a feed (k2 feed, or k2 up), whose last
// line of output is the feed's summary.
type feedProc struct {
	*exec.Cmd
	out  *strings.Builder
	done chan struct{}
}

func startFeedProc(t *testing.T, dir, name string, args ...string) *feedProc {
	t.Helper()
	cmd := exec.Command(k2Binary(t), args...)
	cmd.Stderr = logFile(t, dir, name)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &feedProc{Cmd: cmd, out: &strings.Builder{}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		io.Copy(p.out, pipe)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// stop ends the process with SIGTERM and returns the feed's summary.
func (p *feedProc) stop(t *testing.T, dir string) feedSummary {
	t.Helper()
	p.Process.Signal(syscall.SIGTERM)
	<-p.done
	if err := p.Wait(); err != nil {
		t.Fatalf("%s stopped with %v; logs in %s", p.Args[len(p.Args)-1], err, dir)
	}
	return parseFeedSummary(t, p.out.String())
}

// feedSummary is what a feed printed when it stopped.
type feedSummary map[string]int

var summaryField = regexp.MustCompile(`(\d+) (frames|trades|backfilled|quotes|repeats|gaps|trade ids|dead letters|connections|rotations)`)

func parseFeedSummary(t *testing.T, out string) feedSummary {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "binance: ") || strings.HasPrefix(line, "binance-usdm: ") || strings.HasPrefix(line, "kraken: ") {
			s := feedSummary{"line": 0}
			for _, m := range summaryField.FindAllStringSubmatch(line, -1) {
				s[m[2]], _ = strconv.Atoi(m[1])
			}
			t.Log(line)
			return s
		}
	}
	t.Fatalf("no feed summary in %q", out)
	return nil
}

// waitRows waits until the table holds n rows.
func (s *cluster) waitRows(t *testing.T, table string, n int64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := laketest.Rows(t, s.lake, table)
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("%s holds %d rows, want %d; logs in %s", table, got, n, s.dataDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exactlyOnce checks the table stores every id once and nothing else.
func (s *cluster) exactlyOnce(t *testing.T, table, column string, want []string) {
	t.Helper()
	got := laketest.Keys(t, s.lake, table, column)
	if rep := laketest.Repeated(got); len(rep) > 0 {
		t.Errorf("%s: %d ids stored more than once, e.g. %v", table, len(rep), rep[:min(5, len(rep))])
	}
	var missing []string
	for _, id := range want {
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || len(got) != len(want) {
		t.Errorf("%s: %d distinct ids stored, %d expected, %d missing (e.g. %v)", table, len(got), len(want), len(missing), missing[:min(5, len(missing))])
	}
}

// upWithFeed runs k2 up with a feed on fresh ports and directories.
func upWithFeed(t *testing.T, feedArgs ...string) (*cluster, *feedProc) {
	t.Helper()
	dir := t.TempDir()
	kafkaAddr, regAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	s := &cluster{brokers: kafkaAddr, registry: "http://" + regAddr, dataDir: dir}
	s.open(t)
	args := append([]string{"--log-level", "info", "--data-dir", dir, "up", "--broker-listen", kafkaAddr, "--registry-listen", regAddr,
		"--http-listen", "off", "--sink-batch-age", "200ms"}, feedArgs...)
	return s, startFeedProc(t, dir, "up", args...)
}

// Every trade id of the BTCUSDT capture (19,904, contiguous) lands in the
// trades table once, and every bookTicker as a quote, through the
// replay server, the Binance feed and the sink of k2 up.
func TestBinanceCaptureLandsExactlyOnce(t *testing.T) {
	files, c := btcCapture(t)
	trades, quotes := binanceIDs(t, c, 0, -1)
	if len(trades) != btcTrades || len(quotes) != btcQuotes || trades[0] != "BINANCE-"+strconv.Itoa(firstBTCTrade) {
		t.Fatalf("the capture holds %d trades from %s and %d quotes", len(trades), trades[0], len(quotes))
	}
	url := replayServer(t, t.TempDir(), "--file", files[0], "--file", files[1], "--speed", "max")
	s, up := upWithFeed(t, "--feed", "binance", "--symbols", "BTCUSDT", "--url", url)
	s.waitRows(t, "trades", btcTrades)
	s.waitRows(t, "quotes", btcQuotes)
	sum := up.stop(t, s.dataDir)
	s.exactlyOnce(t, "trades", "trade_id", trades)
	s.exactlyOnce(t, "quotes", "quote_id", quotes)
	if sum["trades"] != btcTrades || sum["quotes"] != btcQuotes || sum["gaps"] != 0 || sum["dead letters"] != 0 || sum["repeats"] != 0 {
		t.Errorf("feed summary %v", sum)
	}
}

// A disconnect forced mid-stream loses the frames played while the feed
// is away; the feed reconnects, sees the hole in the trade ids and fills
// it from the REST API, so every trade still lands once. Quotes have no
// history to recover: exactly those played during the outage are
// missing. The roles run apart: k2 sink and k2 feed against the embedded
// broker (k2 broker) or Apache Kafka.
func TestForcedDisconnectRecoversEveryTradeEmbedded(t *testing.T) {
	forcedDisconnect(t, embeddedStack(t))
}

func TestForcedDisconnectRecoversEveryTradeKafka(t *testing.T) {
	forcedDisconnect(t, kafkaStack(t))
}

func forcedDisconnect(t *testing.T, s *cluster) {
	files, c := btcCapture(t)
	const at, outage = 40_000, 3_000
	trades, _ := binanceIDs(t, c, 0, -1)
	_, before := binanceIDs(t, c, 0, at)
	lostTrades, lostQuotes := binanceIDs(t, c, at, at+outage)
	_, after := binanceIDs(t, c, at+outage, -1)
	if len(lostTrades) == 0 {
		t.Fatal("the outage window holds no trades")
	}
	url := replayServer(t, s.dataDir, "--file", files[0], "--file", files[1], "--speed", "max",
		"--disconnect-at", strconv.Itoa(at), "--outage-frames", strconv.Itoa(outage))
	sink := s.sink(t, 1)
	metrics := testutil.FreeAddr(t)
	feed := startFeedProc(t, s.dataDir, "feed", "--log-level", "info", "feed", "binance", "--brokers", s.brokers, "--registry", s.registry,
		"--topic-prefix", s.prefix, "--symbols", "BTCUSDT", "--url", url, "--http-listen", metrics)
	s.waitRows(t, "trades", btcTrades)
	s.waitRows(t, "quotes", int64(len(before)+len(after)))
	// What Prometheus would scrape from the feed.
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"k2_binance_connection_status 1",
		`k2_binance_reconnects_total{reason="closed_by_server"} 1`,
		`k2_binance_trade_gaps_total{symbol="BTCUSDT"} 1`,
		fmt.Sprintf(`k2_binance_backfilled_trades_total{symbol="BTCUSDT"} %d`, len(lostTrades)),
		fmt.Sprintf(`k2_binance_messages_received_total{symbol="BTCUSDT"} %d`, btcTrades+len(before)+len(after)),
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sum := feed.stop(t, s.dataDir)
	sink.Process.Signal(syscall.SIGTERM)
	if err := sink.Wait(); err != nil {
		t.Errorf("sink stopped with %v; logs in %s", err, s.dataDir)
	}
	s.exactlyOnce(t, "trades", "trade_id", trades)
	s.exactlyOnce(t, "quotes", "quote_id", append(before, after...))
	if sum["gaps"] != 1 || sum["trade ids"] != len(lostTrades) || sum["backfilled"] != len(lostTrades) || sum["connections"] != 2 {
		t.Errorf("feed summary %v; the outage lost %d trades and %d quotes", sum, len(lostTrades), len(lostQuotes))
	}
	t.Logf("outage of %d frames: %d trades backfilled from REST, %d quotes lost with it", outage, len(lostTrades), len(lostQuotes))
}

// A feed killed with SIGKILL mid-stream and started again reads the last
// trade ids it produced from Kafka and backfills its downtime from REST:
// every trade lands once. (Quotes sent while it was down are gone; none
// is stored twice.)
func TestFeedKilledMidStreamLosesNoTradeEmbedded(t *testing.T) {
	feedKilledMidStream(t, embeddedStack(t))
}

func TestFeedKilledMidStreamLosesNoTradeKafka(t *testing.T) {
	feedKilledMidStream(t, kafkaStack(t))
}

func feedKilledMidStream(t *testing.T, s *cluster) {
	files, c := btcCapture(t)
	trades, _ := binanceIDs(t, c, 0, -1)
	url := replayServer(t, s.dataDir, "--file", files[0], "--file", files[1], "--speed", "40x")
	sink := s.sink(t, 1)
	args := []string{"--log-level", "info", "feed", "binance", "--brokers", s.brokers, "--registry", s.registry, "--topic-prefix", s.prefix,
		"--http-listen", "off", "--symbols", "BTCUSDT", "--url", url}
	feed := startFeedProc(t, s.dataDir, "feed", args...)
	deadline := time.Now().Add(time.Minute)
	for laketest.Rows(t, s.lake, "trades") < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("no trades stored; logs in %s", s.dataDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	feed.Process.Kill()
	feed.Wait()
	<-feed.done
	killedAt := laketest.Rows(t, s.lake, "trades")
	time.Sleep(time.Second) // 40 s of market at 40x, played to nobody
	feed = startFeedProc(t, s.dataDir, "feed", args...)
	s.waitRows(t, "trades", btcTrades)
	sum := feed.stop(t, s.dataDir)
	sink.Process.Signal(syscall.SIGTERM)
	if err := sink.Wait(); err != nil {
		t.Errorf("sink stopped with %v; logs in %s", err, s.dataDir)
	}
	s.exactlyOnce(t, "trades", "trade_id", trades)
	if rep := laketest.Repeated(laketest.Keys(t, s.lake, "quotes", "quote_id")); len(rep) > 0 {
		t.Errorf("quotes stored twice: %v", rep[:min(5, len(rep))])
	}
	if sum["gaps"] != 1 || sum["backfilled"] == 0 || sum["backfilled"] != sum["trade ids"] {
		t.Errorf("the restarted feed's summary %v: want its downtime backfilled as one gap", sum)
	}
	t.Logf("killed with %d trades stored; the restart backfilled %d", killedAt, sum["backfilled"])
}

// Rotating the connection during a 30x replay (22 s) loses nothing: each
// rotation overlaps the connections for 5 s, the overlap's repeats are
// dropped, and every trade and quote lands once.
func TestRotationDuringTheStreamLosesNothing(t *testing.T) {
	files, c := btcCapture(t)
	trades, quotes := binanceIDs(t, c, 0, -1)
	url := replayServer(t, t.TempDir(), "--file", files[0], "--file", files[1], "--speed", "30x")
	s, up := upWithFeed(t, "--feed", "binance", "--symbols", "BTCUSDT", "--url", url, "--rotate-after", "1s", "--rest-url", "none")
	s.waitRows(t, "trades", btcTrades)
	s.waitRows(t, "quotes", btcQuotes)
	sum := up.stop(t, s.dataDir)
	s.exactlyOnce(t, "trades", "trade_id", trades)
	s.exactlyOnce(t, "quotes", "quote_id", quotes)
	if sum["rotations"] < 2 || sum["repeats"] == 0 || sum["gaps"] != 0 || sum["connections"]-sum["rotations"] > 2 {
		t.Errorf("feed summary %v: want 2 or more rotations, overlap repeats dropped, no gap", sum)
	}
}

// All 1,000 trades of the Kraken file land once, through the Kraken v2
// protocol of the replay server.
func TestKrakenFileLandsWhole(t *testing.T) {
	file := testutil.Data(t, "kraken", "kraken_v2_trade_BTC-USDT.from-rest.jsonl")
	url := replayServer(t, t.TempDir(), "--file", file, "--speed", "max")
	s, up := upWithFeed(t, "--feed", "kraken", "--symbols", "BTC/USDT", "--url", url+"/v2")
	s.waitRows(t, "trades", 1000)
	sum := up.stop(t, s.dataDir)
	var want []string
	for id := 10218208; id <= 10219207; id++ {
		want = append(want, fmt.Sprintf("KRAKEN-%d", id))
	}
	s.exactlyOnce(t, "trades", "trade_id", want)
	if sum["trades"] != 1000 || sum["dead letters"] != 0 {
		t.Errorf("feed summary %v", sum)
	}
	// The replay server, too, serves /health and its own metrics.
	base := "http" + strings.TrimPrefix(url, "ws")
	if body := httpGet(t, base+"/metrics"); !regexp.MustCompile(`(?m)^k2_replay_frames_played_total [1-9]`).MatchString(body) ||
		!strings.Contains(body, "k2_build_info{") {
		t.Errorf("replay-server /metrics:\n%s", body)
	}
	if body := httpGet(t, base+"/health"); !strings.Contains(body, `"status": "ok"`) || !strings.Contains(body, `"role": "replay-server"`) {
		t.Errorf("replay-server /health: %s", body)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// k2 bench feed replays the capture through the feed and reports the rate
// and the memory figures; it fails unless every frame was produced.
func TestBenchFeedReports(t *testing.T) {
	files, _ := btcCapture(t)
	cmd := exec.Command(k2Binary(t), "--log-level", "warn", "--data-dir", t.TempDir(), "bench", "feed", "--json", "--loops", "2",
		"--capture", files[0], "--capture", files[1])
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("k2 bench feed: %v: %s", err, stderr.String())
	}
	stdout := string(out)
	var rep struct {
		Results []struct {
			Name  string  `json:"name"`
			Rows  int     `json:"rows"`
			Value float64 `json:"value"`
			Unit  string  `json:"unit"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	units := map[string]int{}
	for _, r := range rep.Results {
		units[r.Unit]++
		if r.Unit == "msgs/s" && (r.Rows != 2*(btcTrades+btcQuotes) || r.Value <= 0) {
			t.Errorf("%+v", r)
		}
	}
	if units["msgs/s"] != 2 || units["MiB"] != 3 {
		t.Fatalf("report %s", stdout)
	}
}
