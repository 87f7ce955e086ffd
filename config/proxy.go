package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Proxy is the "proxy" section: registryd as a pull-through cache. The
// single-upstream keys are distribution's (remoteurl, username, password,
// exec, ttl), so a mirror's config moves over unchanged; upstreams, hosted
// and cache are registryd's. nil when the section is absent.
type Proxy struct {
	// RemoteURL (proxy.remoteurl) is distribution's single upstream: every
	// repository of the registry is a cache of it, stored under its own
	// name, and pushes and deletes answer 405 UNSUPPORTED.
	RemoteURL string
	Username  string     // proxy.username
	Password  string     // proxy.password; masked by Dump
	Exec      *ProxyExec // proxy.exec: a docker-credential-helper instead of username/password
	// TTL (proxy.ttl, default 168h) evicts a cached image not pulled for
	// this long; 0 keeps images until the size cap needs the room.
	// distribution counts it from the fetch, registryd from the last pull.
	TTL time.Duration
	// CacheWriteTimeout (proxy.cachewritetimeout, default 30m) bounds one
	// fill: the download of a blob into the cache, which goes on when the
	// client that started it goes away.
	CacheWriteTimeout time.Duration

	// Defaults of every upstream (registryd): see Upstream.
	Revalidate  time.Duration // proxy.revalidate (default 1m)
	Timeout     time.Duration // proxy.timeout (default 30s)
	NotFoundTTL time.Duration // proxy.notfoundttl (default 30s)

	// Upstreams (proxy.upstreams) are registryd's several upstreams in one
	// instance, chosen per request by ?ns=, by the first path component or
	// as the default.
	Upstreams []Upstream
	// DefaultUpstream (proxy.defaultupstream) names the upstream of
	// requests that name none (dockerd's registry-mirrors). Empty: such
	// repositories are hosted here, unless RemoteURL is set.
	DefaultUpstream string
	// Hosted (proxy.hosted) are repository patterns (as in access rules:
	// "team/**") that are hosted here, pushable, even with a default
	// upstream.
	Hosted []string
	// SpoolDir (proxy.spooldir, default the system's temporary directory)
	// holds the bytes of blobs being fetched, read by every client
	// waiting for them until the blob is in storage.
	SpoolDir string
	Cache    ProxyCache // proxy.cache
}

// ProxyExec is proxy.exec: a docker-credential-helper program.
type ProxyExec struct {
	Command string // proxy.exec.command: run with "get" and the upstream's host on stdin
	// Lifetime (proxy.exec.lifetime) reuses the answer this long; unset:
	// the helper runs once; 0: it runs for every credential lookup.
	Lifetime *time.Duration
}

// Upstream is one element of proxy.upstreams.
type Upstream struct {
	Name string // name: the registry host clients name it by (docker.io, ghcr.io, registry.example.com:5000); required, unique
	URL  string // url: its base URL (https://registry-1.docker.io); required
	// Aliases are more names for the same upstream (?ns= values, path
	// prefixes); Docker Hub's are added by themselves.
	Aliases []string
	// Namespace is where its repositories are cached: name with any
	// ":" as "_" by default (docker.io/library/alpine).
	Namespace string
	Username  string     // username: Basic credentials, also for its token realm
	Password  string     // password; masked by Dump
	Exec      *ProxyExec // exec: a credential helper instead
	// Revalidate: a tag is checked upstream (with a HEAD) at most this
	// often; 0 checks on every request.
	Revalidate time.Duration
	// Timeout bounds the wait for an upstream's response headers, and
	// any pause in a body; it is what an outage costs a client.
	Timeout time.Duration
	// NotFoundTTL: how long an upstream's 404 is remembered.
	NotFoundTTL time.Duration
	// MaxConcurrent caps requests in flight to it (0: no cap).
	MaxConcurrent int
	// Library adds "library/" to single-component names (Docker Hub's
	// official images); true by default for Docker Hub.
	Library *bool
	// SkipVerify turns off TLS certificate checks; CA is a PEM file of
	// certificates to trust besides the system's.
	SkipVerify bool
	CA         string
}

// ProxyCache is proxy.cache: the size cap.
type ProxyCache struct {
	// MaxSize (bytes; "50GiB" and "500MB" are read too) caps the bytes of
	// cached content; 0 means no cap.
	MaxSize int64
	// Eviction starts above HighWatermark percent of MaxSize and stops
	// below LowWatermark percent (defaults 90 and 80).
	HighWatermark int
	LowWatermark  int
	// Interval is how often the cache is checked (default 1m).
	Interval time.Duration
}

// Proxy defaults.
const (
	DefaultProxyTTL               = 168 * time.Hour
	DefaultProxyCacheWriteTimeout = 30 * time.Minute
	DefaultProxyRevalidate        = time.Minute
	DefaultProxyTimeout           = 30 * time.Second
	DefaultProxyNotFoundTTL       = 30 * time.Second
)

// proxySchema is the "proxy" section: distribution's keys and registryd's.
func proxySchema() *key {
	exec := func() *key {
		return impl(section(map[string]*key{"command": impl(str()), "lifetime": impl(duration())}))
	}
	return impl(section(map[string]*key{
		"remoteurl": impl(str()), "username": impl(str()), "password": impl(secret()), "ttl": impl(duration()),
		"exec":              exec(),
		"remotenamespace":   str(), // in distribution's example file; no code reads it there
		"cachewritetimeout": impl(duration()),
		"revalidate":        impl(duration()),
		"timeout":           impl(duration()),
		"notfoundttl":       impl(duration()),
		"defaultupstream":   impl(str()),
		"hosted":            impl(strs()),
		"spooldir":          impl(str()),
		"upstreams": impl(list(impl(section(map[string]*key{
			"name": impl(str()), "url": impl(str()), "aliases": impl(strs()), "namespace": impl(str()),
			"username": impl(str()), "password": impl(secret()), "exec": exec(),
			"revalidate": impl(duration()), "timeout": impl(duration()), "notfoundttl": impl(duration()),
			"maxconcurrent": impl(integer()), "library": impl(boolean()),
			"skipverify": impl(boolean()), "ca": impl(str()),
		})))),
		"cache": impl(section(map[string]*key{
			"maxsize":       impl(leaf(kAny)),
			"highwatermark": impl(integer()),
			"lowwatermark":  impl(integer()),
			"interval":      impl(duration()),
		})),
	}))
}

// nameComponent is one component of a repository name (distribution's
// grammar), which a namespace is made of.
var nameComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// validNamespace reports whether ns is one or more name components.
func validNamespace(ns string) bool {
	for _, c := range strings.Split(ns, "/") {
		if !nameComponent.MatchString(c) {
			return false
		}
	}
	return true
}

// DefaultNamespace is the namespace an upstream called name is cached
// under when it sets none: name lower-cased, with ":" (a port) as "_".
func DefaultNamespace(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), ":", "_")
}

// fillProxy reads the proxy section.
func (p *parser) fillProxy(c *Config, str func(string, *string), boolean func(string, *bool),
	integer func(string, *int), duration func(string, *time.Duration), strs func(string, *[]string),
	bad func(string, string, ...any)) {
	if p.present["proxy"] == nil || isNull(p.present["proxy"]) {
		return
	}
	px := &Proxy{
		TTL: DefaultProxyTTL, CacheWriteTimeout: DefaultProxyCacheWriteTimeout,
		Revalidate: DefaultProxyRevalidate, Timeout: DefaultProxyTimeout, NotFoundTTL: DefaultProxyNotFoundTTL,
		Cache: ProxyCache{HighWatermark: 90, LowWatermark: 80, Interval: time.Minute},
	}
	execOf := func(path string) *ProxyExec {
		if p.present[path] == nil {
			return nil
		}
		e := &ProxyExec{}
		str(path+".command", &e.Command)
		if p.vals[path+".lifetime"] != nil {
			var d time.Duration
			duration(path+".lifetime", &d)
			e.Lifetime = &d
		}
		if e.Command == "" {
			bad(path+".command", "is required: the credential helper to run (docker-credential-...)")
		}
		return e
	}
	checkURL := func(path, u string) {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" || pu.User != nil {
			bad(path, "must be an http(s) URL of a registry's root, such as https://registry-1.docker.io, got %q", u)
		}
	}
	str("proxy.remoteurl", &px.RemoteURL)
	str("proxy.username", &px.Username)
	str("proxy.password", &px.Password)
	px.Exec = execOf("proxy.exec")
	duration("proxy.ttl", &px.TTL)
	duration("proxy.cachewritetimeout", &px.CacheWriteTimeout)
	duration("proxy.revalidate", &px.Revalidate)
	duration("proxy.timeout", &px.Timeout)
	duration("proxy.notfoundttl", &px.NotFoundTTL)
	str("proxy.defaultupstream", &px.DefaultUpstream)
	strs("proxy.hosted", &px.Hosted)
	str("proxy.spooldir", &px.SpoolDir)
	if px.RemoteURL != "" {
		checkURL("proxy.remoteurl", px.RemoteURL)
	}
	if px.CacheWriteTimeout <= 0 {
		bad("proxy.cachewritetimeout", "must be positive, such as 30m")
	}
	if px.Timeout <= 0 {
		bad("proxy.timeout", "must be positive, such as 30s")
	}

	names := map[string]string{} // name or alias: path of the upstream
	namespaces := map[string]string{}
	for i := 0; p.present[fmt.Sprintf("proxy.upstreams[%d]", i)] != nil; i++ {
		path := fmt.Sprintf("proxy.upstreams[%d]", i)
		node := p.present[path]
		if node.Kind != yaml.MappingNode {
			continue // walk reported it
		}
		u := Upstream{Revalidate: px.Revalidate, Timeout: px.Timeout, NotFoundTTL: px.NotFoundTTL}
		str(path+".name", &u.Name)
		str(path+".url", &u.URL)
		strs(path+".aliases", &u.Aliases)
		str(path+".namespace", &u.Namespace)
		str(path+".username", &u.Username)
		str(path+".password", &u.Password)
		u.Exec = execOf(path + ".exec")
		duration(path+".revalidate", &u.Revalidate)
		duration(path+".timeout", &u.Timeout)
		duration(path+".notfoundttl", &u.NotFoundTTL)
		integer(path+".maxconcurrent", &u.MaxConcurrent)
		if p.vals[path+".library"] != nil {
			var b bool
			boolean(path+".library", &b)
			u.Library = &b
		}
		boolean(path+".skipverify", &u.SkipVerify)
		str(path+".ca", &u.CA)
		u.Name = strings.ToLower(u.Name)
		if u.Name == "" {
			p.fail(path, node, "needs a name: the registry host clients name it by, such as docker.io or ghcr.io")
		} else if strings.ContainsAny(u.Name, "/ ") {
			bad(path+".name", "must be a registry host such as ghcr.io or registry.example.com:5000, got %q", u.Name)
		}
		if u.URL == "" {
			p.fail(path, node, "needs url: the registry's base URL, such as https://ghcr.io")
		} else {
			checkURL(path+".url", u.URL)
		}
		if u.Namespace == "" {
			u.Namespace = DefaultNamespace(u.Name)
		}
		if !validNamespace(u.Namespace) {
			bad(path+".namespace", "must be a repository name prefix (lower-case components such as docker.io or cache/ghcr), got %q", u.Namespace)
		}
		for _, n := range append([]string{u.Name}, u.Aliases...) {
			n = strings.ToLower(n)
			if prev, dup := names[n]; dup && n != "" {
				bad(path+".name", "%q already names %s", n, prev)
			}
			names[n] = path
		}
		if prev, dup := namespaces[u.Namespace]; dup {
			bad(path+".namespace", "namespace %q is already %s's", u.Namespace, prev)
		}
		namespaces[u.Namespace] = path
		if u.Timeout <= 0 {
			bad(path+".timeout", "must be positive, such as 30s")
		}
		if u.MaxConcurrent < 0 {
			bad(path+".maxconcurrent", "must not be negative")
		}
		px.Upstreams = append(px.Upstreams, u)
	}
	for ns, path := range namespaces {
		for other, opath := range namespaces {
			if other != ns && strings.HasPrefix(other, ns+"/") {
				bad(opath+".namespace", "namespace %q lies inside %s's %q", other, path, ns)
			}
		}
	}
	if px.RemoteURL != "" && len(px.Upstreams) > 0 {
		bad("proxy.upstreams", "proxy.remoteurl (one upstream for every repository) and proxy.upstreams exclude each other: move remoteurl into upstreams with defaultupstream")
	}
	if px.RemoteURL == "" && len(px.Upstreams) == 0 {
		p.fail("proxy", p.keys["proxy"], "needs proxy.remoteurl or proxy.upstreams: the registry to mirror")
	}
	if px.DefaultUpstream != "" {
		if _, ok := names[strings.ToLower(px.DefaultUpstream)]; !ok {
			bad("proxy.defaultupstream", "%q is not the name of an upstream in proxy.upstreams", px.DefaultUpstream)
		}
	}
	if len(px.Hosted) > 0 && px.RemoteURL != "" {
		bad("proxy.hosted", "needs proxy.upstreams: with proxy.remoteurl every repository is a cache")
	}
	if n := p.vals["proxy.cache.maxsize"]; n != nil {
		v, err := ParseSize(n.Value)
		if err != nil || n.Kind != yaml.ScalarNode {
			bad("proxy.cache.maxsize", "must be a size such as 50GiB, 500MB or a number of bytes, got %q", n.Value)
		}
		px.Cache.MaxSize = v
	}
	integer("proxy.cache.highwatermark", &px.Cache.HighWatermark)
	integer("proxy.cache.lowwatermark", &px.Cache.LowWatermark)
	duration("proxy.cache.interval", &px.Cache.Interval)
	if w := px.Cache; w.LowWatermark <= 0 || w.HighWatermark > 100 || w.LowWatermark >= w.HighWatermark {
		bad("proxy.cache.lowwatermark", "watermarks must be percentages with 0 < lowwatermark < highwatermark <= 100, got %d and %d", w.LowWatermark, w.HighWatermark)
	}
	if px.Cache.Interval <= 0 {
		bad("proxy.cache.interval", "must be positive, such as 1m")
	}
	c.Proxy = px
}

// ParseSize reads a size: a number of bytes, or a number with a unit (B,
// KB, MB, GB, TB powers of 1000; KiB, MiB, GiB, TiB powers of 1024; K, M,
// G, T as the binary ones).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size: %q", s)
	}
	mult := map[string]float64{"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	v := f * mult
	if v > 1<<62 {
		return 0, fmt.Errorf("too large: %q", s)
	}
	return int64(v), nil
}

// redactProxy masks the upstreams' passwords.
func redactProxy(p *Proxy) *Proxy {
	if p == nil {
		return nil
	}
	out := *p
	if out.Password != "" {
		out.Password = masked
	}
	out.Hosted = slices.Clone(p.Hosted)
	out.Upstreams = make([]Upstream, len(p.Upstreams))
	for i, u := range p.Upstreams {
		u.Aliases = slices.Clone(u.Aliases)
		if u.Password != "" {
			u.Password = masked
		}
		out.Upstreams[i] = u
	}
	if p.Upstreams == nil {
		out.Upstreams = nil
	}
	return &out
}

// dumpProxy adds the proxy section to a Dump, when configured.
func dumpProxy(root *yaml.Node, c *Config) {
	p := c.Proxy
	if p == nil {
		return
	}
	execNode := func(n *yaml.Node, e *ProxyExec) {
		if e == nil {
			return
		}
		en := pairs("command", e.Command)
		if e.Lifetime != nil {
			add(en, "lifetime", fmtDuration(*e.Lifetime))
		}
		addNode(n, "exec", en)
	}
	pn := mapping()
	if p.RemoteURL != "" {
		add(pn, "remoteurl", p.RemoteURL)
		add(pn, "username", p.Username)
		add(pn, "password", p.Password)
		execNode(pn, p.Exec)
	}
	add(pn, "ttl", fmtDuration(p.TTL))
	add(pn, "cachewritetimeout", fmtDuration(p.CacheWriteTimeout))
	add(pn, "revalidate", fmtDuration(p.Revalidate))
	add(pn, "timeout", fmtDuration(p.Timeout))
	add(pn, "notfoundttl", fmtDuration(p.NotFoundTTL))
	if len(p.Upstreams) > 0 {
		ups := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, u := range p.Upstreams {
			un := pairs("name", u.Name, "url", u.URL, "aliases", nonNil(u.Aliases), "namespace", u.Namespace,
				"username", u.Username, "password", u.Password)
			execNode(un, u.Exec)
			add(un, "revalidate", fmtDuration(u.Revalidate))
			add(un, "timeout", fmtDuration(u.Timeout))
			add(un, "notfoundttl", fmtDuration(u.NotFoundTTL))
			add(un, "maxconcurrent", u.MaxConcurrent)
			if u.Library != nil {
				add(un, "library", *u.Library)
			}
			add(un, "skipverify", u.SkipVerify)
			add(un, "ca", u.CA)
			ups.Content = append(ups.Content, un)
		}
		addNode(pn, "upstreams", ups)
		add(pn, "defaultupstream", p.DefaultUpstream)
		add(pn, "hosted", nonNil(p.Hosted))
	}
	add(pn, "spooldir", p.SpoolDir)
	addNode(pn, "cache", pairs("maxsize", p.Cache.MaxSize, "highwatermark", p.Cache.HighWatermark,
		"lowwatermark", p.Cache.LowWatermark, "interval", fmtDuration(p.Cache.Interval)))
	addNode(root, "proxy", pn)
}
