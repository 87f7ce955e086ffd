package proxy_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/proxy"
)

// Above the high watermark the least recently pulled images go, down to
// the low one; a collection then reclaims exactly their bytes, and every
// image still cached pulls whole with the upstream gone. A blob another
// cached image shares stays.
func TestEvictionBySize(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 100_000, 50)
	b := up.push(t, "team/b", "v1", 100_000, 51)
	c := up.push(t, "team/c", "v1", 100_000, 52)
	d := up.push(t, "team/d", "v1", 100_000, 52) // c's content under another name
	opts := single(up)
	opts.MaxSize, opts.High, opts.Low = 350_000, 90, 70 // evict above 315k, down to 245k
	var collections atomic.Int32                        // what serve's collector would be asked for
	opts.AfterEvict = func() { collections.Add(1) }
	m := startMirror(t, opts)
	m.p.Close() // passes run when the test says, not after each fill
	ctx := context.Background()
	for _, im := range []image{a, b, c, d} {
		pull(t, m, im.repo, im)
		waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
		m.clock.add(time.Minute)
	}
	pull(t, m, "team/a", a) // a is now the most recent; b the least
	rep, err := m.p.Evict(ctx)
	must(t, err)
	// a, b and c/d (shared: counted once) hold about 302 kB: under 315k.
	if len(rep.Evicted) != 0 || rep.Usage < 300_000 || rep.Usage > 310_000 {
		t.Fatalf("first pass: %+v", rep)
	}
	if n := collections.Load(); n != 0 {
		t.Errorf("a pass that evicted nothing asked for %d collections", n)
	}
	e := up.push(t, "team/e", "v1", 100_000, 53)
	m.clock.add(time.Minute)
	pull(t, m, "team/e", e)
	waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
	rep, err = m.p.Evict(ctx)
	must(t, err)
	// 403 kB > 315k: b (least recent) goes, then c (its bytes stay, d
	// holds them), then d: 201 kB <= 245k.
	var gone []string
	for _, ev := range rep.Evicted {
		gone = append(gone, ev.Repository)
		if ev.Reason != "size" {
			t.Errorf("reason %q", ev.Reason)
		}
	}
	if strings.Join(gone, " ") != "team/b team/c team/d" || rep.After > 245_000 {
		t.Fatalf("evicted %v, usage %d -> %d", gone, rep.Usage, rep.After)
	}
	if n := collections.Load(); n != 1 {
		t.Errorf("the pass that evicted asked for %d collections, want 1", n)
	}
	// Nothing is deleted but manifests and tags: the blobs are there until
	// a collection.
	if _, ok, _ := m.reg.HasContent(ctx, b.layer); !ok {
		t.Fatal("eviction deleted a blob itself")
	}
	if _, err := gc.Run(ctx, m.reg, gc.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []image{b, c} {
		if _, ok, _ := m.reg.HasContent(ctx, gone.layer); ok {
			t.Errorf("%s's layer survived the collection", gone.repo)
		}
	}
	up.Close()
	for _, kept := range []image{a, e} {
		pull(t, m, kept.repo, kept)
	}
}

// proxy.ttl evicts images not pulled for that long, counted from the last
// pull (access refreshes, unlike distribution's TTL from the fetch).
func TestEvictionByAge(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 1000, 60)
	b := up.push(t, "team/b", "v1", 1000, 61)
	opts := single(up)
	opts.TTL = 24 * time.Hour
	m := startMirror(t, opts)
	m.p.Close()
	pull(t, m, "team/a", a)
	pull(t, m, "team/b", b)
	waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
	for i := 0; i < 3; i++ {
		m.clock.add(12 * time.Hour)
		pull(t, m, "team/a", a) // a stays in use, b is left alone
	}
	rep, err := m.p.Evict(context.Background())
	must(t, err)
	if len(rep.Evicted) != 1 || rep.Evicted[0].Repository != "team/b" || rep.Evicted[0].Reason != "age" {
		t.Fatalf("%+v", rep)
	}
	up.Close()
	pull(t, m, "team/a", a)
	if r := do(t, "GET", m.URL+"/v2/team/b/manifests/v1", accept); r.status != 503 {
		t.Errorf("evicted image with the upstream down: %d", r.status)
	}
}

// The admin purge of a repository, a tag, a digest.
func TestPurge(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 1000, 70)
	b := up.push(t, "team/b", "v1", 1000, 71)
	opts := single(up)
	var collections atomic.Int32
	opts.AfterEvict = func() { collections.Add(1) }
	m := startMirror(t, opts)
	pull(t, m, "team/a", a)
	pull(t, m, "team/b", b)
	waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
	admin := httptestServer(t, m.p.AdminHandler(nil))
	r := do(t, "DELETE", admin+proxy.AdminPrefix+"/team/a/manifests/v1", nil)
	if r.status != 202 || !strings.Contains(string(r.body), `"tags":["v1"]`) || !strings.Contains(string(r.body), a.digest.String()) {
		t.Fatalf("purge tag: %d %s", r.status, r.body)
	}
	if _, err := m.cacheRepo(t, "team/a").GetManifest(context.Background(), a.digest.String()); err == nil {
		t.Error("purged manifest still cached")
	}
	r = do(t, "DELETE", admin+proxy.AdminPrefix+"/team/b", nil)
	if r.status != 202 || !strings.Contains(string(r.body), `"blobLinks":2`) {
		t.Fatalf("purge repository: %d %s", r.status, r.body)
	}
	up.reset()
	pull(t, m, "team/b", b) // fetched again
	if up.count("GET", "manifest") != 1 {
		t.Errorf("after a purge: %v", up.requests())
	}
	if r := do(t, "DELETE", admin+proxy.AdminPrefix+"/team/b/manifests/nope", nil); r.status != 404 {
		t.Errorf("purge of an unknown tag: %d", r.status)
	}
	// Each purge that removed something asked for a collection; the 404
	// did not.
	if n := collections.Load(); n != 2 {
		t.Errorf("two purges asked for %d collections", n)
	}
	if r := do(t, "GET", admin+proxy.AdminPrefix, nil); r.status != 200 || !strings.Contains(string(r.body), `"upstreams":[{"name"`) {
		t.Errorf("status: %d %s", r.status, r.body)
	}
}

// An image evicted while one of its blobs is being fetched: the client
// still gets the right bytes, and the cache is consistent afterwards (the
// next pull fetches the manifest again and finds the blob the fill
// stored).
func TestEvictionDuringFill(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.push(t, "team/a", "v1", 2<<20, 90)
	b := up.push(t, "team/b", "v1", 2<<20, 91)
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isBlobGet(r) && strings.HasSuffix(r.URL.Path, a.layer.String()) {
			next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 512 << 10, gate: gate, reached: reached}, r)
			return true
		}
		return false
	})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release() // a failure must not leave the upstream hanging
	opts := single(up)
	opts.MaxSize, opts.High, opts.Low = 2<<20, 90, 50
	m := startMirror(t, opts)
	m.p.Close()
	ctx := context.Background()
	r := do(t, "GET", m.URL+"/v2/team/a/manifests/v1", accept)
	m.clock.add(time.Minute)
	pull(t, m, "team/b", b)
	if r.status != 200 {
		t.Fatal(r.status)
	}
	done := make(chan result, 1)
	go func() { done <- do(t, "GET", m.URL+"/v2/team/a/blobs/"+a.layer.String(), nil) }()
	<-reached
	// b's 2 MiB are over the cap (once b's fills are stored: only a's
	// layer is still being fetched): a, the least recently pulled, goes
	// first (its layer is not stored yet), then b.
	waitFor(t, "b's fills to end", func() bool { return m.fillsInFlight() == 1 })
	rep, err := m.p.Evict(ctx)
	must(t, err)
	if len(rep.Evicted) != 2 || rep.Evicted[0].Repository != "team/a" {
		t.Errorf("evicted %+v", rep.Evicted)
	}
	release()
	if r := <-done; r.status != 200 || !bytes.Equal(r.body, a.blobs[a.layer]) {
		t.Fatalf("the download under way: %d, %d bytes", r.status, len(r.body))
	}
	waitFor(t, "the fill to end", func() bool { return m.fillsInFlight() == 0 })
	if _, err := m.cacheRepo(t, "team/a").GetManifest(ctx, "v1"); err == nil {
		t.Error("the evicted tag is back")
	}
	up.reset()
	pull(t, m, "team/a", a)
	if up.count("GET", "manifest") != 1 || up.count("GET", "blob") > 1 {
		t.Errorf("pull after the eviction: %v", up.requests())
	}
}
