package storage

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestDigestSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 10, 1000, 50000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := map[digest.Digest]uint8{}
			var b DigestSetBuilder
			for i := range n {
				// Repeats, and now and then a sha512 digest.
				x := rng.IntN(n/2 + 1)
				var d digest.Digest
				if x%97 == 0 {
					d = digest.SHA512.FromString(fmt.Sprint(x))
				} else {
					d = digest.FromString(fmt.Sprint(x))
				}
				m := uint8(1 << (i % 3))
				want[d] |= m
				b.Add(d, m)
			}
			if got := b.Estimate(); got < len(want) {
				t.Fatalf("Estimate %d < %d distinct", got, len(want))
			}
			s := b.Build()
			if s.Len() != len(want) {
				t.Fatalf("Len %d, want %d", s.Len(), len(want))
			}
			for d, m := range want {
				if got, ok := s.Lookup(d); !ok || got != m {
					t.Fatalf("Lookup(%s) = %d %v, want %d", d, got, ok, m)
				}
			}
			for i := range 100 {
				if d := digest.FromString(fmt.Sprint("absent", i)); s.Contains(d) {
					t.Fatalf("Contains(%s) for an absent digest", d)
				}
			}
			var order []digest.Digest
			s.Range(func(d digest.Digest, m uint8) bool {
				if want[d] != m {
					t.Fatalf("Range gave %s with mask %d, want %d", d, m, want[d])
				}
				order = append(order, d)
				return true
			})
			if len(order) != len(want) || !slices.IsSorted(order) {
				t.Fatalf("Range: %d digests, sorted %v; want %d sorted", len(order), slices.IsSorted(order), len(want))
			}
		})
	}
	var nilSet *DigestSet
	if nilSet.Len() != 0 || nilSet.Contains(digest.FromString("x")) {
		t.Fatal("a nil set is empty")
	}
	// Upper-case hex is not a canonical digest: it must not alias its
	// lower-case twin.
	var b DigestSetBuilder
	lower := digest.FromString("x")
	b.Add(lower, 1)
	s := b.Build()
	if s.Contains(digest.Digest("sha256:" + upperHex(lower.Encoded()))) {
		t.Fatal("upper-case hex aliases its lower-case digest")
	}
}

func upperHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// BenchmarkDigestSetBuild measures the mark's cost per digest and its
// memory: b.N digests in, one set out (-benchmem: bytes per op is per
// digest).
func BenchmarkDigestSetBuild(b *testing.B) {
	ds := make([]digest.Digest, b.N)
	for i := range ds {
		ds[i] = digest.FromString(fmt.Sprint(i))
	}
	b.ResetTimer()
	var sb DigestSetBuilder
	for _, d := range ds {
		sb.Add(d, 1)
	}
	if sb.Build().Len() != b.N {
		b.Fatal("lost digests")
	}
}
