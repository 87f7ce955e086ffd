// Package config reads registryd's configuration: a YAML file in the key
// layout of distribution's config.yml, overridden by REGISTRY_* environment
// variables, validated before anything starts.
//
// Every key of distribution's configuration reference is known (schema.go).
// Keys registryd implements are read into Config; keys it does not
// implement yet are accepted, so that an operator's existing file starts,
// and each one present is named in Config.Warnings. Keys neither knows,
// values of the wrong type and bad values are errors (*Error, several
// joined with errors.Join) naming the key and the line or variable: Parse
// never returns a half-valid configuration.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem with the configuration, located by key and by the
// file line or the environment variable that set the value.
type Error struct {
	Key    string // dotted key path, e.g. storage.delete.enabled; list elements as [i]
	Line   int    // line in File; 0 when unknown
	File   string // the configuration file, when the value came from it
	EnvVar string // the REGISTRY_* variable, when the value came from it
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.EnvVar != "":
		fmt.Fprintf(&b, "environment variable %s: ", e.EnvVar)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	if e.Key != "" && !strings.Contains(e.Msg, strconv.Quote(e.Key)) {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Default is the embedded configuration `registryd serve` uses without a
// file: port 5000, filesystem storage under ./data.
func Default() *Config {
	c := defaults()
	c.Storage.Driver = "filesystem"
	c.Storage.Filesystem.RootDirectory = "./data"
	return c
}

// defaults are the values of keys a file leaves out. The storage driver has
// none: a file must choose one.
func defaults() *Config {
	return &Config{
		Version: "0.1",
		Log:     Log{Level: "info", Formatter: "text"},
		Storage: Storage{
			Maintenance: Maintenance{
				UploadPurging: UploadPurging{Enabled: true, Age: 168 * time.Hour, Interval: 24 * time.Hour},
				Retention:     defaultRetention(),
				PullTimes:     PullTimes{Enabled: true, Interval: time.Minute},
				Scrub:         Scrub{Interval: 168 * time.Hour, RateLimit: 16 << 20},
			},
		},
		HTTP: HTTP{
			Addr:    ":5000",
			Net:     "tcp",
			Headers: defaultHeaders(),
			TLS:     TLS{MinimumTLS: "tls1.2"},
			Debug:   Debug{Prometheus: Prometheus{Path: "/metrics"}},
		},
		Catalog: Catalog{MaxEntries: 1000},
		UI:      UI{Enabled: true, Path: DefaultUIPath, SessionLifetime: DefaultUISessionLifetime},
		Health:  Health{StorageDriver: HealthStorageDriver{Interval: 10 * time.Second, Threshold: 3}},
	}
}

// defaultHeaders are added to every response unless http.headers says
// otherwise; distribution's example configuration sets the same.
func defaultHeaders() map[string][]string {
	return map[string][]string{"X-Content-Type-Options": {"nosniff"}}
}

// defaultRootDirectory is storage.filesystem.rootdirectory when a file
// selects the filesystem driver without one, as in distribution.
const defaultRootDirectory = "/var/lib/registry"

// Load reads the configuration file at path and applies the REGISTRY_*
// overrides in env (a list like os.Environ()). With an empty path it
// starts from Default() instead of a file.
func Load(path string, env []string) (*Config, error) {
	if path == "" {
		return parse("", nil, env)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration file: %w", err)
	}
	return parse(path, data, env)
}

// Parse reads a configuration file's content (errors call it config.yml)
// and applies the REGISTRY_* overrides in env.
func Parse(data []byte, env []string) (*Config, error) {
	if data == nil {
		data = []byte{}
	}
	return parse("config.yml", data, env)
}

// parser collects a file and the environment into one YAML tree, checks it
// against the schema and fills a Config.
type parser struct {
	schema   *key
	file     string                // file name for messages; "" without a file
	fromFile bool                  // a file was given (Load with a path, or Parse)
	origin   map[*yaml.Node]string // nodes set by environment variables
	vals     map[string]*yaml.Node // valid, non-null implemented leaves by path
	present  map[string]*yaml.Node // every key present (value node) by path
	keys     map[string]*yaml.Node // the key node of every key present
	units    []string              // unimplemented keys present, in document order
	unknowns map[string]bool       // sections holding an unknown key
	errs     []*Error
	warnings []string
}

func parse(file string, data []byte, env []string) (*Config, error) {
	sch := schema()
	p := &parser{
		schema:   sch,
		file:     file,
		fromFile: data != nil,
		origin:   map[*yaml.Node]string{},
		vals:     map[string]*yaml.Node{},
		present:  map[string]*yaml.Node{},
		keys:     map[string]*yaml.Node{},
		unknowns: map[string]bool{},
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if p.fromFile {
		r, err := p.read(data)
		if err != nil {
			return nil, err
		}
		root = r
		normalizeNameForms(sch, root)
	}
	p.applyEnv(sch, root, env)
	p.walk("", sch, root, false)

	c := defaults()
	p.fill(c)
	// auth.silly lets any Authorization header through: an operator who
	// configured it would get an open registry, so it stays an error
	// rather than a warning (htpasswd and token are implemented; "none"
	// asks for what registryd does without an auth section).
	for _, path := range p.units {
		if path == "auth.silly" {
			p.fail(path, p.present[path], "auth.silly is not supported: it would let anyone in; use auth.htpasswd, or auth.token with a token server")
		}
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			if (a.EnvVar != "") != (b.EnvVar != "") {
				return b.EnvVar != ""
			}
			return a.Line < b.Line
		})
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}

	for _, path := range p.units {
		w := "not implemented yet, ignored: " + path
		if h := p.hint(path, c); h != "" {
			w += " (" + h + ")"
		}
		c.Warnings = append(c.Warnings, w)
		var v any
		_ = p.present[path].Decode(&v) // any YAML value decodes into an any
		if c.Ignored == nil {
			c.Ignored = map[string]any{}
		}
		c.Ignored[path] = v
	}
	c.Warnings = append(c.Warnings, p.warnings...)
	return c, nil
}

// hint adds what an ignored key means for the operator, where it matters.
func (p *parser) hint(path string, c *Config) string {
	switch {
	case path == "loglevel":
		return "deprecated by distribution; use log.level"
	case path == "auth.silly":
		return "requests are NOT authenticated"
	case path == "http.tls.letsencrypt" && c.HTTP.TLS.Certificate == "":
		return "no http.tls.certificate is set: the registry serves plain HTTP"
	}
	return ""
}

// read parses the file into its root mapping, aliases and merge keys
// expanded.
func (p *parser) read(data []byte) (*yaml.Node, error) {
	fail := func(line int, format string, args ...any) error {
		return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	yamlErr := func(err error) error {
		// yaml.v3 says "yaml: line 3: did not find expected key".
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(n); err == nil {
					line, msg = l, after
				}
			}
		}
		return fail(line, "not valid YAML: %s", msg)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(0, "the file is empty; it needs at least a storage section (storage.filesystem.rootdirectory)")
		}
		return nil, yamlErr(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, fail(next.Line, "a second YAML document (---) follows; the configuration is one document")
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlErr(err)
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, fail(0, "the file is empty; it needs at least a storage section (storage.filesystem.rootdirectory)")
	}
	root, err := expand(doc.Content[0])
	if err != nil {
		return nil, fail(doc.Content[0].Line, "%v", err)
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "the configuration must be a map of keys (version, storage, http, ...), got %s", describe(root))
	}
	return root, nil
}

// expand returns a copy of n with aliases replaced by copies of what they
// name and merge keys ("<<: *base") merged, so that every node has one
// parent and an override changes one place.
func expand(n *yaml.Node) (*yaml.Node, error) {
	budget := 1 << 20 // nodes: aliases of aliases could otherwise grow exponentially
	return expandNode(n, 0, &budget)
}

func expandNode(n *yaml.Node, depth int, budget *int) (*yaml.Node, error) {
	if *budget--; depth > 100 || *budget < 0 {
		return nil, errors.New("aliases expand too deep or too far")
	}
	if n.Kind == yaml.AliasNode {
		return expandNode(n.Alias, depth+1, budget)
	}
	c := *n
	c.Content = nil
	if n.Kind != yaml.MappingNode {
		for _, ch := range n.Content {
			e, err := expandNode(ch, depth+1, budget)
			if err != nil {
				return nil, err
			}
			c.Content = append(c.Content, e)
		}
		return &c, nil
	}
	explicit := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMerge(n.Content[i]) {
			explicit[n.Content[i].Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := expandNode(n.Content[i], depth+1, budget)
		if err != nil {
			return nil, err
		}
		v, err := expandNode(n.Content[i+1], depth+1, budget)
		if err != nil {
			return nil, err
		}
		if !isMerge(k) {
			c.Content = append(c.Content, k, v)
			continue
		}
		sources := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			sources = v.Content
		}
		for _, s := range sources {
			if s.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("line %d: a merge key (<<) must name a map", k.Line)
			}
			for j := 0; j+1 < len(s.Content); j += 2 {
				if name := s.Content[j].Value; !explicit[name] {
					explicit[name] = true
					c.Content = append(c.Content, s.Content[j], s.Content[j+1])
				}
			}
		}
	}
	return &c, nil
}

func isMerge(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "!!merge" || n.Tag == "")
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// normalizeNameForms rewrites "storage: inmemory" and "auth: silly", which
// distribution accepts, as the maps they mean.
func normalizeNameForms(sch *key, root *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k, ok := sch.children[root.Content[i].Value]; ok && k.nameForm {
			nameForm(root.Content[i+1])
		}
	}
}

// nameForm turns a scalar naming one key into a map holding that key.
func nameForm(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		return
	}
	name := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: n.Value, Line: n.Line, Column: n.Column}
	null := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: []*yaml.Node{name, null}}
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
	}
	if isNull(n) {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

// fail records an error at the node n (nil: the key as a whole).
func (p *parser) fail(path string, n *yaml.Node, format string, args ...any) {
	e := &Error{Key: path, Msg: fmt.Sprintf(format, args...)}
	if v, ok := p.origin[n]; ok && n != nil {
		e.EnvVar = v
	} else if p.fromFile {
		e.File = p.file
		if n != nil {
			e.Line = n.Line
		}
	}
	p.errs = append(p.errs, e)
}

// walk checks n against k and records what is present and valid.
// inUnit: an enclosing key is unimplemented, and already recorded.
func (p *parser) walk(path string, k *key, n *yaml.Node, inUnit bool) {
	if path != "" {
		if _, seen := p.present[path]; !seen {
			p.present[path] = n
		}
		if !inUnit && !k.implemented && !k.driver && !k.perChild {
			p.units = append(p.units, path)
			inUnit = true
		}
	}
	switch k.kind {
	case kSection:
		if isNull(n) {
			return // "delete:" sets nothing (a driver section this way is selected)
		}
		if n.Kind != yaml.MappingNode {
			p.fail(path, n, "must be a map of keys (%s), got %s", childNames(k), describe(n))
			return
		}
		first := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			child := joinPath(path, kn.Value)
			if kn.Kind != yaml.ScalarNode {
				p.fail(path, kn, "a key must be a plain name, got %s", describe(kn))
				continue
			}
			if prev, dup := first[kn.Value]; dup {
				p.fail(child, kn, "duplicate key (first at line %d)", prev.Line)
				continue
			}
			first[kn.Value] = kn
			ck, ok := k.child(kn.Value)
			if !ok {
				p.unknown(path, k, kn)
				continue
			}
			p.keys[child] = kn
			p.walk(child, ck, vn, inUnit)
		}
	case kList:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			p.fail(path, n, "must be a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			p.walk(fmt.Sprintf("%s[%d]", path, i), k.elem, e, true)
		}
	default:
		decodeBinary(n)
		if msg := checkLeaf(k, n); msg != "" {
			p.fail(path, n, "%s", msg)
			return
		}
		if k.implemented && !isNull(n) {
			p.vals[path] = n
		}
	}
}

// decodeBinary turns YAML's !!binary scalars (base64: how YAML writes a
// string that is not UTF-8, so how Dump writes a path or a secret that is
// not) into the bytes they stand for, in n and its elements.
func decodeBinary(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!binary" {
		if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), "")); err == nil {
			n.Value, n.Tag, n.Style = string(b), "!!str", 0
		}
	}
	for _, c := range n.Content {
		decodeBinary(c)
	}
}

// unknown reports a key neither registryd nor distribution knows.
func (p *parser) unknown(parent string, k *key, kn *yaml.Node) {
	path := joinPath(parent, kn.Value)
	p.unknowns[parent] = true
	msg := fmt.Sprintf("unknown key %q", path)
	if s := suggest(kn.Value, childList(k)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", joinPath(parent, s))
	} else if kn.Value == "<<" {
		msg += " (a merge key needs an alias: <<: *name)"
	}
	p.fail(path, kn, "%s", msg)
}

func childList(k *key) []string {
	names := make([]string, 0, len(k.children))
	for n := range k.children {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func childNames(k *key) string {
	names := childList(k)
	if len(names) > 6 {
		names = append(names[:6], "...")
	}
	return strings.Join(names, ", ")
}

// suggest returns the name in names that name was probably meant to be.
func suggest(name string, names []string) string {
	low := strings.ToLower(name)
	best, bestDist := "", 3
	for _, n := range names {
		if low == n {
			return n // differs only in case; keys are lower case
		}
		if len(low) >= 4 && (strings.HasPrefix(n, low) || strings.HasPrefix(low, n) && len(n) >= 4) {
			return n
		}
		if len(n) < 4 {
			continue
		}
		if d := editDistance(low, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkLeaf verifies a value's type (and, for enums, its value). A null
// value ("enabled:" with nothing after it) leaves the key unset.
func checkLeaf(k *key, n *yaml.Node) string {
	if isNull(n) || k.kind == kAny {
		return ""
	}
	scalar := n.Kind == yaml.ScalarNode
	switch k.kind {
	case kString:
		if !scalar {
			return fmt.Sprintf("must be a string, got %s", describe(n))
		}
		if len(k.enum) > 0 && n.Value != "" && !inEnum(k, n.Value) {
			return fmt.Sprintf("%q is not one of %s", n.Value, strings.Join(k.enum, ", "))
		}
	case kBool:
		var b bool
		if !scalar || n.Decode(&b) != nil {
			return fmt.Sprintf("must be true or false, got %s", describe(n))
		}
	case kInt:
		var i int
		if !scalar || n.Decode(&i) != nil {
			return fmt.Sprintf("must be an integer, got %s", describe(n))
		}
	case kFloat:
		var f float64
		if !scalar || n.Decode(&f) != nil {
			return fmt.Sprintf("must be a number, got %s", describe(n))
		}
	case kDuration:
		if !scalar {
			return fmt.Sprintf("must be a duration such as 10s or 168h, got %s", describe(n))
		}
		if n.Tag == "!!int" {
			// distribution reads a bare number as nanoseconds; for the
			// keys registryd acts on that is always a mistake.
			if n.Value != "0" && k.implemented {
				return fmt.Sprintf("must be a duration with a unit, such as %ss, got %s", n.Value, n.Value)
			}
			return ""
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return fmt.Sprintf("must be a duration such as 10s or 168h, got %q", n.Value)
		}
		if d < 0 {
			return fmt.Sprintf("must not be negative, got %q", n.Value)
		}
	case kStrings:
		if scalar {
			return ""
		}
		if n.Kind != yaml.SequenceNode {
			return fmt.Sprintf("must be a list of strings, got %s", describe(n))
		}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode || isNull(e) {
				return fmt.Sprintf("must be a list of strings, got %s in it", describe(e))
			}
		}
	case kMap:
		if n.Kind != yaml.MappingNode {
			return fmt.Sprintf("must be a map, got %s", describe(n))
		}
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			return fmt.Sprintf("must be a map of names to values: %v", err)
		}
	case kHeaders:
		if n.Kind != yaml.MappingNode {
			return fmt.Sprintf("must map header names to lists of values, got %s", describe(n))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			name := canonicalHeader(kn.Value)
			if kn.Kind != yaml.ScalarNode || name == "" || strings.ContainsAny(name, " \t\r\n:") {
				return fmt.Sprintf("%s is not a header name", describe(kn))
			}
			if line, dup := seen[name]; dup {
				return fmt.Sprintf("header %s is given twice (lines %d and %d)", name, line, kn.Line)
			}
			seen[name] = kn.Line
			if msg := checkLeaf(&key{kind: kStrings}, vn); msg != "" {
				return fmt.Sprintf("header %s: %s", name, msg)
			}
		}
	}
	return ""
}

func inEnum(k *key, v string) bool {
	for _, e := range k.enum {
		if e == v || k.foldCase && strings.EqualFold(e, v) {
			return true
		}
	}
	return false
}
