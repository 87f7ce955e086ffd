package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/config"
)

func do(t *testing.T, method, url string, body io.Reader, user string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, "pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func want429(t *testing.T, what string, code int, body string, h http.Header) {
	t.Helper()
	if code != http.StatusTooManyRequests || !strings.Contains(body, `"code":"TOOMANYREQUESTS"`) || h.Get("Retry-After") == "" {
		t.Fatalf("%s: %d %q (Retry-After %q), want 429 TOOMANYREQUESTS with Retry-After", what, code, body, h.Get("Retry-After"))
	}
}

// http.ratelimit through serve: per client address (probes exempt), the
// cap on one client's uploads at once, per authenticated user.
func TestServeRateLimit(t *testing.T) {
	t.Run("per client", func(t *testing.T) {
		cfg := config.Default()
		cfg.Storage.Driver = "inmemory"
		cfg.HTTP.Addr = freeAddr(t)
		cfg.HTTP.RateLimit = config.RateLimit{Enabled: true, PerClient: config.RequestRate{Requests: 0.2, Burst: 3}}
		base := startServe(t, cfg)
		// startServe's readiness check took one token.
		for i := 0; i < 2; i++ {
			if code, body, _ := do(t, "GET", base+"/v2/", nil, ""); code != 200 {
				t.Fatalf("request %d within the burst: %d %s", i, code, body)
			}
		}
		code, body, h := do(t, "GET", base+"/v2/_catalog", nil, "")
		want429(t, "past the burst", code, body, h)
		if h.Get("Retry-After") != "5" {
			t.Errorf("Retry-After %q at 0.2 requests/s, want 5", h.Get("Retry-After"))
		}
		code, _, h = do(t, "HEAD", base+"/v2/a/manifests/latest", nil, "")
		if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
			t.Errorf("HEAD past the burst: %d", code)
		}
		for i := 0; i < 5; i++ {
			if code, _, _ := do(t, "GET", base+"/healthz", nil, ""); code != 200 {
				t.Fatalf("/healthz limited: %d", code)
			}
		}
	})
	t.Run("uploads at once", func(t *testing.T) {
		cfg := config.Default()
		cfg.Storage.Driver = "inmemory"
		cfg.HTTP.Addr = freeAddr(t)
		cfg.HTTP.RateLimit = config.RateLimit{Enabled: true, Uploads: 1}
		base := startServe(t, cfg)
		code, _, h := do(t, "POST", base+"/v2/up/blobs/uploads/", nil, "")
		if code != http.StatusAccepted {
			t.Fatalf("start upload: %d", code)
		}
		loc := h.Get("Location")
		pr, pw := io.Pipe()
		done := make(chan int)
		go func() {
			code, _, _ := do(t, "PATCH", loc, pr, "")
			done <- code
		}()
		// The PATCH is in flight at the server once more bytes went
		// through than the loopback socket buffers hold (a few MiB): a
		// small write returns as soon as the client's transport took it,
		// possibly before the server started the request.
		if _, err := pw.Write(make([]byte, 16<<20)); err != nil {
			t.Fatal(err)
		}
		code, body, h := do(t, "POST", base+"/v2/up/blobs/uploads/", nil, "")
		want429(t, "a second upload at once", code, body, h)
		if code, _, _ := do(t, "GET", base+"/v2/", nil, ""); code != 200 {
			t.Fatalf("a pull beside the upload: %d", code)
		}
		pw.Close()
		if code := <-done; code != http.StatusAccepted {
			t.Fatalf("the PATCH: %d", code)
		}
		if code, _, _ := do(t, "POST", base+"/v2/up/blobs/uploads/", nil, ""); code != http.StatusAccepted {
			t.Fatalf("an upload after the first ended: %d", code)
		}
	})
	t.Run("per user", func(t *testing.T) {
		dir := t.TempDir()
		hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\nbob:"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.Storage.Driver = "inmemory"
		cfg.HTTP.Addr = freeAddr(t)
		cfg.Auth.Htpasswd = &config.AuthHtpasswd{Realm: "r", Path: htpasswd}
		cfg.HTTP.RateLimit = config.RateLimit{Enabled: true, PerUser: config.RequestRate{Requests: 0.1, Burst: 2}}
		base := startServe(t, cfg)
		for i := 0; i < 2; i++ {
			if code, _, _ := do(t, "GET", base+"/v2/a/tags/list", nil, "alice"); code != http.StatusNotFound {
				t.Fatalf("alice's request %d: %d", i, code)
			}
		}
		code, body, h := do(t, "GET", base+"/v2/_catalog", nil, "alice")
		want429(t, "alice past her burst", code, body, h)
		if code, _, _ := do(t, "GET", base+"/v2/", nil, "bob"); code != 200 {
			t.Fatalf("bob: %d", code)
		}
		// Without credentials: 401, not counted against anyone.
		for i := 0; i < 4; i++ {
			if code, _, _ := do(t, "GET", base+"/v2/", nil, ""); code != http.StatusUnauthorized {
				t.Fatalf("anonymous: %d", code)
			}
		}
	})
}
