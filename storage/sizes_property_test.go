package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// randomStore pushes, through the storage API, repositories that share
// layers (and some manifests), with multi-arch indexes, referrers,
// untagged manifests, and a few deletes.
type randomStore struct {
	t    *testing.T
	ctx  context.Context
	rng  *rand.Rand
	reg  *storage.Registry
	pool []ocispec.Descriptor // shared layers, pushed on demand
	// manifests pushed anywhere, to push again elsewhere.
	shared [][]byte
	n      int
}

func (s *randomStore) repo(name string) *storage.Repository {
	repo, err := s.reg.Repository(name)
	if err != nil {
		s.t.Fatal(err)
	}
	return repo
}

// blob pushes content into the repository and returns its descriptor.
func (s *randomStore) blob(name string, content []byte, mt string) ocispec.Descriptor {
	d := digest.FromBytes(content)
	up, err := s.repo(name).NewUpload(s.ctx, "")
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := up.Commit(s.ctx, strings.NewReader(string(content)), 0, d); err != nil {
		s.t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(content))}
}

func (s *randomStore) unique() string { s.n++; return fmt.Sprint(s.n) }

func (s *randomStore) layer(name string) ocispec.Descriptor {
	if len(s.pool) > 0 && s.rng.IntN(3) > 0 {
		// A shared layer: linked into this repository by pushing it.
		l := s.pool[s.rng.IntN(len(s.pool))]
		content := []byte(strings.Repeat("L", int(l.Size)-len(l.Annotations["seed"])) + l.Annotations["seed"])
		s.blob(name, content, l.MediaType)
		return ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}
	}
	seed := s.unique()
	size := 10 + s.rng.IntN(5000)
	content := []byte(strings.Repeat("L", size-len(seed)) + seed)
	d := s.blob(name, content, ocispec.MediaTypeImageLayer)
	if s.rng.IntN(2) == 0 {
		d2 := d
		d2.Annotations = map[string]string{"seed": seed}
		s.pool = append(s.pool, d2)
	}
	return d
}

func (s *randomStore) put(name, ref string, v any) digest.Digest {
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.putBytes(name, ref, b)
}

func (s *randomStore) putBytes(name, ref string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	if ref == "" {
		ref = d.String()
	}
	if _, err := s.repo(name).PutManifest(s.ctx, ref, "", b, nil); err != nil {
		s.t.Fatalf("put %s:%s: %v", name, ref, err)
	}
	s.shared = append(s.shared, b)
	return d
}

func (s *randomStore) image(name, ref string, subject *ocispec.Descriptor) ocispec.Descriptor {
	cfg := s.blob(name, []byte(`{"architecture":"amd64","os":"linux","n":"`+s.unique()+`"}`), ocispec.MediaTypeImageConfig)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Subject: subject}
	m.SchemaVersion = 2
	for range s.rng.IntN(4) {
		m.Layers = append(m.Layers, s.layer(name))
	}
	if subject != nil {
		m.ArtifactType = "application/vnd.example.sig"
		m.Layers = append(m.Layers, s.blob(name, []byte("sig "+s.unique()), "application/octet-stream"))
	}
	b, _ := json.Marshal(m)
	d := s.putBytes(name, ref, b)
	return ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(b))}
}

func (s *randomStore) index(name, ref string) ocispec.Descriptor {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i := range 1 + s.rng.IntN(3) {
		c := s.image(name, "", nil)
		c.Platform = &ocispec.Platform{OS: "linux", Architecture: []string{"amd64", "arm64", "s390x"}[i]}
		idx.Manifests = append(idx.Manifests, c)
	}
	b, _ := json.Marshal(idx)
	d := s.putBytes(name, ref, b)
	return ocispec.Descriptor{MediaType: idx.MediaType, Digest: d, Size: int64(len(b))}
}

// build fills the store.
func (s *randomStore) build() []string {
	names := []string{"a", "a/b", "c", "team/x", "team/y", "team/z/deep"}
	names = names[:3+s.rng.IntN(len(names)-2)]
	for _, name := range names {
		var tops []ocispec.Descriptor
		for range 1 + s.rng.IntN(5) {
			ref := ""
			if s.rng.IntN(3) > 0 {
				ref = "t" + s.unique()
			}
			switch k := s.rng.IntN(10); {
			case k < 3:
				tops = append(tops, s.index(name, ref))
			case k < 4 && len(s.shared) > 0:
				// A manifest another repository has: pushed here too
				// (its blobs must be linked first).
				b := s.shared[s.rng.IntN(len(s.shared))]
				refs, _ := storage.ParseReferences(b)
				if len(refs.Manifests) > 0 {
					continue // an index's children would need pushing too
				}
				ok := true
				for _, bd := range refs.Blobs {
					if err := s.linkFromAnywhere(name, bd); err != nil {
						ok = false
					}
				}
				if ok {
					s.putBytes(name, ref, b)
				}
			default:
				tops = append(tops, s.image(name, ref, nil))
			}
		}
		// Referrers of some of them.
		for _, top := range tops {
			if s.rng.IntN(3) == 0 {
				subj := top
				s.image(name, "", &subj)
			}
		}
		// Some deletes.
		repo := s.repo(name)
		tags, _, err := repo.Tags(s.ctx, "", -1)
		if err == nil && len(tags) > 1 && s.rng.IntN(3) == 0 {
			if err := repo.DeleteTag(s.ctx, tags[0]); err != nil {
				s.t.Fatal(err)
			}
		}
		if len(tops) > 1 && s.rng.IntN(4) == 0 {
			if err := repo.DeleteManifest(s.ctx, tops[len(tops)-1].Digest); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	return names
}

// linkFromAnywhere links blob d into name by mounting it from wherever it
// is stored.
func (s *randomStore) linkFromAnywhere(name string, d digest.Digest) error {
	var from string
	_ = s.reg.WalkRepositories(s.ctx, func(repo *storage.Repository) error {
		if _, err := repo.StatBlob(s.ctx, d); err == nil && from == "" {
			from = repo.Name()
		}
		return nil
	})
	if from == "" {
		return fmt.Errorf("no repository has %s", d)
	}
	_, err := s.repo(name).MountBlob(s.ctx, s.repo(from), d)
	return err
}

// collect runs the offline collector through reg (whose size index sees
// the revisions it removes, as the online collector's would).
func collect(t *testing.T, reg *storage.Registry, untagged bool) gc.Report {
	t.Helper()
	rep, err := gc.Run(context.Background(), reg, gc.Options{DeleteUntagged: untagged})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The property of exclusive bytes: what a collection frees after deleting
// a repository (a namespace prefix, a manifest) is exactly what the
// index said was exclusive to it, on random stores with shared layers,
// shared manifests, multi-arch indexes and referrers, with every revision
// alive and with DeleteUntagged.
func TestExclusiveBytesAreWhatCollectionFrees(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		for _, untagged := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/untagged=%v", seed, untagged), func(t *testing.T) {
				testExclusive(t, uint64(seed), untagged)
			})
		}
	}
}

func testExclusive(t *testing.T, seed uint64, untagged bool) {
	ctx := context.Background()
	d := inmemory.New()
	opts := storage.Options{SizesDeleteUntagged: untagged, TombstoneRefresh: time.Millisecond}
	rs := &randomStore{t: t, ctx: ctx, rng: rand.New(rand.NewPCG(seed, 7)), reg: storage.New(d, opts)}
	// The index of the registry that pushed is warm: sizes taken before
	// the build must follow its changes.
	if _, err := rs.reg.Usage(ctx, ""); err != nil {
		t.Fatal(err)
	}
	names := rs.build()
	collect(t, rs.reg, untagged) // nothing left but what is alive

	// After a collection everything stored is alive. (The warm index's
	// total is the one it walked before the build: kept a minute.)
	u, err := storage.New(d, opts).Usage(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Unique != u.Total || u.Exclusive != u.Unique || u.Logical < u.Unique {
		t.Fatalf("registry usage %+v: unique must be the store's total after a collection", u)
	}
	if warm, err := rs.reg.Usage(ctx, ""); err != nil || warm.Size != u.Size || warm.Repositories != u.Repositories {
		t.Fatalf("warm index %+v (%v), fresh %+v", warm, err, u)
	}

	// Pick what to delete: a repository, a prefix, or a manifest.
	fresh := storage.New(d, opts)
	switch k := rs.rng.IntN(3); {
	case k == 0:
		victim := names[rs.rng.IntN(len(names))]
		if _, err := fresh.Repository(victim); err != nil {
			t.Fatal(err)
		}
		size, err := rs.reg.RepositorySize(ctx, victim)
		if errNameUnknown(err) {
			t.Skip("the victim lost every manifest")
		}
		if err != nil {
			t.Fatal(err)
		}
		size2, err := fresh.RepositorySize(ctx, victim)
		if err != nil || size2 != size {
			t.Fatalf("warm index %+v, fresh %+v (%v)", size, size2, err)
		}
		if _, err := rs.reg.DeleteRepository(ctx, victim); err != nil {
			t.Fatal(err)
		}
		if freed := collect(t, rs.reg, untagged).BytesReclaimed; freed != size.Exclusive {
			t.Fatalf("repository %s: exclusive %d, a collection after deleting it freed %d (size %+v)", victim, size.Exclusive, freed, size)
		}
	case k == 1:
		prefix := []string{"a", "team/", "c", ""}[rs.rng.IntN(4)]
		u, err := fresh.Usage(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var sumExcl int64
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				size, err := fresh.RepositorySize(ctx, n)
				if errNameUnknown(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				sumExcl += size.Exclusive
				if _, err := rs.reg.DeleteRepository(ctx, n); err != nil {
					t.Fatal(err)
				}
			}
		}
		if u.Exclusive < sumExcl {
			t.Fatalf("prefix %q: exclusive %d less than its repositories' %d", prefix, u.Exclusive, sumExcl)
		}
		if freed := collect(t, rs.reg, untagged).BytesReclaimed; freed != u.Exclusive {
			t.Fatalf("prefix %q: exclusive %d, a collection after deleting it freed %d", prefix, u.Exclusive, freed)
		}
	default:
		victim := names[rs.rng.IntN(len(names))]
		repo, _ := rs.reg.Repository(victim)
		var revs []digest.Digest
		_ = repo.Revisions(ctx, func(d digest.Digest) error { revs = append(revs, d); return nil })
		if len(revs) == 0 {
			t.Skip("no manifest")
		}
		sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
		m := revs[rs.rng.IntN(len(revs))]
		imp, err := repo.ManifestImpact(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		tags, _ := repo.TagsAndTargets(ctx)
		var want []string
		for tg, td := range tags {
			if td == m {
				want = append(want, tg)
			}
		}
		sort.Strings(want)
		if !slices.Equal(imp.Tags, want) && !(len(want) == 0 && len(imp.Tags) == 0) {
			t.Fatalf("impact tags %v, want %v", imp.Tags, want)
		}
		if err := repo.DeleteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		if freed := collect(t, rs.reg, untagged).BytesReclaimed; freed != imp.Exclusive {
			t.Fatalf("manifest %s@%s: impact %d, a collection after deleting it freed %d", victim, m, imp.Exclusive, freed)
		}
	}
	// And the index that saw it all agrees with a fresh one.
	for _, prefix := range []string{"", "a", "team/"} {
		u1, err1 := rs.reg.Usage(ctx, prefix)
		u2, err2 := storage.New(d, opts).Usage(ctx, prefix)
		if err1 != nil || err2 != nil || u1.Size != u2.Size || u1.Repositories != u2.Repositories {
			t.Fatalf("prefix %q: warm %+v (%v), fresh %+v (%v)", prefix, u1, err1, u2, err2)
		}
	}
}

func errNameUnknown(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NAME_UNKNOWN")
}
