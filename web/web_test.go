package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func serve(t *testing.T, h *Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// The page at / names its assets, each served from /assets/ with a year's
// cache (content-hashed names), the page itself revalidated by ETag, all
// under a policy that lets the page reach its own origin only.
func TestServesPageAndAssets(t *testing.T) {
	h := New()
	page := serve(t, h, "/", nil)
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", page.Code, page.Header().Get("Content-Type"))
	}
	if got := page.Header().Get("Cache-Control"); got != "no-cache" {
		t.Errorf("page Cache-Control %q, want no-cache", got)
	}
	if got := page.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || strings.Contains(got, "unsafe") || strings.Contains(got, "http") {
		t.Errorf("CSP %q", got)
	}
	etag := page.Header().Get("ETag")
	if again := serve(t, h, "/", map[string]string{"If-None-Match": etag}); again.Code != http.StatusNotModified {
		t.Errorf("GET / with its ETag: %d, want 304", again.Code)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
	if len(refs) < 3 {
		t.Fatalf("page names %d assets, want the script, the style and the icon:\n%s", len(refs), page.Body)
	}
	for _, m := range refs {
		w := serve(t, h, m[1], nil)
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("GET %s: %d, %d bytes", m[1], w.Code, w.Body.Len())
			continue
		}
		cc := w.Header().Get("Cache-Control")
		if hashed.MatchString(m[1]) != strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q", m[1], cc)
		}
		ext := filepath.Ext(m[1])
		if want := map[string]string{".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}[ext]; !strings.Contains(w.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s: Content-Type %q", m[1], w.Header().Get("Content-Type"))
		}
	}
	for _, p := range []string{"/index.html", "/build.json", "/assets/", "/assets/nothing.js", "/assets/../build.json", "/other"} {
		if w := serve(t, h, p, nil); w.Code == 200 {
			t.Errorf("GET %s: 200, want not found", p)
		}
	}
}

// dist is built from the sources it records: a change to web/src (or the
// build, or the dependencies) without npm run build fails here, since
// go build embeds dist as it stands.
func TestDistIsCurrent(t *testing.T) {
	b, err := fs.ReadFile(dist, "dist/build.json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		SourcesSHA256 string `json:"sources_sha256"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if got := sourcesHash(t); got != rec.SourcesSHA256 {
		t.Fatalf("web/dist is stale: built from sources %s, web/src is now %s; run make web (npm ci && npm run build in web/) and commit web/dist", rec.SourcesSHA256, got)
	}
}

// sourcesHash is build.mjs's: every input by path in byte order, each as
// "path\n<length>\n<bytes>".
func sourcesHash(t *testing.T) string {
	t.Helper()
	files := []string{"build.mjs", "package.json", "package-lock.json", "tsconfig.json"}
	err := filepath.WalkDir("src", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.ToSlash(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\n%d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
