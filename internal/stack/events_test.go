package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/record"
)

type sseEvent struct{ id, event, data string }

// sseClient reads server-sent events into a channel until the body ends.
func sseClient(t *testing.T, url, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 1000)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return out, cancel
}

func nextTrade(t *testing.T, evs <-chan sseEvent) (sseEvent, string) {
	t.Helper()
	select {
	case ev, ok := <-evs:
		if !ok {
			t.Fatal("the stream ended")
		}
		var d struct {
			TradeID string `json:"trade_id"`
		}
		json.Unmarshal([]byte(ev.data), &d)
		return ev, d.TradeID
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30 s")
	}
	return sseEvent{}, ""
}

// The event stream brings a symbol's trades as they are produced; a client
// reconnecting with Last-Event-ID gets what followed, each trade once; a
// stopping server ends the stream with an event "end".
func TestEventStreamResumesExactly(t *testing.T) {
	t.Parallel()
	broker := start(t, "broker", testConfig(t), Parts{Embedded: true})
	cfg := testConfig(t)
	cfg.Kafka.Brokers, cfg.Kafka.Registry = strings.Join(broker.Brokers(), ","), broker.RegistryURL()
	api := start(t, "api", cfg, Parts{API: true})
	p, err := broker.Producer("events-test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			tr := freshTrade(i)
			if err := bus.Produce(ctx, p, record.Trade, &tr); err != nil {
				t.Fatal(err)
			}
		}
		p.Flush(ctx)
	}
	// The topic must exist before the stream can know its partitions.
	produce(0, 2)
	url := "http://" + api.HTTPAddr() + "/v1/stream/trades?symbols=ethusdt"
	var evs <-chan sseEvent
	var cancel func()
	deadline := time.Now().Add(30 * time.Second)
	for { // until the tail has found the topic
		evs, cancel = sseClient(t, url, "")
		produce(2, 4)
		select {
		case ev := <-evs:
			if ev.event == "trade" {
				goto found
			}
		case <-time.After(6 * time.Second):
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatal("the stream brought nothing")
		}
	}
found:
	cancel()
	evs, cancel = sseClient(t, url, "")
	time.Sleep(200 * time.Millisecond)
	produce(100, 200) // 50 of ETHUSDT: odd numbers
	var lastID string
	for i := 101; i < 141; i += 2 {
		ev, id := nextTrade(t, evs)
		// The probes, produced again on each try, may still be arriving
		// after this client subscribed: a live stream rightly brings them.
		for id == "BINANCE-1" || id == "BINANCE-3" {
			ev, id = nextTrade(t, evs)
		}
		if ev.event != "trade" || id != fmt.Sprintf("BINANCE-%d", i) || ev.id == "" {
			t.Fatalf("event for trade %d: %+v %s", i, ev, id)
		}
		lastID = ev.id
	}
	cancel() // the client goes away after trade 139
	produce(200, 300)
	evs, cancel = sseClient(t, url, lastID)
	defer cancel()
	for i := 141; i < 300; i += 2 {
		if _, id := nextTrade(t, evs); id != fmt.Sprintf("BINANCE-%d", i) {
			t.Fatalf("after resuming: trade %s, want %d", id, i)
		}
	}
	select {
	case ev := <-evs:
		t.Fatalf("an event past the last produced: %+v", ev)
	case <-time.After(500 * time.Millisecond):
	}
	// A stop ends the stream cleanly, promptly.
	stopped := make(chan error, 1)
	go func() {
		err := api.stop(t)
		api.Close()
		stopped <- err
	}()
	ev, _ := nextTrade(t, evs)
	if ev.event != "end" {
		t.Errorf("the stopping server sent %+v", ev)
	}
	select {
	case <-stopped:
	case <-time.After(StopTimeout):
		t.Fatal("the API did not stop with a stream open")
	}
}
