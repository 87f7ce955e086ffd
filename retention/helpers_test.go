package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// countingDriver counts every operation that changes the storage. It
// deliberately has no Unwrap: optional abilities of the driver below
// (conditional writes, batch deletes) would otherwise let a write past it.
type countingDriver struct {
	driver.StorageDriver
	writes atomic.Int64
	last   atomic.Value // string: the last path written
}

func (c *countingDriver) wrote(p string) { c.writes.Add(1); c.last.Store(p) }

func (c *countingDriver) PutContent(ctx context.Context, p string, b []byte) error {
	c.wrote("put " + p)
	return c.StorageDriver.PutContent(ctx, p, b)
}

func (c *countingDriver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	c.wrote("write " + p)
	return c.StorageDriver.Writer(ctx, p, append)
}

func (c *countingDriver) Move(ctx context.Context, src, dst string) error {
	c.wrote("move " + dst)
	return c.StorageDriver.Move(ctx, src, dst)
}

func (c *countingDriver) Delete(ctx context.Context, p string) error {
	c.wrote("delete " + p)
	return c.StorageDriver.Delete(ctx, p)
}

// store is a registry over the in-memory driver written through the
// storage API, as the HTTP handlers would, with push and pull times kept
// by the test (the model) rather than the clock.
type store struct {
	t       testing.TB
	ctx     context.Context
	base    driver.StorageDriver
	count   *countingDriver
	reg     *storage.Registry
	n       int
	content map[digest.Digest]manifestBody
	times   map[string]map[string]Tag // repo -> tag -> times
}

type manifestBody struct {
	mediaType string
	b         []byte
}

func newStore(t testing.TB) *store {
	base := inmemory.New()
	c := &countingDriver{StorageDriver: base}
	return &store{
		t: t, ctx: context.Background(), base: base, count: c, reg: storage.New(base, storage.Options{}),
		content: map[digest.Digest]manifestBody{}, times: map[string]map[string]Tag{},
	}
}

func (s *store) repo(name string) *storage.Repository {
	s.t.Helper()
	r, err := s.reg.Repository(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *store) blob(repo, mediaType string, content []byte) ocispec.Descriptor {
	s.t.Helper()
	up, err := s.repo(repo).NewUpload(s.ctx, "")
	if err != nil {
		s.t.Fatal(err)
	}
	d := digest.FromBytes(content)
	if _, err := up.Commit(s.ctx, bytes.NewReader(content), 0, d); err != nil {
		s.t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(content))}
}

// put stores m (an ocispec.Manifest or Index) under ref: a tag, or "" for
// its digest.
func (s *store) put(repo, ref string, m any) ocispec.Descriptor {
	s.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	mt := ocispec.MediaTypeImageManifest
	if _, ok := m.(ocispec.Index); ok {
		mt = ocispec.MediaTypeImageIndex
	}
	d := digest.FromBytes(b)
	s.content[d] = manifestBody{mt, b}
	if ref == "" {
		ref = d.String()
	}
	if _, err := s.repo(repo).PutManifest(s.ctx, ref, mt, b, nil); err != nil {
		s.t.Fatalf("put %s:%s: %v", repo, ref, err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

// tag points tag at the stored manifest d, with the given times.
func (s *store) tag(repo, tag string, d digest.Digest, pushed, pulled time.Time) {
	s.t.Helper()
	c := s.content[d]
	if _, err := s.repo(repo).PutManifest(s.ctx, tag, c.mediaType, c.b, nil); err != nil {
		s.t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
	if s.times[repo] == nil {
		s.times[repo] = map[string]Tag{}
	}
	s.times[repo][tag] = Tag{Name: tag, Digest: d, Pushed: pushed, LastPulled: pulled}
}

// image pushes a manifest with a unique config and the given layers.
func (s *store) image(repo, ref string, layers ...string) ocispec.Descriptor {
	s.n++
	cfg := s.blob(repo, "application/vnd.oci.image.config.v1+json", []byte(fmt.Sprintf(`{"n":%d}`, s.n)))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, s.blob(repo, "application/vnd.oci.image.layer.v1.tar+gzip", []byte(l)))
	}
	return s.put(repo, ref, m)
}

func (s *store) index(repo, ref string, children ...ocispec.Descriptor) ocispec.Descriptor {
	ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	ix.SchemaVersion = 2
	return s.put(repo, ref, ix)
}

// artifact pushes a signature-like artifact, with subject when not nil.
func (s *store) artifact(repo, ref string, subject *ocispec.Descriptor) ocispec.Descriptor {
	s.n++
	empty := s.blob(repo, "application/vnd.oci.empty.v1+json", []byte("{}"))
	sig := s.blob(repo, "application/vnd.example.sig", []byte(fmt.Sprintf("sig-%d", s.n)))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig",
		Config: empty, Layers: []ocispec.Descriptor{sig}, Subject: subject}
	m.SchemaVersion = 2
	return s.put(repo, ref, m)
}

// source is the runner's TagSource: the storage's tags with the model's
// times.
func (s *store) source(ctx context.Context, repo *storage.Repository) ([]Tag, error) {
	tags, err := StorageTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	for i, t := range tags {
		if m, ok := s.times[repo.Name()][t.Name]; ok && m.Digest == t.Digest {
			tags[i].Pushed, tags[i].LastPulled = m.Pushed, m.LastPulled
		}
	}
	return tags, nil
}

// runner returns a runner over the counting driver, as a separate process
// would have (its own Registry, cold caches).
func (s *store) runner(e *Engine, at time.Time) *Runner {
	return NewRunner(storage.New(s.count, storage.Options{}), e, Options{Tags: s.source, Now: func() time.Time { return at }, Workers: 3})
}

// state is what a client could see of the store: tags and revisions.
type state map[string]repoState

type repoState struct {
	tags map[string]digest.Digest
	revs map[digest.Digest]bool
}

func (s *store) state() state {
	s.t.Helper()
	reg := storage.New(s.base, storage.Options{})
	out := state{}
	err := reg.WalkRepositories(s.ctx, func(repo *storage.Repository) error {
		tags, err := repo.TagsAndTargets(s.ctx)
		if err != nil {
			return err
		}
		rs := repoState{tags: tags, revs: map[digest.Digest]bool{}}
		err = repo.Revisions(s.ctx, func(d digest.Digest) error { rs.revs[d] = true; return nil })
		out[repo.Name()] = rs
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// dump is every path in the store with its content, to compare stores
// byte for byte.
func dump(t testing.TB, d driver.StorageDriver) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx := context.Background()
	err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if fi.IsDir() {
			out[fi.Path()+"/"] = ""
			return nil
		}
		r, err := d.Reader(ctx, fi.Path(), 0)
		if err != nil {
			return err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		out[fi.Path()] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
