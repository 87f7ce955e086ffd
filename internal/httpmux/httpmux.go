// Package httpmux routes requests by path exactly as sent.
//
// net/http's ServeMux "sanitizes" paths: a request for /v2/a/../b/tags/list
// or /v2/a//b/tags/list is answered 301 or 307 with a Location of the
// cleaned path. For a registry that is a redirect into another repository,
// decided before the API has looked at the name, and a client following it
// reads or writes where it never asked to. Mux never cleans, never
// redirects and never decodes: each handler sees the path byte for byte and
// validates it itself (the V2 API answers NAME_INVALID for such names).
package httpmux

import (
	"net/http"
	"sort"
	"strings"
)

// Mux dispatches on r.URL.Path. A pattern ending in "/" matches every path
// that starts with it (the longest such pattern wins); any other pattern
// matches only itself. "/" is the catch-all. Unlike http.ServeMux, "/x/"
// does not make "/x" redirect to "/x/": "/x" matches only a pattern "/x".
type Mux struct {
	exact    map[string]http.Handler
	prefixes []prefix // longest first
}

type prefix struct {
	p string
	h http.Handler
}

// New returns an empty Mux.
func New() *Mux { return &Mux{exact: map[string]http.Handler{}} }

// Handle registers h for pattern. It panics on a pattern that is not a
// rooted path, holds a method or host (ServeMux's "GET /x" or "host/x":
// they would silently mean something else here), or is registered twice.
func (m *Mux) Handle(pattern string, h http.Handler) {
	if !strings.HasPrefix(pattern, "/") || strings.ContainsAny(pattern, " \t{}") {
		panic("httpmux: pattern must be a plain path: " + pattern)
	}
	if strings.HasSuffix(pattern, "/") {
		for _, p := range m.prefixes {
			if p.p == pattern {
				panic("httpmux: pattern registered twice: " + pattern)
			}
		}
		m.prefixes = append(m.prefixes, prefix{pattern, h})
		sort.SliceStable(m.prefixes, func(i, j int) bool { return len(m.prefixes[i].p) > len(m.prefixes[j].p) })
		return
	}
	if _, dup := m.exact[pattern]; dup {
		panic("httpmux: pattern registered twice: " + pattern)
	}
	m.exact[pattern] = h
}

// HandleFunc registers f for pattern (see Handle).
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// Handler returns the handler for path p, nil when none matches.
func (m *Mux) Handler(p string) http.Handler {
	if h, ok := m.exact[p]; ok {
		return h
	}
	for _, e := range m.prefixes {
		if strings.HasPrefix(p, e.p) {
			return e.h
		}
	}
	return nil
}

// ServeHTTP dispatches r, or answers 404 when no pattern matches.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := m.Handler(r.URL.Path)
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}
