package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// enumFixture is a registry with content pushed through the API.
type enumFixture struct {
	t   *testing.T
	ctx context.Context
	d   driver.StorageDriver
	r   *Registry
}

func newEnumFixture(t *testing.T) *enumFixture {
	d := inmemory.New()
	return &enumFixture{t: t, ctx: context.Background(), d: d, r: New(d, Options{})}
}

func (f *enumFixture) repo(name string) *Repository {
	f.t.Helper()
	repo, err := f.r.Repository(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return repo
}

func (f *enumFixture) blob(name string, content string) ocispec.Descriptor {
	f.t.Helper()
	up, err := f.repo(name).NewUpload(f.ctx, "")
	if err != nil {
		f.t.Fatal(err)
	}
	d := digest.FromString(content)
	if _, err := up.Commit(f.ctx, strings.NewReader(content), 0, d); err != nil {
		f.t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}
}

// image pushes an image with one config and the given layers.
func (f *enumFixture) image(name, ref string, layers ...string) *Manifest {
	f.t.Helper()
	m := ocispec.Manifest{MediaType: MediaTypeOCIManifest, Config: f.blob(name, "config of "+ref+name)}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, f.blob(name, l))
	}
	return f.put(name, ref, m)
}

func (f *enumFixture) put(name, ref string, v any) *Manifest {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	if ref == "" {
		ref = digest.FromBytes(b).String()
	}
	m, err := f.repo(name).PutManifest(f.ctx, ref, "", b, nil)
	if err != nil {
		f.t.Fatalf("put %s:%s: %v", name, ref, err)
	}
	return m
}

func (f *enumFixture) revisions(name string) []digest.Digest {
	f.t.Helper()
	var out []digest.Digest
	if err := f.repo(name).Revisions(f.ctx, func(d digest.Digest) error {
		out = append(out, d)
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedDigestList(ds ...digest.Digest) []digest.Digest {
	out := append([]digest.Digest(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func TestWalkRepositories(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *enumFixture)
		want  []string
	}{
		{"empty store", func(f *enumFixture) {}, nil},
		{"nested names, a repository that is also a parent", func(f *enumFixture) {
			f.image("a/b/c", "v1", "l")
			f.image("a", "v1", "l")
			f.image("z", "v1", "l")
			f.image("a/b2", "v1", "l")
		}, []string{"a", "a/b/c", "a/b2", "z"}},
		{"layers only, no manifests yet", func(f *enumFixture) {
			f.blob("only/layers", "x")
		}, []string{"only/layers"}},
		{"uploads only is not a repository", func(f *enumFixture) {
			if _, err := f.repo("only/uploads").NewUpload(f.ctx, ""); err != nil {
				f.t.Fatal(err)
			}
		}, nil},
		{"a manifest-less name with a stray file", func(f *enumFixture) {
			f.image("p/q", "v1", "l")
			if err := f.d.PutContent(f.ctx, "/docker/registry/v2/repositories/p/stray", []byte("x")); err != nil {
				f.t.Fatal(err)
			}
		}, []string{"p/q"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newEnumFixture(t)
			tc.setup(f)
			var got []string
			if err := f.r.WalkRepositories(f.ctx, func(repo *Repository) error {
				got = append(got, repo.Name())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWalkRepositoriesStopsOnError(t *testing.T) {
	f := newEnumFixture(t)
	f.image("a", "v1", "l")
	f.image("b", "v1", "l")
	stop := errors.New("stop")
	n := 0
	err := f.r.WalkRepositories(f.ctx, func(*Repository) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err %v after %d calls", err, n)
	}
}

func TestRevisionsTagsAndLayerLinks(t *testing.T) {
	f := newEnumFixture(t)
	m1 := f.image("r", "v1", "l1", "shared")
	m2 := f.image("r", "v2", "l2", "shared")
	m3 := f.image("r", "", "l3")
	f.put("r", "v1", json.RawMessage(m2.Content)) // v1 moves to m2
	// A revision directory whose link is gone (as the reference leaves a
	// deleted manifest) is not a revision.
	if err := f.d.Delete(f.ctx, revisionLinkPath("r", m3.Digest)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.revisions("r"), sortedDigestList(m1.Digest, m2.Digest); !reflect.DeepEqual(got, want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
	tags, err := f.repo("r").TagsAndTargets(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]digest.Digest{"v1": m2.Digest, "v2": m2.Digest}; !reflect.DeepEqual(tags, want) {
		t.Fatalf("tags %v, want %v", tags, want)
	}
	var links []digest.Digest
	if err := f.repo("r").LayerLinks(f.ctx, func(d digest.Digest) error {
		links = append(links, d)
		// Removing what is given is allowed.
		return f.repo("r").UnlinkLayer(f.ctx, d)
	}); err != nil {
		t.Fatal(err)
	}
	if len(links) != 7 { // 3 configs, l1, l2, l3, shared
		t.Fatalf("links %v", links)
	}
	if err := f.repo("r").LayerLinks(f.ctx, func(d digest.Digest) error {
		return errors.New("link left: " + d.String())
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo("r").UnlinkLayer(f.ctx, digest.FromString("never linked")); err != nil {
		t.Fatalf("unlinking a missing link: %v", err)
	}

	// A tag without its current link (crash between the two writes) is
	// left out; one with a corrupt link is an error.
	if err := f.d.Delete(f.ctx, tagCurrentPath("r", "v2")); err != nil {
		t.Fatal(err)
	}
	if tags, err := f.repo("r").TagsAndTargets(f.ctx); err != nil || len(tags) != 1 {
		t.Fatalf("tags %v %v", tags, err)
	}
	if err := f.d.PutContent(f.ctx, tagCurrentPath("r", "v1"), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo("r").TagsAndTargets(f.ctx); err == nil {
		t.Fatal("corrupt tag link accepted")
	}
}

func TestManifestContent(t *testing.T) {
	f := newEnumFixture(t)
	m := f.image("r", "v1", "l")
	tests := []struct {
		name    string
		setup   func()
		d       digest.Digest
		check   func(error) bool
		content []byte
	}{
		{"stored", func() {}, m.Digest, func(err error) bool { return err == nil }, m.Content},
		{"missing", func() {}, digest.FromString("nothing"), ErrNotFound, nil},
		{"corrupt", func() {
			if err := f.d.PutContent(f.ctx, blobDataPath(m.Digest), []byte(`{"schemaVersion":2}`)); err != nil {
				t.Fatal(err)
			}
		}, m.Digest, func(err error) bool { return errors.Is(err, ErrCorruptContent) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			b, err := New(f.d, Options{}).ManifestContent(f.ctx, tc.d) // nothing cached
			if !tc.check(err) {
				t.Fatalf("error %v", err)
			}
			if !bytes.Equal(b, tc.content) {
				t.Fatalf("content %q", b)
			}
		})
	}
}

func TestParseReferences(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	tests := []struct {
		name    string
		content string
		want    References
		corrupt bool
	}{
		{"oci image with subject", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
			"config":{"mediaType":"c","digest":"` + d("c").String() + `","size":1},
			"layers":[{"mediaType":"l","digest":"` + d("l1").String() + `","size":1},{"mediaType":"l","digest":"` + d("l2").String() + `","size":1,"urls":["https://x"]}],
			"subject":{"mediaType":"m","digest":"` + d("s").String() + `","size":1}}`,
			References{MediaType: MediaTypeOCIManifest, Subject: d("s"), Blobs: []digest.Digest{d("c"), d("l1"), d("l2")}}, false},
		{"index without mediaType", `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"` + d("a").String() + `","size":1},{"digest":"bogus"}]}`,
			References{MediaType: MediaTypeOCIIndex, Manifests: []digest.Digest{d("a")}}, false},
		{"docker manifest list", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[{"digest":"` + d("a").String() + `"}]}`,
			References{MediaType: MediaTypeDockerList, Manifests: []digest.Digest{d("a")}}, false},
		{"schema 1", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + d("x").String() + `"}]}`,
			References{MediaType: mediaTypeSchema1Signed, Blobs: []digest.Digest{d("x")}}, false},
		{"draft artifact manifest", `{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[{"digest":"` + d("b").String() + `"}]}`,
			References{MediaType: "application/vnd.oci.artifact.manifest.v1+json", Blobs: []digest.Digest{d("b")}}, false},
		{"not json", `not json`, References{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReferences([]byte(tc.content))
			if tc.corrupt {
				if !errors.Is(err, ErrCorruptContent) {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestWalkBlobsAndDeleteBlobContent(t *testing.T) {
	f := newEnumFixture(t)
	m := f.image("r", "v1", "layer one", "layer two")
	// Junk the walk must not report: a directory that is no digest, a
	// digest under the wrong prefix, a blob directory without data.
	junk := map[string]string{
		"/docker/registry/v2/blobs/sha256/zz/notadigest/data":                                                                                      "x",
		"/docker/registry/v2/blobs/sha256/00/" + digest.FromString("elsewhere").Encoded() + "/data":                                                "x",
		"/docker/registry/v2/blobs/sha256/" + digest.FromString("no data").Encoded()[:2] + "/" + digest.FromString("no data").Encoded() + "/other": "x",
		"/docker/registry/v2/blobs/md5/00/0011/data":                                                                                               "x",
	}
	for p, c := range junk {
		if err := f.d.PutContent(f.ctx, p, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[digest.Digest]int64{}
	if err := f.r.WalkBlobs(f.ctx, func(d digest.Digest, size int64) error {
		got[d] = size
		// Deleting what is given is allowed.
		return f.r.DeleteBlobContent(f.ctx, d)
	}); err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]int64{
		m.Digest:                           int64(len(m.Content)),
		digest.FromString("layer one"):     9,
		digest.FromString("layer two"):     9,
		digest.FromString("config of v1r"): int64(len("config of v1r")),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk %v\nwant %v", got, want)
	}
	if err := f.r.WalkBlobs(f.ctx, func(d digest.Digest, _ int64) error {
		return errors.New("left: " + d.String())
	}); err != nil {
		t.Fatal(err)
	}
	for p := range junk {
		if _, err := f.d.Stat(f.ctx, p); err != nil {
			t.Errorf("junk %s removed: %v", p, err)
		}
	}
	if err := f.r.DeleteBlobContent(f.ctx, m.Digest); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	// The manifest cache forgets removed content.
	if _, err := f.r.ManifestContent(f.ctx, m.Digest); !ErrNotFound(err) {
		t.Fatalf("removed manifest still readable: %v", err)
	}
}

func TestRemoveRevisions(t *testing.T) {
	f := newEnumFixture(t)
	keep := f.image("r", "keep", "k")
	old := f.image("r", "v1", "o")
	f.put("r", "hist", json.RawMessage(old.Content)) // a second tag with old in its history
	f.image("r", "v1", "n")                          // v1 moves on; old stays in v1's history
	f.put("r", "hist", json.RawMessage(keep.Content))
	art := ocispec.Manifest{
		MediaType: MediaTypeOCIManifest,
		Config:    f.blob("r", "{}"),
		Subject:   &ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: old.Digest, Size: int64(len(old.Content))},
	}
	art.SchemaVersion = 2
	sig := f.put("r", "", art)
	tagged := f.image("r", "doomed-tag", "t")
	// The referrer's content is gone: its link must go all the same.
	if err := f.d.Delete(f.ctx, blobDataPath(sig.Digest)); err != nil {
		t.Fatal(err)
	}
	f.r.manifests.remove(sig.Digest)

	if err := f.repo("r").RemoveRevisions(f.ctx, []digest.Digest{old.Digest, sig.Digest, tagged.Digest, digest.FromString("not a revision")}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.revisions("r"), sortedDigestList(keep.Digest, f.mustResolve("r", "v1")); !reflect.DeepEqual(got, want) {
		t.Fatalf("revisions %v, want %v", got, want)
	}
	tags, err := f.repo("r").TagsAndTargets(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tags["doomed-tag"]; ok || len(tags) != 3 {
		t.Fatalf("tags %v", tags)
	}
	// Nothing in the repository names a removed revision any more.
	var left []string
	_ = f.d.Walk(f.ctx, repoPath("r"), func(fi driver.FileInfo) error {
		for _, d := range []digest.Digest{old.Digest, sig.Digest, tagged.Digest} {
			if strings.Contains(fi.Path(), d.Encoded()) {
				left = append(left, fi.Path())
			}
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("paths left: %v", left)
	}
	if refs, err := f.repo("r").Referrers(f.ctx, old.Digest, ""); err != nil || len(refs) != 0 {
		t.Fatalf("referrers %v %v", refs, err)
	}
	// Content stays; removing again is no error.
	if _, err := f.r.ManifestContent(f.ctx, old.Digest); err != nil {
		t.Fatal(err)
	}
	if err := f.repo("r").RemoveRevision(f.ctx, old.Digest); err != nil {
		t.Fatal(err)
	}
}

func (f *enumFixture) mustResolve(name, ref string) digest.Digest {
	f.t.Helper()
	m, err := f.repo(name).GetManifest(f.ctx, ref)
	if err != nil {
		f.t.Fatal(err)
	}
	return m.Digest
}
