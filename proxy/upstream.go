package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// upstream is one registry the mirror fetches from, with its credentials,
// tokens, circuit breaker and rate-limit state.
type upstream struct {
	name      string   // as configured, lower case
	names     []string // name and aliases, lower case: what ?ns= and path prefixes match
	namespace string   // where its repositories are cached ("" in remoteurl mode)
	base      *url.URL
	library   bool // single-component names get "library/"
	prefixed  bool // a first path component naming it selects it

	revalidate  time.Duration
	timeout     time.Duration
	notFoundTTL time.Duration
	userAgent   string

	client *http.Client
	creds  credentials
	tokens tokenCache
	sem    chan struct{} // maxconcurrent; nil without a cap
	m      *metrics

	mu         sync.Mutex
	challenge  *challenge // learnt from the last 401
	breaker    breaker
	rlUntil    time.Time // after a 429: ask nothing before then
	rlLimit    int       // from ratelimit-limit, -1 unknown
	rlLeft     int       // from ratelimit-remaining, -1 unknown
	now        func() time.Time
	maxRetries int // of a blob fill on a broken body
}

// dockerHubHosts are Docker Hub's names; an upstream with any of them is
// Docker Hub: all of them name it, and official images get "library/".
var dockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

func isDockerHub(name string, base *url.URL) bool {
	for _, h := range dockerHubHosts {
		if name == h || strings.EqualFold(base.Hostname(), h) {
			return true
		}
	}
	return false
}

func newUpstream(c UpstreamConfig, m *metrics, now func() time.Time, userAgent string) (*upstream, error) {
	base, err := url.Parse(strings.TrimSuffix(c.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("upstream %s: url must be http(s)://host[:port], got %q", c.Name, c.URL)
	}
	base.Path = ""
	u := &upstream{
		name:        strings.ToLower(c.Name),
		namespace:   c.Namespace,
		base:        base,
		prefixed:    !c.NotRoutable,
		revalidate:  c.Revalidate,
		timeout:     c.Timeout,
		notFoundTTL: c.NotFoundTTL,
		userAgent:   userAgent,
		m:           m,
		rlLimit:     -1,
		rlLeft:      -1,
		now:         now,
		maxRetries:  5,
	}
	if u.timeout <= 0 {
		u.timeout = 30 * time.Second
	}
	u.breaker.now = now
	u.names = append(u.names, u.name)
	for _, a := range c.Aliases {
		u.names = append(u.names, strings.ToLower(a))
	}
	hub := isDockerHub(u.name, base)
	if hub {
		for _, h := range dockerHubHosts {
			if !contains(u.names, h) {
				u.names = append(u.names, h)
			}
		}
	}
	u.library = hub
	if c.Library != nil {
		u.library = *c.Library
	}
	if c.MaxConcurrent > 0 {
		u.sem = make(chan struct{}, c.MaxConcurrent)
	}
	switch {
	case c.Exec != nil:
		u.creds = &execCreds{command: c.Exec.Command, host: base.Host, lifetime: c.Exec.Lifetime, now: now}
	case c.Username != "" || c.Password != "":
		u.creds = staticCreds{c.Username, c.Password}
	}
	tlsConf := &tls.Config{InsecureSkipVerify: c.SkipVerify} //nolint:gosec // the operator asked for it
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: ca: %w", c.Name, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream %s: ca %s holds no PEM certificate", c.Name, c.CA)
		}
		tlsConf.RootCAs = pool
	}
	tr := c.Transport
	if tr == nil {
		dial := &net.Dialer{Timeout: min(u.timeout, 10*time.Second), KeepAlive: 30 * time.Second}
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dial.DialContext,
			TLSClientConfig:       tlsConf,
			TLSHandshakeTimeout:   min(u.timeout, 10*time.Second),
			ResponseHeaderTimeout: u.timeout,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			// Layers are compressed already; a transparent gzip would
			// also hide the length.
			DisableCompression: true,
		}
	}
	u.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// Blobs are often redirected to a CDN or a bucket. net/http drops
		// Authorization on a redirect to another host, as it must.
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	return u, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// breaker is a per-upstream circuit breaker: a failure to reach the
// upstream (refused, timed out, reset, 5xx) opens it for a window that
// doubles with each failure in a row (10 s up to 5 min); while it is open
// nothing is sent, so an outage costs each client no wait at all, only the
// request that found it one timeout. When the window has passed, one
// request probes; its success closes the breaker.
type breaker struct {
	failures  int
	openUntil time.Time
	probing   bool
	now       func() time.Time
}

const (
	breakerBase = 10 * time.Second
	breakerMax  = 5 * time.Minute
)

// allow reports whether a request may go out, and otherwise how long the
// breaker stays open. Called with upstream.mu held.
func (b *breaker) allow() (time.Duration, bool) {
	if b.failures == 0 {
		return 0, true
	}
	now := b.now()
	if now.Before(b.openUntil) {
		return b.openUntil.Sub(now), false
	}
	if b.probing {
		return breakerBase, false
	}
	b.probing = true
	return 0, true
}

func (b *breaker) success() { b.failures, b.probing = 0, false }

func (b *breaker) failure() {
	b.failures++
	w := breakerBase << min(b.failures-1, 5)
	if w > breakerMax {
		w = breakerMax
	}
	b.openUntil = b.now().Add(w)
	b.probing = false
}

// isOpen reports whether the breaker is open (for the gauge).
func (b *breaker) isOpen() bool { return b.failures > 0 }

// defaultRateLimitWait is how long the upstream is left alone after a 429
// that says nothing of when to come back.
const defaultRateLimitWait = time.Minute

// request is one request to the upstream, for a repository (its token
// scope) or none.
type request struct {
	method string
	repo   string // remote repository name, for the token scope
	path   string // below /v2/
	header http.Header
}

// do sends r, answering an authentication challenge once. It fails fast
// while the circuit breaker is open or after a 429 until its Retry-After.
// A response is returned whatever its status; the caller judges it (see
// statusError), after do has recorded it for the breaker and rate limits.
func (u *upstream) do(ctx context.Context, r request) (*http.Response, error) {
	u.mu.Lock()
	if wait := u.rlUntil.Sub(u.now()); wait > 0 {
		u.mu.Unlock()
		return nil, &upstreamError{upstream: u.name, kind: kindRateLimited, retryAfter: wait, msg: fmt.Sprintf("rate limited (429) for %s more", wait.Round(time.Second))}
	}
	wait, ok := u.breaker.allow()
	u.mu.Unlock()
	if !ok {
		return nil, &upstreamError{upstream: u.name, kind: kindUnavailable, retryAfter: wait, msg: fmt.Sprintf("unreachable; not retried for %s", wait.Round(time.Second))}
	}
	if u.sem != nil {
		// The slot is held until the response body is closed: a blob
		// download is one request in flight until its last byte.
		select {
		case u.sem <- struct{}{}:
		case <-ctx.Done():
			u.probeDone()
			return nil, ctx.Err()
		}
		resp, err := u.send(ctx, r)
		if err != nil {
			<-u.sem
			return nil, err
		}
		resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { <-u.sem }}
		return resp, nil
	}
	return u.send(ctx, r)
}

// releaseBody gives back a concurrency slot when closed (once).
type releaseBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// send is do after the checks: the request, with one answer to an
// authentication challenge.
func (u *upstream) send(ctx context.Context, r request) (*http.Response, error) {
	scope := ""
	if r.repo != "" {
		scope = "repository:" + r.repo + ":pull"
	}
	var tokenKey string
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.method, u.base.String()+"/v2/"+r.path, nil)
		if err != nil {
			u.probeDone()
			return nil, err
		}
		for k, vs := range r.header {
			req.Header[k] = vs
		}
		req.Header.Set("User-Agent", u.userAgent)
		u.mu.Lock()
		ch := u.challenge
		u.mu.Unlock()
		if ch != nil {
			switch ch.scheme {
			case "basic":
				if u.creds != nil {
					if user, pass, ok := u.creds.basic(ctx); ok {
						req.SetBasicAuth(user, pass)
					}
				}
			case "bearer":
				var tok string
				tok, tokenKey, err = u.bearer(ctx, *ch, scope)
				if err != nil {
					u.record(nil, err)
					return nil, err
				}
				req.Header.Set("Authorization", "Bearer "+tok)
			}
		}
		resp, err := u.client.Do(req)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			// The caller gave up: says nothing of the upstream.
			u.probeDone()
			return nil, ctx.Err()
		}
		u.record(resp, err)
		if err != nil {
			return nil, unavailable(u.name, err, "%s %s", r.method, r.path)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		// 401: learn the challenge (or that the token went stale) and try
		// once more with what it asks for.
		cs := parseChallenges(resp.Header)
		var next *challenge
		for i := range cs {
			if cs[i].scheme == "bearer" {
				next = &cs[i]
				break
			}
			if cs[i].scheme == "basic" && u.creds != nil && next == nil {
				next = &cs[i]
			}
		}
		if next == nil {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if tokenKey != "" {
			u.tokens.drop(tokenKey)
		}
		u.mu.Lock()
		u.challenge = next
		u.mu.Unlock()
	}
}

// probeDone ends a half-open probe that sent nothing.
func (u *upstream) probeDone() {
	u.mu.Lock()
	u.breaker.probing = false
	u.mu.Unlock()
}

// record feeds a response (or a failure to get one) to the breaker, the
// rate-limit state and the metrics.
func (u *upstream) record(resp *http.Response, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if ue, ok := err.(*upstreamError); ok && ue.kind != kindUnavailable {
			u.breaker.probing = false
			return
		}
		u.breaker.failure()
		u.m.upstreamRequests.WithLabelValues(u.name, "error").Inc()
		u.m.breakerOpen.WithLabelValues(u.name).Set(1)
		return
	}
	u.m.upstreamRequests.WithLabelValues(u.name, strconv.Itoa(resp.StatusCode)).Inc()
	if l, ok := parseRateLimit(resp.Header.Get("Ratelimit-Limit")); ok {
		u.rlLimit = l
		u.m.rateLimit.WithLabelValues(u.name).Set(float64(l))
	}
	if l, ok := parseRateLimit(resp.Header.Get("Ratelimit-Remaining")); ok {
		u.rlLeft = l
		u.m.rateRemaining.WithLabelValues(u.name).Set(float64(l))
	}
	switch s := resp.StatusCode; {
	case s >= 500:
		u.breaker.failure()
		u.m.breakerOpen.WithLabelValues(u.name).Set(1)
	case s == http.StatusTooManyRequests:
		u.breaker.probing = false
		wait := parseRetryAfter(resp.Header.Get("Retry-After"), u.now())
		if wait <= 0 {
			wait = defaultRateLimitWait
		}
		u.rlUntil = u.now().Add(wait)
		u.m.rateLimited.WithLabelValues(u.name).Inc()
	default:
		u.breaker.success()
		u.m.breakerOpen.WithLabelValues(u.name).Set(0)
	}
}

// parseRateLimit reads Docker Hub's "100;w=21600".
func parseRateLimit(v string) (int, bool) {
	if v == "" {
		return 0, false
	}
	n, _, _ := strings.Cut(v, ";")
	i, err := strconv.Atoi(strings.TrimSpace(n))
	return i, err == nil && i >= 0
}

// revalidateEvery is the revalidation interval, stretched while the
// upstream says its rate limit is nearly used up (a tenth left or less):
// cached tags are then served as they are for longer, which keeps the
// remaining pulls for content not cached yet.
func (u *upstream) revalidateEvery() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.revalidate
	if u.rlLimit > 0 && u.rlLeft >= 0 && u.rlLeft*10 <= u.rlLimit {
		r = max(r*10, 10*time.Minute)
	}
	return r
}

// normalize is the upstream's name of a repository: Docker Hub's official
// images are "library/<name>".
func (u *upstream) normalize(name string) string {
	if u.library && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

// manifestAccept is every manifest type registryd stores.
var manifestAccept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// idleReader fails a body that stalls for longer than timeout: it cancels
// the request when no byte arrives in time.
type idleReader struct {
	r       io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
}

func newIdleReader(body io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *idleReader {
	return &idleReader{r: body, timeout: timeout, timer: time.AfterFunc(timeout, cancel)}
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.timer.Reset(r.timeout)
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.r.Close()
}
