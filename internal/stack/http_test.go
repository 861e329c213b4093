package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Without keys the API is served only on a loopback address: open there
// (and saying so), refused anywhere else with the settings to change.
func TestAPIWithoutKeysOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP.Listen = "0.0.0.0:0"
	_, err := Start(context.Background(), "api", cfg, Parts{API: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "--api-keys") || !strings.Contains(err.Error(), "K2_API_KEYS") || !strings.Contains(err.Error(), "0.0.0.0:0") {
		t.Fatalf("open on 0.0.0.0: %v", err)
	}
	// A role without the API does not care.
	st := start(t, "sink", cfg, Parts{Lake: true})
	if code, _ := st.get(t, "/health"); code != http.StatusOK {
		t.Errorf("sink on 0.0.0.0: /health %d", code)
	}

	var log syncBuffer
	cfg = testConfig(t)
	s, err := Start(context.Background(), "api", cfg, Parts{API: true}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(log.String(), "open to anyone on this machine") {
		t.Errorf("open on loopback without saying so:\n%s", log.String())
	}
	r := &running{Stack: s}
	if code, body := r.get(t, "/v1/symbols"); code != http.StatusOK {
		t.Errorf("open on loopback: /v1/symbols %d %s", code, body)
	}
}

// With keys, the API may listen anywhere; the guard covers the whole
// listener: a route added later needs a key like the API's, the public
// paths none.
func TestAPIWithKeysGuardsTheWholeListener(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP.Listen = "0.0.0.0:0"
	cfg.API.Keys = []string{"ops:k-3c9e1f"}
	cfg.API.TailAge = 0 // no stream here: ready without a broker
	st := start(t, "api", cfg, Parts{API: true})
	st.Handle("GET /dashboard/data", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "data") }))
	addr := "127.0.0.1:" + st.HTTPAddr()[strings.LastIndex(st.HTTPAddr(), ":")+1:]
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/v1/symbols", "", 401}, {"/v1/symbols", "wrong", 403}, {"/v1/symbols", "k-3c9e1f", 200},
		{"/dashboard/data", "", 401}, {"/dashboard/data", "k-3c9e1f", 200}, {"/debug/pprof/", "", 401},
		{"/health", "", 200}, {"/ready", "", 200}, {"/metrics", "", 200}, {"/version", "", 200},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+c.path, nil)
		if c.key != "" {
			req.Header.Set("X-API-Key", c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want || resp.Header.Get("X-Request-ID") == "" {
			t.Errorf("GET %s (key %q): %d, want %d", c.path, c.key, resp.StatusCode, c.want)
		}
	}
}

// A client that sends its headers byte by byte is cut off after
// --http-read-header-timeout, while it is still sending.
func TestSlowlorisIsCutOff(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	st := start(t, "sink", cfg, Parts{Lake: true})
	conn, err := net.Dial("tcp", st.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Time, 1)
	go func() {
		io.Copy(io.Discard, conn) // until the server closes the connection
		closed <- time.Now()
	}()
	began := time.Now()
	header := "GET /health HTTP/1.1\r\nHost: k2\r\nX-Slow: " + strings.Repeat("a", 200)
	sent := 0
	var cut time.Time
send:
	for _, b := range []byte(header) {
		select {
		case cut = <-closed:
			break send
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{b}); err != nil {
			break
		}
		sent++
	}
	if cut.IsZero() {
		select {
		case cut = <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("the connection is still open after %d bytes over %s", sent, time.Since(began))
		}
	}
	if took := cut.Sub(began); took < 250*time.Millisecond || took > 2*time.Second || sent == len(header) {
		t.Fatalf("cut off after %s and %d of %d bytes; want after the 300 ms header timeout, while still sending", took, sent, len(header))
	}
	// Other clients are served as ever.
	if code, _ := st.get(t, "/health"); code != http.StatusOK {
		t.Fatalf("/health after the slow client: %d", code)
	}
}

// The write timeout cuts off an answer that takes too long to write, but
// not a stream that flushes as it goes: it lives as long as it sends.
func TestStreamsOutliveTheWriteTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTP.WriteTimeout = 300 * time.Millisecond
	cfg.API.Keys = []string{"k-5d2a7e"}
	st := start(t, "api", cfg, Parts{API: true})
	st.Handle("GET /stream", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "event %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	st.Handle("GET /stalled", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(600 * time.Millisecond)
		io.WriteString(w, "too late")
	}))
	fetch := func(path string) (string, error) {
		req, _ := http.NewRequest("GET", "http://"+st.HTTPAddr()+path, nil)
		req.Header.Set("X-API-Key", "k-5d2a7e")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := fetch("/stream"); err != nil || strings.Count(body, "event") != 8 {
		t.Errorf("an 800 ms stream under a 300 ms write timeout: %q %v", body, err)
	}
	if body, err := fetch("/stalled"); err == nil && body == "too late" {
		t.Errorf("an answer written after the write timeout arrived: %q", body)
	}
}
