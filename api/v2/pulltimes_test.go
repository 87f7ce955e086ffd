package v2

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// GET and HEAD of a manifest, by tag or digest, count as pulls; a
// request that fails does not, and nothing is written until the flush.
func TestManifestPullsAreRecorded(t *testing.T) {
	reg := storage.New(inmemory.New(), storage.Options{TrackPulls: true})
	srv := httptest.NewServer(Middleware(NewHandler(reg, Options{}), nil))
	t.Cleanup(srv.Close)
	tr := &testRegistry{t: t, srv: srv}
	m := tr.image("a/b", "one")
	if resp := tr.pushManifest("a/b", "v1", "application/vnd.oci.image.manifest.v1+json", m); resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	d := digest.FromBytes(m)
	repo, _ := reg.Repository("a/b")
	ctx := context.Background()
	last := func() bool {
		got, err := repo.LastPulled(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return !got.IsZero()
	}
	tr.do(http.MethodGet, "/v2/a/b/manifests/nosuchtag", nil)
	tr.do(http.MethodGet, "/v2/a/b/manifests/sha256:"+digest.FromString("x").Encoded(), nil)
	if last() {
		t.Fatal("a failed pull was recorded")
	}
	for _, c := range []struct{ method, ref string }{
		{http.MethodHead, "v1"}, {http.MethodGet, "v1"}, {http.MethodGet, d.String()},
	} {
		repo.RecordPull("") // nothing
		if _, err := reg.FlushPulls(ctx); err != nil {
			t.Fatal(err)
		}
		// Forget what the previous case recorded.
		reg2 := storage.New(reg.Driver(), storage.Options{TrackPulls: true})
		srv2 := httptest.NewServer(Middleware(NewHandler(reg2, Options{}), nil))
		tr2 := &testRegistry{t: t, srv: srv2}
		if resp := tr2.do(c.method, "/v2/a/b/manifests/"+c.ref, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d", c.method, c.ref, resp.StatusCode)
		}
		r2, _ := reg2.Repository("a/b")
		if got, _ := r2.LastPulled(ctx, d); got.IsZero() {
			t.Fatalf("%s %s: not recorded", c.method, c.ref)
		}
		srv2.Close()
	}
}
