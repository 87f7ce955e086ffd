package e2e

import (
	"net/http"
	"slices"
	"testing"
)

// TestSharedDiskListings: two registryd processes and the reference
// registry serve one data directory. What one of them writes is listed by
// registryd B in its very next catalog and tags/list answer, although B
// caches listings (validated by inotify here): the cache must never show a
// repository or tag that is gone, nor miss one that was written before the
// request.
func TestSharedDiskListings(t *testing.T) {
	root := t.TempDir()
	a := startRegistrydOn(t, root)
	b := startRegistrydOn(t, root)
	ref := startReference(t, root)
	crane := tool(t, "crane")
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout
	}
	catalog := func() []string {
		t.Helper()
		var c struct{ Repositories []string }
		getJSON(t, b, "/v2/_catalog", &c)
		return c.Repositories
	}
	tags := func(repo string) []string {
		t.Helper()
		var l struct{ Tags []string }
		getJSON(t, b, "/v2/"+repo+"/tags/list", &l)
		return l.Tags
	}
	want := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s on B: %q, want %q", what, got, want)
		}
	}

	// B's caches are warm (and its directories watched) before anything
	// is written.
	want("empty catalog", catalog(), []string{})

	img := newTestImage(t, t.TempDir(), "v1", "shared-one")
	cr("push", img.Layout, a.Addr+"/team/one:v1")
	want("catalog after A's push", catalog(), []string{"team/one"})
	want("tags after A's push", tags("team/one"), []string{"v1"})

	cr("tag", a.Addr+"/team/one:v1", "v2")
	want("tags after A's tag", tags("team/one"), []string{"v1", "v2"})

	// A nested repository, pushed through the reference registry, sorts
	// before the first one; a page of one shows it first.
	other := newTestImage(t, t.TempDir(), "v1", "shared-nested")
	cr("push", other.Layout, ref.Addr+"/team/one/aaa:x")
	want("catalog after the reference's push", catalog(), []string{"team/one", "team/one/aaa"})
	var page struct{ Repositories []string }
	getJSON(t, b, "/v2/_catalog?n=1&last=team/one", &page)
	want("page after team/one", page.Repositories, []string{"team/one/aaa"})

	// Deleting the only manifest of team/one through A removes its tags
	// and takes it out of B's catalog at once.
	del := doHTTP(t, http.MethodDelete, a.URL("/v2/team/one/manifests/"+img.Digest), nil, nil)
	if del.Status != http.StatusAccepted {
		t.Fatalf("DELETE through A: %s", del)
	}
	want("catalog after A's delete", catalog(), []string{"team/one/aaa"})
	want("tags after A's delete", tags("team/one"), []string{})
}
