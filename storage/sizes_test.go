package storage

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// An image pushed with a config that names its platform, an index of two,
// an artifact: what the tag list shows of each, and the sizes of a
// repository by hand.
func TestImageInfoAndRepositorySize(t *testing.T) {
	clock := newFakeClock()
	f := newTimesFixture(t, inmemory.New(), clock)
	cfgBody := `{"architecture":"arm64","os":"linux","variant":"v8"}`
	cfg := f.blob("r", cfgBody)
	cfg.MediaType = ocispec.MediaTypeImageConfig
	layer := f.blob("r", "layer bytes, twenty-five")
	img := ocispec.Manifest{MediaType: MediaTypeOCIManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}}
	img.SchemaVersion = 2
	m1 := f.put("r", "single", img)

	other := f.image("r", "", "other layer")
	idx := ocispec.Index{MediaType: MediaTypeOCIIndex, Manifests: []ocispec.Descriptor{
		{MediaType: MediaTypeOCIManifest, Digest: m1.Digest, Size: int64(len(m1.Content)), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{MediaType: MediaTypeOCIManifest, Digest: other.Digest, Size: int64(len(other.Content)), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: MediaTypeOCIManifest, Digest: other.Digest, Size: int64(len(other.Content)), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
	}}
	idx.SchemaVersion = 2
	clock.Add(time.Hour)
	mi := f.put("r", "multi", idx)

	sig := ocispec.Manifest{MediaType: MediaTypeOCIManifest, ArtifactType: "application/vnd.example.sig",
		Config: ocispec.DescriptorEmptyJSON, Subject: &ocispec.Descriptor{MediaType: MediaTypeOCIIndex, Digest: mi.Digest, Size: int64(len(mi.Content))}}
	sig.SchemaVersion = 2
	f.blob("r", "{}")
	ms := f.put("r", "", sig)

	repo := f.repo("r")
	infos, err := repo.Images(f.ctx, []digest.Digest{m1.Digest, mi.Digest, ms.Digest})
	if err != nil {
		t.Fatal(err)
	}
	otherSize := int64(len(other.Content)) + int64(len("config of "+"r")) + int64(len("other layer"))
	imgSize := int64(len(m1.Content)) + int64(len(cfgBody)) + layer.Size
	want := []ImageInfo{
		{Digest: m1.Digest, MediaType: MediaTypeOCIManifest, Platforms: []string{"linux/arm64/v8"}, Size: imgSize},
		{Digest: mi.Digest, MediaType: MediaTypeOCIIndex, Platforms: []string{"linux/arm64/v8", "linux/amd64"}, Size: int64(len(mi.Content)) + imgSize + 2*otherSize},
		{Digest: ms.Digest, MediaType: MediaTypeOCIManifest, ArtifactType: "application/vnd.example.sig", Size: int64(len(ms.Content)) + 2},
	}
	for i := range want {
		g := infos[i]
		if g.Digest != want[i].Digest || g.MediaType != want[i].MediaType || g.ArtifactType != want[i].ArtifactType ||
			!slices.Equal(g.Platforms, want[i].Platforms) || g.Size != want[i].Size {
			t.Errorf("image %d: %+v, want %+v", i, g, want[i])
		}
	}

	// The repository alone: every byte is exclusive; the images are the
	// index and the signature (the children are part of the index).
	size, err := f.r.RepositorySize(f.ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	unique := imgSize + otherSize + int64(len(mi.Content)) + int64(len(ms.Content)) + 2
	if size.Unique != unique || size.Exclusive != unique || size.Logical != want[1].Size+want[2].Size {
		t.Fatalf("size %+v, want unique %d, logical %d", size, unique, want[1].Size+want[2].Size)
	}
	sums, err := f.r.RepositorySummaries(f.ctx, []string{"r", "no/such", "Bad"})
	if err != nil || len(sums) != 1 || sums[0].TagCount != 2 || !sums[0].LastPushed.Equal(clock.Now()) || sums[0].Size != size {
		t.Fatalf("summaries %+v %v", sums, err)
	}
	// Another repository sharing the layer: it is no longer exclusive.
	f.blob("s", "layer bytes, twenty-five")
	f.blob("s", cfgBody)
	f.put("s", "copy", img)
	size2, err := f.r.RepositorySize(f.ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if size2.Exclusive != unique-imgSize || size2.Unique != unique {
		t.Fatalf("after sharing: %+v", size2)
	}
	u, err := f.r.Usage(f.ctx, "")
	if err != nil || u.Repositories != 2 || u.Unique != unique || u.Exclusive != unique || u.Logical != size.Logical+imgSize {
		t.Fatalf("usage %+v %v", u, err)
	}
	if _, err := f.r.RepositorySize(f.ctx, "no/such"); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("unknown repository: %v", err)
	}
	b, _ := json.Marshal(u)
	t.Logf("usage %s", b)
}

// Another instance's changes reach this index's exclusive figures: its
// repositories are checked again once the index is summaryMaxAge old (in
// the background: the request that notices goes on with what it has).
func TestSizesSeeOtherInstances(t *testing.T) {
	d := inmemory.New()
	f := newTimesFixture(t, d, newFakeClock())
	f.blob("r", "shared layer")
	f.image("r", "v1", "shared layer")
	before, err := f.r.RepositorySize(f.ctx, "r")
	if err != nil || before.Exclusive != before.Unique {
		t.Fatalf("alone: %+v %v", before, err)
	}
	// Another instance pushes a repository sharing the layer.
	other := &enumFixture{t: t, ctx: f.ctx, d: d, r: New(d, Options{})}
	other.image("s", "v1", "shared layer")
	if got, _ := f.r.RepositorySize(f.ctx, "r"); got != before {
		t.Fatalf("changed before the index was due: %+v", got)
	}
	f.r.sizes.mu.Lock()
	f.r.sizes.synced = time.Now().Add(-summaryMaxAge - time.Second)
	f.r.sizes.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := f.r.RepositorySize(f.ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if got.Exclusive == before.Exclusive-int64(len("shared layer")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other instance's push never showed: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Digests that nothing holds any more leave the index once they are most
// of it; what remains gives the figures a fresh index gives.
func TestSizesCompact(t *testing.T) {
	d := inmemory.New()
	f := newDeleteFixture(t, d)
	for i := range 400 {
		f.image("churn", fmt.Sprintf("t%d", i), fmt.Sprintf("churn layer %d", i), "shared")
	}
	for i := range 5 {
		f.image("keep", fmt.Sprintf("t%d", i), fmt.Sprintf("keep layer %d", i), "shared")
	}
	if _, err := f.r.Usage(f.ctx, ""); err != nil {
		t.Fatal(err)
	}
	grown := len(f.r.sizes.nodes)
	if _, err := f.r.DeleteRepository(f.ctx, "churn"); err != nil {
		t.Fatal(err)
	}
	// A full sync (as every summaryMaxAge) compacts.
	if _, err := f.r.Usage(f.ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(f.r.sizes.nodes); grown < 1000 || n > 40 {
		t.Fatalf("index of %d digests, %d after the delete", grown, n)
	}
	for _, name := range []string{"keep"} {
		got, err := f.r.RepositorySize(f.ctx, name)
		want, err2 := New(d, Options{}).RepositorySize(f.ctx, name)
		if err != nil || err2 != nil || got != want {
			t.Fatalf("%s: compacted %+v (%v), fresh %+v (%v)", name, got, err, want, err2)
		}
	}
	infos, err := f.repo("keep").Images(f.ctx, []digest.Digest{f.mustResolve("keep", "t1")})
	if err != nil || infos[0].Size == 0 || !slices.Equal(infos[0].Platforms, []string(nil)) && len(infos[0].Platforms) > 1 {
		t.Fatalf("image after compaction %+v %v", infos, err)
	}
}
