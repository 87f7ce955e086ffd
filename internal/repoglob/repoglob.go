// Package repoglob matches repository names against the globs operators
// write in access rules and retention policies: "/" separates components,
// "*" matches any run of characters within one component, and a component
// that is exactly "**" matches zero or more whole components ("team-a/**"
// matches team-a, team-a/app and team-a/x/y; "**/cache" matches cache and
// a/b/cache). One implementation, so that a glob means the same thing in
// every section of the configuration.
package repoglob

import (
	"fmt"
	"strings"
)

// Pattern is a compiled glob.
type Pattern struct {
	raw   string
	parts []string
}

// Compile validates a glob: non-empty components, "**" only as a whole
// component, and only characters a repository name can hold (names are
// lower case) besides "*".
func Compile(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty repository pattern")
	}
	if len(s) > 255 {
		return Pattern{}, fmt.Errorf("repository pattern %.40q... is longer than a repository name may be", s)
	}
	var out []string
	for _, part := range strings.Split(s, "/") {
		if part == "" {
			return Pattern{}, fmt.Errorf("repository pattern %q has an empty path component", s)
		}
		if part != "**" && strings.Contains(part, "**") {
			return Pattern{}, fmt.Errorf("repository pattern %q: \"**\" must be a whole path component (use \"*\" within a component)", s)
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '*') {
				return Pattern{}, fmt.Errorf("repository pattern %q: character %q cannot appear in a repository name (names are lowercase)", s, c)
			}
		}
		// "**/**" means what "**" means; collapsing keeps matching linear.
		if part == "**" && len(out) > 0 && out[len(out)-1] == "**" {
			continue
		}
		out = append(out, part)
	}
	return Pattern{raw: s, parts: out}, nil
}

// String is the glob as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether name matches. It runs in O(parts × components)
// whatever the pattern, by dynamic programming over suffixes instead of
// backtracking.
func (p Pattern) Match(name string) bool {
	comps := strings.Split(name, "/")
	np, nc := len(p.parts), len(comps)
	// ok[j] is whether parts[i:] matches comps[j:], for the current i.
	ok := make([]bool, nc+1)
	ok[nc] = true
	for i := np - 1; i >= 0; i-- {
		next := make([]bool, nc+1)
		if p.parts[i] == "**" {
			// parts[i:] matches comps[j:] if parts[i+1:] matches comps[k:] for some k >= j.
			seen := false
			for j := nc; j >= 0; j-- {
				seen = seen || ok[j]
				next[j] = seen
			}
		} else {
			for j := 0; j < nc; j++ {
				next[j] = ok[j+1] && matchComponent(p.parts[i], comps[j])
			}
		}
		ok = next
	}
	return ok[0]
}

// matchComponent matches one component against a glob whose only special
// character is "*". The classic greedy algorithm with one backtrack point
// is linear in practice and quadratic at worst.
func matchComponent(glob, s string) bool {
	gi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case gi < len(glob) && glob[gi] == '*':
			star, mark = gi, si
			gi++
		case gi < len(glob) && glob[gi] == s[si]:
			gi++
			si++
		case star >= 0:
			gi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}
