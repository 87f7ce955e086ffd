package auth

import (
	"strings"
	"testing"
)

// The admin action: registry-wide, granted by rules over "**" only, never
// to anonymous callers, never part of "*", and never a repository action.
func TestAdminAction(t *testing.T) {
	p, err := compilePolicy(&AccessConfig{
		Groups: map[string][]string{"ops": {"olga"}},
		Rules: []Rule{
			{Repositories: []string{"**"}, Groups: []string{"ops"}, Actions: []string{"pull", "admin"}},
			{Repositories: []string{"**"}, Users: []string{"root"}, Actions: []string{"*"}},
			{Repositories: []string{"team/**"}, Users: []string{"alice"}, Actions: []string{"*"}},
		},
		Anonymous: []AnonymousRule{{Repositories: []string{"**"}, Actions: []string{"pull"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user   string
		access Access
		want   bool
	}{
		{"olga", Admin, true},
		{"root", Admin, false}, // "*" is pull, push and delete
		{"alice", Admin, false},
		{"", Admin, false},
		{"olga", Repository("team/app", "admin"), false},
		{"olga", Repository("team/app", "pull"), true},
		{"olga", Repository("team/app", "push"), false},
	}
	for _, tt := range tests {
		if got := p.allowed(tt.user, tt.access); got != tt.want {
			t.Errorf("allowed(%q, %+v) = %v, want %v", tt.user, tt.access, got, tt.want)
		}
	}
	// Without rules (htpasswd alone) every user may do everything.
	var none *policy
	if !none.allowed("anyone", Admin) || none.allowed("", Admin) {
		t.Error("nil policy: admin for every authenticated user, nobody else")
	}
	// The token server grants registry:catalog:admin to admins only.
	h := &issuer{policy: p}
	ask := []ResourceActions{{Type: "registry", Name: "catalog", Actions: []string{"admin", "*"}}}
	if got := h.grant("olga", ask); len(got) != 1 || strings.Join(got[0].Actions, ",") != "admin,*" {
		t.Errorf("olga granted %+v", got)
	}
	if got := h.grant("alice", ask); len(got) != 1 || strings.Join(got[0].Actions, ",") != "*" {
		t.Errorf("alice granted %+v", got)
	}
}

func TestAdminActionConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  AccessConfig
		want string
	}{
		{AccessConfig{Rules: []Rule{{Repositories: []string{"team/**"}, Users: []string{"a"}, Actions: []string{"admin"}}}}, `grant it in a rule on repositories ["**"]`},
		{AccessConfig{Anonymous: []AnonymousRule{{Repositories: []string{"**"}, Actions: []string{"admin"}}}}, "admin cannot be granted to anonymous callers"},
	} {
		if _, err := compilePolicy(&tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
