package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientSchemaByIDIsCached(t *testing.T) {
	t.Parallel()
	reg, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			fetches.Add(1)
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	cl, err := NewClient(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := cl.Register(ctx, "trades-value", tradeV1Spaced)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	texts := make([]string, 32)
	errs := make([]error, 32)
	for i := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			texts[i], errs[i] = cl.SchemaByID(ctx, id)
		}()
	}
	wg.Wait()
	for i := range texts {
		if errs[i] != nil || texts[i] != tradeV1Spaced {
			t.Fatalf("SchemaByID = %q, %v", texts[i], errs[i])
		}
	}
	if s, _ := cl.SchemaByID(ctx, id); s != tradeV1Spaced {
		t.Fatalf("cached %q", s)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches of one id, want 1", n)
	}

	_, err = cl.SchemaByID(ctx, 99)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "schema id 99") {
		t.Fatalf("unknown id: %v", err)
	}
	// Misses are not cached: the id may be registered later.
	if fetches.Load() != 2 {
		t.Fatalf("fetches %d", fetches.Load())
	}
	if cl.URL() != srv.URL {
		t.Fatalf("URL %q", cl.URL())
	}
}

func TestClientErrorsNameRegistryAndSubject(t *testing.T) {
	t.Parallel()
	if _, err := NewClient(" "); err == nil {
		t.Fatal("NewClient accepted no URL")
	}
	// Nothing listens on port 1 of the loopback address.
	cl, err := NewClient("http://127.0.0.1:1", WithRegisterRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = cl.Register(ctx, "trades-value", tradeV1)
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !strings.Contains(err.Error(), `"trades-value"`) {
		t.Fatalf("Register against a dead registry: %v", err)
	}
	if errors.Is(err, ErrIncompatible) {
		t.Fatal("a dead registry reported as an incompatible schema")
	}
	err = cl.SetCompatibility(ctx, "trades-value", CompatFull)
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !strings.Contains(err.Error(), `"trades-value"`) {
		t.Fatalf("SetCompatibility against a dead registry: %v", err)
	}

	e := start(t, t.TempDir())
	_, err = e.cl.Register(ctx, "trades-value", `{"type":"recrod"}`)
	if err == nil || !strings.Contains(err.Error(), e.srv.URL) || !strings.Contains(err.Error(), "Invalid schema") {
		t.Fatalf("invalid schema: %v", err)
	}
}

// A producer registering its schema waits out a registry that is
// restarting, and gives up once the retry time is spent.
func TestRegisterWaitsOutAnUnavailableRegistry(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir())
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		e.reg.Handler().ServeHTTP(w, r)
	}))
	defer flaky.Close()
	cl, err := NewClient(flaky.URL, WithRegisterRetry(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := cl.Register(context.Background(), "trades-value", tradeV1); err != nil || id == 0 || calls.Load() != 4 {
		t.Fatalf("id %d, %v after %d calls", id, err, calls.Load())
	}
	calls.Store(-1000)
	short, _ := NewClient(flaky.URL, WithRegisterRetry(300*time.Millisecond))
	start := time.Now()
	if _, err := short.Register(context.Background(), "trades-value", tradeV1); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("gave up with %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s, retry time 300ms", d)
	}
}
