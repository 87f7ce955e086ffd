package admin

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// pushImage stores a one-layer image under tags and returns its digest.
func pushImage(t *testing.T, reg *storage.Registry, name, layer string, tags ...string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	repo, err := reg.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	blob := func(b string) (digest.Digest, int) {
		up, err := repo.NewUpload(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromString(b)
		if _, err := up.Commit(ctx, strings.NewReader(b), 0, d); err != nil {
			t.Fatal(err)
		}
		return d, len(b)
	}
	cd, cn := blob(`{"os":"linux","architecture":"amd64","l":"` + layer + `"}`)
	ld, ln := blob(layer)
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": storage.MediaTypeOCIManifest,
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ln}},
	})
	if _, err := repo.PutManifest(ctx, tags[0], "", m, tags[1:]); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(m)
}

// The deletes the web UI calls: gated like the API's, a tag delete keeps
// its sibling, a manifest delete takes its tags.
func TestServiceDeletes(t *testing.T) {
	ctx := context.Background()
	reg := storage.New(inmemory.New(), storage.Options{})
	d := pushImage(t, reg, "r", "layer", "a", "b")
	off := NewService(reg, Options{})
	if err := off.DeleteTag(ctx, "r", "a", EventSource{}); !errcode.Is(err, errcode.Unsupported) {
		t.Fatalf("deletes disabled: %v", err)
	}
	ro := NewService(reg, Options{DeleteEnabled: true, ReadOnly: true})
	if err := ro.DeleteManifest(ctx, "r", d.String(), EventSource{}); !errcode.Is(err, errcode.Unsupported) {
		t.Fatalf("read-only: %v", err)
	}
	svc := NewService(reg, Options{DeleteEnabled: true})
	if err := svc.DeleteTag(ctx, "r", "a", EventSource{}); err != nil {
		t.Fatal(err)
	}
	tl, _, err := svc.Tags(ctx, "r", TagQuery{})
	if err != nil || len(tl.Tags) != 1 || tl.Tags[0].Name != "b" || tl.Tags[0].Digest != d.String() {
		t.Fatalf("after the tag delete %+v %v", tl, err)
	}
	if err := svc.DeleteTag(ctx, "r", "a", EventSource{}); !errcode.Is(err, errcode.ManifestUnknown) {
		t.Fatalf("again: %v", err)
	}
	d2 := pushImage(t, reg, "r", "other", "c")
	imp, err := svc.Impact(ctx, "r", d.String())
	if err != nil || !slices.Equal(imp.Tags, []string{"b"}) {
		t.Fatalf("impact %+v %v", imp, err)
	}
	if err := svc.DeleteManifest(ctx, "r", d.String(), EventSource{}); err != nil {
		t.Fatal(err)
	}
	tl, _, _ = svc.Tags(ctx, "r", TagQuery{})
	if len(tl.Tags) != 1 || tl.Tags[0].Digest != d2.String() {
		t.Fatalf("after the manifest delete %+v", tl)
	}
	if err := svc.DeleteManifest(ctx, "r", "sha256:nope", EventSource{}); !errcode.Is(err, errcode.DigestInvalid) {
		t.Fatalf("bad digest: %v", err)
	}
}
