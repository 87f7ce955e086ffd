package proxy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/repoglob"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// Options configure a Proxy.
type Options struct {
	// Upstreams are the registries mirrored. At least one.
	Upstreams []UpstreamConfig
	// Default names the upstream of repositories that name none (dockerd's
	// registry-mirrors); "" hosts them here.
	Default string
	// All makes every repository a cache of the default upstream, stored
	// under its own name: distribution's proxy.remoteurl mode.
	All bool
	// Hosted are patterns of repositories hosted here even with a default
	// upstream.
	Hosted []string
	// TTL evicts cached images not pulled for this long; 0 never.
	TTL time.Duration
	// CacheWriteTimeout bounds one blob download into the cache.
	CacheWriteTimeout time.Duration
	// SpoolDir holds the blobs being downloaded; "" is os.TempDir().
	SpoolDir string
	// MaxSize caps the cached bytes (0: no cap), evicting from High to
	// Low percent of it, checked every Interval.
	MaxSize   int64
	High, Low int
	Interval  time.Duration
	// AfterEvict, when set, is called after an eviction pass or a purge
	// removed something: eviction deletes tags, manifests and blob links,
	// never blobs, so this asks the registry's online collector for a
	// collection soon (serve wires it to the collector's scheduler, as
	// retention's deletions are). Nil: the bytes stay until a collection
	// runs by other means.
	AfterEvict func()

	// Registerer receives the mirror's Prometheus collectors; nil keeps
	// them unregistered.
	Registerer prometheus.Registerer
	// Notifier receives a "fill" event for everything stored in the cache.
	Notifier *notifications.Notifier
	// Source names this instance in events.
	Logger logrus.FieldLogger
	// UserAgent is sent upstream.
	UserAgent string
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// UpstreamConfig is one upstream registry.
type UpstreamConfig struct {
	Name        string // the host clients name it by
	URL         string
	Aliases     []string
	Namespace   string // where its repositories are cached; "" stores them under their own names
	NotRoutable bool   // its name as a first path component does not select it (remoteurl mode)
	Username    string
	Password    string
	Exec        *ExecConfig
	Revalidate  time.Duration
	Timeout     time.Duration
	NotFoundTTL time.Duration
	// MaxConcurrent caps the requests in flight to it; 0 no cap.
	MaxConcurrent int
	// Library, when set, overrides whether single-component names get
	// "library/" (default: only for Docker Hub).
	Library    *bool
	SkipVerify bool
	CA         string
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// ExecConfig is a docker-credential-helper.
type ExecConfig struct {
	Command  string
	Lifetime *time.Duration
}

// Proxy is the pull-through cache. Its methods are safe for concurrent use.
type Proxy struct {
	reg       *storage.Registry
	opts      Options
	log       logrus.FieldLogger
	m         *metrics
	now       func() time.Time
	upstreams []*upstream
	byName    map[string]*upstream // name and aliases
	def       *upstream
	hosted    []repoglob.Pattern

	fills  fillSet
	flight flight[manifestResult]

	mu       sync.Mutex
	fresh    map[string]time.Time // upstream|repo|tag: when the tag was last checked upstream
	notFound map[string]time.Time // upstream|repo|ref: an upstream 404 until then

	evict *evictor
}

// New returns a Proxy over reg. It contacts no upstream: registryd starts
// and serves what is cached with every upstream down.
func New(reg *storage.Registry, opts Options) (*Proxy, error) {
	if len(opts.Upstreams) == 0 {
		return nil, fmt.Errorf("proxy: no upstream")
	}
	if opts.CacheWriteTimeout <= 0 {
		opts.CacheWriteTimeout = 30 * time.Minute
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "registryd-proxy"
	}
	p := &Proxy{
		reg:      reg,
		opts:     opts,
		log:      opts.Logger,
		m:        newMetrics(opts.Registerer),
		now:      opts.Now,
		byName:   map[string]*upstream{},
		fresh:    map[string]time.Time{},
		notFound: map[string]time.Time{},
	}
	if p.log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		p.log = l
	}
	if p.now == nil {
		p.now = time.Now
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("proxy: spool directory: %w", err)
	}
	for _, c := range opts.Upstreams {
		u, err := newUpstream(c, p.m, p.now, opts.UserAgent)
		if err != nil {
			return nil, err
		}
		for _, n := range u.names {
			if other, dup := p.byName[n]; dup {
				return nil, fmt.Errorf("proxy: %q names both upstream %s and %s", n, other.name, u.name)
			}
			p.byName[n] = u
		}
		if u.namespace != "" {
			if _, err := reg.Repository(u.namespace + "/x"); err != nil {
				return nil, fmt.Errorf("proxy: upstream %s: namespace %q is not a repository name prefix", u.name, u.namespace)
			}
		}
		p.upstreams = append(p.upstreams, u)
		p.m.initUpstream(u.name)
	}
	if opts.Default != "" {
		p.def = p.byName[strings.ToLower(opts.Default)]
		if p.def == nil {
			return nil, fmt.Errorf("proxy: default upstream %q is not configured", opts.Default)
		}
	}
	if opts.All {
		if len(p.upstreams) != 1 {
			return nil, fmt.Errorf("proxy: every repository can be the cache of one upstream only")
		}
		p.def = p.upstreams[0]
	}
	for _, h := range opts.Hosted {
		pat, err := repoglob.Compile(h)
		if err != nil {
			return nil, fmt.Errorf("proxy: hosted: %w", err)
		}
		p.hosted = append(p.hosted, pat)
	}
	p.evict = newEvictor(p)
	return p, nil
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// Repo is one cached repository: the upstream it comes from, its name
// there and the repository of this registry that holds the cache.
type Repo struct {
	p      *Proxy
	up     *upstream
	remote string // the upstream's name of it (library/ added)
	local  *storage.Repository
	ns     string // the ?ns= that chose the upstream, echoed as OCI-Namespace
}

// Route decides whether the repository a request names is a cache, and of
// which upstream: the ?ns= parameter (containerd's hosts.toml mirrors)
// names the upstream by host, else a first path component equal to an
// upstream's name or namespace does (/v2/ghcr.io/org/app/..., for
// containers-registries.conf and override_path mirrors), else the default
// upstream takes it (dockerd's registry-mirrors), unless it matches a
// hosted pattern. A nil Repo with a nil error means the repository is
// hosted here. An ?ns= that names no upstream is NAME_UNKNOWN: ns selects
// among configured upstreams and is never dialled.
func (p *Proxy) Route(r *http.Request, name string) (*Repo, error) {
	if p == nil {
		return nil, nil
	}
	var u *upstream
	remote := name
	ns := r.URL.Query().Get("ns")
	switch {
	case ns != "":
		u = p.byName[strings.ToLower(ns)]
		if u == nil {
			return nil, errcode.Newf(errcode.NameUnknown, "no upstream registry %q is mirrored here (ns)", clip(ns, 100)).WithDetail(map[string]string{"name": name})
		}
	default:
		u, remote = p.byPrefix(name)
		if u == nil {
			if p.def == nil || p.isHosted(name) {
				return nil, nil
			}
			u, remote = p.def, name
		}
	}
	remote = u.normalize(remote)
	localName := remote
	if u.namespace != "" {
		localName = u.namespace + "/" + remote
	}
	local, err := p.reg.Repository(localName)
	if err != nil {
		return nil, err
	}
	return &Repo{p: p, up: u, remote: remote, local: local, ns: ns}, nil
}

// byPrefix finds the upstream whose namespace, name or alias is the first
// part of name, and the rest of the name.
func (p *Proxy) byPrefix(name string) (*upstream, string) {
	for _, u := range p.upstreams {
		if u.namespace != "" {
			if rest, ok := strings.CutPrefix(name, u.namespace+"/"); ok && rest != "" {
				return u, rest
			}
		}
	}
	first, rest, ok := strings.Cut(name, "/")
	if !ok || rest == "" {
		return nil, name
	}
	if u := p.byName[first]; u != nil && u.prefixed {
		return u, rest
	}
	return nil, name
}

func (p *Proxy) isHosted(name string) bool {
	if p.opts.All {
		return false
	}
	for _, h := range p.hosted {
		if h.Match(name) {
			return true
		}
	}
	return false
}

// Local is the repository of this registry that caches r.
func (r *Repo) Local() *storage.Repository { return r.local }

// Upstream names the upstream.
func (r *Repo) Upstream() string { return r.up.name }

// Remote is the upstream's name of the repository.
func (r *Repo) Remote() string { return r.remote }

// Namespace is the ?ns= the request chose the upstream by ("" without);
// the API echoes it as OCI-Namespace.
func (r *Repo) Namespace() string { return r.ns }

func (r *Repo) key(ref string) string { return r.up.name + "|" + r.remote + "|" + ref }

// Close stops the background work (eviction).
func (p *Proxy) Close() { p.evict.stop() }

// Run starts the background work: eviction by size and age. It returns at
// once.
func (p *Proxy) Run(ctx context.Context) { p.evict.start(ctx) }
