package config

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNotificationsParse(t *testing.T) {
	c := mustParse(t, minimal+`notifications:
  events:
    includereferences: true
  endpoints:
    - name: ci
      url: https://hooks.example.com/registry
      headers:
        authorization: [Bearer s3cret]
        X-Team: [a, b]
      timeout: 500ms
      threshold: 3
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.config.v1+json, application/octet-stream]
        actions: [pull, mount]
    - name: audit
      url: http://audit:8080/
      disabled: true
`)
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	want := Notifications{
		Events: NotificationEvents{IncludeReferences: true},
		Endpoints: []Endpoint{
			{
				Name: "ci", URL: "https://hooks.example.com/registry",
				Headers: http.Header{"Authorization": {"Bearer s3cret"}, "X-Team": {"a", "b"}},
				Timeout: 500 * time.Millisecond, Threshold: 3, Backoff: 2 * time.Second,
				IgnoredMediaTypes: []string{"application/octet-stream", "application/vnd.oci.image.config.v1+json"},
				IgnoredActions:    []string{"pull", "mount"},
			},
			{
				Name: "audit", URL: "http://audit:8080/", Disabled: true,
				Timeout: DefaultEndpointTimeout, Threshold: DefaultEndpointThreshold, Backoff: DefaultEndpointBackoff,
			},
		},
	}
	if !reflect.DeepEqual(c.Notifications, want) {
		t.Errorf("notifications:\n%+v\nwant\n%+v", c.Notifications, want)
	}

	// config check: the header values are masked, the rest shown, and the
	// dump parses back to the same configuration.
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	dump := string(out)
	if strings.Contains(dump, "s3cret") {
		t.Errorf("dump shows the Authorization header:\n%s", dump)
	}
	for _, s := range []string{"url: https://hooks.example.com/registry", "timeout: 500ms", "backoff: 2s", "threshold: 3", "Authorization:", "includereferences: true"} {
		if !strings.Contains(dump, s) {
			t.Errorf("dump lacks %q:\n%s", s, dump)
		}
	}
	if c.Notifications.Endpoints[0].Headers.Get("Authorization") != "Bearer s3cret" {
		t.Error("Dump changed the config")
	}
	back, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("dump does not parse: %v\n%s", err, dump)
	}
	if !reflect.DeepEqual(back.Notifications, c.Redacted().Notifications) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back.Notifications, c.Redacted().Notifications)
	}
}

func TestNotificationsEnv(t *testing.T) {
	c := mustParse(t, minimal,
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME=hook",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=http://127.0.0.1:9/events",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_BACKOFF=100ms",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS_AUTHORIZATION=[Bearer x]",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_IGNORE_ACTIONS=[pull]",
	)
	eps := c.Notifications.Endpoints
	if len(eps) != 1 || eps[0].Name != "hook" || eps[0].URL != "http://127.0.0.1:9/events" || eps[0].Backoff != 100*time.Millisecond ||
		eps[0].Headers.Get("Authorization") != "Bearer x" || !reflect.DeepEqual(eps[0].IgnoredActions, []string{"pull"}) {
		t.Errorf("endpoints from the environment: %+v", eps)
	}
	// A whole list in one variable, as YAML.
	c = mustParse(t, minimal, `REGISTRY_NOTIFICATIONS_ENDPOINTS=[{name: a, url: "https://a/"}, {name: b, url: "https://b/"}]`)
	if eps := c.Notifications.Endpoints; len(eps) != 2 || eps[1].URL != "https://b/" {
		t.Errorf("endpoints: %+v", eps)
	}
}

func TestNotificationsErrors(t *testing.T) {
	ep := minimal + "notifications:\n  endpoints:\n    - name: a\n      url: https://a/\n"
	cases := []struct {
		name, yml, key string
		line           int
		want           string
	}{
		{"no url", minimal + "notifications:\n  endpoints:\n    - name: a\n", "notifications.endpoints[0]", 7, "needs url"},
		{"no name", minimal + "notifications:\n  endpoints:\n    - url: https://a/\n", "notifications.endpoints[0]", 7, "needs a name"},
		{"relative url", minimal + "notifications:\n  endpoints:\n    - name: a\n      url: /events\n", "notifications.endpoints[0].url", 8, "absolute http or https URL"},
		{"ftp url", minimal + "notifications:\n  endpoints:\n    - name: a\n      url: ftp://h/x\n", "notifications.endpoints[0].url", 8, "absolute http or https URL"},
		{"duplicate name", ep + "    - name: a\n      url: https://b/\n", "notifications.endpoints[1].name", 9, `"a" is already used by notifications.endpoints[0]`},
		{"unknown key", ep + "      retries: 3\n", "notifications.endpoints[0].retries", 9, `unknown key "notifications.endpoints[0].retries"`},
		{"misspelt key", ep + "      timeuot: 1s\n", "notifications.endpoints[0].timeuot", 9, `did you mean "notifications.endpoints[0].timeout"`},
		{"timeout without unit", ep + "      timeout: 5\n", "notifications.endpoints[0].timeout", 9, "with a unit, such as 5s"},
		{"backoff without unit", ep + "      backoff: 1000\n", "notifications.endpoints[0].backoff", 9, "with a unit"},
		{"zero timeout", ep + "      timeout: 0s\n", "notifications.endpoints[0].timeout", 9, "must be positive"},
		{"zero backoff", ep + "      backoff: 0s\n", "notifications.endpoints[0].backoff", 9, "must be positive"},
		{"threshold type", ep + "      threshold: many\n", "notifications.endpoints[0].threshold", 9, "must be an integer"},
		{"threshold zero", ep + "      threshold: 0\n", "notifications.endpoints[0].threshold", 9, "positive"},
		{"disabled type", ep + "      disabled: maybe\n", "notifications.endpoints[0].disabled", 9, "must be true or false"},
		{"headers not a map", ep + "      headers: [a]\n", "notifications.endpoints[0].headers", 9, "must map header names"},
		{"bad action", ep + "      ignore:\n        actions: [pull, fetch]\n", "notifications.endpoints[0].ignore.actions", 10, `"fetch" is not an action`},
		{"mediatypes not strings", ep + "      ignoredmediatypes: {a: b}\n", "notifications.endpoints[0].ignoredmediatypes", 9, "must be a list of strings"},
		{"endpoints not a list", minimal + "notifications:\n  endpoints: {name: a}\n", "notifications.endpoints", 6, "must be a list"},
		{"includereferences type", minimal + "notifications:\n  events:\n    includereferences: yes please\n", "notifications.events.includereferences", 7, "must be true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error", err)
			}
			if e.Key != tc.key || e.Line != tc.line {
				t.Errorf("Error{Key: %q, Line: %d}, want %q, %d (%v)", e.Key, e.Line, tc.key, tc.line, err)
			}
		})
	}
	// From the environment, the variable is named.
	_, err := Parse([]byte(minimal), []string{"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME=a", "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=a.example.com"})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL") {
		t.Errorf("error %v does not name the variable", err)
	}
}
