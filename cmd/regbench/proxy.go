package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/internal/localsrv"
)

// The proxy workload: each server as a pull-through cache (proxy.remoteurl)
// of one registryd upstream, behind a counting proxy that measures what the
// upstream served.
//
//	cold pull      one client pulls a blob nobody fetched yet through the
//	               mirror (MB/s, digest checked), and its time to first byte;
//	               beside it the same pull straight from the upstream
//	concurrent     32 clients pull one cold blob at once: wall time and the
//	               bytes the upstream sent, as a multiple of the blob
//	warm pull      the cold blob again, now cached, beside registryd serving
//	               the same bytes hosted (the upstream, pulled directly)

// proxyMetrics are the proxy table's rows.
type proxyMetrics struct {
	cold, coldRatio, ttfb, concWall, concBytes, warm, warmRatio *metric
}

const directCol = "upstream direct"

func newProxyMetrics(size, concSize int64, clients int) *proxyMetrics {
	s, cs := fmtBytes(size), fmtBytes(concSize)
	return &proxyMetrics{
		cold:      &metric{Name: "cold pull " + s + " through the mirror", Unit: "MB/s", Higher: true},
		coldRatio: &metric{Name: "cold pull / direct from the upstream", Unit: "×", Higher: true},
		ttfb:      &metric{Name: "cold pull, time to first byte", Unit: "ms"},
		concWall:  &metric{Name: fmt.Sprintf("%d concurrent cold pulls of %s", clients, cs), Unit: "s"},
		concBytes: &metric{Name: fmt.Sprintf("  upstream bytes, %d concurrent pulls", clients), Unit: "× blob"},
		warm:      &metric{Name: "warm pull " + s + " (cached)", Unit: "MB/s", Higher: true},
		warmRatio: &metric{Name: "warm pull / registryd hosted", Unit: "×", Higher: true},
	}
}

func (pm *proxyMetrics) all() []*metric {
	return []*metric{pm.cold, pm.coldRatio, pm.ttfb, pm.concWall, pm.concBytes, pm.warm, pm.warmRatio}
}

// countingProxy forwards to the upstream and counts the response bytes and
// blob GETs it relays.
type countingProxy struct {
	srv      *http.Server
	addr     string
	bytes    atomic.Int64
	blobGets atomic.Int64
}

func startCountingProxy(upstream string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &countingProxy{addr: ln.Addr().String()}
	target, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &c.bytes}
		return nil
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && filepath.Base(filepath.Dir(r.URL.Path)) == "blobs" {
			c.blobGets.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go c.srv.Serve(ln)
	return c, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	k, err := b.ReadCloser.Read(p)
	b.n.Add(int64(k))
	return k, err
}

// startMirrorServer starts t as a pull-through cache of upstreamURL over a
// filesystem root.
func startMirrorServer(t target, root, work, upstreamURL string) (*server, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		s := &server{t: t, Addr: addr, Root: root,
			Config:  filepath.Join(work, slug(t.Name)+"-mirror.yml"),
			logPath: filepath.Join(work, slug(t.Name)+"-mirror.log")}
		cfg := configYAML(filesystemStorage(root), addr, "") + fmt.Sprintf("proxy:\n  remoteurl: %s\n", upstreamURL)
		if err := os.WriteFile(s.Config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// pullTimed GETs a blob, checking length and digest: MB/s and the time to
// the first byte of the body.
func pullTimed(base, repo string, d digest.Digest, size int64) (mbs float64, ttfb time.Duration, err error) {
	start := time.Now()
	req, _ := http.NewRequest("GET", base+"/v2/"+repo+"/blobs/"+d.String(), nil)
	resp, err := do(req, http.StatusOK)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 1<<20)
	k, err := resp.Body.Read(buf)
	if k == 0 && err != nil {
		return 0, 0, err
	}
	ttfb = time.Since(start)
	h := sha256.New()
	h.Write(buf[:k])
	n, err := io.CopyBuffer(h, resp.Body, buf)
	if err != nil {
		return 0, 0, err
	}
	if n+int64(k) != size {
		return 0, 0, fmt.Errorf("pulled %d bytes, want %d", n+int64(k), size)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return 0, 0, fmt.Errorf("pulled digest %s, want %s", got, d)
	}
	return mbps(size, time.Since(start)), ttfb, nil
}

// pushImage pushes a PRNG blob and a manifest naming it to repo:latest.
func pushImage(base, repo string, b bigBlob) error {
	if err := pushMonolithic(base, repo, newPRNG(b.Seed, b.Size), b.Size, b.D); err != nil {
		return err
	}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","regbench":%d}`, b.Seed))
	cd, err := pushSmallBlob(base, repo, cfg)
	if err != nil {
		return err
	}
	return putManifest(base, repo, "latest", manifestJSON(cd, len(cfg), []digest.Digest{b.D}, []int{int(b.Size)}))
}

// waitCached waits (up to 30 s) until a warm GET of the blob through the
// mirror makes no request upstream: registryd commits its fill after the
// client got its bytes.
func waitCached(mirror *server, up *countingProxy, repo string, b bigBlob) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		before := up.blobGets.Load()
		req, _ := http.NewRequest("HEAD", mirror.URL("/v2/"+repo+"/blobs/"+b.D.String()), nil)
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
		}
		if up.blobGets.Load() == before && cachedOnDisk(mirror.Root, b.D) {
			return
		}
	}
}

func cachedOnDisk(root string, d digest.Digest) bool {
	fi, err := os.Stat(filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data"))
	return err == nil && fi.Mode().IsRegular()
}

// runProxyRep is one repetition of the proxy workload over every target.
func runProxyRep(b *bench, rep int, size, concSize int64, clients int, pm *proxyMetrics) {
	upTarget := b.targets[0] // registryd hosts the upstream
	up := b.start(upTarget, fmt.Sprintf("proxy-upstream-rep%d", rep), "")
	defer b.stop(up)
	cp, err := startCountingProxy(up.Addr)
	check(err)
	defer cp.srv.Close()
	upURL := "http://" + cp.addr

	// One cold blob per server and row, pushed before any is timed.
	type blobs struct{ single, conc bigBlob }
	own := map[string]blobs{}
	direct := bigBlob{Seed: uint64(5000 + rep), Size: size}
	direct.D = prngDigest(direct.Seed, direct.Size)
	check(pushImage(up.URL(""), "proxy/direct", direct))
	for i, t := range b.targets {
		if !t.Kind.supports("proxy") {
			continue
		}
		s := bigBlob{Seed: uint64(6000 + rep*100 + i), Size: size}
		c := bigBlob{Seed: uint64(7000 + rep*100 + i), Size: concSize}
		s.D, c.D = prngDigest(s.Seed, s.Size), prngDigest(c.Seed, c.Size)
		check(pushImage(up.URL(""), fmt.Sprintf("proxy/single%d", i), s))
		check(pushImage(up.URL(""), fmt.Sprintf("proxy/conc%d", i), c))
		own[t.Name] = blobs{s, c}
	}
	// The upstream direct: registryd hosted, the baseline of cold and warm.
	dmbs, dttfb, err := pullTimed(up.URL(""), "proxy/direct", direct.D, direct.Size)
	check(err)
	pm.cold.add(directCol, dmbs)
	pm.ttfb.add(directCol, float64(dttfb.Microseconds())/1000)
	pm.warm.add(directCol, dmbs)
	logf("rep %d %-20s direct pull %.0f MB/s, first byte %.1f ms", rep+1, "upstream", dmbs, float64(dttfb.Microseconds())/1000)

	for k := range b.targets {
		idx := (k + rep) % len(b.targets)
		t := b.targets[idx]
		if !t.Kind.supports("proxy") {
			continue // zot mirrors with its sync extension, configured otherwise
		}
		bl := own[t.Name]
		root := filepath.Join(b.work, fmt.Sprintf("%s-mirror-rep%d", slug(t.Name), rep))
		m, err := startMirrorServer(t, root, b.work, upURL)
		check(err)
		repoS, repoC := fmt.Sprintf("proxy/single%d", idx), fmt.Sprintf("proxy/conc%d", idx)
		cmbs, ttfb, err := pullTimed(m.URL(""), repoS, bl.single.D, bl.single.Size)
		b.check(m, err)
		pm.cold.add(t.Name, cmbs)
		pm.coldRatio.add(t.Name, cmbs/dmbs)
		pm.ttfb.add(t.Name, float64(ttfb.Microseconds())/1000)
		waitCached(m, cp, repoS, bl.single)
		wmbs, _, err := pullTimed(m.URL(""), repoS, bl.single.D, bl.single.Size)
		b.check(m, err)
		pm.warm.add(t.Name, wmbs)
		pm.warmRatio.add(t.Name, wmbs/dmbs)

		before := cp.bytes.Load()
		var wg sync.WaitGroup
		var firstErr atomic.Value
		start := time.Now()
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := pullBlob(m.URL(""), repoC, bl.conc.D, bl.conc.Size); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		if err, _ := firstErr.Load().(error); err != nil {
			b.check(m, err)
		}
		// distribution keeps writing its cache copy after the clients are
		// done; the bytes it fetched count whenever they arrive.
		time.Sleep(500 * time.Millisecond)
		upBytes := float64(cp.bytes.Load()-before) / float64(bl.conc.Size)
		pm.concWall.add(t.Name, wall.Seconds())
		pm.concBytes.add(t.Name, upBytes)
		logf("rep %d %-20s mirror: cold %.0f MB/s (%.2f× direct), first byte %.1f ms, warm %.0f MB/s; %d concurrent: %.2fs, upstream sent %.2f× the blob",
			rep+1, t.Name, cmbs, cmbs/dmbs, float64(ttfb.Microseconds())/1000, wmbs, clients, wall.Seconds(), upBytes)
		m.Stop()
		os.RemoveAll(root)
	}
}
