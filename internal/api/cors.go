package api

import (
	"net/http"
	"strings"
)

// cors lets the pages of configured web origins call the API: their
// requests get Access-Control-Allow-Origin and the headers they may read;
// their preflights (OPTIONS with Access-Control-Request-Method) are
// answered 204 here, before the key is asked for, since a browser sends
// none with them. Other origins get no CORS header at all, so a browser
// keeps the answer from their pages. Keys travel in headers, not cookies:
// credentials are not allowed.
type cors struct {
	any     bool
	origins map[string]bool
}

const (
	corsMethods = "GET, POST, OPTIONS"
	corsHeaders = "X-API-Key, Authorization, Content-Type, X-Request-ID, X-Correlation-ID"
	corsExpose  = "X-Request-ID, X-Correlation-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
	corsMaxAge  = "600"
)

func newCORS(origins []string) cors {
	c := cors{origins: map[string]bool{}}
	for _, o := range origins {
		switch o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/")); o {
		case "":
		case "*":
			c.any = true
		default:
			c.origins[o] = true
		}
	}
	return c
}

// apply sets the CORS headers of a request from an allowed origin, and
// reports whether it was a preflight, now answered.
func (c cors) apply(w http.ResponseWriter, r *http.Request) (answered bool) {
	if !c.any && len(c.origins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !c.any && !c.origins[strings.ToLower(origin)] {
		return false
	}
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", corsExpose)
		return false
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}
