package config

import (
	"net"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// UI is the "ui" section (registryd, not in distribution): the web UI
// served on the registry's own listener.
type UI struct {
	// Enabled (ui.enabled, default true) serves the UI. It shows nothing
	// the API would not serve the same caller, under the same auth.
	Enabled bool
	// Path (ui.path, default /ui/) is where it is served; "/" redirects
	// there.
	Path string
	// PullHost (ui.pullhost) is the host[:port] shown in pull commands;
	// default the host of http.host, else the host the browser asked.
	PullHost string
	// SessionLifetime (ui.sessionlifetime, default 12h) is how long a
	// login lasts.
	SessionLifetime time.Duration
}

// DefaultUIPath is ui.path's default.
const DefaultUIPath = "/ui/"

// DefaultUISessionLifetime is ui.sessionlifetime's default.
const DefaultUISessionLifetime = 12 * time.Hour

func uiSchema() *key {
	return impl(section(map[string]*key{
		"enabled":         impl(boolean()),
		"path":            impl(str()),
		"pullhost":        impl(str()),
		"sessionlifetime": impl(duration()),
	}))
}

// fillUI reads ui.
func (p *parser) fillUI(c *Config, str func(string, *string), boolean func(string, *bool),
	duration func(string, *time.Duration), bad func(string, string, ...any)) {
	u := &c.UI
	boolean("ui.enabled", &u.Enabled)
	str("ui.path", &u.Path)
	str("ui.pullhost", &u.PullHost)
	duration("ui.sessionlifetime", &u.SessionLifetime)
	switch {
	case !strings.HasPrefix(u.Path, "/") || !strings.HasSuffix(u.Path, "/") || u.Path == "/":
		bad("ui.path", "must start and end with a slash and not be the root, such as /ui/; got %q", u.Path)
	case u.Path == "/v2/" || strings.HasPrefix(u.Path, "/v2/") || u.Path == "/healthz/" || u.Path == "/readyz/":
		bad("ui.path", "%q is taken by the registry API or its health checks; choose another, such as /ui/", u.Path)
	case strings.ContainsAny(u.Path, " \t?#%{}"):
		bad("ui.path", "must be a plain path, got %q", u.Path)
	}
	if h := u.PullHost; h != "" {
		if strings.Contains(h, "://") || strings.ContainsAny(h, "/ @?#") {
			bad("ui.pullhost", "must be a host or host:port, such as registry.example.com, got %q", h)
		} else if strings.Contains(h, ":") {
			if _, _, err := net.SplitHostPort(h); err != nil {
				bad("ui.pullhost", "must be a host or host:port, such as registry.example.com:5000, got %q", h)
			}
		}
	}
	if u.SessionLifetime < time.Minute || u.SessionLifetime > 30*24*time.Hour {
		bad("ui.sessionlifetime", "must be between 1m and 720h, got %s", u.SessionLifetime)
	}
}

// dumpUI adds ui to a Dump.
func dumpUI(root *yaml.Node, c *Config) {
	addNode(root, "ui", pairs("enabled", c.UI.Enabled, "path", c.UI.Path, "pullhost", c.UI.PullHost,
		"sessionlifetime", fmtDuration(c.UI.SessionLifetime)))
}
