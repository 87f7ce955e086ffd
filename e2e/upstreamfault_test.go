package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstreamFault is a loopback HTTP proxy in front of a real upstream registry
// (a registryd, the reference): the mirror under test talks to it as to the
// upstream. It logs every request it forwards, so tests count what the
// upstream served, and injects faults on request: delays, connections
// dropped in the middle of a blob, 429s with and without Retry-After, 503s,
// one corrupted byte, hangs, and going away altogether (connection
// refused). Token realms in WWW-Authenticate are rewritten to point at the
// proxy too, so that every request of the mirror goes through it.
type upstreamFault struct {
	t        *testing.T
	Addr     string // 127.0.0.1:PORT
	upstream string // host:port of the upstream

	mu      sync.Mutex
	ln      net.Listener
	srv     *http.Server
	log     []proxyReq
	rules   []*faultRule
	hang    chan struct{}
	client  *http.Client
	stopped bool
}

// proxyReq is one request the proxy saw.
type proxyReq struct {
	Method, Kind, Path, Range string
	Auth                      string // the Authorization header it carried
	Status                    int
}

func (r proxyReq) String() string {
	s := r.Method + " " + r.Path
	if r.Range != "" {
		s += " [" + r.Range + "]"
	}
	return fmt.Sprintf("%s -> %d", s, r.Status)
}

// faultRule applies to the requests it matches, times times (0: always).
type faultRule struct {
	match func(r *http.Request) bool
	times int
	// one of:
	status     int           // answer this status, empty body (429, 503, ...)
	retryAfter string        // with Retry-After
	dropAfter  int64         // forward, but cut the connection after so many body bytes
	corruptAt  int64         // forward, flipping the byte at this offset (-1: none)
	delay      time.Duration // wait before forwarding
	hang       bool          // never answer (until the proxy stops)
}

func startUpstreamFault(t *testing.T, upstream string) *upstreamFault {
	t.Helper()
	p := &upstreamFault{t: t, upstream: upstream, hang: make(chan struct{}),
		client: &http.Client{
			Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
			// The mirror follows redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

func (p *upstreamFault) serve(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln = ln
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second}
	go p.srv.Serve(ln)
}

// URL is the proxy's base URL: the upstream URL to give the mirror.
func (p *upstreamFault) URL() string { return "http://" + p.Addr }

// goAway stops listening: connections are refused, as from a host that is
// down. comeBack listens again on the same address.
func (p *upstreamFault) goAway() {
	p.mu.Lock()
	srv := p.srv
	p.srv, p.ln = nil, nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (p *upstreamFault) comeBack() {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(p.t, err)
	p.serve(ln)
}

func (p *upstreamFault) close() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.hang)
	}
	p.mu.Unlock()
	p.goAway()
}

// add installs a fault rule; the first matching rule applies.
func (p *upstreamFault) add(r *faultRule) {
	if r.corruptAt == 0 {
		r.corruptAt = -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
}

func (p *upstreamFault) clearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

func (p *upstreamFault) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

func (p *upstreamFault) requests() []proxyReq {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxyReq(nil), p.log...)
}

// count is the number of requests of method ("" any) and kind (manifest,
// blob, tags, token, other; "" any) forwarded to the upstream.
func (p *upstreamFault) count(method, kind string) int {
	n := 0
	for _, r := range p.requests() {
		if (method == "" || r.Method == method) && (kind == "" || r.Kind == kind) {
			n++
		}
	}
	return n
}

// served is the number of requests of method and kind the upstream
// answered with content (2xx): what it actually served, leaving out the
// 401 challenges of the token flow.
func (p *upstreamFault) served(method, kind string) int {
	n := 0
	for _, r := range p.requests() {
		if (method == "" || r.Method == method) && (kind == "" || r.Kind == kind) && r.Status >= 200 && r.Status < 300 {
			n++
		}
	}
	return n
}

func requestKind(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	case strings.HasPrefix(path, "/v2/"):
		return "other"
	}
	return "token"
}

// isBlobGet matches GETs of blobs (digest "" any; else that one).
func isBlobGet(digest string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodGet && requestKind(r.URL.Path) == "blob" && (digest == "" || strings.HasSuffix(r.URL.Path, digest))
	}
}

func isManifest(method string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && requestKind(r.URL.Path) == "manifest"
	}
}

func anyRequest(*http.Request) bool { return true }

func (p *upstreamFault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	var rule *faultRule
	for _, fr := range p.rules {
		if fr.match(r) {
			rule = fr
			if fr.times > 0 {
				fr.times--
				if fr.times == 0 {
					p.rules = removeRule(p.rules, fr)
				}
			}
			break
		}
	}
	entry := proxyReq{Method: r.Method, Kind: requestKind(r.URL.Path), Path: r.URL.RequestURI(), Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")}
	idx := len(p.log)
	p.log = append(p.log, entry)
	hang := p.hang
	p.mu.Unlock()
	setStatus := func(s int) {
		p.mu.Lock()
		p.log[idx].Status = s
		p.mu.Unlock()
	}
	if rule != nil && rule.hang {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		setStatus(0)
		return
	}
	if rule != nil && rule.delay > 0 {
		time.Sleep(rule.delay)
	}
	if rule != nil && rule.status != 0 {
		if rule.retryAfter != "" {
			w.Header().Set("Retry-After", rule.retryAfter)
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(rule.status)
		setStatus(rule.status)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.upstream+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.ContentLength = r.ContentLength
	resp, err := p.client.Do(out)
	if err != nil {
		setStatus(http.StatusBadGateway)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	setStatus(resp.StatusCode)
	for k, vs := range resp.Header {
		for _, v := range vs {
			if k == "Www-Authenticate" {
				v = strings.ReplaceAll(v, "http://"+p.upstream, "http://"+p.Addr)
			}
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	body := io.Reader(resp.Body)
	if rule != nil && rule.corruptAt >= 0 {
		body = &corruptReader{r: body, at: rule.corruptAt}
	}
	if rule != nil && rule.dropAfter > 0 {
		if _, err := io.CopyN(w, body, rule.dropAfter); err == nil {
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		panic(http.ErrAbortHandler) // the connection goes, mid-body
	}
	io.Copy(w, body)
}

func removeRule(rules []*faultRule, r *faultRule) []*faultRule {
	out := rules[:0]
	for _, x := range rules {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// corruptReader flips one byte of a stream.
type corruptReader struct {
	r     io.Reader
	at, n int64
}

func (c *corruptReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.at >= c.n && c.at < c.n+int64(k) {
		p[c.at-c.n] ^= 0x01
	}
	c.n += int64(k)
	return k, err
}

// pushBlobMonolithic uploads content to repo of a registry in one POST, with
// an Authorization header when auth is not empty.
func pushBlobMonolithic(t *testing.T, base, repo string, content []byte, auth string) string {
	t.Helper()
	d := sha256Digest(content)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d, bytes.NewReader(content))
	must(t, err)
	req.Header.Set("Content-Type", "application/octet-stream")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob to %s: %s", repo, resp.Status)
	}
	return d
}
