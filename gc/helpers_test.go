package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// env is a registry over the in-memory driver, written to through the
// storage API as the HTTP handlers would. The collector gets its own
// Registry over the same driver, as a separate process would.
type env struct {
	t   testing.TB
	ctx context.Context
	d   driver.StorageDriver
	reg *storage.Registry
	n   int // makes contents unique
}

func newEnv(t testing.TB) *env {
	return newEnvOn(t, inmemory.New())
}

func newEnvOn(t testing.TB, d driver.StorageDriver) *env {
	// A fixed clock: push records hold their time, and two stores built by
	// the same operations must be byte-identical (TestConcurrentMatchesSequential).
	clock := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	return &env{t: t, ctx: context.Background(), d: d, reg: storage.New(d, storage.Options{Now: clock})}
}

// drivers are the backends the property is checked on: the in-memory one
// thoroughly, the filesystem (whose every write is synced, and which keeps
// empty directories) enough to catch what differs.
var drivers = []struct {
	name  string
	seeds int64
	ops   int // per round
	modes []string
	new   func(t testing.TB) driver.StorageDriver
}{
	{"inmemory", 8, 45, []string{"keep-untagged", "delete-untagged", "alternate"},
		func(testing.TB) driver.StorageDriver { return inmemory.New() }},
	{"filesystem", 1, 30, []string{"alternate"}, func(t testing.TB) driver.StorageDriver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}},
}

func (e *env) gc(opts Options) Report {
	e.t.Helper()
	rep, err := Run(e.ctx, storage.New(e.d, storage.Options{}), opts)
	if err != nil {
		e.t.Fatalf("gc: %v", err)
	}
	return rep
}

func (e *env) repo(name string) *storage.Repository {
	e.t.Helper()
	r, err := e.reg.Repository(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) unique(prefix string) []byte {
	e.n++
	return []byte(fmt.Sprintf("%s-%d", prefix, e.n))
}

// pushBlob uploads content into repo and returns its descriptor.
func (e *env) pushBlob(repo, mediaType string, content []byte) ocispec.Descriptor {
	e.t.Helper()
	r := e.repo(repo)
	up, err := r.NewUpload(e.ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	d := digest.FromBytes(content)
	if _, err := up.Commit(e.ctx, bytes.NewReader(content), 0, d); err != nil {
		e.t.Fatalf("commit %s into %s: %v", d, repo, err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

// putManifest stores a manifest (an ocispec.Manifest or ocispec.Index) in
// repo under ref (a tag, or "" for its digest).
func (e *env) putManifest(repo, ref string, m any) *storage.Manifest {
	e.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	var mt string
	switch v := m.(type) {
	case ocispec.Manifest:
		mt = v.MediaType
	case ocispec.Index:
		mt = v.MediaType
	}
	if ref == "" {
		ref = digest.FromBytes(b).String()
	}
	out, err := e.repo(repo).PutManifest(e.ctx, ref, mt, b, nil)
	if err != nil {
		e.t.Fatalf("put manifest %s:%s: %v", repo, ref, err)
	}
	return out
}

const (
	mtConfig = "application/vnd.oci.image.config.v1+json"
	mtLayer  = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtEmpty  = "application/vnd.oci.empty.v1+json"
)

// image pushes a config (unique) and the given layers into repo and then
// the manifest, tagged tag ("" for untagged).
func (e *env) image(repo, tag string, layers ...[]byte) (*storage.Manifest, []ocispec.Descriptor) {
	e.t.Helper()
	cfg := e.pushBlob(repo, mtConfig, append([]byte(`{"config":"`), append(e.unique("cfg"), '"', '}')...))
	descs := []ocispec.Descriptor{cfg}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range layers {
		d := e.pushBlob(repo, mtLayer, l)
		m.Layers = append(m.Layers, d)
		descs = append(descs, d)
	}
	return e.putManifest(repo, tag, m), descs
}

func descOf(m *storage.Manifest) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Content))}
}

// index pushes an index of children into repo.
func (e *env) index(repo, tag string, children ...*storage.Manifest) *storage.Manifest {
	e.t.Helper()
	ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	ix.SchemaVersion = 2
	for _, c := range children {
		ix.Manifests = append(ix.Manifests, descOf(c))
	}
	return e.putManifest(repo, tag, ix)
}

// artifact pushes an artifact whose subject is subject, with one unique
// blob, into repo.
func (e *env) artifact(repo, tag string, subject ocispec.Descriptor) (*storage.Manifest, ocispec.Descriptor) {
	e.t.Helper()
	empty := e.pushBlob(repo, mtEmpty, []byte("{}"))
	blob := e.pushBlob(repo, "application/vnd.example.sig", e.unique("sig"))
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.sig",
		Config:       empty,
		Layers:       []ocispec.Descriptor{blob},
		Subject:      &subject,
	}
	m.SchemaVersion = 2
	return e.putManifest(repo, tag, m), blob
}

// blobs returns every digest in the content store.
func (e *env) blobs() map[digest.Digest]int64 {
	e.t.Helper()
	out := map[digest.Digest]int64{}
	if err := e.reg.WalkBlobs(e.ctx, func(d digest.Digest, size int64) error {
		out[d] = size
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) hasBlob(d digest.Digest) bool {
	_, ok := e.blobs()[d]
	return ok
}

// readBlob reads a blob through repo as a pull would.
func (e *env) readBlob(repo string, d digest.Digest) ([]byte, error) {
	rc, _, err := e.repo(repo).OpenBlob(e.ctx, d, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// pullable checks that ref resolves in repo, and that everything the
// manifest needs reads back: index children recursively, config, layers.
func (e *env) pullable(repo, ref string) error {
	m, err := e.repo(repo).GetManifest(e.ctx, ref)
	if err != nil {
		return fmt.Errorf("%s:%s: %w", repo, ref, err)
	}
	refs, err := storage.ParseReferences(m.Content)
	if err != nil {
		return err
	}
	for _, c := range refs.Manifests {
		if err := e.pullable(repo, c.String()); err != nil {
			return err
		}
	}
	for _, b := range refs.Blobs {
		got, err := e.readBlob(repo, b)
		if err != nil {
			return fmt.Errorf("%s:%s blob %s: %w", repo, ref, b, err)
		}
		if digest.FromBytes(got) != b {
			return fmt.Errorf("%s:%s blob %s: content differs", repo, ref, b)
		}
	}
	return nil
}

// snapshot is every path under the driver with the content of each file.
func snapshot(t testing.TB, d driver.StorageDriver) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if strings.HasPrefix(fi.Path(), storage.ChangeLogRoot()) {
			return nil // the change log: names with times and instance ids
		}
		if fi.IsDir() {
			out[fi.Path()] = "<dir>"
			return nil
		}
		b, err := d.GetContent(ctx, fi.Path())
		if err != nil {
			return err
		}
		out[fi.Path()] = string(b)
		return nil
	})
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	return out
}

// diffSnapshots describes how two snapshots differ, "" when equal.
func diffSnapshots(a, b map[string]string) string {
	var out []string
	for p, c := range a {
		if c2, ok := b[p]; !ok {
			out = append(out, "- "+p)
		} else if c2 != c {
			out = append(out, "~ "+p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "+ "+p)
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("... %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

// pathsContaining lists snapshot paths that mention s.
func pathsContaining(snap map[string]string, s string) []string {
	var out []string
	for p := range snap {
		if strings.Contains(p, s) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
