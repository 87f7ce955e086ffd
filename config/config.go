package config

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem with the configuration, located by key and, where
// YAML gives one, line (or by the environment variable that set it).
type Error struct {
	Key    string // dotted key path, e.g. storage.delete.enabled
	Line   int    // line in the file; 0 when unknown or from the environment
	Source string // file name or environment variable
	Msg    string
}

func (e *Error) Error() string {
	loc := e.Source
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.Source, e.Line)
	}
	if loc != "" {
		loc += ": "
	}
	if e.Key == "" {
		return loc + e.Msg
	}
	return fmt.Sprintf("%s%s: %s", loc, e.Key, e.Msg)
}

// value is a key's setting: the YAML node and where it came from.
type value struct {
	node   *yaml.Node
	source string
}

// parser collects the settings of a file and the environment.
type parser struct {
	schema  *key
	source  string
	values  map[string]value // leaves and opaque sections by dotted path
	present map[string]bool  // every path present, sections included
	errs    []error
}

func (p *parser) fail(path string, n *yaml.Node, src string, format string, args ...any) {
	line := 0
	if n != nil && src == p.source {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{Key: path, Line: line, Source: src, Msg: fmt.Sprintf(format, args...)})
}

// walk checks node against k and records what it sets.
func (p *parser) walk(path string, k *key, n *yaml.Node, src string) {
	p.present[path] = true
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch k.kind {
	case kSection:
		if n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "") {
			return // an empty section ("delete:") sets nothing
		}
		if n.Kind != yaml.MappingNode {
			p.fail(path, n, src, "must be a map of keys, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			name := strings.ToLower(kn.Value)
			child := joinPath(path, name)
			ck, ok := k.children[name]
			if !ok {
				p.fail(child, kn, src, "unknown key (not a registryd or distribution configuration key)")
				continue
			}
			p.walk(child, ck, vn, src)
		}
	case kOpaque:
		p.values[path] = value{n, src}
	default:
		if err := checkLeaf(k, n); err != nil {
			p.fail(path, n, src, "%v", err)
			return
		}
		p.values[path] = value{n, src}
	}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// checkLeaf verifies a leaf's type and value.
func checkLeaf(k *key, n *yaml.Node) error {
	switch k.kind {
	case kString:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("must be a string, got %s", describe(n))
		}
		if len(k.enum) > 0 && !contains(k.enum, n.Value) {
			return fmt.Errorf("%q is not one of %s", n.Value, strings.Join(k.enum, ", "))
		}
	case kBool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			return fmt.Errorf("must be true or false, got %s", describe(n))
		}
	case kInt:
		var i int
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
			return fmt.Errorf("must be an integer, got %s", describe(n))
		}
	case kDuration:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("must be a duration such as 10s or 168h, got %s", describe(n))
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return fmt.Errorf("must be a duration such as 10s or 168h, got %q", n.Value)
		}
		if d < 0 {
			return fmt.Errorf("must not be negative, got %q", n.Value)
		}
	case kStrings:
		if n.Kind == yaml.ScalarNode {
			return nil
		}
		var s []string
		if n.Kind != yaml.SequenceNode || n.Decode(&s) != nil {
			return fmt.Errorf("must be a list of strings, got %s", describe(n))
		}
	case kMap:
		var m map[string]any
		if n.Kind != yaml.MappingNode || n.Decode(&m) != nil {
			return fmt.Errorf("must be a map, got %s", describe(n))
		}
	case kHeaders:
		var m map[string][]string
		if n.Kind != yaml.MappingNode || n.Decode(&m) != nil {
			return fmt.Errorf("must map header names to lists of values, got %s", describe(n))
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// applyEnv applies REGISTRY_* overrides. A variable that names a key sets
// it (its value read as YAML of the key's type); one that names nothing is
// a warning, not an error: container platforms set variables such as
// REGISTRY_PORT or REGISTRY_SERVICE_HOST for a service called "registry",
// and distribution ignores them too.
func (p *parser) applyEnv(env []string, warn func(string)) {
	sort.Strings(env) // deterministic when two variables touch one key
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "REGISTRY_") {
			continue
		}
		path, k := resolveEnv(p.schema, strings.TrimPrefix(name, "REGISTRY_"))
		if k == nil {
			warn(fmt.Sprintf("environment variable %s matches no configuration key; ignored", name))
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
			p.errs = append(p.errs, &Error{Key: path, Source: name, Msg: fmt.Sprintf("value is not valid YAML: %v", err)})
			continue
		}
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
		if len(doc.Content) == 1 {
			n = doc.Content[0]
		}
		if k.kind == kString && n.Kind == yaml.ScalarNode {
			// A string key takes the variable as written ("0.1", "true").
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
		}
		// An override replaces whatever the file had below that key.
		for q := range p.values {
			if q == path || strings.HasPrefix(q, path+".") {
				delete(p.values, q)
			}
		}
		parts := strings.Split(path, ".")
		for i := 1; i < len(parts); i++ {
			p.present[strings.Join(parts[:i], ".")] = true
		}
		p.walk(path, k, n, name)
	}
}

// resolveEnv finds the key an environment name (without REGISTRY_) names:
// key names contain no "_", so each "_" separates two levels, except below
// an opaque section, whose structure registryd does not know.
func resolveEnv(root *key, name string) (string, *key) {
	parts := strings.Split(strings.ToLower(name), "_")
	k := root
	var path []string
	for i, part := range parts {
		if k.kind == kOpaque {
			return strings.Join(append(path, parts[i:]...), "."), k
		}
		if k.kind != kSection {
			return "", nil
		}
		child, ok := k.children[part]
		if !ok {
			return "", nil
		}
		k = child
		path = append(path, part)
	}
	return strings.Join(path, "."), k
}

// Default is the embedded configuration `registryd serve` uses without a
// file: port 5000, filesystem storage under ./data.
func Default() *Config {
	c := defaults()
	c.Storage.Driver = "filesystem"
	c.Storage.Filesystem.RootDirectory = "./data"
	return c
}

func defaults() *Config {
	return &Config{
		Version: "0.1",
		Log:     Log{Level: "info", Formatter: "text"},
		Storage: Storage{
			Filesystem: Filesystem{RootDirectory: "/var/lib/registry"},
			Maintenance: Maintenance{UploadPurging: UploadPurging{
				Enabled: true, Age: 168 * time.Hour, Interval: 24 * time.Hour,
			}},
		},
		HTTP: HTTP{
			Addr:    ":5000",
			Net:     "tcp",
			Headers: http.Header{"X-Content-Type-Options": {"nosniff"}},
			Debug:   Debug{Prometheus: Prometheus{Path: "/metrics"}},
		},
		Catalog: Catalog{MaxEntries: 1000},
		Health:  Health{StorageDriver: HealthStorageDriver{Interval: 10 * time.Second, Threshold: 3}},
	}
}

// Load reads the file at path (or, with an empty path, the embedded
// default) and applies the environment overrides in env.
func Load(path string, env []string) (*Config, error) {
	if path == "" {
		return parse(nil, "", env)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return parse(data, path, env)
}

// Parse reads a configuration file's content and applies env.
func Parse(data []byte, env []string) (*Config, error) {
	return parse(data, "config", env)
}

func parse(data []byte, source string, env []string) (*Config, error) {
	p := &parser{schema: schema(), source: source, values: map[string]value{}, present: map[string]bool{}}
	var warnings []string
	fromFile := source != ""
	if fromFile {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, &Error{Source: source, Msg: fmt.Sprintf("not valid YAML: %v", err)}
		}
		if len(doc.Content) == 0 {
			return nil, &Error{Source: source, Msg: "the file is empty; it needs at least version and storage"}
		}
		p.walk("", p.schema, doc.Content[0], source)
	}
	p.applyEnv(env, func(w string) { warnings = append(warnings, w) })
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}

	c := defaults()
	if !fromFile {
		c = Default()
	}
	if err := p.fill(c, fromFile); err != nil {
		return nil, err
	}
	c.Warnings = append(p.unimplemented(), warnings...)
	return c, nil
}

// unimplemented names every key present that registryd does not act on.
func (p *parser) unimplemented() []string {
	var out []string
	var visit func(path string, k *key)
	visit = func(path string, k *key) {
		if path != "" && !p.present[path] {
			return
		}
		if isDriver(path) {
			// Driver sections are either supported or a startup error.
			return
		}
		if !k.implemented && path != "" {
			src := ""
			if v, ok := p.values[path]; ok && strings.HasPrefix(v.source, "REGISTRY_") {
				src = " (from " + v.source + ")"
			}
			out = append(out, fmt.Sprintf("configuration key %s is not implemented yet and is ignored%s", path, src))
			return
		}
		names := make([]string, 0, len(k.children))
		for n := range k.children {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			visit(joinPath(path, n), k.children[n])
		}
	}
	visit("", p.schema)
	return out
}

func isDriver(path string) bool {
	_, ok := storageDrivers[strings.TrimPrefix(path, "storage.")]
	return ok && strings.Count(path, ".") == 1
}

// fill sets c from the collected values and validates the whole.
func (p *parser) fill(c *Config, fromFile bool) error {
	var errs []error
	bad := func(path string, format string, args ...any) {
		e := &Error{Key: path, Msg: fmt.Sprintf(format, args...)}
		if v, ok := p.values[path]; ok {
			e.Source = v.source
			if v.source == p.source {
				e.Line = v.node.Line
			}
		} else {
			e.Source = p.source
		}
		errs = append(errs, e)
	}
	str := func(path string, dst *string) {
		if v, ok := p.values[path]; ok {
			*dst = v.node.Value
		}
	}
	boolean := func(path string, dst *bool) {
		if v, ok := p.values[path]; ok {
			_ = v.node.Decode(dst)
		}
	}
	integer := func(path string, dst *int) {
		if v, ok := p.values[path]; ok {
			_ = v.node.Decode(dst)
		}
	}
	duration := func(path string, dst *time.Duration) {
		if v, ok := p.values[path]; ok {
			*dst, _ = time.ParseDuration(v.node.Value)
		}
	}

	str("version", &c.Version)
	if c.Version != "0.1" {
		bad("version", "must be 0.1, got %q", c.Version)
	}
	str("log.level", &c.Log.Level)
	if _, ok := p.values["log.level"]; !ok {
		str("loglevel", &c.Log.Level)
	}
	str("log.formatter", &c.Log.Formatter)
	if c.Log.Formatter == "logstash" {
		c.Log.Formatter = "json"
	}
	if v, ok := p.values["log.fields"]; ok {
		_ = v.node.Decode(&c.Log.Fields)
	}

	// Exactly one storage driver.
	var drivers []string
	for d := range storageDrivers {
		if p.present["storage."+d] {
			drivers = append(drivers, d)
		}
	}
	sort.Strings(drivers)
	switch {
	case len(drivers) > 1:
		bad("storage", "more than one storage driver is configured (%s); choose one", strings.Join(drivers, ", "))
	case len(drivers) == 0 && fromFile:
		bad("storage", "no storage driver is configured; add storage.filesystem.rootdirectory (or storage.inmemory)")
	case len(drivers) == 1:
		c.Storage.Driver = drivers[0]
		if !storageDrivers[drivers[0]] {
			bad("storage."+drivers[0], "storage driver %q is not supported yet (supported: filesystem, inmemory)", drivers[0])
		}
	}
	str("storage.filesystem.rootdirectory", &c.Storage.Filesystem.RootDirectory)
	if c.Storage.Driver == "filesystem" && c.Storage.Filesystem.RootDirectory == "" {
		bad("storage.filesystem.rootdirectory", "must not be empty")
	}
	boolean("storage.delete.enabled", &c.Storage.Delete.Enabled)
	boolean("storage.redirect.disable", &c.Storage.Redirect.Disable)
	up := &c.Storage.Maintenance.UploadPurging
	boolean("storage.maintenance.uploadpurging.enabled", &up.Enabled)
	duration("storage.maintenance.uploadpurging.age", &up.Age)
	duration("storage.maintenance.uploadpurging.interval", &up.Interval)
	boolean("storage.maintenance.uploadpurging.dryrun", &up.DryRun)
	if up.Enabled && up.Interval == 0 {
		bad("storage.maintenance.uploadpurging.interval", "must be positive when upload purging is enabled")
	}
	boolean("storage.maintenance.readonly.enabled", &c.Storage.Maintenance.ReadOnly.Enabled)

	h := &c.HTTP
	str("http.addr", &h.Addr)
	if h.Addr == "" {
		bad("http.addr", "must not be empty")
	}
	str("http.net", &h.Net)
	str("http.host", &h.Host)
	if h.Host != "" {
		if u, err := url.Parse(h.Host); err != nil || u.Scheme == "" || u.Host == "" {
			bad("http.host", "must be an absolute URL such as https://registry.example.com, got %q", h.Host)
		}
	}
	str("http.prefix", &h.Prefix)
	str("http.secret", &h.Secret)
	boolean("http.relativeurls", &h.RelativeURLs)
	duration("http.draintimeout", &h.DrainTimeout)
	if v, ok := p.values["http.headers"]; ok {
		var m map[string][]string
		_ = v.node.Decode(&m)
		h.Headers = http.Header{}
		for k, vs := range m {
			h.Headers[http.CanonicalHeaderKey(k)] = vs
		}
	}
	str("http.tls.certificate", &h.TLS.Certificate)
	str("http.tls.key", &h.TLS.Key)
	if (h.TLS.Certificate == "") != (h.TLS.Key == "") {
		bad("http.tls", "certificate and key must be given together")
	}
	if v, ok := p.values["http.tls.clientcas"]; ok {
		if v.node.Kind == yaml.ScalarNode {
			h.TLS.ClientCAs = []string{v.node.Value}
		} else {
			_ = v.node.Decode(&h.TLS.ClientCAs)
		}
	}
	str("http.tls.minimumtls", &h.TLS.MinimumTLS)
	str("http.debug.addr", &h.Debug.Addr)
	boolean("http.debug.prometheus.enabled", &h.Debug.Prometheus.Enabled)
	str("http.debug.prometheus.path", &h.Debug.Prometheus.Path)

	integer("catalog.maxentries", &c.Catalog.MaxEntries)
	if c.Catalog.MaxEntries <= 0 {
		bad("catalog.maxentries", "must be a positive number, got %d", c.Catalog.MaxEntries)
	}
	hs := &c.Health.StorageDriver
	boolean("health.storagedriver.enabled", &hs.Enabled)
	duration("health.storagedriver.interval", &hs.Interval)
	integer("health.storagedriver.threshold", &hs.Threshold)
	return errors.Join(errs...)
}

// Redacted returns a copy of c with secrets masked.
func (c *Config) Redacted() *Config {
	r := *c
	if r.HTTP.Secret != "" {
		r.HTTP.Secret = "*****"
	}
	return &r
}

// Dump renders the effective configuration, secrets masked, as YAML.
func (c *Config) Dump() ([]byte, error) {
	r := c.Redacted()
	drv := map[string]any{}
	switch r.Storage.Driver {
	case "filesystem":
		drv["filesystem"] = map[string]any{"rootdirectory": r.Storage.Filesystem.RootDirectory}
	case "inmemory":
		drv["inmemory"] = map[string]any{}
	}
	up := r.Storage.Maintenance.UploadPurging
	drv["delete"] = map[string]any{"enabled": r.Storage.Delete.Enabled}
	drv["redirect"] = map[string]any{"disable": r.Storage.Redirect.Disable}
	drv["maintenance"] = map[string]any{
		"uploadpurging": map[string]any{"enabled": up.Enabled, "age": up.Age.String(), "interval": up.Interval.String(), "dryrun": up.DryRun},
		"readonly":      map[string]any{"enabled": r.Storage.Maintenance.ReadOnly.Enabled},
	}
	hdrs := map[string][]string{}
	for k, v := range r.HTTP.Headers {
		hdrs[k] = v
	}
	out := map[string]any{
		"version": r.Version,
		"log":     map[string]any{"level": r.Log.Level, "formatter": r.Log.Formatter, "fields": r.Log.Fields},
		"storage": drv,
		"http": map[string]any{
			"addr": r.HTTP.Addr, "net": r.HTTP.Net, "host": r.HTTP.Host, "prefix": r.HTTP.Prefix,
			"secret": r.HTTP.Secret, "relativeurls": r.HTTP.RelativeURLs,
			"draintimeout": r.HTTP.DrainTimeout.String(), "headers": hdrs,
			"tls": map[string]any{"certificate": r.HTTP.TLS.Certificate, "key": r.HTTP.TLS.Key, "clientcas": r.HTTP.TLS.ClientCAs, "minimumtls": r.HTTP.TLS.MinimumTLS},
		},
		"catalog": map[string]any{"maxentries": r.Catalog.MaxEntries},
	}
	return yaml.Marshal(out)
}
