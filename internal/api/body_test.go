package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/ops"
)

// echoServer is the API's Server behind its guard, with a body limit of
// limit bytes and one POST route that decodes its body with decodeBody
// and answers it back (there is no POST route yet); calls counts the
// route's runs.
func echoServer(t *testing.T, limit int64) (*httptest.Server, *ops.Registry, *atomic.Int64) {
	t.Helper()
	reg := ops.NewRegistry()
	a := config.Default().API
	a.MaxBodyBytes, a.RateLimit = limit, config.RateOff
	g, err := NewGuard(GuardOptions{API: a, Listen: "127.0.0.1:0", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil, Options{Guard: g})
	calls := new(atomic.Int64)
	s.mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct {
			Name    string   `json:"name"`
			Symbols []string `json:"symbols"`
			Limit   int      `json:"limit"`
		}
		if decodeBody(w, r, &req) != nil {
			return
		}
		writeData(w, newMeta(r), req, -1)
	})
	mux := http.NewServeMux()
	s.Register(mux)
	srv := httptest.NewServer(g.Wrap(mux))
	t.Cleanup(srv.Close)
	return srv, reg, calls
}

type answer struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   struct {
		Code    string         `json:"code"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

func post(t *testing.T, srv *httptest.Server, body io.Reader) (int, answer) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/v1/echo", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return resp.StatusCode, a
}

// onlyReader hides a reader's type, so the client cannot know its length
// and sends it chunked, without Content-Length.
type onlyReader struct{ io.Reader }

// A body over the limit is refused 413: declared, before it is read;
// chunked, once the reading passes the limit. Both are counted.
func TestBodyLimit(t *testing.T) {
	srv, reg, calls := echoServer(t, 1024)
	if status, a := post(t, srv, strings.NewReader(`{"name":"bhp","symbols":["BHP"],"limit":5}`)); status != 200 || !a.Success || !strings.Contains(string(a.Data), `"bhp"`) {
		t.Fatalf("a small body: %d %+v", status, a)
	}
	big := `{"name":"` + strings.Repeat("x", 2000) + `"}`
	status, a := post(t, srv, strings.NewReader(big))
	if status != 413 || a.Error.Code != "PAYLOAD_TOO_LARGE" || a.Error.Details["limit_mb"] == nil || a.Error.Details["size_mb"] == nil {
		t.Fatalf("declared over the limit: %d %+v", status, a)
	}
	if calls.Load() != 1 {
		t.Fatalf("the route ran for a body declared over the limit")
	}
	// Chunked: no Content-Length; the route reads, and stops at the limit.
	status, a = post(t, srv, onlyReader{strings.NewReader(big)})
	if status != 413 || a.Error.Code != "PAYLOAD_TOO_LARGE" || a.Error.Details["limit_mb"] == nil {
		t.Fatalf("chunked over the limit: %d %+v", status, a)
	}
	// Chunked under the limit is fine.
	if status, a := post(t, srv, onlyReader{strings.NewReader(`{"name":"chunked"}`)}); status != 200 || !strings.Contains(string(a.Data), "chunked") {
		t.Fatalf("chunked under the limit: %d %+v", status, a)
	}
	if n := ops.Sum(reg, "k2_http_request_size_limit_exceeded_total", "method", "POST", "endpoint", "POST /v1/echo"); n != 2 {
		t.Errorf("k2_http_request_size_limit_exceeded_total = %v, want 2", n)
	}
	if n := ops.Sum(reg, "k2_http_requests_total", "route", "POST /v1/echo", "status", "4xx"); n != 2 {
		t.Errorf("413s counted as requests %v times", n)
	}
}

// Bad JSON is 400 INVALID_PARAMETERS, with where it went wrong.
func TestDecodeBody(t *testing.T) {
	srv, _, _ := echoServer(t, 1024)
	for _, c := range []struct {
		body  string
		param string
	}{
		{``, ""},
		{`{"name":`, ""},
		{`{"name":"a",}`, ""},
		{`{"name":"a"} {"name":"b"}`, ""},
		{`{"name":"a"}}`, ""},
		{`{"nmae":"a"}`, "nmae"},
		{`{"limit":"ten"}`, "limit"},
		{`[1,2]`, ""},
	} {
		status, a := post(t, srv, strings.NewReader(c.body))
		if status != 400 || a.Error.Code != "INVALID_PARAMETERS" || c.param != "" && a.Error.Details["parameter"] != c.param {
			t.Errorf("%q: %d %+v", c.body, status, a)
		}
		if c.body != "" && a.Error.Details["offset"] == nil {
			t.Errorf("%q: no offset: %+v", c.body, a)
		}
	}
}

// raw sends bytes over a connection of its own and reads the answers
// until the server closes it (or a second passes).
func raw(t *testing.T, srv *httptest.Server, request string, closeWrite bool) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		conn.(*net.TCPConn).CloseWrite()
	}
	var out []*http.Response
	br := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		out = append(out, resp)
	}
}

func code(t *testing.T, resp *http.Response) string {
	t.Helper()
	var a answer
	json.NewDecoder(resp.Body).Decode(&a)
	return a.Error.Code
}

// What a Content-Length that is not a length, or lies, really does.
func TestContentLengthThatIsNotALength(t *testing.T) {
	srv, reg, calls := echoServer(t, 1024)
	// net/http refuses a malformed Content-Length itself, before the
	// guard: a plain 400, and the route never runs.
	for _, cl := range []string{"abc", "-5", "12, 13", "0x10"} {
		resps := raw(t, srv, "POST /v1/echo HTTP/1.1\r\nHost: k2\r\nContent-Length: "+cl+"\r\n\r\n{}", false)
		if len(resps) != 1 || resps[0].StatusCode != 400 {
			t.Errorf("Content-Length %q: %d answers, %v", cl, len(resps), resps)
		}
	}
	if calls.Load() != 0 {
		t.Fatal("the route ran")
	}
	// What reaches the guard from a server in front that lets it through
	// is refused 400 INVALID_CONTENT_LENGTH, and counted.
	for _, cl := range [][]string{{"abc"}, {"12", "13"}, {"1e3"}} {
		req := httptest.NewRequest("POST", "/v1/echo", strings.NewReader("{}"))
		req.Header["Content-Length"] = cl
		w := httptest.NewRecorder()
		srv.Config.Handler.ServeHTTP(w, req)
		if w.Code != 400 || code(t, w.Result()) != "INVALID_CONTENT_LENGTH" {
			t.Errorf("Content-Length %q through the guard: %d %s", cl, w.Code, w.Body)
		}
	}
	if n := ops.Sum(reg, "k2_http_request_size_limit_errors_total", "reason", "invalid_content_length"); n != 3 {
		t.Errorf("k2_http_request_size_limit_errors_total = %v, want 3", n)
	}
	if calls.Load() != 0 {
		t.Fatal("the route ran")
	}
}

// A Content-Length that lies: the body is what it declares, never more.
func TestContentLengthThatLies(t *testing.T) {
	srv, _, calls := echoServer(t, 1024)
	// Declares 12 bytes, sends more: the route reads the 12; the rest is
	// taken as the next request on the connection, which is no request
	// (400 from net/http, and the connection closed).
	first := `{"name":"a"}`
	resps := raw(t, srv, fmt.Sprintf("POST /v1/echo HTTP/1.1\r\nHost: k2\r\nContent-Length: %d\r\n\r\n%s%s\r\n\r\n", len(first), first, `{"name":"`+strings.Repeat("b", 3000)+`"}`), false)
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 {
		t.Fatalf("declared small, sent more: %v", resps)
	}
	var a answer
	json.NewDecoder(resps[0].Body).Decode(&a)
	if string(a.Data) != `{"name":"a","symbols":null,"limit":0}` {
		t.Fatalf("the route read %s", a.Data)
	}
	// Declares 500 and sends 12: the route waits for the rest, and when
	// the client stops sending it is 400, the body cut short.
	resps = raw(t, srv, "POST /v1/echo HTTP/1.1\r\nHost: k2\r\nContent-Length: 500\r\n\r\n"+first, true)
	if len(resps) != 1 || resps[0].StatusCode != 400 || code(t, resps[0]) != "INVALID_PARAMETERS" {
		t.Fatalf("declared more than sent: %v", resps)
	}
	// Declares 10 bytes and is chunked past the limit: net/http drops the
	// Content-Length (Transfer-Encoding wins), and the limit holds on
	// what is read.
	big := strings.Repeat("x", 2000)
	chunked := fmt.Sprintf("POST /v1/echo HTTP/1.1\r\nHost: k2\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n%x\r\n{\"name\":\"%s\"}\r\n0\r\n\r\n", len(big)+11, big)
	resps = raw(t, srv, chunked, false)
	if len(resps) != 1 || resps[0].StatusCode != 413 || code(t, resps[0]) != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("chunked with a Content-Length: %v", resps)
	}
	if calls.Load() != 3 {
		t.Fatalf("the route ran %d times, want 3", calls.Load())
	}
}

// A stream through the guard reaches the connection: flushes and write
// deadlines pass through the recorder, and each flush pushes the write
// deadline ahead, so the stream outlives the server's WriteTimeout.
func TestStreamsReachTheConnection(t *testing.T) {
	g := openGuard(nil, nil)
	g.writeTimeout = 300 * time.Millisecond
	deadlineErr := make(chan error, 1)
	srv := httptest.NewUnstartedServer(g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadlineErr <- http.NewResponseController(w).SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		for i := range 6 {
			fmt.Fprintf(w, "event %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})))
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "event") != 6 {
		t.Fatalf("a 600 ms stream under a 300 ms write timeout: %q %v", b, err)
	}
	if err := <-deadlineErr; err != nil {
		t.Fatalf("ResponseController through the guard: %v", err)
	}
}

// The limiter holds the buckets of the last period, no more: an idle
// bucket (full again) is dropped, and a shard never grows past its cap.
func TestLimiterForgetsIdleCallers(t *testing.T) {
	l := newLimiter(config.Rate{N: 2, Per: time.Minute}, map[string]config.Rate{"GET /v1/stats": {}})
	t0 := time.Now()
	for i := range 5000 {
		if d := l.take(fmt.Sprintf("ip:10.0.%d.%d", i/256, i%256), "GET /v1/trades", t0); !d.ok || d.remaining != 1 {
			t.Fatalf("first request of a caller: %+v", d)
		}
	}
	if n := l.size(); n != 5000 {
		t.Fatalf("%d buckets", n)
	}
	// A route off keeps no bucket.
	if d := l.take("key:dash", "GET /v1/stats", t0); !d.ok || !d.rate.Off() || l.size() != 5000 {
		t.Fatalf("a route off: %+v, %d buckets", d, l.size())
	}
	// The bucket refills: two at once, then one every 30 s.
	l.take("key:dash", "GET /v1/trades", t0)
	l.take("key:dash", "GET /v1/trades", t0)
	d := l.take("key:dash", "GET /v1/trades", t0)
	if d.ok || d.retry < 29*time.Second || d.retry > 30*time.Second || d.reset < 59*time.Second {
		t.Fatalf("over the limit: %+v", d)
	}
	if d := l.take("key:dash", "GET /v1/trades", t0.Add(30*time.Second)); !d.ok || d.remaining != 0 {
		t.Fatalf("30 s later: %+v", d)
	}
	// A period later every bucket is full again: the first request after
	// the minute's sweep is due drops the idle ones.
	later := time.Now().Add(2 * time.Minute)
	for i := range 5000 {
		l.take(fmt.Sprintf("key:k%d", i%200), "GET /v1/quotes", later)
	}
	if n := l.size(); n != 200 {
		t.Fatalf("%d buckets after the idle ones went; want the 200 in use", n)
	}
	// However many callers in one period, the shards stay under their cap.
	for i := range shardCount * maxBucketsPerShard * 2 {
		l.take(fmt.Sprintf("ip:%d", i), "GET /v1/trades", later)
	}
	if n := l.size(); n > shardCount*maxBucketsPerShard {
		t.Fatalf("%d buckets, over the cap of %d", n, shardCount*maxBucketsPerShard)
	}
}
