package repoglob

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"team-a/**", []string{"team-a", "team-a/app", "team-a/x/y/z"}, []string{"team-ab", "team-b/app", "x/team-a"}},
		{"team-a/*", []string{"team-a/app", "team-a/x"}, []string{"team-a", "team-a/x/y", "team-b/app"}},
		{"*", []string{"alpine", "a"}, []string{"library/alpine"}},
		{"**", []string{"a", "a/b", "a/b/c/d"}, nil},
		{"**/cache", []string{"cache", "a/cache", "a/b/cache"}, []string{"cache/a", "a/caches"}},
		{"a/**/z", []string{"a/z", "a/b/z", "a/b/c/z"}, []string{"a", "a/b", "z", "b/a/z"}},
		{"lib*/base-*", []string{"library/base-os", "lib/base-", "libs/base-x"}, []string{"library/base", "library/x/base-os"}},
		{"*-prod/*", []string{"web-prod/api"}, []string{"web-dev/api", "web-prod"}},
		{"a*b*c", []string{"abc", "aXbYc", "abbbc", "aXcbc"}, []string{"ab", "acb", "abcd"}},
		{"exact/name", []string{"exact/name"}, []string{"exact/name2", "exact", "exact/name/x"}},
		{"**/**/x", []string{"x", "a/x", "a/b/x"}, []string{"a/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			p, err := Compile(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tt.match {
				if !p.Match(n) {
					t.Errorf("%q should match %q", tt.pattern, n)
				}
			}
			for _, n := range tt.noMatch {
				if p.Match(n) {
					t.Errorf("%q should not match %q", tt.pattern, n)
				}
			}
		})
	}
}

func TestPatternMatchIsNotExponential(t *testing.T) {
	// A backtracking matcher takes ages on this; dynamic programming does not.
	p, err := Compile("**/a/**/a/**/a/**/a/**/b")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(strings.Repeat("a/", 120), "/")
	if p.Match(name) {
		t.Fatal("matched without the final b")
	}
	c, _ := Compile("*a*a*a*a*a*a*b")
	if c.Match(strings.Repeat("a", 200)) {
		t.Fatal("matched without b")
	}
}

func TestCompilePatternErrors(t *testing.T) {
	tests := []struct{ pattern, errSubstr string }{
		{"", "empty"},
		{"a//b", "empty path component"},
		{"/a", "empty path component"},
		{"a/", "empty path component"},
		{"team**", "whole path component"},
		{"Team/*", "character 'T'"},
		{"a/b?", "character '?'"},
		{"a/[bc]", "character '['"},
		{strings.Repeat("a", 256), "longer"},
	}
	for _, tt := range tests {
		if _, err := Compile(tt.pattern); err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
			t.Errorf("Compile(%.30q) = %v, want error containing %q", tt.pattern, err, tt.errSubstr)
		}
	}
}
