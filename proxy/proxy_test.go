package proxy_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/proxy"
)

// distribution's single-upstream mode: every repository is a cache; a
// pull fetches what it needs once, bit for bit; a second pull within the
// revalidate interval asks the upstream nothing; pushes and deletes are
// 405 UNSUPPORTED.
func TestPullThrough(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 100<<10, 1)
	m := startMirror(t, single(up))

	pull(t, m, "team/app", img)
	if got := up.count("GET", "manifest"); got != 1 {
		t.Errorf("cold pull: %d manifest GETs upstream, want 1: %v", got, up.requests())
	}
	if got := up.count("GET", "blob"); got != 2 {
		t.Errorf("cold pull: %d blob GETs upstream, want 2: %v", got, up.requests())
	}
	// The fill's commit runs after the client got its bytes.
	waitFor(t, "the layer in the cache", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(t.Context(), img.layer)
		return err == nil
	})
	up.reset()
	pull(t, m, "team/app", img)
	r := do(t, "GET", m.URL+"/v2/team/app/manifests/"+img.digest.String(), accept)
	if r.status != 200 || !bytes.Equal(r.body, img.manifest) {
		t.Fatalf("by digest: %d", r.status)
	}
	if reqs := up.requests(); len(reqs) != 0 {
		t.Errorf("warm pull asked the upstream: %v", reqs)
	}

	for _, tc := range []struct{ method, path string }{
		{"PUT", "/v2/team/app/manifests/v2"},
		{"DELETE", "/v2/team/app/manifests/" + img.digest.String()},
		{"DELETE", "/v2/team/app/blobs/" + img.layer.String()},
		{"POST", "/v2/team/app/blobs/uploads/"},
		{"POST", "/v2/other/blobs/uploads/"},
	} {
		r := do(t, tc.method, m.URL+tc.path, nil)
		if r.status != http.StatusMethodNotAllowed || !strings.Contains(string(r.body), "UNSUPPORTED") {
			t.Errorf("%s %s: %d %s, want 405 UNSUPPORTED", tc.method, tc.path, r.status, r.body)
		}
	}
	// Unknown upstream content is the upstream's 404.
	r = do(t, "GET", m.URL+"/v2/team/app/manifests/nope", accept)
	if r.status != 404 || !strings.Contains(string(r.body), "MANIFEST_UNKNOWN") {
		t.Errorf("unknown tag: %d %s", r.status, r.body)
	}
	r = do(t, "GET", m.URL+"/v2/team/app/blobs/sha256:"+strings.Repeat("0", 64), nil)
	if r.status != 404 || !strings.Contains(string(r.body), "BLOB_UNKNOWN") {
		t.Errorf("unknown blob: %d %s", r.status, r.body)
	}
}

// The Docker token flow against registryd's own issuer: the mirror's
// credentials get it private repositories, anonymous tokens public ones;
// one token per scope serves many requests; the client's Authorization
// never reaches the upstream.
func TestTokenAuth(t *testing.T) {
	up := startUpstream(t, upstreamOpts{token: true})
	priv := up.push(t, "private/app", "v1", 10<<10, 2)
	pub := up.push(t, "public/base", "v1", 10<<10, 3)
	opts := single(up)
	opts.Upstreams[0].Username, opts.Upstreams[0].Password = upUser, upPass
	m := startMirror(t, opts)
	clientAuth := http.Header{"Authorization": {"Basic Y2xpZW50OmNsaWVudC1zZWNyZXQ="}}
	for k, v := range accept {
		clientAuth[k] = v
	}
	r := do(t, "GET", m.URL+"/v2/private/app/manifests/v1", clientAuth)
	if r.status != 200 || !bytes.Equal(r.body, priv.manifest) {
		t.Fatalf("private manifest through the mirror: %d %s", r.status, r.body)
	}
	pull(t, m, "private/app", priv)
	pull(t, m, "public/base", pub)
	if n := up.count("GET", "token"); n != 2 {
		t.Errorf("%d token requests for two repositories, want 2: %v", n, up.requests())
	}
	up.mu.Lock()
	for _, a := range up.auths {
		if strings.Contains(a, "Y2xpZW50") {
			t.Errorf("the client's Authorization reached the upstream: %q", a)
		}
	}
	up.mu.Unlock()

	// Without credentials the private repository is refused, as the
	// upstream refuses it: 403 DENIED, not 404.
	anon := startMirror(t, single(up))
	r = do(t, "GET", anon.URL+"/v2/private/app/manifests/v1", accept)
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "DENIED") {
		t.Errorf("anonymous mirror, private repository: %d %s", r.status, r.body)
	}
	pull(t, anon, "public/base", pub)
}

// registryd starts with its upstream down and serves what it cached;
// what it did not cache is 503 with Retry-After, and the first request
// pays at most one upstream timeout, the next ones none (circuit breaker).
func TestUpstreamDown(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 10<<10, 4)
	other := up.push(t, "team/other", "v1", 10<<10, 5)
	opts := single(up)
	m := startMirror(t, opts)
	pull(t, m, "team/app", img)
	waitFor(t, "the layer in the cache", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(t.Context(), img.layer)
		return err == nil
	})
	up.Close()
	m.clock.add(2 * time.Minute) // past revalidate: the tag is checked

	r := do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept)
	if r.status != 200 || !bytes.Equal(r.body, img.manifest) || !strings.HasPrefix(r.header.Get("Warning"), "110 ") {
		t.Fatalf("cached tag with the upstream down: %d %q %s", r.status, r.header.Get("Warning"), r.body)
	}
	pull(t, m, "team/app", img)
	r = do(t, "GET", m.URL+"/v2/team/other/manifests/v1", accept)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "UNAVAILABLE") {
		t.Errorf("uncached with the upstream down: %d %v %s", r.status, r.header, r.body)
	}
	_ = other

	// A mirror started while the upstream is down starts, and answers.
	m2 := startMirror(t, opts)
	if r := do(t, "GET", m2.URL+"/v2/", nil); r.status != 200 {
		t.Errorf("GET /v2/ of a mirror started with its upstream down: %d", r.status)
	}
}

// A 429 reaches the client only when nothing is cached, as a 429 with the
// upstream's Retry-After (never as a 404); a cached tag is served stale.
func TestRateLimited(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 10<<10, 6)
	up.push(t, "team/other", "v1", 10<<10, 7)
	m := startMirror(t, single(up))
	pull(t, m, "team/app", img)
	up.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		w.Header().Set("Retry-After", "42")
		w.Header().Set("Ratelimit-Limit", "100;w=21600")
		w.Header().Set("Ratelimit-Remaining", "0;w=21600")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	m.clock.add(2 * time.Minute)
	r := do(t, "GET", m.URL+"/v2/team/other/manifests/v1", accept)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "42" || !strings.Contains(string(r.body), "TOOMANYREQUESTS") {
		t.Errorf("uncached, upstream 429: %d %v %s", r.status, r.header, r.body)
	}
	// While the limit lasts the upstream is not asked again.
	up.reset()
	r = do(t, "GET", m.URL+"/v2/team/other/manifests/v1", accept)
	if r.status != http.StatusTooManyRequests || len(up.requests()) != 0 {
		t.Errorf("within Retry-After: %d, upstream asked %v", r.status, up.requests())
	}
	// ratelimit-remaining 0: cached tags are not revalidated for longer
	// than the usual minute.
	r = do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept)
	if r.status != 200 || r.header.Get("Warning") != "" || len(up.requests()) != 0 {
		t.Errorf("cached, limit used up: %d %v, upstream asked %v", r.status, r.header, up.requests())
	}
	m.clock.add(11 * time.Minute)
	r = do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Warning"), "110 ") || up.count("HEAD", "manifest") != 1 || up.count("GET", "") != 0 {
		t.Errorf("cached, upstream 429: %d %v, upstream asked %v", r.status, r.header, up.requests())
	}
}

// HTTP Basic upstream (as Debian's docker-registry with htpasswd), with
// the credentials from a docker-credential-helper (proxy.exec).
func TestBasicAuthWithCredentialHelper(t *testing.T) {
	up := startUpstream(t, upstreamOpts{basic: true})
	img := up.push(t, "private/app", "v1", 10<<10, 8)
	dir := t.TempDir()
	helper := filepath.Join(dir, "docker-credential-test")
	calls := filepath.Join(dir, "calls")
	script := "#!/bin/sh\nread host\necho \"$1 $host\" >> " + calls + "\n" +
		`echo '{"ServerURL":"'$host'","Username":"` + upUser + `","Secret":"` + upPass + `"}'` + "\n"
	must(t, os.WriteFile(helper, []byte(script), 0o755))
	opts := single(up)
	opts.Upstreams[0].Exec = &proxy.ExecConfig{Command: helper} // lifetime unset: run once
	m := startMirror(t, opts)
	pull(t, m, "private/app", img)
	b, err := os.ReadFile(calls)
	must(t, err)
	host := strings.TrimPrefix(up.URL, "http://")
	if string(b) != "get "+host+"\n" {
		t.Errorf("helper calls %q, want one get %s", b, host)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	sawBasic := false
	for _, a := range up.auths {
		sawBasic = sawBasic || strings.HasPrefix(a, "Basic ")
	}
	if !sawBasic {
		t.Errorf("no Basic credentials reached the upstream: %q", up.auths)
	}
}

// Tags are checked upstream at most once per revalidate interval, with a
// HEAD; a GET only when the digest changed (by that digest).
func TestRevalidate(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 10<<10, 9)
	m := startMirror(t, single(up))
	pull(t, m, "team/app", img)
	up.reset()
	for i := 0; i < 3; i++ {
		pull(t, m, "team/app", img)
		m.clock.add(15 * time.Second)
	}
	if reqs := up.requests(); len(reqs) != 0 {
		t.Fatalf("within revalidate: %v", reqs)
	}
	m.clock.add(time.Minute)
	pull(t, m, "team/app", img)
	pull(t, m, "team/app", img)
	if reqs := up.requests(); len(reqs) != 1 || up.count("HEAD", "manifest") != 1 {
		t.Fatalf("after revalidate: %v, want one HEAD", reqs)
	}
	// The tag moves upstream: HEAD, then GET by the new digest.
	img2 := up.push(t, "team/app", "v1", 10<<10, 10)
	up.reset()
	m.clock.add(2 * time.Minute)
	pull(t, m, "team/app", img2)
	if up.count("HEAD", "manifest") != 1 || up.count("GET", "manifest") != 1 {
		t.Errorf("moved tag: %v", up.requests())
	}
	reqs := up.requests()
	if !slices.ContainsFunc(reqs, func(s string) bool {
		return strings.HasPrefix(s, "GET manifest") && strings.HasSuffix(s, img2.digest.String())
	}) {
		t.Errorf("the changed manifest was not fetched by its digest: %v", reqs)
	}
	// The old image stays pullable by digest, from the cache.
	up.reset()
	r := do(t, "GET", m.URL+"/v2/team/app/manifests/"+img.digest.String(), accept)
	if r.status != 200 || len(up.requests()) != 0 {
		t.Errorf("old digest: %d, upstream %v", r.status, up.requests())
	}
}

// An upstream 404 is remembered for notfoundttl.
func TestNotFoundCached(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	opts := single(up)
	opts.Upstreams[0].NotFoundTTL = 30 * time.Second
	m := startMirror(t, opts)
	for i := 0; i < 3; i++ {
		if r := do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept); r.status != 404 {
			t.Fatalf("%d", r.status)
		}
	}
	if n := up.count("GET", "manifest"); n != 1 {
		t.Errorf("%d upstream GETs for three 404s within notfoundttl", n)
	}
	img := up.push(t, "team/app", "v1", 1<<10, 11)
	m.clock.add(31 * time.Second)
	pull(t, m, "team/app", img)
}

// A hung upstream (it accepts and never answers): the first request for a
// cached tag waits one timeout and is served stale; the circuit breaker
// then keeps every other request from waiting at all.
func TestOutageCostsOneTimeout(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 10<<10, 20)
	img2 := up.push(t, "team/two", "v1", 10<<10, 21)
	opts := single(up)
	opts.Upstreams[0].Timeout = 300 * time.Millisecond
	m := startMirror(t, opts)
	pull(t, m, "team/app", img)
	pull(t, m, "team/two", img2)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	up.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		<-hang
		return true
	})
	up.reset()
	m.clock.add(2 * time.Minute)
	start := time.Now()
	r := do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept)
	first := time.Since(start)
	if r.status != 200 || r.header.Get("Warning") == "" {
		t.Fatalf("first request: %d %v", r.status, r.header)
	}
	// At least the timeout (it was asked and did not answer); how much
	// more is the machine's load, so the breaker is checked by counting.
	if first < 300*time.Millisecond {
		t.Errorf("first request took %v, less than the upstream's timeout (300ms): it did not wait for the upstream", first)
	}
	start = time.Now()
	for i := 0; i < 5; i++ {
		for _, repo := range []string{"team/app", "team/two"} {
			r := do(t, "GET", m.URL+"/v2/"+repo+"/manifests/v1", accept)
			if r.status != 200 || r.header.Get("Warning") == "" {
				t.Fatalf("%s: %d %v", repo, r.status, r.header)
			}
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("the hung upstream got %d requests; the breaker should have stopped all but the first", n)
	}
	t.Logf("first request %v; 10 with the breaker open %v", first, time.Since(start))
}

// 401 and 5xx from the upstream serve the cached tag too.
func TestStaleOnErrors(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable} {
		up := startUpstream(t, upstreamOpts{})
		img := up.push(t, "team/app", "v1", 1<<10, 22)
		m := startMirror(t, single(up))
		pull(t, m, "team/app", img)
		up.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			w.WriteHeader(status)
			return true
		})
		m.clock.add(2 * time.Minute)
		r := do(t, "GET", m.URL+"/v2/team/app/manifests/v1", accept)
		if r.status != 200 || !bytes.Equal(r.body, img.manifest) || !strings.HasPrefix(r.header.Get("Warning"), "110 ") {
			t.Errorf("upstream %d: %d %q", status, r.status, r.header.Get("Warning"))
		}
	}
}
