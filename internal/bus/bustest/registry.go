package bustest

import (
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/k2-market-data/k2/internal/registry"
)

// HTTPSRegistry serves an embedded schema registry over HTTPS behind HTTP
// basic auth, as managed registries are: it returns the URL and a PEM
// file of the server's certificate (the CA a client needs).
func HTTPSRegistry(t testing.TB, user, pass string) (url, caFile string) {
	t.Helper()
	r, err := registry.Open(filepath.Join(t.TempDir(), "registry"))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error_code":401,"message":"Unauthorized"}`))
			return
		}
		h.ServeHTTP(w, req)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); r.Close() })
	caFile = filepath.Join(t.TempDir(), "registry-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile
}

// OtherCA is a PEM file of a CA that signed none of the test services'
// certificates, for tests of a server that must not be trusted.
func OtherCA(t testing.TB) string {
	t.Helper()
	other := httptest.NewTLSServer(nil)
	other.Close()
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
