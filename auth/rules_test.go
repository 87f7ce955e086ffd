package auth

import (
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	cfg := &AccessConfig{
		Groups: map[string][]string{"admins": {"root"}, "team-a": {"alice", "bob"}},
		Rules: []Rule{
			{Repositories: []string{"team-a/**"}, Groups: []string{"team-a"}, Actions: []string{"pull", "push"}},
			{Repositories: []string{"team-a/**"}, Users: []string{"alice"}, Actions: []string{"delete"}},
			{Repositories: []string{"**"}, Groups: []string{"admins"}, Actions: []string{"*"}},
			{Repositories: []string{"shared/*"}, Users: []string{"*"}, Actions: []string{"pull"}},
		},
		Anonymous: []AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
	}
	p, err := compilePolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user   string
		access Access
		want   bool
	}{
		{"alice", Repository("team-a/app", "pull"), true},
		{"alice", Repository("team-a/app", "push"), true},
		{"alice", Repository("team-a/app", "delete"), true},
		{"bob", Repository("team-a/app", "delete"), false},
		{"bob", Repository("team-b/app", "pull"), false},
		{"carol", Repository("team-a/app", "pull"), false},
		{"carol", Repository("shared/tools", "pull"), true},
		{"carol", Repository("shared/tools", "push"), false},
		{"carol", Repository("shared/x/y", "pull"), false},
		{"root", Repository("anything/at/all", "delete"), true},
		{"", Repository("public/x", "pull"), true},
		{"", Repository("public/x", "push"), false},
		{"", Repository("team-a/app", "pull"), false},
		{"", Repository("shared/tools", "pull"), false},
		{"bob", Repository("public/x", "pull"), true}, // logging in never loses access
		{"alice", Repository("team-a/app", "*"), false},
		{"alice", Repository("team-a/app", "bogus"), false},
		{"alice", Catalog, true},
		{"", Catalog, true}, // anonymous can pull something, so may list (filtered)
		{"alice", Access{Type: "registry", Name: "catalog", Action: "pull"}, false},
		{"alice", Access{Type: "other", Name: "x", Action: "pull"}, false},
	}
	for _, tt := range tests {
		if got := p.allowed(tt.user, tt.access); got != tt.want {
			t.Errorf("allowed(%q, %+v) = %v, want %v", tt.user, tt.access, got, tt.want)
		}
	}
}

func TestNilPolicyIsDistributionBehaviour(t *testing.T) {
	var p *policy
	for _, a := range []string{"pull", "push", "delete"} {
		if !p.allowed("anyone", Repository("x/y", a)) {
			t.Errorf("authenticated user refused %s", a)
		}
		if p.allowed("", Repository("x/y", a)) {
			t.Errorf("anonymous allowed %s", a)
		}
	}
	if !p.allowed("anyone", Catalog) || p.allowed("", Catalog) {
		t.Error("catalog: authenticated only")
	}
}

func TestCompilePolicyErrors(t *testing.T) {
	tests := []struct {
		name      string
		cfg       AccessConfig
		errSubstr string
	}{
		{"unknown group", AccessConfig{Rules: []Rule{{Repositories: []string{"a"}, Groups: []string{"nope"}, Actions: []string{"pull"}}}}, `access.rules[0].groups: no group "nope"`},
		{"nobody", AccessConfig{Rules: []Rule{{Repositories: []string{"a"}, Actions: []string{"pull"}}}}, "access.rules[0]: names no users"},
		{"no repositories", AccessConfig{Rules: []Rule{{Users: []string{"a"}, Actions: []string{"pull"}}}}, "access.rules[0].repositories"},
		{"no actions", AccessConfig{Rules: []Rule{{Repositories: []string{"a"}, Users: []string{"a"}}}}, "access.rules[0].actions"},
		{"bad action", AccessConfig{Rules: []Rule{{Repositories: []string{"a"}, Users: []string{"a"}, Actions: []string{"write"}}}}, `unknown action "write"`},
		{"bad pattern", AccessConfig{Anonymous: []AnonymousRule{{Repositories: []string{"A"}, Actions: []string{"pull"}}}}, "access.anonymous[0].repositories"},
		{"empty user", AccessConfig{Rules: []Rule{{Repositories: []string{"a"}, Users: []string{""}, Actions: []string{"pull"}}}}, "empty user name"},
		{"star in group", AccessConfig{Groups: map[string][]string{"g": {"*"}}}, "access.groups.g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compilePolicy(&tt.cfg); err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("error %v, want one containing %q", err, tt.errSubstr)
			}
		})
	}
}
