package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/registryd/registryd/config"
)

// The UI is mounted on the registry's own listener, "/" leads there, and
// the API around it answers as before; ui.enabled: false leaves only the API.
func TestServeMountsTheUI(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status := func(url string) (int, http.Header) {
		t.Helper()
		resp, err := noRedirect.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, tc := range []struct {
		name    string
		enabled bool
		path    string
	}{
		{"default", true, "/ui/"},
		{"moved", true, "/registry-ui/"},
		{"disabled", false, "/ui/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Storage.Filesystem.RootDirectory = t.TempDir()
			cfg.HTTP.Addr = freeAddr(t)
			cfg.UI.Enabled, cfg.UI.Path = tc.enabled, tc.path
			base := startServe(t, cfg)
			code, h := status(base + "/")
			if tc.enabled && (code != http.StatusFound || h.Get("Location") != tc.path) {
				t.Errorf("GET /: %d to %q", code, h.Get("Location"))
			}
			if !tc.enabled && code != http.StatusNotFound {
				t.Errorf("GET / without the UI: %d", code)
			}
			if code, h := status(base + strings.TrimSuffix(tc.path, "/")); tc.enabled && (code != http.StatusMovedPermanently || h.Get("Location") != tc.path) {
				t.Errorf("GET %s: %d to %q", strings.TrimSuffix(tc.path, "/"), code, h.Get("Location"))
			}
			code, body, hdr := get(t, base+tc.path)
			if tc.enabled && (code != http.StatusOK || !strings.Contains(body, "<title>Repositories") || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'")) {
				t.Errorf("GET %s: %d %v", tc.path, code, hdr)
			}
			if !tc.enabled && code != http.StatusNotFound {
				t.Errorf("GET %s without the UI: %d", tc.path, code)
			}
			if code, body, hdr := get(t, base+"/v2/"); code != http.StatusOK || body != "{}" || hdr.Get("Content-Security-Policy") != "" {
				t.Errorf("GET /v2/: %d %q", code, body)
			}
			// POST / is the API's (no such endpoint), not a redirect.
			resp, err := noRedirect.Post(base+"/", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("POST /: %d", resp.StatusCode)
			}
		})
	}
}
