package driver

import (
	"context"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// validPathRE is the definition ValidPath implements without a regexp.
func validPathRE(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) > 4096 || !regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`).MatchString(p) {
		return false
	}
	for _, c := range strings.Split(p[1:], "/") {
		if c == "." || c == ".." {
			return false
		}
	}
	return true
}

func TestValidPath(t *testing.T) {
	for _, p := range []string{
		"", "/", "//", "a", "/a", "/a/", "/a//b", "/a/b", "/.", "/..", "/a/./b", "/a/../b",
		"/.a", "/a..", "/...", "/a b", "/a:b", "/A-Z_0.9", "/a/b/c/d", "\x00", "/\xff",
		"/docker/registry/v2/repositories/library/alpine/_manifests/tags/latest/current/link",
		"/" + strings.Repeat("a", 4095), "/" + strings.Repeat("a", 4096),
	} {
		if got, want := ValidPath(p), validPathRE(p); got != want {
			t.Errorf("ValidPath(%q) = %v, want %v", p, got, want)
		}
	}
	// Random paths over an alphabet of the interesting bytes.
	const alphabet = "/a.Z-_9 :\x00\xe9"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		p := string(b)
		if r.IntN(2) == 0 {
			p = "/" + p
		}
		if got, want := ValidPath(p), validPathRE(p); got != want {
			t.Fatalf("ValidPath(%q) = %v, want %v", p, got, want)
		}
	}
}

type wrapped struct{ StorageDriver }

func (w wrapped) Unwrap() StorageDriver { return w.StorageDriver }

type plain struct{ StorageDriver }

type flusher struct{ StorageDriver }

func (flusher) Flush(context.Context, ...string) error { return nil }

// As finds an extension through wrappers, and only through those that say
// what they wrap.
func TestAsThroughWrappers(t *testing.T) {
	f := flusher{}
	cases := []struct {
		name string
		d    StorageDriver
		want bool
	}{
		{"itself", f, true},
		{"wrapped twice", wrapped{wrapped{f}}, true},
		{"hidden by a plain wrapper", plain{f}, false},
		{"none", wrapped{plain{}}, false},
	}
	for _, c := range cases {
		if _, ok := As[Flusher](c.d); ok != c.want {
			t.Errorf("%s: %v, want %v", c.name, ok, c.want)
		}
	}
}

// flushCounter is a driver with a Flusher, counting its calls.
type flushCounter struct {
	StorageDriver
	flushes int
}

func (f *flushCounter) Flush(ctx context.Context, dirs ...string) error {
	f.flushes++
	return nil
}

// wrapper hides its driver's optional interfaces, as the metrics wrapper
// does, but unwraps.
type wrapper struct{ StorageDriver }

func (w wrapper) Unwrap() StorageDriver { return w.StorageDriver }

// Flush reaches the Flusher under a wrapper: a wrapped driver (metrics on)
// must not lose the ordering garbage collection relies on.
func TestFlushThroughWrapper(t *testing.T) {
	f := &flushCounter{}
	if err := Flush(context.Background(), wrapper{f}, "/a"); err != nil || f.flushes != 1 {
		t.Fatalf("Flush through a wrapper: %v, %d flushes", err, f.flushes)
	}
}
