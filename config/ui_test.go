package config

import (
	"strings"
	"testing"
	"time"
)

func TestUISection(t *testing.T) {
	base := "version: 0.1\nstorage:\n  inmemory: {}\n"
	c, err := Parse([]byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.UI.Enabled || c.UI.Path != "/ui/" || c.UI.PullHost != "" || c.UI.SessionLifetime != 12*time.Hour {
		t.Errorf("defaults: %+v", c.UI)
	}
	c, err = Parse([]byte(base+"ui:\n  enabled: false\n  path: /web/\n  pullhost: registry.example.com:443\n  sessionlifetime: 1h\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.UI.Enabled || c.UI.Path != "/web/" || c.UI.PullHost != "registry.example.com:443" || c.UI.SessionLifetime != time.Hour {
		t.Errorf("set: %+v", c.UI)
	}
	c, err = Parse([]byte(base), []string{"REGISTRY_UI_ENABLED=false", "REGISTRY_UI_PULLHOST=r.example"})
	if err != nil || c.UI.Enabled || c.UI.PullHost != "r.example" {
		t.Errorf("environment: %v %+v", err, c.UI)
	}
	for _, tc := range []struct{ yaml, key string }{
		{"ui:\n  path: ui\n", "ui.path"},
		{"ui:\n  path: /\n", "ui.path"},
		{"ui:\n  path: /v2/ui/\n", "ui.path"},
		{"ui:\n  path: /ui\n", "ui.path"},
		{"ui:\n  pullhost: https://r.example\n", "ui.pullhost"},
		{"ui:\n  pullhost: r.example/x\n", "ui.pullhost"},
		{"ui:\n  sessionlifetime: 1s\n", "ui.sessionlifetime"},
		{"ui:\n  sessionlifetime: 10000h\n", "ui.sessionlifetime"},
	} {
		if _, err := Parse([]byte(base+tc.yaml), nil); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: %v, want an error naming %s", tc.yaml, err, tc.key)
		}
	}
}
