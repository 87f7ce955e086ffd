package config

import (
	"bytes"
	"maps"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// masked replaces a secret's value in Redacted and Dump.
const masked = "*****"

// Redacted returns a deep copy of c with secrets masked: http.secret,
// credential headers in http.headers, and in the ignored keys every value
// the schema marks secret (s3 secretkey, redis and proxy passwords, the
// headers sent to notification endpoints and health checks, ...) or whose
// name says so (password, secret, ...). c is not changed.
func (c *Config) Redacted() *Config {
	r := *c
	r.Log.Fields = cloneMap(c.Log.Fields)
	r.HTTP.TLS.ClientCAs = slices.Clone(c.HTTP.TLS.ClientCAs)
	r.Warnings = slices.Clone(c.Warnings)
	r.Notifications = redactNotifications(c.Notifications)
	r.Proxy = redactProxy(c.Proxy)
	r.Storage.Maintenance.Retention = cloneRetention(c.Storage.Maintenance.Retention)
	if r.HTTP.Secret != "" {
		r.HTTP.Secret = masked
	}
	if r.Storage.S3.SecretKey != "" {
		r.Storage.S3.SecretKey = masked
	}
	if r.Storage.S3.SessionToken != "" {
		r.Storage.S3.SessionToken = masked
	}
	if c.HTTP.Headers != nil {
		r.HTTP.Headers = c.HTTP.Headers.Clone()
		for name, vs := range r.HTTP.Headers {
			if credentialHeader(name) {
				r.HTTP.Headers[name] = maskList(vs)
			}
		}
	}
	if c.Ignored != nil {
		sch := schema()
		r.Ignored = make(map[string]any, len(c.Ignored))
		for path, v := range c.Ignored {
			r.Ignored[path] = maskValue(lookup(sch, path), v)
		}
	}
	return &r
}

func credentialHeader(name string) bool {
	switch canonicalHeader(name) {
	case "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie":
		return true
	}
	return false
}

func maskList(vs []string) []string {
	out := make([]string, len(vs))
	for i := range vs {
		out[i] = masked
	}
	return out
}

// lookup finds the key at a dotted path (no list indices), or nil.
func lookup(k *key, path string) *key {
	for _, name := range strings.Split(path, ".") {
		if k == nil || k.kind != kSection {
			return nil
		}
		c, ok := k.child(name)
		if !ok {
			return nil
		}
		k = c
	}
	return k
}

// maskValue returns a copy of v, a value YAML decoded for key k (nil when
// the schema does not describe it), with secrets masked.
func maskValue(k *key, v any) any {
	if k != nil && k.secret {
		switch x := v.(type) {
		case nil:
			return nil
		case string:
			if x == "" {
				return x
			}
			return masked
		case map[string]any: // a header map: mask every value
			out := make(map[string]any, len(x))
			for name := range x {
				out[name] = []any{masked}
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i := range x {
				out[i] = masked
			}
			return out
		default:
			return masked
		}
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for name, e := range x {
			var ck *key
			switch {
			case k != nil && k.kind == kSection:
				ck, _ = k.child(name)
			case k != nil && k.kind == kHeaders:
				if credentialHeader(name) {
					ck = &key{kind: kStrings, secret: true}
				}
			default: // undescribed: go by the name
				ck = &key{kind: kAny, secret: isSecretName(name)}
			}
			out[name] = maskValue(ck, e)
		}
		return out
	case []any:
		var elem *key
		if k != nil && k.kind == kList {
			elem = k.elem
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskValue(elem, e)
		}
		return out
	}
	return v
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneAny(v)
	}
	return out
}

func cloneAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneAny(e)
		}
		return out
	}
	return v
}

// Dump renders the effective configuration as YAML in distribution's
// layout, secrets masked (see Redacted): every key registryd implements
// with its value, defaults included, then each ignored key with the
// comment "not implemented yet, ignored". The output parses back to the
// same configuration (with the masked values in place of the secrets).
func (c *Config) Dump() ([]byte, error) {
	r := c.Redacted()
	root := mapping()

	add(root, "version", r.Version)
	lg := mapping()
	add(lg, "level", r.Log.Level)
	add(lg, "formatter", r.Log.Formatter)
	if len(r.Log.Fields) > 0 {
		add(lg, "fields", r.Log.Fields)
	}
	addNode(root, "log", lg)

	st := mapping()
	switch r.Storage.Driver {
	case "filesystem":
		fs := mapping()
		add(fs, "rootdirectory", r.Storage.Filesystem.RootDirectory)
		addNode(st, "filesystem", fs)
	case "s3":
		s := r.Storage.S3
		addNode(st, "s3", pairs("accesskey", s.AccessKey, "secretkey", s.SecretKey, "sessiontoken", s.SessionToken,
			"region", s.Region, "regionendpoint", s.RegionEndpoint, "bucket", s.Bucket,
			"rootdirectory", s.RootDirectory, "secure", s.Secure, "skipverify", s.SkipVerify,
			"forcepathstyle", s.ForcePathStyle, "chunksize", s.ChunkSize,
			"multipartcopythresholdsize", s.MultipartCopyThresholdSize, "multipartcopychunksize", s.MultipartCopyChunkSize,
			"multipartcopymaxconcurrency", s.MultipartCopyMaxConcurrency, "storageclass", s.StorageClass))
	case "":
	default:
		addNode(st, r.Storage.Driver, mapping())
	}
	addNode(st, "delete", pairs("enabled", r.Storage.Delete.Enabled))
	addNode(st, "redirect", pairs("disable", r.Storage.Redirect.Disable, "enable", r.Storage.Redirect.Enable))
	up := r.Storage.Maintenance.UploadPurging
	mt := mapping()
	addNode(mt, "uploadpurging", pairs("enabled", up.Enabled, "age", fmtDuration(up.Age),
		"interval", fmtDuration(up.Interval), "dryrun", up.DryRun))
	addNode(mt, "readonly", pairs("enabled", r.Storage.Maintenance.ReadOnly.Enabled))
	sc := r.Storage.Maintenance.Scrub
	addNode(mt, "scrub", pairs("enabled", sc.Enabled, "interval", fmtDuration(sc.Interval), "ratelimit", sc.RateLimit, "repair", sc.Repair))
	addNode(mt, "retention", dumpRetention(r.Storage.Maintenance.Retention)) // retention.go
	pt := r.Storage.Maintenance.PullTimes
	addNode(mt, "pulltimes", pairs("enabled", pt.Enabled, "interval", fmtDuration(pt.Interval)))
	addNode(st, "maintenance", mt)
	addNode(root, "storage", st)

	h := r.HTTP
	hn := pairs("addr", h.Addr, "net", h.Net, "host", h.Host, "prefix", h.Prefix,
		"secret", h.Secret, "relativeurls", h.RelativeURLs, "draintimeout", fmtDuration(h.DrainTimeout))
	hdrs := mapping()
	for _, name := range slices.Sorted(maps.Keys(h.Headers)) {
		add(hdrs, name, h.Headers[name])
	}
	addNode(hn, "headers", hdrs)
	tn := pairs("certificate", h.TLS.Certificate, "key", h.TLS.Key)
	add(tn, "clientcas", nonNil(h.TLS.ClientCAs))
	add(tn, "minimumtls", h.TLS.MinimumTLS)
	addNode(hn, "tls", tn)
	dbg := pairs("addr", h.Debug.Addr)
	addNode(dbg, "prometheus", pairs("enabled", h.Debug.Prometheus.Enabled, "path", h.Debug.Prometheus.Path))
	addNode(hn, "debug", dbg)
	dumpRateLimit(hn, h.RateLimit) // ratelimit.go
	addNode(root, "http", hn)

	hs := r.Health.StorageDriver
	addNode(root, "health", mapping())
	addNode(child(root, "health"), "storagedriver", pairs("enabled", hs.Enabled,
		"interval", fmtDuration(hs.Interval), "threshold", hs.Threshold))
	addNode(root, "catalog", pairs("maxentries", r.Catalog.MaxEntries))
	dumpAuth(root, r)          // auth.go
	dumpNotifications(root, r) // notifications.go
	dumpProxy(root, r)         // proxy.go
	dumpUI(root, r)            // ui.go

	paths := make([]string, 0, len(r.Ignored))
	for path := range r.Ignored {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	for _, path := range paths {
		names := strings.Split(path, ".")
		parent := root
		for _, name := range names[:len(names)-1] {
			next := child(parent, name)
			if next == nil {
				next = mapping()
				addNode(parent, name, next)
			}
			parent = next
		}
		v := valueNode(r.Ignored[path])
		addNode(parent, names[len(names)-1], v)
		parent.Content[len(parent.Content)-2].LineComment = "not implemented yet, ignored"
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

// pairs builds a map node from name, value, name, value, ...
func pairs(kv ...any) *yaml.Node {
	m := mapping()
	for i := 0; i+1 < len(kv); i += 2 {
		add(m, kv[i].(string), kv[i+1])
	}
	return m
}

func add(m *yaml.Node, name string, v any) { addNode(m, name, valueNode(v)) }

func addNode(m *yaml.Node, name string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, v)
}

func valueNode(v any) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		// Values come from YAML or are plain Go types: they encode.
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return &n
}

func child(m *yaml.Node, name string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return m.Content[i+1]
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
