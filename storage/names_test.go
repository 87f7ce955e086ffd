package storage

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The hand-written validators accept exactly what the specification's
// expressions accept.
func TestValidatorsMatchGrammar(t *testing.T) {
	componentRE := regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	tagRE := regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	cases := []string{"", "a", "a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a---b", "a-", "-a", ".a", "a.",
		"_a", "a_", "a._b", "A", "latest", "v1.0", "_x", "x" + strings.Repeat("y", 127), "x" + strings.Repeat("y", 128),
		"a/b", "a b", "é", "a-_b", "0", "9z.-"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab09AZ._-/ "
	for range 20000 {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := validComponent(s), componentRE.MatchString(s); got != want {
			t.Errorf("validComponent(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidTag(s), tagRE.MatchString(s); got != want {
			t.Errorf("ValidTag(%q) = %v, want %v", s, got, want)
		}
	}
}
