package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a fake time for the limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(cfg Config) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(cfg)
	l.now = c.now
	return l, c
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

func do(t *testing.T, h http.Handler, method, path, remote string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func check429(t *testing.T, w *httptest.ResponseRecorder, retryAfter string) {
	t.Helper()
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if w.Code != http.StatusTooManyRequests || json.Unmarshal(w.Body.Bytes(), &body) != nil || len(body.Errors) != 1 || body.Errors[0].Code != "TOOMANYREQUESTS" {
		t.Fatalf("%d %s, want 429 TOOMANYREQUESTS", w.Code, w.Body.Bytes())
	}
	if got := w.Header().Get("Retry-After"); got != retryAfter {
		t.Errorf("Retry-After %q, want %q", got, retryAfter)
	}
}

// A client gets its burst, then one request per 1/rate, and is told when;
// another client is not affected.
func TestPerClient(t *testing.T) {
	l, c := newTest(Config{PerClient: Rate{Requests: 0.5, Burst: 3}})
	h := l.Handler(ok)
	for i := 0; i < 3; i++ {
		if w := do(t, h, "GET", "/v2/", "192.0.2.1:1000"); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	check429(t, do(t, h, "GET", "/v2/", "192.0.2.1:1001"), "2")
	if w := do(t, h, "GET", "/v2/", "192.0.2.2:1000"); w.Code != 200 {
		t.Fatalf("another client: %d", w.Code)
	}
	c.add(1500 * time.Millisecond)
	check429(t, do(t, h, "GET", "/v2/", "192.0.2.1:1000"), "1")
	c.add(600 * time.Millisecond)
	if w := do(t, h, "GET", "/v2/", "192.0.2.1:1000"); w.Code != 200 {
		t.Fatalf("after 2.1 s at 0.5/s: %d", w.Code)
	}
	check429(t, do(t, h, "GET", "/v2/", "192.0.2.1:1000"), "2")
}

// A method with its own rate counts in its own bucket.
func TestMethods(t *testing.T) {
	l, _ := newTest(Config{PerClient: Rate{Requests: 1, Burst: 1}, Methods: map[string]Rate{"HEAD": {Requests: 100, Burst: 5}}})
	h := l.Handler(ok)
	if w := do(t, h, "GET", "/v2/a/manifests/x", "192.0.2.1:1"); w.Code != 200 {
		t.Fatal(w.Code)
	}
	check429(t, do(t, h, "GET", "/v2/a/manifests/x", "192.0.2.1:1"), "1")
	for i := 0; i < 5; i++ {
		if w := do(t, h, "HEAD", "/v2/a/manifests/x", "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("HEAD %d: %d", i, w.Code)
		}
	}
	if w := do(t, h, "HEAD", "/v2/a/manifests/x", "192.0.2.1:1"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("HEAD past its burst: %d", w.Code)
	}
	// Only a method's own rate limits it when there is no default.
	l, _ = newTest(Config{Methods: map[string]Rate{"PUT": {Requests: 1, Burst: 1}}})
	h = l.Handler(ok)
	for i := 0; i < 10; i++ {
		if w := do(t, h, "GET", "/v2/", "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("GET without a limit: %d", w.Code)
		}
	}
	do(t, h, "PUT", "/v2/a/manifests/x", "192.0.2.1:1")
	check429(t, do(t, h, "PUT", "/v2/a/manifests/x", "192.0.2.1:1"), "1")
}

// Users are limited whatever their address; anonymous requests are not
// (the per-client limit is theirs).
func TestPerUser(t *testing.T) {
	l, _ := newTest(Config{PerUser: Rate{Requests: 1, Burst: 2}})
	user := func(name, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		if l.AllowUser(w, r, name) {
			w.WriteHeader(200)
		}
		return w
	}
	user("alice", "192.0.2.1:1")
	user("alice", "192.0.2.2:1")
	check429(t, user("alice", "192.0.2.3:1"), "1")
	if w := user("bob", "192.0.2.1:1"); w.Code != 200 {
		t.Fatalf("another user: %d", w.Code)
	}
	for i := 0; i < 5; i++ {
		if w := user("", "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("anonymous: %d", w.Code)
		}
	}
	var nilLimiter *Limiter
	if !nilLimiter.AllowUser(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), "alice") {
		t.Fatal("a nil limiter limits")
	}
}

// One client's uploads in flight are capped; others and downloads are not.
func TestUploadCap(t *testing.T) {
	l, _ := newTest(Config{Uploads: 2})
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	})
	h := l.Handler(slow)
	var wg sync.WaitGroup
	for _, m := range []string{"PATCH", "PUT"} {
		wg.Add(1)
		go func() { defer wg.Done(); do(t, h, m, "/v2/a/blobs/uploads/u", "192.0.2.1:1") }()
	}
	<-started
	<-started
	check429(t, do(t, h, "POST", "/v2/a/blobs/uploads/", "192.0.2.1:2"), "1")
	wg.Add(1)
	go func() { defer wg.Done(); do(t, h, "POST", "/v2/a/blobs/uploads/", "192.0.2.9:2") }() // another client
	<-started
	close(release)
	wg.Wait()
	if w := do(t, l.Handler(ok), "POST", "/v2/a/blobs/uploads/", "192.0.2.1:2"); w.Code != 200 {
		t.Fatalf("after the uploads finished: %d", w.Code)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.uploads) != 0 {
		t.Errorf("uploads still counted: %v", l.uploads)
	}
}

// X-Forwarded-For names the client only through trusted proxies.
func TestClient(t *testing.T) {
	l := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	for _, c := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5", nil, "192.0.2.1"},
		{"192.0.2.1:5", []string{"203.0.113.7"}, "192.0.2.1"}, // not a trusted proxy: forged
		{"10.1.2.3:5", []string{"203.0.113.7"}, "203.0.113.7"},
		{"10.1.2.3:5", []string{"198.51.100.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"10.1.2.3:5", []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7"},
		{"10.1.2.3:5", []string{"garbage, 203.0.113.7"}, "203.0.113.7"},
		{"10.1.2.3:5", []string{"203.0.113.7, garbage"}, "10.1.2.3"},
		{"10.1.2.3:5", []string{"10.0.0.1"}, "10.0.0.1"}, // only proxies: the first of them
		{"[::1]:5", []string{"2001:db8::1"}, "2001:db8::1"},
		{"[::ffff:10.0.0.1]:5", []string{"203.0.113.7"}, "203.0.113.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := l.Client(r); got != c.want {
			t.Errorf("%s via %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// Idle buckets are forgotten.
func TestSweep(t *testing.T) {
	l, c := newTest(Config{PerClient: Rate{Requests: 1}})
	h := l.Handler(ok)
	for i := 0; i < 100; i++ {
		do(t, h, "GET", "/v2/", netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()+":1")
	}
	c.add(idle + 2*time.Minute)
	do(t, h, "GET", "/v2/", "198.51.100.1:1")
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets kept", len(l.buckets))
	}
}
