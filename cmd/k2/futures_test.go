package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/replay"
	"github.com/k2-market-data/k2/internal/testsvc"
	"github.com/k2-market-data/k2/internal/testutil"
)

// futuresTwin rewrites the spot ETHUSDT capture into a USD-M capture of
// the same trades: the same ids and times (futures ids are a sequence of
// their own, so they can equal spot's), prices 10,000 higher so a blend
// shows, every 100th trade an insurance-fund liquidation, futures-style
// bookTickers, and a markPriceUpdate every 50 trades. It returns the file
// and how many liquidations and funding records it holds.
func futuresTwin(t *testing.T) (path string, liquidations, funding int) {
	t.Helper()
	var out bytes.Buffer
	trades := 0
	seen := map[int64]bool{} // one funding record per event time
	testutil.ForLines(t, testutil.Data(t, "binance", "ws", "spot_ethusdt_20240808.gz"), func(_ int, line []byte) {
		ns, frame, _ := bytes.Cut(line, []byte{' '})
		switch {
		case bytes.Contains(frame, []byte(`@trade"`)):
			trades++
			x := "MARKET"
			if trades%100 == 0 {
				x, liquidations = "INSURANCE_FUND", liquidations+1
			}
			frame = bytes.Replace(frame, []byte(`"p":"`), []byte(`"p":"1`), 1)
			for _, m := range []string{`,"M":true}`, `,"M":false}`} {
				frame = bytes.Replace(frame, []byte(m), []byte(`,"X":"`+x+`"}`), 1)
			}
			if trades%50 == 0 {
				var ev struct {
					Data struct{ E int64 } `json:"data"`
				}
				json.Unmarshal(frame, &ev)
				if seen[ev.Data.E] {
					break
				}
				seen[ev.Data.E] = true
				fmt.Fprintf(&out, `%s {"stream":"ethusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":%d,"s":"ETHUSDT","p":"12600.1","P":"12600.2","i":"12600.3","r":"-0.0001","T":1723190400000}}`+"\n", ns, ev.Data.E)
				funding++
			}
		case bytes.Contains(frame, []byte(`@bookTicker"`)):
			frame = bytes.Replace(frame, []byte(`"data":{`), []byte(`"data":{"e":"bookTicker",`), 1)
		default:
			return
		}
		fmt.Fprintf(&out, "%s %s\n", ns, frame)
	})
	path = filepath.Join(t.TempDir(), "usdm_ethusdt_twin.txt")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, liquidations, funding
}

// Spot and futures of one pair, with the same trade ids and times, load
// into one lake and never mix: spot is asked for as it always was and
// answers spot alone (no trade lost as a "duplicate" of a futures one),
// its bars are those of a lake without futures, and the futures answer
// under their own venue, with liquidations left out of bars unless asked
// and funding records of their own.
func TestSpotAndFuturesOfOnePairStayApart(t *testing.T) {
	spot := testutil.Data(t, "binance", "ws", "spot_ethusdt_20240808.gz")
	twin, liquidations, funding := futuresTwin(t)
	both, spotOnly := t.TempDir(), t.TempDir()
	for _, l := range []struct{ dir, file string }{{both, spot}, {both, twin}, {spotOnly, spot}} {
		if _, e, code := run(t, "--data-dir", l.dir, "load", "binance-ws", l.file, "--no-progress"); code != 0 {
			t.Fatalf("load %s: %s", l.file, e)
		}
	}
	query := func(dir string, args ...string) []map[string]any {
		t.Helper()
		out, e, code := run(t, append([]string{"--data-dir", dir, "query"}, append(args, "--format", "json", "--limit", "100000")...)...)
		var rows []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
			t.Fatalf("query %v: %d %s %s", args, code, e, out)
		}
		return rows
	}
	spotTrades := query(both, "trades", "--exchange", "BINANCE", "--symbol", "ETHUSDT")
	if len(spotTrades) != 6106 {
		t.Fatalf("spot answers %d trades, want the capture's 6106", len(spotTrades))
	}
	for _, r := range spotTrades {
		if r["exchange"] != "BINANCE" || strings.HasPrefix(r["price"].(string), "1") && len(r["price"].(string)) > 6 {
			t.Fatalf("a futures trade answers for spot: %v", r)
		}
	}
	if got := query(both, "trades", "--exchange", "BINANCE_USDM", "--symbol", "ETHUSDT"); len(got) != 6106 || got[0]["asset_class"] != "futures" {
		t.Fatalf("futures: %d trades, first %v", len(got), got[0])
	}
	a, _ := json.Marshal(query(both, "bars", "--exchange", "BINANCE", "--symbol", "ETHUSDT", "--interval", "1m"))
	b, _ := json.Marshal(query(spotOnly, "bars", "--exchange", "BINANCE", "--symbol", "ETHUSDT", "--interval", "1m"))
	if !bytes.Equal(a, b) {
		t.Fatalf("spot's bars change when futures are loaded beside them:\n%s\n%s", a, b)
	}
	count := func(bars []map[string]any) (n int) {
		for _, b := range bars {
			var c int
			fmt.Sscan(fmt.Sprint(b["trade_count"]), &c)
			n += c
		}
		return n
	}
	if n := count(query(both, "bars", "--exchange", "BINANCE_USDM", "--symbol", "ETHUSDT", "--interval", "1m")); n != 6106-liquidations {
		t.Errorf("futures bars count %d trades, want %d without the %d liquidations", n, 6106-liquidations, liquidations)
	}
	if n := count(query(both, "bars", "--exchange", "BINANCE_USDM", "--symbol", "ETHUSDT", "--interval", "1m", "--include-non-market")); n != 6106 {
		t.Errorf("futures bars with --include-non-market count %d trades, want 6106", n)
	}
	rates := query(both, "funding", "--exchange", "BINANCE_USDM", "--symbol", "ETHUSDT")
	if len(rates) != funding || rates[0]["funding_rate"] != "-0.0001" || rates[0]["mark_price"] != "12600.1" {
		t.Fatalf("%d funding records, want %d; first %v", len(rates), funding, rates[0])
	}
}

// The USD-M feed takes the futures streams: every trade and bookTicker of
// the USD-M capture, played by the replay server, lands once under
// BINANCE_USDM, in the futures topics.
func TestUSDMCaptureLandsExactlyOnceThroughTheFuturesFeed(t *testing.T) {
	file := testutil.Data(t, "binance", "ws", "usdm_ethusdt_20240719.gz")
	c, err := replay.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var trades, quotes []string
	for _, f := range c.Frames {
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(f.Payload(), &ev); err != nil {
			t.Fatal(err)
		}
		switch f.Stream[strings.IndexByte(f.Stream, '@')+1:] {
		case "trade":
			trades = append(trades, "BINANCE_USDM-"+string(ev["t"]))
		case "bookTicker":
			quotes = append(quotes, "BINANCE_USDM-"+string(ev["u"]))
		}
	}
	if len(trades) != 12015 || len(quotes) != 38239 {
		t.Fatalf("the capture holds %d trades and %d quotes", len(trades), len(quotes))
	}
	url := replayServer(t, t.TempDir(), "--file", file, "--speed", "max")
	s, up := upWithFeed(t, "--feed", "binance-usdm", "--symbols", "ETHUSDT", "--url", url)
	s.waitRows(t, "trades", int64(len(trades)))
	s.waitRows(t, "quotes", int64(len(quotes)))
	sum := up.stop(t, s.dataDir)
	s.exactlyOnce(t, "trades", "trade_id", trades)
	s.exactlyOnce(t, "quotes", "quote_id", quotes)
	if sum["trades"] != len(trades) || sum["dead letters"] != 0 || sum["gaps"] != 0 {
		t.Errorf("feed summary %v", sum)
	}
}

// hostileSymbols are names an exchange could list that no path may hold
// as they are; each becomes a pair with USDT.
var hostileSymbols = []string{"ÉTH", "ETH%20", "../../ETH", "BTC/", "BRK B", `O'NEIL"S`, `A\B`, strings.Repeat("Ж", 100)}

// hostileCapture rewrites the spot ETHUSDT capture's first trades into
// 100 trades of each hostile symbol, frames and stream names alike.
func hostileCapture(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	n := 0
	testutil.ForLines(t, testutil.Data(t, "binance", "ws", "spot_ethusdt_20240808.gz"), func(_ int, line []byte) {
		if !bytes.Contains(line, []byte(`@trade"`)) || n >= 100*len(hostileSymbols) {
			return
		}
		sym := hostileSymbols[n/100] + "USDT"
		q, _ := json.Marshal(sym)
		stream, _ := json.Marshal(strings.ToLower(sym) + "@trade")
		line = bytes.Replace(line, []byte(`"ethusdt@trade"`), stream, 1)
		line = bytes.Replace(line, []byte(`"s":"ETHUSDT"`), append([]byte(`"s":`), q...), 1)
		out.Write(line)
		out.WriteByte('\n')
		n++
	})
	path := filepath.Join(t.TempDir(), "hostile.txt")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Hostile symbols written by the stream (k2 load --via-kafka into k2 up's
// broker and sink) are read back whole by k2 query, unfiltered, by symbol
// and in a summary, and by PyIceberg; the funding records of a futures
// capture travel the same way into their own table.
func TestHostileSymbolsThroughTheStream(t *testing.T) {
	capture := hostileCapture(t)
	twin, _, funding := futuresTwin(t) // and futures with their funding records
	s, up := upWithFeed(t, "--feed", "none")
	for _, file := range []string{capture, twin} {
		load := exec.Command(k2Binary(t), "--log-level", "warn", "--data-dir", t.TempDir(), "load", "binance-ws", file,
			"--via-kafka", "--brokers", s.brokers, "--registry", s.registry, "--no-progress")
		if out, err := load.CombinedOutput(); err != nil {
			t.Fatalf("load %s via Kafka: %v\n%s", file, err, out)
		}
	}
	want := int64(100 * len(hostileSymbols))
	s.waitRows(t, "trades", want+6106)
	s.waitRows(t, "funding_rates", int64(funding))
	up.Process.Signal(syscall.SIGTERM) // no feed, so no feed summary to read
	<-up.done
	if err := up.Wait(); err != nil {
		t.Fatalf("k2 up stopped with %v", err)
	}

	out, e, code := run(t, "--data-dir", s.dataDir, "query", "symbols", "--format", "json")
	var syms []struct {
		Symbol string
		Trades int64
	}
	if code != 0 || json.Unmarshal([]byte(out), &syms) != nil || len(syms) != len(hostileSymbols)+1 {
		t.Fatalf("symbols: %d %s %s", code, e, out)
	}
	for _, h := range hostileSymbols {
		out, e, code := run(t, "--data-dir", s.dataDir, "query", "trades", "--symbol", h+"USDT", "--limit", "1000", "--format", "json")
		var rows []map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 100 || rows[0]["symbol"] != h+"USDT" {
			t.Errorf("%q: %d rows, exit %d %s", h+"USDT", len(rows), code, e)
		}
	}
	out, e, code = run(t, "--data-dir", s.dataDir, "query", "summary", hostileSymbols[0]+"USDT", "2024-08-08", "--format", "json")
	if code != 0 || !strings.Contains(out, `"trade_count": 100`) {
		t.Errorf("summary of %s: exit %d %s\n%s", hostileSymbols[0]+"USDT", code, e, out)
	}
	out, e, code = run(t, "--data-dir", s.dataDir, "query", "trades", "--exchange", "BINANCE", "--limit", "10000", "--format", "csv")
	if code != 0 || strings.Count(out, "\n") != int(want)+1 {
		t.Fatalf("unfiltered: exit %d %s, %d lines", code, e, strings.Count(out, "\n"))
	}
	py := testsvc.RunPyIceberg(t, "--catalog-uri", "sqlite:///"+filepath.Join(s.dataDir, "catalog.db"),
		"--warehouse", filepath.Join(s.dataDir, "warehouse"), "--table", "market_data.trades")
	if n, _ := py["tables"].(map[string]any)["market_data.trades"].(map[string]any)["rows"].(json.Number).Int64(); n != want+6106 {
		t.Fatalf("PyIceberg reads %d trades, want %d", n, want+6106)
	}
}

// k2 api serves the API over a lake as a process of its own.
func TestAPIRoleServesTheLake(t *testing.T) {
	data := t.TempDir()
	if _, e, code := run(t, "--data-dir", data, "load", "asx", testutil.Data(t, "asx"), "--no-progress"); code != 0 {
		t.Fatal(e)
	}
	addr := testutil.FreeAddr(t)
	p := startFeedProc(t, data, "api", "--log-level", "info", "--data-dir", data, "api", "--http-listen", addr)
	var body map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The listener answers /health before the lake is open: wait for
		// the API's own answer.
		resp, err := http.Get("http://" + addr + "/v1/trades?symbol=BHP&limit=3")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("k2 api did not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body["success"] != true || len(body["data"].([]any)) != 3 {
		t.Fatalf("%v", body)
	}
	p.Process.Signal(syscall.SIGTERM)
	<-p.done
	if err := p.Wait(); err != nil {
		t.Fatalf("k2 api stopped with %v", err)
	}
}
