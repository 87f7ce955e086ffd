package config

import (
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fill sets c from the valid values collected by walk and checks what
// types alone cannot: ranges, combinations, the storage driver.
func (p *parser) fill(c *Config) {
	str := func(path string, dst *string) {
		if n := p.vals[path]; n != nil {
			*dst = n.Value
		}
	}
	boolean := func(path string, dst *bool) {
		if n := p.vals[path]; n != nil {
			_ = n.Decode(dst) // checked by walk
		}
	}
	integer := func(path string, dst *int) {
		if n := p.vals[path]; n != nil {
			_ = n.Decode(dst)
		}
	}
	duration := func(path string, dst *time.Duration) {
		if n := p.vals[path]; n != nil {
			*dst = 0
			if n.Tag != "!!int" {
				*dst, _ = time.ParseDuration(n.Value)
			}
		}
	}
	strList := func(path string, dst *[]string) {
		if n := p.vals[path]; n != nil {
			*dst = stringList(n)
		}
	}
	bad := func(path string, format string, args ...any) {
		n := p.vals[path]
		if n == nil {
			n = p.present[path]
		}
		p.fail(path, n, format, args...)
	}

	str("version", &c.Version)
	if c.Version != "0.1" {
		bad("version", "must be 0.1, the only configuration version, got %q", c.Version)
	}

	// log
	str("log.level", &c.Log.Level)
	c.Log.Level = strings.ToLower(c.Log.Level)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	str("log.formatter", &c.Log.Formatter)
	switch c.Log.Formatter {
	case "":
		c.Log.Formatter = "text"
	case "logstash":
		c.Log.Formatter = "json"
		p.warnings = append(p.warnings, "not implemented yet: log.formatter logstash; logging as json")
	}
	if n := p.vals["log.fields"]; n != nil {
		var m map[string]any
		_ = n.Decode(&m)
		if len(m) > 0 {
			c.Log.Fields = m
		}
	}

	p.fillStorage(c, str, boolean, bad)
	boolean("storage.delete.enabled", &c.Storage.Delete.Enabled)
	boolean("storage.redirect.enable", &c.Storage.Redirect.Enable)
	boolean("storage.redirect.disable", &c.Storage.Redirect.Disable)
	up := &c.Storage.Maintenance.UploadPurging
	boolean("storage.maintenance.uploadpurging.enabled", &up.Enabled)
	duration("storage.maintenance.uploadpurging.age", &up.Age)
	duration("storage.maintenance.uploadpurging.interval", &up.Interval)
	boolean("storage.maintenance.uploadpurging.dryrun", &up.DryRun)
	if up.Enabled {
		if up.Age <= 0 {
			bad("storage.maintenance.uploadpurging.age", "must be positive when upload purging is enabled")
		}
		if up.Interval <= 0 {
			bad("storage.maintenance.uploadpurging.interval", "must be positive when upload purging is enabled")
		}
	}
	boolean("storage.maintenance.readonly.enabled", &c.Storage.Maintenance.ReadOnly.Enabled)
	p.fillScrub(&c.Storage.Maintenance.Scrub, boolean, duration, bad)
	p.fillRetention(c, boolean, integer, duration, strList, bad) // retention.go
	pt := &c.Storage.Maintenance.PullTimes
	boolean("storage.maintenance.pulltimes.enabled", &pt.Enabled)
	duration("storage.maintenance.pulltimes.interval", &pt.Interval)
	if pt.Enabled && pt.Interval <= 0 {
		bad("storage.maintenance.pulltimes.interval", "must be positive when pull times are recorded")
	}

	// http
	h := &c.HTTP
	str("http.net", &h.Net)
	if h.Net == "" {
		h.Net = "tcp"
	}
	str("http.addr", &h.Addr)
	switch {
	case h.Addr == "":
		bad("http.addr", "must not be empty (default :5000)")
	case h.Net == "tcp":
		if _, _, err := net.SplitHostPort(h.Addr); err != nil {
			bad("http.addr", "must be host:port or :port with http.net tcp, got %q", h.Addr)
		}
	}
	str("http.host", &h.Host)
	if h.Host != "" {
		u, err := url.Parse(h.Host)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("http.host", "must be an absolute URL such as https://registry.example.com, got %q", h.Host)
		}
	}
	str("http.prefix", &h.Prefix)
	if h.Prefix != "" && (!strings.HasPrefix(h.Prefix, "/") || !strings.HasSuffix(h.Prefix, "/")) {
		bad("http.prefix", "must start and end with a slash, such as /registry/, got %q", h.Prefix)
	}
	str("http.secret", &h.Secret)
	boolean("http.relativeurls", &h.RelativeURLs)
	duration("http.draintimeout", &h.DrainTimeout)
	if n := p.vals["http.headers"]; n != nil {
		// The file's headers are added to the defaults; a header given
		// an empty list is removed (X-Content-Type-Options: []).
		for i := 0; i+1 < len(n.Content); i += 2 {
			name := canonicalHeader(n.Content[i].Value)
			if vs := stringList(n.Content[i+1]); len(vs) > 0 {
				h.Headers[name] = vs
			} else {
				delete(h.Headers, name)
			}
		}
	}
	t := &h.TLS
	str("http.tls.certificate", &t.Certificate)
	str("http.tls.key", &t.Key)
	strList("http.tls.clientcas", &t.ClientCAs)
	str("http.tls.minimumtls", &t.MinimumTLS)
	switch t.MinimumTLS {
	case "":
		t.MinimumTLS = "tls1.2"
	case "tls1.0", "tls1.1":
		bad("http.tls.minimumtls", "%s is not supported; registryd serves tls1.2 or tls1.3", t.MinimumTLS)
	}
	switch {
	case t.Certificate == "" && t.Key != "":
		bad("http.tls.key", "needs http.tls.certificate too")
	case t.Certificate != "" && t.Key == "":
		bad("http.tls.certificate", "needs http.tls.key too")
	case t.Certificate == "" && len(t.ClientCAs) > 0:
		bad("http.tls.clientcas", "client certificates need TLS: set http.tls.certificate and http.tls.key")
	}
	str("http.debug.addr", &h.Debug.Addr)
	if h.Debug.Addr != "" {
		if _, _, err := net.SplitHostPort(h.Debug.Addr); err != nil {
			bad("http.debug.addr", "must be host:port, such as localhost:5001, got %q", h.Debug.Addr)
		}
	}
	boolean("http.debug.prometheus.enabled", &h.Debug.Prometheus.Enabled)
	str("http.debug.prometheus.path", &h.Debug.Prometheus.Path)
	if !strings.HasPrefix(h.Debug.Prometheus.Path, "/") {
		bad("http.debug.prometheus.path", "must start with a slash, such as /metrics, got %q", h.Debug.Prometheus.Path)
	}
	if h.Debug.Prometheus.Enabled && h.Debug.Addr == "" {
		p.warnings = append(p.warnings, "http.debug.prometheus.enabled has no effect without http.debug.addr: metrics are served on the debug listener")
	}

	// catalog
	integer("catalog.maxentries", &c.Catalog.MaxEntries)
	if c.Catalog.MaxEntries <= 0 {
		bad("catalog.maxentries", "must be a positive number, got %d", c.Catalog.MaxEntries)
	}

	// health
	hs := &c.Health.StorageDriver
	boolean("health.storagedriver.enabled", &hs.Enabled)
	duration("health.storagedriver.interval", &hs.Interval)
	integer("health.storagedriver.threshold", &hs.Threshold)
	if hs.Interval <= 0 {
		bad("health.storagedriver.interval", "must be positive")
	}
	if hs.Threshold <= 0 {
		bad("health.storagedriver.threshold", "must be a positive number, got %d", hs.Threshold)
	}

	p.fillRateLimit(&c.HTTP.RateLimit, boolean, integer, strList, bad)    // ratelimit.go
	p.fillAuth(c, str, strList, duration, bad)                            // auth.go
	p.fillNotifications(c, str, boolean, integer, duration, strList, bad) // notifications.go
	p.fillProxy(c, str, boolean, integer, duration, strList, bad)         // proxy.go
	p.fillUI(c, str, boolean, duration, bad)                              // ui.go
}

// fillStorage selects the storage driver: exactly one driver section.
func (p *parser) fillStorage(c *Config, str func(string, *string), boolean func(string, *bool), bad func(string, string, ...any)) {
	var drivers []string
	if n := p.present["storage"]; n != nil && n.Kind == yaml.MappingNode {
		sch := p.schema.children["storage"]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, ok := sch.children[n.Content[i].Value]; ok && k.driver {
				drivers = append(drivers, n.Content[i].Value)
			}
		}
	}
	switch {
	case len(drivers) == 0 && p.unknowns["storage"]:
		// Most likely the unknown key is the driver, misspelt: that
		// error says enough.
	case len(drivers) == 0 && p.fromFile:
		// The file's storage key, unless a variable replaced its value
		// (REGISTRY_STORAGE=): then the variable is to blame.
		at := p.keys["storage"]
		if v := p.present["storage"]; v != nil && p.origin[v] != "" {
			at = v
		}
		p.fail("storage", at, "no storage driver is configured: add storage.filesystem (with rootdirectory) or storage.inmemory")
	case len(drivers) == 0:
		c.Storage.Driver = "filesystem"
		c.Storage.Filesystem.RootDirectory = "./data"
	case len(drivers) > 1:
		p.fail("storage", p.keys["storage."+drivers[1]], "more than one storage driver is configured (%s); configure exactly one", strings.Join(drivers, ", "))
	default:
		name := drivers[0]
		c.Storage.Driver = name
		switch name {
		case "filesystem":
			c.Storage.Filesystem.RootDirectory = defaultRootDirectory
			if !p.fromFile {
				c.Storage.Filesystem.RootDirectory = "./data"
			}
			str("storage.filesystem.rootdirectory", &c.Storage.Filesystem.RootDirectory)
			if c.Storage.Filesystem.RootDirectory == "" {
				bad("storage.filesystem.rootdirectory", "must not be empty")
			}
		case "inmemory":
		case "s3":
			p.fillS3(&c.Storage.S3, str, boolean, bad)
		default:
			p.fail("storage."+name, p.keys["storage."+name], "storage driver %q is not supported yet (registryd supports %s)", name, supportedDrivers)
		}
	}
}

// fillS3 reads storage.s3 with distribution's defaults.
func (p *parser) fillS3(s3 *S3, str func(string, *string), boolean func(string, *bool), bad func(string, string, ...any)) {
	const k = "storage.s3."
	for name, dst := range map[string]*string{
		"accesskey": &s3.AccessKey, "secretkey": &s3.SecretKey, "sessiontoken": &s3.SessionToken,
		"region": &s3.Region, "regionendpoint": &s3.RegionEndpoint, "bucket": &s3.Bucket,
		"rootdirectory": &s3.RootDirectory, "storageclass": &s3.StorageClass,
	} {
		str(k+name, dst)
	}
	s3.Secure = true
	boolean(k+"secure", &s3.Secure)
	boolean(k+"skipverify", &s3.SkipVerify)
	boolean(k+"forcepathstyle", &s3.ForcePathStyle)
	if s3.Bucket == "" {
		p.fail(k+"bucket", p.keys["storage.s3"], "storage.s3.bucket is required")
	}
	if s3.RegionEndpoint != "" && strings.Contains(s3.RegionEndpoint, "://") {
		if u, err := url.Parse(s3.RegionEndpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			bad(k+"regionendpoint", "must be http(s)://host[:port] or host[:port], got %q", s3.RegionEndpoint)
		}
	}
	if strings.EqualFold(s3.StorageClass, "NONE") {
		s3.StorageClass = "" // distribution's way to say "the bucket's default"
	}
	size := func(name string, dst *int64, def, lo, hi int64) {
		*dst = def
		n := p.vals[k+name]
		if n == nil {
			return
		}
		v, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
		if err != nil || n.Kind != yaml.ScalarNode {
			bad(k+name, "must be a number of bytes, got %q", n.Value)
			return
		}
		if v < lo || v > hi {
			bad(k+name, "must be between %d and %d bytes, got %d", lo, hi, v)
			return
		}
		*dst = v
	}
	size("chunksize", &s3.ChunkSize, 10<<20, 5<<20, 1<<30)
	size("multipartcopythresholdsize", &s3.MultipartCopyThresholdSize, 32<<20, 0, 5<<30)
	size("multipartcopychunksize", &s3.MultipartCopyChunkSize, 32<<20, 5<<20, 5<<30)
	var conc int64
	size("multipartcopymaxconcurrency", &conc, 8, 1, 1000)
	s3.MultipartCopyMaxConcurrency = int(conc)
}

// stringList reads a kStrings value: a list, or a single string.
func stringList(n *yaml.Node) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	var out []string
	for _, e := range n.Content {
		out = append(out, e.Value)
	}
	return out
}

func canonicalHeader(name string) string {
	return textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
}

// fmtDuration writes a duration the way an operator would: 168h, 10s, 1h30m.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// fillScrub reads storage.maintenance.scrub.
func (p *parser) fillScrub(sc *Scrub, boolean func(string, *bool), duration func(string, *time.Duration), bad func(string, string, ...any)) {
	const k = "storage.maintenance.scrub."
	boolean(k+"enabled", &sc.Enabled)
	boolean(k+"repair", &sc.Repair)
	duration(k+"interval", &sc.Interval)
	if n := p.vals[k+"ratelimit"]; n != nil {
		v, err := ParseBytes(n.Value)
		if err != nil || n.Kind != yaml.ScalarNode {
			bad(k+"ratelimit", "must be bytes per second, e.g. 16MiB or 16777216, got %q", n.Value)
		} else {
			sc.RateLimit = v
		}
	}
	if !sc.Enabled {
		return
	}
	if sc.Interval <= 0 {
		bad(k+"interval", "must be positive when the scrub is enabled")
	}
	if sc.RateLimit <= 0 {
		bad(k+"ratelimit", "must be positive when the scrub is enabled (it keeps the check from starving serving)")
	}
}
