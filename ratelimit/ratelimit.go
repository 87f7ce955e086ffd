// Package ratelimit keeps one client from taking the registry from the
// others (http.ratelimit): requests per second per client address and
// per authenticated user, each a token bucket with a burst, with their own
// rates for some methods (HEAD is cheap, PUT is not), and a cap on the
// uploads one client sends at once. A request over a limit is answered
// 429 TOOMANYREQUESTS with Retry-After, the time until the bucket holds a
// token again, before any work is done for it.
//
// The client's address is the connection's peer, or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that is not one:
// anything a client could forge is never believed.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
)

// Rate is a token bucket: Requests per second, with up to Burst at once.
// Requests 0 is no limit.
type Rate struct {
	Requests float64
	Burst    int
}

// Config says what to limit; the zero value limits nothing.
type Config struct {
	PerClient Rate // per client address
	PerUser   Rate // per authenticated user, over all their addresses
	// Methods replace PerClient and PerUser for the requests of a method
	// (upper case: "HEAD"), counted in buckets of their own: a method
	// listed is limited per client and per user at its own rate, whatever
	// the other two say.
	Methods map[string]Rate
	// Uploads caps the upload requests (POST, PATCH, PUT below
	// /blobs/uploads/) one client address has in flight; 0 is no cap.
	Uploads int
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

// Limiter enforces a Config. Its buckets are created on a client's first
// request and forgotten once full and idle.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	uploads map[string]int
	sweep   time.Time
}

type bucketKey struct {
	kind   byte   // 'c' client, 'u' user
	who    string // address or user name
	method string // "" for the default bucket
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	return &Limiter{cfg: cfg, now: time.Now, buckets: map[bucketKey]*bucket{}, uploads: map[string]int{}}
}

// idle is how long a bucket is kept after its last use; a bucket that is
// full again by then holds nothing worth keeping.
const idle = 10 * time.Minute

// rateFor returns the rate for a method and the bucket it counts in.
func (l *Limiter) rateFor(base Rate, method string) (Rate, string) {
	if r, ok := l.cfg.Methods[method]; ok {
		return r, method
	}
	return base, ""
}

// take takes a token from the bucket of key at rt; it returns 0 when the
// request may go on, else how long until it could.
func (l *Limiter) take(key bucketKey, rt Rate, now time.Time) time.Duration {
	if rt.Requests <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	b := l.buckets[key]
	if b == nil {
		burst := rt.Burst
		if burst < 1 {
			burst = max(1, int(math.Ceil(rt.Requests)))
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(rt.Requests), burst)}
		l.buckets[key] = b
	}
	b.used = now
	res := b.lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// sweepLocked forgets the buckets idle for long, once a minute.
func (l *Limiter) sweepLocked(now time.Time) {
	if now.Sub(l.sweep) < time.Minute {
		return
	}
	l.sweep = now
	for k, b := range l.buckets {
		if now.Sub(b.used) > idle {
			delete(l.buckets, k)
		}
	}
}

// Client returns the address r is counted under (see the package comment).
func (l *Limiter) Client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !l.trusted(peer) {
		return host
	}
	// Walk X-Forwarded-For from the right: each entry was added by the
	// proxy after it; the first that is not a trusted proxy is the client.
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	client := peer.Unmap().String()
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // garbage: what is left of it cannot be believed
		}
		client = a.Unmap().String()
		if !l.trusted(a) {
			break
		}
	}
	return client
}

func (l *Limiter) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isUpload tells the requests the upload cap counts.
func isUpload(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut:
		return strings.Contains(r.URL.Path, "/blobs/uploads/")
	}
	return false
}

// tooMany answers 429 TOOMANYREQUESTS with Retry-After, whole seconds.
func tooMany(w http.ResponseWriter, r *http.Request, msg string, wait time.Duration) {
	e := errcode.Newf(errcode.TooManyRequests, "%s", msg).WithRetryAfter(max(wait, time.Second))
	for _, rec := range httprec.Find(w) {
		rec.Err = e
	}
	errcode.ServeJSON(w, e)
}

// Handler limits what reaches next by client address: the per-client
// rate and the upload cap. Per-user limits need the user, known after
// authentication: AllowUser.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := l.Client(r)
		now := l.now()
		rt, m := l.rateFor(l.cfg.PerClient, r.Method)
		if d := l.take(bucketKey{'c', client, m}, rt, now); d > 0 {
			tooMany(w, r, "too many requests from "+client+": at most "+describe(rt)+"; retry after "+seconds(d), d)
			return
		}
		if l.cfg.Uploads > 0 && isUpload(r) {
			l.mu.Lock()
			n := l.uploads[client]
			if n >= l.cfg.Uploads {
				l.mu.Unlock()
				tooMany(w, r, "too many uploads at once from "+client+": at most "+strconv.Itoa(l.cfg.Uploads), time.Second)
				return
			}
			l.uploads[client] = n + 1
			l.mu.Unlock()
			defer func() {
				l.mu.Lock()
				if l.uploads[client]--; l.uploads[client] <= 0 {
					delete(l.uploads, client)
				}
				l.mu.Unlock()
			}()
		}
		next.ServeHTTP(w, r)
	})
}

// AllowUser takes a token for the authenticated user of r (user ""
// is anonymous: the per-client limit is all there is). When the user is
// over their limit it answers 429 and returns false.
func (l *Limiter) AllowUser(w http.ResponseWriter, r *http.Request, user string) bool {
	if l == nil || user == "" {
		return true
	}
	rt, m := l.rateFor(l.cfg.PerUser, r.Method)
	if d := l.take(bucketKey{'u', user, m}, rt, l.now()); d > 0 {
		tooMany(w, r, "too many requests from user "+user+": at most "+describe(rt)+"; retry after "+seconds(d), d)
		return false
	}
	return true
}

func describe(rt Rate) string {
	return strconv.FormatFloat(rt.Requests, 'f', -1, 64) + " requests per second"
}

func seconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) + "s"
}
