// Package web serves K2's dashboard: the page and its assets, built from
// web/src by web/build.mjs into web/dist and embedded in the binary, so a
// plain go build serves it (docs/dashboard.md).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// CSP allows the page nothing but its own origin: no CDN, no web font, no
// inline script or style, so no request leaves the host that serves it.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// hashed matches the asset names the build gives content hashes
// (index-7TQJ2KXM.js): they never change, so browsers keep them for a year.
var hashed = regexp.MustCompile(`-[A-Z0-9]{8}\.[a-z0-9]+$`)

// Handler answers GET / with the page and GET /assets/… with the built
// files; anything else is not its business (404).
type Handler struct {
	files fs.FS
	etags map[string]string // a file's ETag, by its path in dist
	start time.Time
}

// New returns the handler over the embedded build.
func New() *Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return newHandler(sub)
}

func newHandler(files fs.FS) *Handler {
	h := &Handler{files: files, etags: map[string]string{}, start: time.Now()}
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.etags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return h
}

// Register mounts the page at / (that path only: other paths stay the
// listener's 404s) and the assets under /assets/.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /assets/", h)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := "index.html"
	if r.URL.Path != "/" {
		rel, ok := strings.CutPrefix(r.URL.Path, "/assets/")
		if !ok || rel == "" || strings.Contains(rel, "..") {
			http.NotFound(w, r)
			return
		}
		name = path.Join("assets", rel)
	}
	etag, ok := h.etags[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("ETag", etag)
	if hashed.MatchString(name) {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// The page names the current assets: always asked again, answered
		// 304 while the build is the same.
		hd.Set("Cache-Control", "no-cache")
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		hd.Set("Content-Type", ct)
	}
	b, err := fs.ReadFile(h.files, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// ServeContent answers If-None-Match (the ETag set above) and ranges.
	http.ServeContent(w, r, name, h.start, bytes.NewReader(b))
}
