package auth

// Pattern is a repository name pattern as the access rules write them:
// "*" within a component, "**" as a whole component for any number of
// them ("team/**"). Other parts of registryd (the mirror's hosted
// repositories) select repositories with the same syntax.
type Pattern struct{ p pattern }

// CompilePattern checks and compiles s.
func CompilePattern(s string) (Pattern, error) {
	p, err := compilePattern(s)
	return Pattern{p}, err
}

// Match reports whether the repository name matches.
func (p Pattern) Match(name string) bool { return p.p.match(name) }

// String is the pattern as written.
func (p Pattern) String() string { return p.p.raw }
