package auth

import (
	"strings"
	"testing"
)

// FuzzParseScope: a scope from the token endpoint's query parses into a
// type, a name and distinct actions that print back to a scope that parses
// the same (the name may hold ":", a host:port prefix).
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:library/ubuntu:pull", "repository:a/b:pull,push", "repository(plugin):a:pull", "registry:catalog:*",
		"repository:localhost:5000/a:pull", "repository:a:", "repository::pull", ":a:pull", "repository:a", "repository:a:pull,,pull",
		"repository(:a:pull", "repository():a:pull", "repository:a b:pull", "repository:a\x00:pull", "repository:ä:pull",
		strings.Repeat("r", 600),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ra, err := parseScope(s)
		if err != nil {
			return
		}
		if ra.Type == "" || ra.Name == "" || len(s) > maxScopeLength {
			t.Fatalf("%q accepted as %+v", s, ra)
		}
		seen := map[string]bool{}
		for _, a := range ra.Actions {
			if a == "" || strings.Contains(a, ",") || seen[a] {
				t.Fatalf("%q: actions %q", s, ra.Actions)
			}
			seen[a] = true
		}
		typ := ra.Type
		if ra.Class != "" {
			typ += "(" + ra.Class + ")"
		}
		back, err := parseScope(typ + ":" + ra.Name + ":" + strings.Join(ra.Actions, ","))
		if err != nil || back.Type != ra.Type || back.Class != ra.Class || back.Name != ra.Name || strings.Join(back.Actions, ",") != strings.Join(ra.Actions, ",") {
			t.Fatalf("%q parsed as %+v, printed back parses as %+v (%v)", s, ra, back, err)
		}
	})
}
