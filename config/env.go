package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// envPrefix starts the name of every overriding variable.
const envPrefix = "REGISTRY_"

// step is one level of a key path: a map key or a list index.
type step struct {
	name  string
	index int // -1 for a map key
}

// applyEnv applies REGISTRY_* overrides to the tree, as distribution does:
// REGISTRY_ + the key path upper-cased and joined by "_" sets that key
// (REGISTRY_STORAGE_DELETE_ENABLED=true), a number addresses a list element
// (REGISTRY_HTTP_TLS_CLIENTCAS_0=/ca.pem), and a variable naming a section
// replaces it (REGISTRY_STORAGE=inmemory). Variables apply in name order,
// so a section's variable applies before those of keys inside it.
//
// The value is read as YAML of the key's type: "true" is a bool, "50" an
// integer, "[a, b]" a list. A string key takes the value as written
// (quotes around it are removed), so a secret containing "#" or ": " is
// kept whole. An empty value resets a key of another type to its default,
// and selects a section (REGISTRY_STORAGE_INMEMORY= selects the in-memory
// driver).
//
// A REGISTRY_* variable that names no key is a warning, not an error:
// container platforms set such variables for reasons of their own
// (Kubernetes sets REGISTRY_PORT, REGISTRY_SERVICE_HOST, ... in every pod
// of a namespace with a Service named "registry"), and distribution ignores
// them too. A bad value for a key that exists is an error.
func (p *parser) applyEnv(sch *key, root *yaml.Node, env []string) {
	type variable struct{ name, value string }
	var vars []variable
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(strings.ToUpper(name), envPrefix) {
			vars = append(vars, variable{name, value})
		}
	}
	sort.SliceStable(vars, func(i, j int) bool { return vars[i].name < vars[j].name })
	for _, v := range vars {
		segs := strings.Split(v.name[len(envPrefix):], "_")
		steps, k, ok := resolveEnv(sch, segs)
		if !ok {
			w := fmt.Sprintf("environment variable %s matches no configuration key", v.name)
			if s := suggestEnv(sch, segs); s != "" {
				w += fmt.Sprintf(" (did you mean %s?)", s)
			}
			p.warnings = append(p.warnings, w)
			continue
		}
		path := displayPath(steps)
		val, err := envValue(k, v.value)
		if err != nil {
			p.errs = append(p.errs, &Error{Key: path, EnvVar: v.name, Msg: err.Error()})
			continue
		}
		if val != nil {
			markOrigin(p.origin, val, v.name)
		}
		if err := p.set(root, steps, val, v.name); err != nil {
			p.errs = append(p.errs, &Error{Key: path, EnvVar: v.name, Msg: err.Error()})
		}
	}
}

// resolveEnv finds the key the segments of a variable name (after
// REGISTRY_) name. Segments are matched against the schema, the longest
// name first, because a few parameter names contain "_" themselves
// (storage.gcs.credentials.project_id). Below a map that registryd does
// not describe (log.fields, an open section) each segment is one level,
// lower-cased, as distribution does.
func resolveEnv(root *key, segs []string) ([]step, *key, bool) {
	var steps []step
	k := root
	for i := 0; i < len(segs); {
		switch k.kind {
		case kSection:
			matched := false
			for j := len(segs); j > i; j-- {
				name := strings.ToLower(strings.Join(segs[i:j], "_"))
				if c, ok := k.children[name]; ok {
					steps = append(steps, step{name: name, index: -1})
					k, i, matched = c, j, true
					break
				}
			}
			if matched {
				continue
			}
			if !k.open || segs[i] == "" {
				return nil, nil, false
			}
			name := strings.ToLower(segs[i])
			steps = append(steps, step{name: name, index: -1})
			k, i = &key{kind: kAny, secret: isSecretName(name)}, i+1
		case kList, kStrings:
			idx, err := strconv.Atoi(segs[i])
			if err != nil || idx < 0 {
				return nil, nil, false
			}
			steps = append(steps, step{index: idx})
			if k.kind == kList {
				k = k.elem
			} else {
				k = &key{kind: kString, implemented: k.implemented}
			}
			i++
		case kMap, kAny, kHeaders:
			if segs[i] == "" {
				return nil, nil, false
			}
			name := strings.ToLower(segs[i])
			steps = append(steps, step{name: name, index: -1})
			if k.kind == kHeaders {
				k = &key{kind: kStrings, secret: k.secret}
			} else {
				k = &key{kind: kAny, secret: isSecretName(name)}
			}
			i++
		default:
			return nil, nil, false // segments left below a single value
		}
	}
	if len(steps) == 0 {
		return nil, nil, false
	}
	return steps, k, true
}

// suggestEnv names the variable a mistyped one was probably meant to be:
// only when its first segment names a section, so that unrelated variables
// (REGISTRY_PORT) get no suggestion.
func suggestEnv(root *key, segs []string) string {
	var out []string
	k := root
	for i, seg := range segs {
		if k.kind != kSection || k.open {
			return ""
		}
		name := strings.ToLower(seg)
		c, ok := k.children[name]
		if !ok {
			if i == 0 {
				return ""
			}
			s := suggest(name, childList(k))
			if s == "" {
				return ""
			}
			c, name = k.children[s], s
		}
		out = append(out, strings.ToUpper(name))
		k = c
	}
	if k.kind == kSection && len(out) > 0 {
		return ""
	}
	s := envPrefix + strings.Join(out, "_")
	if strings.EqualFold(s, envPrefix+strings.Join(segs, "_")) {
		return ""
	}
	return s
}

func displayPath(steps []step) string {
	var b strings.Builder
	for _, s := range steps {
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.name)
	}
	return b.String()
}

// envValue reads a variable's value as YAML for a key of kind k. A nil node
// with no error means: reset the key to its default.
func envValue(k *key, raw string) (*yaml.Node, error) {
	if k.kind == kString {
		v := raw
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			var s string
			if err := yaml.Unmarshal([]byte(v), &s); err == nil {
				v = s
			}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}, nil
	}
	if strings.TrimSpace(raw) == "" {
		if k.kind == kSection || k.kind == kAny {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, nil
		}
		return nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		return nil, fmt.Errorf("value is not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, nil
	}
	n, err := expand(doc.Content[0])
	if err != nil {
		return nil, err
	}
	if k.nameForm {
		nameForm(n)
	}
	return n, nil
}

// markOrigin records that n and everything in it came from the variable.
func markOrigin(origin map[*yaml.Node]string, n *yaml.Node, name string) {
	origin[n] = name
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		markOrigin(origin, c, name)
	}
}

// set puts val at the key the steps name, creating the maps and list
// elements on the way; a nil val removes the key.
func (p *parser) set(root *yaml.Node, steps []step, val *yaml.Node, origin string) error {
	cur := root
	for i, st := range steps {
		last := i == len(steps)-1
		newNode := func() *yaml.Node {
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if !last && steps[i+1].index >= 0 {
				n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			}
			p.origin[n] = origin
			return n
		}
		if st.index >= 0 {
			if cur.Kind != yaml.SequenceNode {
				*cur = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
				p.origin[cur] = origin
			}
			switch {
			case st.index > len(cur.Content):
				return fmt.Errorf("list index %d is past the end of the list (%d elements); add elements in order from 0", st.index, len(cur.Content))
			case st.index == len(cur.Content):
				if last && val == nil {
					return nil
				}
				cur.Content = append(cur.Content, newNode())
			}
			if last {
				if val == nil {
					cur.Content = append(cur.Content[:st.index], cur.Content[st.index+1:]...)
				} else {
					cur.Content[st.index] = val
				}
				return nil
			}
			cur = cur.Content[st.index]
			continue
		}
		if cur.Kind != yaml.MappingNode {
			*cur = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			p.origin[cur] = origin
		}
		vi := -1
		for j := 0; j+1 < len(cur.Content); j += 2 {
			if strings.EqualFold(cur.Content[j].Value, st.name) {
				vi = j + 1
			}
		}
		if last {
			switch {
			case val == nil && vi >= 0:
				cur.Content = append(cur.Content[:vi-1], cur.Content[vi+1:]...)
			case val == nil:
			case vi >= 0:
				cur.Content[vi] = val
			default:
				kn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: st.name}
				p.origin[kn] = origin
				cur.Content = append(cur.Content, kn, val)
			}
			return nil
		}
		if vi < 0 {
			kn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: st.name}
			p.origin[kn] = origin
			cur.Content = append(cur.Content, kn, newNode())
			vi = len(cur.Content) - 1
		}
		cur = cur.Content[vi]
	}
	return nil
}
