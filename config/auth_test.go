package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAuthAndAccess(t *testing.T) {
	c := mustParse(t, minimal+`auth:
  htpasswd:
    realm: my-realm
    path: /etc/registryd/htpasswd
  token:
    realm: https://registry.example.com/auth/token
    service: registry.example.com
    issuer: registryd
    rootcertbundle: /etc/registryd/token-ca.pem
  tokenserver:
    key: /etc/registryd/token.key
    expiration: 10m
access:
  groups:
    admins: [root]
  rules:
    - repositories: ["team-a/**"]
      users: [alice]
      groups: [admins]
      actions: [pull, push]
  anonymous:
    - repositories: ["public/**"]
      actions: pull
`)
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if h := c.Auth.Htpasswd; h == nil || *h != (AuthHtpasswd{Realm: "my-realm", Path: "/etc/registryd/htpasswd"}) {
		t.Errorf("htpasswd %+v", h)
	}
	if tk := c.Auth.Token; tk == nil || tk.Service != "registry.example.com" || tk.RootCertBundle != "/etc/registryd/token-ca.pem" {
		t.Errorf("token %+v", tk)
	}
	if ts := c.Auth.TokenServer; ts == nil || ts.Path != "/auth/token" || ts.Expiration != 10*time.Minute {
		t.Errorf("tokenserver %+v", ts)
	}
	want := &Access{
		Groups:    map[string][]string{"admins": {"root"}},
		Rules:     []AccessRule{{Repositories: []string{"team-a/**"}, Users: []string{"alice"}, Groups: []string{"admins"}, Actions: []string{"pull", "push"}}},
		Anonymous: []AccessAnonymous{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
	}
	if !reflect.DeepEqual(c.Access, want) {
		t.Errorf("access %+v, want %+v", c.Access, want)
	}
	// Dump shows it, and parses back to the same.
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(out))
	if !reflect.DeepEqual(back.Auth, c.Auth) || !reflect.DeepEqual(back.Access, c.Access) {
		t.Errorf("dump round trip:\n%s", out)
	}

	// From the environment: a key, and a rule addressed by index.
	c = mustParse(t, minimal+"auth:\n  htpasswd:\n    path: /h\naccess:\n  rules:\n    - repositories: [a]\n      users: [u]\n      actions: [pull]\n",
		"REGISTRY_AUTH_HTPASSWD_REALM=from-env", "REGISTRY_ACCESS_RULES_0_ACTIONS=[pull, push]")
	if c.Auth.Htpasswd.Realm != "from-env" || !reflect.DeepEqual(c.Access.Rules[0].Actions, []string{"pull", "push"}) {
		t.Errorf("from env: %+v %+v", c.Auth.Htpasswd, c.Access.Rules)
	}
	if c.Auth.Token != nil || c.Auth.TokenServer != nil {
		t.Errorf("absent sections set: %+v", c.Auth)
	}
	// Without auth or access, nothing is set.
	if c := mustParse(t, minimal); c.Access != nil || c.Auth != (Auth{}) {
		t.Errorf("defaults: %+v %+v", c.Auth, c.Access)
	}
}

func TestAuthAndAccessErrors(t *testing.T) {
	tests := []struct {
		name string
		yml  string
		want []string
	}{
		{"htpasswd without path", "auth:\n  htpasswd:\n    realm: r\n", []string{"auth.htpasswd", "needs path"}},
		{"misspelt htpasswd key", "auth:\n  htpasswd:\n    file: /x\n", []string{`unknown key "auth.htpasswd.file"`}},
		{"token server under /v2", "auth:\n  htpasswd: {path: /h}\n  token: {realm: r, service: s, issuer: i}\n  tokenserver:\n    path: /v2/token\n", []string{"auth.tokenserver.path", "outside /v2/"}},
		{"relative token server path", "auth:\n  htpasswd: {path: /h}\n  token: {realm: r, service: s, issuer: i}\n  tokenserver:\n    path: token\n", []string{"auth.tokenserver.path"}},
		{"expiration without unit", "auth:\n  htpasswd: {path: /h}\n  token: {realm: r, service: s, issuer: i}\n  tokenserver:\n    expiration: 300\n", []string{"auth.tokenserver.expiration"}},
		{"htpasswd and token without token server", "auth:\n  htpasswd: {path: /h}\n  token: {realm: r, service: s, issuer: i}\n", []string{"one authentication provider"}},
		{"silly with the token server", "auth:\n  silly: {realm: r, service: s}\n  tokenserver: {key: /k}\n", []string{"one authentication provider"}},
		{"access not a map", "access: [1, 2]\n", []string{"access", "must be a map"}},
		{"misspelt access key", "access:\n  rule: []\n", []string{`unknown key "access.rule"`, `"access.rules"`}},
		{"misspelt rule key", "access:\n  rules:\n    - repository: [a]\n      actions: [pull]\n", []string{`config.yml:7: unknown key "access.rules[0].repository"`}},
		{"rules not a list", "access:\n  rules: {a: b}\n", []string{"access.rules", "must be a list"}},
		{"rule not a map", "access:\n  anonymous: [pull]\n", []string{"access.anonymous[0]", "must be a map"}},
		{"group not a list", "access:\n  groups:\n    admins: root\n", []string{"access.groups.admins", "list of user names"}},
		{"groups not a map", "access:\n  groups: [a]\n", []string{"access.groups", "must be a map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tt.yml), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
