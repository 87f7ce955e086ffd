package storage

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// A cached manifest is stored byte for byte, tagged, without its blobs;
// it must still be a manifest registryd serves and hash to what was asked.
func TestPutCachedManifest(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	repo, _ := r.Repository("docker.io/library/alpine")
	missing := digest.FromString("not here")
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		missing.String() + `","size":8},"layers":[]}`)
	d := digest.FromBytes(body)
	m, err := repo.PutCachedManifest(ctx, d, "application/vnd.oci.image.manifest.v1+json", body, "3")
	if err != nil || m.Digest != d {
		t.Fatalf("%v %v", m, err)
	}
	got, err := repo.GetManifest(ctx, "3")
	if err != nil || string(got.Content) != string(body) {
		t.Fatalf("by tag: %v", err)
	}
	if _, err := repo.StatBlob(ctx, missing); !errcode.Is(err, errcode.BlobUnknown) {
		t.Errorf("the config is not cached yet: %v", err)
	}
	if _, ok, _ := r.HasContent(ctx, d); !ok {
		t.Error("HasContent of the manifest")
	}
	for _, tc := range []struct {
		want digest.Digest
		ct   string
		body string
		tag  string
		code errcode.Code
	}{
		{digest.FromString("x"), "", string(body), "", errcode.DigestInvalid},
		{"", "", string(body), "bad tag!", errcode.ManifestInvalid},
		{"", "", `{"schemaVersion":1,"fsLayers":[]}`, "", errcode.ManifestInvalid},
		{"", "", `not json`, "", errcode.ManifestInvalid},
	} {
		if _, err := repo.PutCachedManifest(ctx, tc.want, tc.ct, []byte(tc.body), tc.tag); !errcode.Is(err, tc.code) {
			t.Errorf("%q: %v, want %s", tc.body, err, tc.code)
		}
	}
}
