package config

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// eventActions are the actions an endpoint's ignore.actions may name.
var eventActions = []string{"push", "pull", "delete", "mount", "fill"}

// fillNotifications reads the notifications section.
func (p *parser) fillNotifications(c *Config, str func(string, *string), boolean func(string, *bool),
	integer func(string, *int), duration func(string, *time.Duration), strs func(string, *[]string),
	bad func(string, string, ...any)) {
	n := &c.Notifications
	boolean("notifications.events.includereferences", &n.Events.IncludeReferences)
	names := map[string]string{} // endpoint name: path of the first with it
	for i := 0; p.present[fmt.Sprintf("notifications.endpoints[%d]", i)] != nil; i++ {
		path := fmt.Sprintf("notifications.endpoints[%d]", i)
		node := p.present[path]
		if node.Kind != yaml.MappingNode {
			continue // walk reported it
		}
		e := Endpoint{Timeout: DefaultEndpointTimeout, Threshold: DefaultEndpointThreshold, Backoff: DefaultEndpointBackoff}
		str(path+".name", &e.Name)
		boolean(path+".disabled", &e.Disabled)
		str(path+".url", &e.URL)
		duration(path+".timeout", &e.Timeout)
		integer(path+".threshold", &e.Threshold)
		duration(path+".backoff", &e.Backoff)
		var ignored, ignoredToo []string
		strs(path+".ignoredmediatypes", &ignored)
		strs(path+".ignore.mediatypes", &ignoredToo)
		for _, mt := range append(ignored, ignoredToo...) {
			if !slices.Contains(e.IgnoredMediaTypes, mt) {
				e.IgnoredMediaTypes = append(e.IgnoredMediaTypes, mt)
			}
		}
		strs(path+".ignore.actions", &e.IgnoredActions)
		if hn := p.vals[path+".headers"]; hn != nil {
			for j := 0; j+1 < len(hn.Content); j += 2 {
				if vs := stringList(hn.Content[j+1]); len(vs) > 0 {
					if e.Headers == nil {
						e.Headers = http.Header{}
					}
					e.Headers[canonicalHeader(hn.Content[j].Value)] = vs
				}
			}
		}

		switch prev, dup := names[e.Name]; {
		case e.Name == "":
			p.fail(path, node, "needs a name (it names the endpoint in logs and metrics)")
		case dup:
			bad(path+".name", "endpoint name %q is already used by %s", e.Name, prev)
		default:
			names[e.Name] = path
		}
		if e.URL == "" {
			p.fail(path, node, "needs url: where events are POSTed, such as https://hooks.example.com/registry")
		} else if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(path+".url", "must be an absolute http or https URL, such as https://hooks.example.com/registry, got %q", e.URL)
		}
		if e.Timeout <= 0 {
			bad(path+".timeout", "must be positive, such as 5s")
		}
		if e.Backoff <= 0 {
			bad(path+".backoff", "must be positive, such as 1s")
		}
		if e.Threshold <= 0 {
			bad(path+".threshold", "must be a positive number, got %d", e.Threshold)
		}
		for _, a := range e.IgnoredActions {
			if !slices.Contains(eventActions, a) {
				bad(path+".ignore.actions", "%q is not an action; actions are %s", a, "push, pull, delete, mount, fill")
				break
			}
		}
		n.Endpoints = append(n.Endpoints, e)
	}
}

// redactNotifications masks every header value sent to endpoints: they
// carry credentials (Authorization, API keys under any name).
func redactNotifications(n Notifications) Notifications {
	out := n
	out.Endpoints = make([]Endpoint, len(n.Endpoints))
	for i, e := range n.Endpoints {
		e.IgnoredMediaTypes = slices.Clone(e.IgnoredMediaTypes)
		e.IgnoredActions = slices.Clone(e.IgnoredActions)
		if e.Headers != nil {
			h := make(http.Header, len(e.Headers))
			for name, vs := range e.Headers {
				h[name] = maskList(vs)
			}
			e.Headers = h
		}
		out.Endpoints[i] = e
	}
	if n.Endpoints == nil {
		out.Endpoints = nil
	}
	return out
}

// dumpNotifications adds the notifications section to a Dump.
func dumpNotifications(root *yaml.Node, c *Config) {
	n := c.Notifications
	nn := mapping()
	addNode(nn, "events", pairs("includereferences", n.Events.IncludeReferences))
	eps := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, e := range n.Endpoints {
		en := pairs("name", e.Name, "disabled", e.Disabled, "url", e.URL)
		hdrs := mapping()
		for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
			add(hdrs, name, e.Headers[name])
		}
		addNode(en, "headers", hdrs)
		add(en, "timeout", fmtDuration(e.Timeout))
		add(en, "threshold", e.Threshold)
		add(en, "backoff", fmtDuration(e.Backoff))
		addNode(en, "ignore", pairs("mediatypes", nonNil(e.IgnoredMediaTypes), "actions", nonNil(e.IgnoredActions)))
		eps.Content = append(eps.Content, en)
	}
	if len(eps.Content) == 0 {
		eps.Style = yaml.FlowStyle
	}
	addNode(nn, "endpoints", eps)
	addNode(root, "notifications", nn)
}
