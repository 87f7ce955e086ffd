package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedWriter passes a response through until limit bytes, then waits for
// gate to close before writing more.
type gatedWriter struct {
	http.ResponseWriter
	limit   int64
	n       int64
	gate    <-chan struct{}
	reached chan<- struct{}
	once    sync.Once
	// done ends the wait when the test does (t.Context()), so that a
	// test failing before it opens the gate does not hang its cleanup.
	done <-chan struct{}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if g.n >= g.limit {
			g.once.Do(func() {
				if f, ok := g.ResponseWriter.(http.Flusher); ok {
					f.Flush()
				}
				close(g.reached)
			})
			select {
			case <-g.gate:
			case <-g.done:
				return written, http.ErrAbortHandler
			}
			k, err := g.ResponseWriter.Write(p)
			return written + k, err
		}
		chunk := p
		if int64(len(chunk)) > g.limit-g.n {
			chunk = chunk[:g.limit-g.n]
		}
		k, err := g.ResponseWriter.Write(chunk)
		written += k
		g.n += int64(k)
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && kind(r.URL.Path) == "blob"
}

// N clients asking for one cold blob at once cause one upstream GET; each
// gets the headers while the upstream is still sending (nothing is spooled
// whole first) and the same bytes.
func TestFillCoalesces(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 2<<20+17, 12)
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) {
			return false
		}
		next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 1 << 20, gate: gate, reached: reached}, r)
		return true
	})
	m := startMirror(t, single(up))
	const clients = 32
	var wg sync.WaitGroup
	headers := make(chan int, clients)
	bodies := make([][]byte, clients)
	errs := make([]error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Get(m.URL + "/v2/team/app/blobs/" + img.layer.String())
			if err != nil {
				errs[i] = err
				headers <- 0
				return
			}
			defer resp.Body.Close()
			headers <- resp.StatusCode
			bodies[i], errs[i] = io.ReadAll(resp.Body)
		}(i)
	}
	<-reached
	for i := 0; i < clients; i++ {
		select {
		case s := <-headers:
			if s != 200 {
				t.Fatalf("client got %d", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d clients got their headers while the upstream was sending", i, clients)
		}
	}
	close(gate)
	wg.Wait()
	for i := range bodies {
		if errs[i] != nil || !bytes.Equal(bodies[i], img.blobs[img.layer]) {
			t.Fatalf("client %d: %v, %d bytes", i, errs[i], len(bodies[i]))
		}
	}
	if n := up.count("GET", "blob"); n != 1 {
		t.Errorf("%d upstream GETs of the blob for %d clients, want 1", n, clients)
	}
	waitFor(t, "the blob stored", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(context.Background(), img.layer)
		return err == nil
	})
	up.reset()
	r := do(t, "GET", m.URL+"/v2/team/app/blobs/"+img.layer.String(), nil)
	if r.status != 200 || !bytes.Equal(r.body, img.blobs[img.layer]) || len(up.requests()) != 0 {
		t.Errorf("warm: %d, upstream asked %v", r.status, up.requests())
	}
}

// A body that breaks off is resumed with Range from where it stopped; the
// client sees one whole, correct download.
func TestFillResumes(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 3<<20+5, 13)
	var mu sync.Mutex
	drops := 2
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		mu.Lock()
		drop := isBlobGet(r) && strings.HasSuffix(r.URL.Path, img.layer.String()) && drops > 0
		if drop {
			drops--
		}
		mu.Unlock()
		if !drop {
			return false
		}
		next.ServeHTTP(&dropWriter{ResponseWriter: w, left: 1 << 20}, r)
		return true
	})
	m := startMirror(t, single(up))
	pull(t, m, "team/app", img)
	reqs := up.requests()
	var ranged []string
	for _, l := range reqs {
		if strings.HasPrefix(l, "GET blob") && strings.Contains(l, img.layer.String()) {
			ranged = append(ranged, l)
		}
	}
	if len(ranged) != 3 || strings.Contains(ranged[0], "bytes=") || !strings.HasSuffix(ranged[1], " bytes=1048576-") || !strings.HasSuffix(ranged[2], " bytes=2097152-") {
		t.Fatalf("blob GETs %v, want the first and two resumes from where each broke off", ranged)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	waitFor(t, "the blob stored", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(context.Background(), img.layer)
		return err == nil
	})
}

// dropWriter writes left bytes of the body, then breaks the connection.
type dropWriter struct {
	http.ResponseWriter
	left int64
}

func (d *dropWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.ResponseWriter.Write(p)
	d.left -= int64(n)
	if d.left == 0 {
		if f, ok := d.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	return n, err
}

// One corrupted byte: nothing is stored and every client's download fails
// (cut short, never whole).
func TestFillCorrupt(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 2<<20, 14)
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) {
			return false
		}
		next.ServeHTTP(&flipWriter{ResponseWriter: w, at: 1<<20 + 3}, r)
		return true
	})
	m := startMirror(t, single(up))
	for i := 0; i < 3; i++ {
		resp, err := http.Get(m.URL + "/v2/team/app/blobs/" + img.layer.String())
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("a corrupted blob was served whole (%d bytes, status %d)", len(b), resp.StatusCode)
		}
		if int64(len(b)) >= int64(len(img.blobs[img.layer])) {
			t.Fatalf("the client got all %d bytes", len(b))
		}
		waitFor(t, "the fill to end", func() bool { return m.fillsInFlight() == 0 })
		if _, ok, _ := m.reg.HasContent(context.Background(), img.layer); ok {
			t.Fatal("a corrupted blob is in the store")
		}
	}
	if n := up.count("GET", "blob"); n != 3 {
		t.Errorf("%d upstream GETs: a failed fill must not be remembered as content", n)
	}
}

// flipWriter flips the byte at offset at.
type flipWriter struct {
	http.ResponseWriter
	at, n int64
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if f.at >= f.n && f.at < f.n+int64(len(p)) {
		q := bytes.Clone(p)
		q[f.at-f.n] ^= 0x20
		p = q
	}
	n, err := f.ResponseWriter.Write(p)
	f.n += int64(n)
	return n, err
}

// A client that goes away does not stop the fill: the blob is stored.
func TestFillOutlivesClient(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 4<<20, 15)
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) {
			return false
		}
		next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 1 << 20, gate: gate, reached: reached}, r)
		return true
	})
	m := startMirror(t, single(up))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+"/v2/team/app/blobs/"+img.layer.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	<-reached
	buf := make([]byte, 1000)
	_, err = io.ReadFull(resp.Body, buf)
	must(t, err)
	cancel()
	resp.Body.Close()
	close(gate)
	waitFor(t, "the blob stored", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(context.Background(), img.layer)
		return err == nil
	})
	if n := up.count("GET", "blob"); n != 1 {
		t.Errorf("%d upstream GETs", n)
	}
}

// Range on a miss: served from the fill when it has (or soon will have)
// the bytes, forwarded upstream when it starts far ahead; the fill still
// caches the whole blob.
func TestFillRange(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 16<<20, 16)
	layer := img.blobs[img.layer]
	gate, reached := make(chan struct{}), make(chan struct{})
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) || r.Header.Get("Range") != "" {
			return false
		}
		next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 1 << 20, gate: gate, reached: reached}, r)
		return true
	})
	m := startMirror(t, single(up))
	get := func(rng string) result {
		return do(t, "GET", m.URL+"/v2/team/app/blobs/"+img.layer.String(), http.Header{"Range": {rng}})
	}
	var near result
	done := make(chan struct{})
	go func() { near = get("bytes=100-199"); close(done) }()
	<-reached
	far := get(fmt.Sprintf("bytes=%d-%d", 12<<20, 12<<20+999))
	if far.status != http.StatusPartialContent || !bytes.Equal(far.body, layer[12<<20:12<<20+1000]) {
		t.Fatalf("far range: %d, %d bytes", far.status, len(far.body))
	}
	// The near range has its bytes, but its last one waits for the whole
	// blob's digest.
	select {
	case <-done:
		t.Fatal("a range of an unverified blob completed")
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	<-done
	if near.status != http.StatusPartialContent || !bytes.Equal(near.body, layer[100:200]) || near.header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(layer)) {
		t.Fatalf("near range: %d %v", near.status, near.header)
	}
	waitFor(t, "the blob stored", func() bool {
		_, err := m.cacheRepo(t, "team/app").StatBlob(context.Background(), img.layer)
		return err == nil
	})
	if n := up.count("GET", "blob"); n != 2 {
		t.Errorf("upstream blob GETs %v, want the fill and one forwarded range", up.requests())
	}
	// The last byte of a whole download waits for the digest check; a
	// suffix range of a cached blob is the store's.
	last := get("bytes=-1")
	if last.status != 206 || !bytes.Equal(last.body, layer[len(layer)-1:]) {
		t.Errorf("suffix range: %d", last.status)
	}
}

// A stalled upstream body fails the fill after its resumes: the client's
// download breaks off and nothing is stored.
func TestFillStalls(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 2<<20, 17)
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) {
			return false
		}
		next.ServeHTTP(&gatedWriter{done: t.Context().Done(), ResponseWriter: w, limit: 512 << 10, gate: stall, reached: make(chan struct{})}, r)
		return true
	})
	opts := single(up)
	opts.Upstreams[0].Timeout = 200 * time.Millisecond
	m := startMirror(t, opts)
	m.p.SetFillRetries(1)
	resp, err := http.Get(m.URL + "/v2/team/app/blobs/" + img.layer.String())
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) >= len(img.blobs[img.layer]) {
		t.Fatalf("stalled fill: %v, %d bytes", err, len(b))
	}
	waitFor(t, "the fill to end", func() bool { return m.fillsInFlight() == 0 })
	if _, ok, _ := m.reg.HasContent(context.Background(), img.layer); ok {
		t.Fatal("a partial blob is in the store")
	}
}

// A seeded random test of fills: clients asking for a cold blob whole, in
// ranges, by HEAD, or giving up half-way, against an upstream that drops
// connections, corrupts a byte, answers 503 or is slow, in random order.
// Whatever happens: a download that completes without error is exactly
// the blob (or the range asked for), the store holds the blob only if it
// is exactly the blob, and a fill the upstream let through stores it.
// REGISTRYD_PROXY_SEED=n replays a run.
func TestFillRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("REGISTRYD_PROXY_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (REGISTRYD_PROXY_SEED=%d replays it)", seed, seed)
	rnd := mrand.New(mrand.NewSource(seed))
	up := startUpstream(t, upstreamOpts{})
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	for round := 0; round < rounds; round++ {
		size := 1 + rnd.Intn(3<<20)
		img := up.push(t, fmt.Sprintf("team/r%d", round), "v1", size, seed+int64(round))
		blob := img.blobs[img.layer]
		var mu sync.Mutex
		corrupted, failed := false, false
		faults, flips := make([]int, 8), make([]int64, 8)
		for i := range faults {
			faults[i], flips[i] = rnd.Intn(10), int64(rnd.Intn(size))
		}
		calls := 0
		up.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if !isBlobGet(r) || !strings.HasSuffix(r.URL.Path, img.layer.String()) || r.Header.Get("Range") != "" && !strings.HasSuffix(r.Header.Get("Range"), "-") {
				return false
			}
			mu.Lock()
			f, flip := 9, int64(0)
			if calls < len(faults) {
				f, flip = faults[calls], flips[calls]
			}
			calls++
			switch f {
			case 0:
				corrupted = true
			case 1:
				// A 503 opens the upstream's circuit breaker: the resumes
				// that follow within its window fail fast.
				failed = true
			}
			mu.Unlock()
			switch f {
			case 0:
				next.ServeHTTP(&flipWriter{ResponseWriter: w, at: flip}, r)
			case 1:
				w.WriteHeader(http.StatusServiceUnavailable)
			case 2, 3:
				next.ServeHTTP(&dropWriter{ResponseWriter: w, left: 1 + int64(size/3)}, r)
			case 4:
				time.Sleep(20 * time.Millisecond)
				next.ServeHTTP(w, r)
			default:
				next.ServeHTTP(w, r)
			}
			return true
		})
		m := startMirror(t, single(up))
		name := "/v2/team/r" + strconv.Itoa(round) + "/blobs/" + img.layer.String()
		var wg sync.WaitGroup
		clients := 1 + rnd.Intn(8)
		for c := 0; c < clients; c++ {
			op, delay := rnd.Intn(4), time.Duration(rnd.Intn(20))*time.Millisecond
			start := rnd.Intn(size)
			end := start + rnd.Intn(size-start)
			cut := rnd.Intn(size)
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delay)
				switch op {
				case 0: // whole
					resp, err := http.Get(m.URL + name)
					if err != nil {
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode == 200 && !bytes.Equal(b, blob) {
						t.Errorf("round %d: a download completed with wrong bytes (%d of %d)", round, len(b), size)
					}
				case 1: // range
					req, _ := http.NewRequest("GET", m.URL+name, nil)
					req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode == 206 && !bytes.Equal(b, blob[start:end+1]) {
						t.Errorf("round %d: range %d-%d completed with wrong bytes", round, start, end)
					}
				case 2: // HEAD
					resp, err := http.Head(m.URL + name)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == 200 && resp.ContentLength != int64(size) {
							t.Errorf("round %d: HEAD says %d bytes, want %d", round, resp.ContentLength, size)
						}
					}
				case 3: // gives up after cut bytes
					ctx, cancel := context.WithCancel(context.Background())
					req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+name, nil)
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						io.CopyN(io.Discard, resp.Body, int64(cut))
						cancel()
						resp.Body.Close()
					}
					cancel()
				}
			}()
		}
		wg.Wait()
		waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
		repo := m.cacheRepo(t, "team/r"+strconv.Itoa(round))
		rc, _, err := repo.OpenBlob(context.Background(), img.layer, 0)
		stored := err == nil
		if stored {
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(b, blob) {
				t.Fatalf("round %d: the store holds wrong bytes for the blob", round)
			}
		}
		mu.Lock()
		if stored && corrupted && calls == 1 {
			t.Errorf("round %d: stored although the only download was corrupted", round)
		}
		healthy := !corrupted && !failed && calls > 0
		mu.Unlock()
		if healthy && !stored {
			// Every download the upstream gave was good: the fill (if a
			// GET started one) stored it.
			mu.Lock()
			t.Errorf("round %d: not stored after %d clean upstream answers (faults %v)", round, calls, faults[:min(calls, len(faults))])
			mu.Unlock()
		}
		up.setFault(nil)
	}
}
