package httpmux

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMuxRoutesPathsAsSent(t *testing.T) {
	m := New()
	for _, p := range []string{"/", "/healthz", "/auth/token", "/ui/", "/v2/_registryd/"} {
		p := p
		m.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Pattern", p) })
	}
	for _, tc := range []struct{ path, want string }{
		{"/healthz", "/healthz"},
		{"/healthz/", "/"},       // exact patterns match only themselves
		{"/healthz/../v2/", "/"}, // never resolved
		{"/auth/token", "/auth/token"},
		{"/auth//token", "/"},
		{"/auth/./token", "/"},
		{"/ui", "/"}, // no redirect to /ui/
		{"/ui/", "/ui/"},
		{"/ui/repo/a/../b", "/ui/"}, // the handler sees the path as sent
		{"/v2/_registryd/v1", "/v2/_registryd/"},
		{"/v2/_registryd", "/"},
		{"/v2/a/../_registryd/v1", "/"},
		{"/v2/abuse/../etc/tags/list", "/"},
		{"//v2/", "/"},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "http://x"+tc.path, nil)
		m.ServeHTTP(rec, r)
		if got := rec.Header().Get("X-Pattern"); got != tc.want || rec.Code != 200 {
			t.Errorf("%s: pattern %q status %d, want %q 200", tc.path, got, rec.Code, tc.want)
		}
	}
}

func TestMuxNoCatchAll(t *testing.T) {
	m := New()
	m.HandleFunc("/a/", func(http.ResponseWriter, *http.Request) {})
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://x/b/../a/", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Location") != "" {
		t.Fatalf("status %d location %q, want 404 and no Location", rec.Code, rec.Header().Get("Location"))
	}
}

func TestMuxRefusesServeMuxPatterns(t *testing.T) {
	for _, p := range []string{"GET /x", "example.com/x", "/x/{id}", "/{$}", "x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pattern %q accepted", p)
				}
			}()
			New().Handle(p, http.NotFoundHandler())
		}()
	}
	m := New()
	m.Handle("/x", http.NotFoundHandler())
	defer func() {
		if recover() == nil {
			t.Error("duplicate pattern accepted")
		}
	}()
	m.Handle("/x", http.NotFoundHandler())
}
