package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registryd/registryd/notifications"
)

// Concurrent requests for one tag make one upstream round; concurrent
// requests for a new token scope make one token request.
func TestManifestAndTokenCoalesce(t *testing.T) {
	up := startUpstream(t, upstreamOpts{token: true})
	img := up.push(t, "public/app", "v1", 1<<10, 80)
	gate := make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if kind(r.URL.Path) == "token" {
			<-gate // every client is waiting by now
		}
		return false
	})
	m := startMirror(t, single(up))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(t, "GET", m.URL+"/v2/public/app/manifests/v1", accept)
			if r.status != 200 || !bytes.Equal(r.body, img.manifest) {
				errs <- r.header.Get("X-Request-Id")
			}
		}()
	}
	waitFor(t, "the token request", func() bool { return up.count("GET", "token") == 1 })
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a client failed (%s)", e)
	}
	if n := up.count("GET", "token"); n != 1 {
		t.Errorf("%d token requests for one scope", n)
	}
	if n := up.count("GET", "manifest"); n != 2 { // the 401 that told the challenge, and the fetch
		t.Errorf("%d manifest GETs for 16 concurrent clients: %v", n, up.requests())
	}
}

// A client that opens a fill's blob after the fill ended (its spool
// closed) reads it from storage.
func TestBlobOpenedAfterFill(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 300<<10, 81)
	m := startMirror(t, single(up))
	req := httptest.NewRequest("GET", "/v2/team/app/blobs/"+img.layer.String(), nil)
	repo, err := m.p.Route(req, "team/app")
	must(t, err)
	b, err := repo.Blob(context.Background(), http.Header{}, img.layer, false)
	if err != nil || b == nil {
		t.Fatalf("Blob: %v %v", b, err)
	}
	waitFor(t, "the fill to end", func() bool { return m.fillsInFlight() == 0 })
	rc, err := b.Open(context.Background(), 1000, 5000)
	must(t, err)
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, img.blobs[img.layer][1000:6000]) {
		t.Fatalf("read after the fill: %v, %d bytes", err, len(got))
	}
}

// Upstreams that redirect blob downloads (to a CDN, a bucket) are
// followed, without the mirror's credentials going along.
func TestBlobRedirect(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 100<<10, 82)
	var mu sync.Mutex
	var cdnAuth []string
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnAuth = append(cdnAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		d := strings.TrimPrefix(r.URL.Path, "/cdn/")
		for dg, b := range img.blobs {
			if dg.String() == d {
				w.Header().Set("Content-Length", strconv.Itoa(len(b)))
				w.Write(b)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(cdn.Close)
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == "GET" && kind(r.URL.Path) == "blob" {
			i := strings.LastIndex(r.URL.Path, "/")
			http.Redirect(w, r, cdn.URL+"/cdn/"+r.URL.Path[i+1:], http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	opts := single(up)
	opts.Upstreams[0].Username, opts.Upstreams[0].Password = "u", "p" // Basic only after a challenge: none here
	m := startMirror(t, opts)
	pull(t, m, "team/app", img)
	mu.Lock()
	defer mu.Unlock()
	if len(cdnAuth) != 2 {
		t.Fatalf("the CDN served %d requests, want 2", len(cdnAuth))
	}
	for _, a := range cdnAuth {
		if a != "" {
			t.Errorf("credentials went along to the CDN: %q", a)
		}
	}
}

// A "fill" event for everything stored in the cache.
func TestFillEvents(t *testing.T) {
	var mu sync.Mutex
	var events []notifications.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env notifications.Envelope
		json.NewDecoder(r.Body).Decode(&env)
		mu.Lock()
		events = append(events, env.Events...)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	n := notifications.New(notifications.Config{Endpoints: []notifications.EndpointConfig{{Name: "t", URL: hook.URL, Timeout: time.Second, Threshold: 3, Backoff: 10 * time.Millisecond}}}, nil, nil)
	t.Cleanup(func() { n.Close(context.Background()) })
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 10<<10, 83)
	opts := single(up)
	opts.Notifier = n
	m := startMirror(t, opts)
	pull(t, m, "team/app", img)
	waitFor(t, "three fill events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for _, e := range events {
			if e.Action == "fill" {
				c++
			}
		}
		return c == 3
	})
	mu.Lock()
	defer mu.Unlock()
	for _, e := range events {
		if e.Action == "fill" && (e.Target.Repository != "team/app" || e.Target.Digest == "" || !strings.HasPrefix(e.Target.URL, up.URL)) {
			t.Errorf("event %+v", e)
		}
	}
}

// maxconcurrent caps the requests in flight to an upstream.
func TestMaxConcurrent(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 2<<20, 84)
	b := up.push(t, "team/b", "v1", 2<<20, 85)
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isBlobGet(r) && strings.HasSuffix(r.URL.Path, a.layer.String()) {
			next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 1 << 20, gate: gate, reached: reached}, r)
			return true
		}
		return false
	})
	opts := single(up)
	opts.Upstreams[0].MaxConcurrent = 1
	m := startMirror(t, opts)
	done := make(chan result, 2)
	go func() { done <- do(t, "GET", m.URL+"/v2/team/a/blobs/"+a.layer.String(), nil) }()
	<-reached
	go func() { done <- do(t, "GET", m.URL+"/v2/team/b/blobs/"+b.layer.String(), nil) }()
	time.Sleep(200 * time.Millisecond)
	if n := up.count("GET", "blob"); n != 1 {
		t.Fatalf("%d blob GETs in flight with maxconcurrent 1: %v", n, up.requests())
	}
	close(gate)
	for i := 0; i < 2; i++ {
		if r := <-done; r.status != 200 {
			t.Errorf("status %d", r.status)
		}
	}
	if n := up.count("GET", "blob"); n != 2 {
		t.Errorf("%d blob GETs", n)
	}
}

// Two repositories of one upstream asking for the same cold blob at once:
// one download (after the upstream confirmed the second repository has
// it), and the blob is linked into both, so both pull from the cache alone.
func TestFillSharedAcrossRepositories(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 1<<20, 86)
	b := up.push(t, "team/b", "v1", 1<<20, 86) // the same content
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isBlobGet(r) && strings.HasSuffix(r.URL.Path, a.layer.String()) {
			next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 256 << 10, gate: gate, reached: reached}, r)
			return true
		}
		return false
	})
	m := startMirror(t, single(up))
	done := make(chan result, 2)
	go func() { done <- do(t, "GET", m.URL+"/v2/team/a/blobs/"+a.layer.String(), nil) }()
	<-reached
	go func() { done <- do(t, "GET", m.URL+"/v2/team/b/blobs/"+b.layer.String(), nil) }()
	waitFor(t, "the second repository's confirmation", func() bool { return up.count("HEAD", "blob") == 1 })
	time.Sleep(50 * time.Millisecond)
	close(gate)
	for i := 0; i < 2; i++ {
		if r := <-done; r.status != 200 || !bytes.Equal(r.body, a.blobs[a.layer]) {
			t.Fatalf("status %d", r.status)
		}
	}
	if n := up.count("GET", "blob"); n != 1 {
		t.Errorf("%d upstream blob GETs: %v", n, up.requests())
	}
	waitFor(t, "the fill to end", func() bool { return m.fillsInFlight() == 0 })
	up.Close()
	for _, repo := range []string{"team/a", "team/b"} {
		if r := do(t, "GET", m.URL+"/v2/"+repo+"/blobs/"+a.layer.String(), nil); r.status != 200 {
			t.Errorf("%s with the upstream gone: %d", repo, r.status)
		}
	}
}
