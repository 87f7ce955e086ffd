package gc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
)

// The property: after any sequence of pushes (layers shared across
// repositories, indexes, nested indexes, artifacts with subjects, referrers
// of referrers), tag moves, manifest and tag deletions, a collection
//   - in dry run changes nothing and lists exactly what the run removes;
//   - keeps every tag pullable, byte for byte, with everything reachable
//     from it (children, config, layers, referrers);
//   - removes exactly the revisions an independent model says are dead
//     (none without DeleteUntagged);
//   - leaves no blob that no live manifest references, and every one that
//     one does;
//   - leaves no link to a blob that is gone.
// The store stays usable: each seed runs several rounds of operations and
// collections on the same store.

type mManifest struct {
	content   []byte
	mediaType string
	blobs     []digest.Digest // config and layers
	children  []digest.Digest
	subject   digest.Digest
}

type mRepo struct {
	revs map[digest.Digest]bool
	tags map[string]digest.Digest
}

type model struct {
	manifests map[digest.Digest]*mManifest
	blobs     map[digest.Digest][]byte
	repos     map[string]*mRepo
}

func (m *model) repo(name string) *mRepo {
	r := m.repos[name]
	if r == nil {
		r = &mRepo{revs: map[digest.Digest]bool{}, tags: map[string]digest.Digest{}}
		m.repos[name] = r
	}
	return r
}

func sortedDigests(set map[digest.Digest]bool) []digest.Digest {
	out := make([]digest.Digest, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sortDigests(out)
	return out
}

func sortedTags(r *mRepo) []string {
	out := make([]string, 0, len(r.tags))
	for t := range r.tags {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// live is the model's answer, written from the rules, not from the code:
// the roots, then to a fixpoint the children of live indexes and the
// revisions whose subject is live.
func (m *model) live(name string, deleteUntagged bool) map[digest.Digest]bool {
	r := m.repos[name]
	var work []digest.Digest
	if deleteUntagged {
		for _, d := range r.tags {
			work = append(work, d)
		}
	} else {
		work = sortedDigests(r.revs)
	}
	live := map[digest.Digest]bool{}
	for len(work) > 0 {
		d := work[0]
		work = work[1:]
		if live[d] {
			continue
		}
		live[d] = true
		work = append(work, m.manifests[d].children...)
		for rev := range r.revs {
			if m.manifests[rev].subject == d {
				work = append(work, rev)
			}
		}
	}
	return live
}

type propEnv struct {
	*env
	m      *model
	rnd    *rand.Rand
	layers [][]byte
	names  []string
	tags   []string
}

func (p *propEnv) pickRepo() (string, *mRepo) {
	n := p.names[p.rnd.Intn(len(p.names))]
	return n, p.m.repo(n)
}

func (p *propEnv) pickRev(r *mRepo, ok func(*mManifest) bool) (digest.Digest, bool) {
	var cands []digest.Digest
	for _, d := range sortedDigests(r.revs) {
		if ok == nil || ok(p.m.manifests[d]) {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		return "", false
	}
	return cands[p.rnd.Intn(len(cands))], true
}

func (p *propEnv) maybeTag(chance float64) string {
	if p.rnd.Float64() < chance {
		return p.tags[p.rnd.Intn(len(p.tags))]
	}
	return ""
}

// put stores a manifest through the API and records it in the model.
func (p *propEnv) put(name, tag string, v any, mm *mManifest) {
	b, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	ref := tag
	if ref == "" {
		ref = d.String()
	}
	if _, err := p.repo(name).PutManifest(p.ctx, ref, mm.mediaType, b, nil); err != nil {
		p.t.Fatalf("put %s:%s: %v", name, ref, err)
	}
	mm.content = b
	p.m.manifests[d] = mm
	r := p.m.repo(name)
	r.revs[d] = true
	if tag != "" {
		r.tags[tag] = d
	}
}

func (p *propEnv) blob(name, mediaType string, content []byte) ocispec.Descriptor {
	desc := p.pushBlob(name, mediaType, content)
	p.m.blobs[desc.Digest] = content
	return desc
}

func (p *propEnv) pushImage() {
	name, _ := p.pickRepo()
	cfg := p.blob(name, mtConfig, p.unique("config"))
	mm := &mManifest{mediaType: ocispec.MediaTypeImageManifest, blobs: []digest.Digest{cfg.Digest}}
	img := ocispec.Manifest{MediaType: mm.mediaType, Config: cfg, Layers: []ocispec.Descriptor{}}
	img.SchemaVersion = 2
	for i, n := 0, 1+p.rnd.Intn(3); i < n; i++ {
		l := p.blob(name, mtLayer, p.layers[p.rnd.Intn(len(p.layers))])
		img.Layers = append(img.Layers, l)
		mm.blobs = append(mm.blobs, l.Digest)
	}
	p.put(name, p.maybeTag(0.6), img, mm)
}

func (p *propEnv) pushIndex() {
	name, r := p.pickRepo()
	mm := &mManifest{mediaType: ocispec.MediaTypeImageIndex}
	ix := ocispec.Index{MediaType: mm.mediaType, Manifests: []ocispec.Descriptor{}}
	ix.SchemaVersion = 2
	for i, n := 0, 1+p.rnd.Intn(3); i < n; i++ {
		d, ok := p.pickRev(r, func(c *mManifest) bool { return c.subject == "" })
		if !ok {
			return
		}
		c := p.m.manifests[d]
		ix.Manifests = append(ix.Manifests, ocispec.Descriptor{MediaType: c.mediaType, Digest: d, Size: int64(len(c.content))})
		mm.children = append(mm.children, d)
	}
	ix.Annotations = map[string]string{"n": string(p.unique("ix"))}
	p.put(name, p.maybeTag(0.7), ix, mm)
}

func (p *propEnv) pushArtifact() {
	name, r := p.pickRepo()
	var subject ocispec.Descriptor
	if d, ok := p.pickRev(r, nil); ok && p.rnd.Float64() < 0.85 {
		s := p.m.manifests[d]
		subject = ocispec.Descriptor{MediaType: s.mediaType, Digest: d, Size: int64(len(s.content))}
	} else {
		// A subject that is not (yet) in the repository.
		subject = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(p.unique("nowhere")), Size: 1}
	}
	empty := p.blob(name, mtEmpty, []byte("{}"))
	sig := p.blob(name, "application/vnd.example.sig", p.unique("sig"))
	mm := &mManifest{mediaType: ocispec.MediaTypeImageManifest, blobs: []digest.Digest{empty.Digest, sig.Digest}, subject: subject.Digest}
	a := ocispec.Manifest{MediaType: mm.mediaType, ArtifactType: "application/vnd.example.sig", Config: empty,
		Layers: []ocispec.Descriptor{sig}, Subject: &subject}
	a.SchemaVersion = 2
	p.put(name, p.maybeTag(0.15), a, mm)
}

// retag points a tag at an existing revision by putting it again. An index
// whose children have been deleted since is refused, as it must be.
func (p *propEnv) retag() {
	name, r := p.pickRepo()
	d, ok := p.pickRev(r, nil)
	if !ok {
		return
	}
	mm := p.m.manifests[d]
	tag := p.tags[p.rnd.Intn(len(p.tags))]
	wantErr := false
	for _, c := range mm.children {
		if !r.revs[c] {
			wantErr = true
		}
	}
	_, err := p.repo(name).PutManifest(p.ctx, tag, mm.mediaType, mm.content, nil)
	if wantErr {
		if !errcode.Is(err, errcode.ManifestBlobUnknown) {
			p.t.Fatalf("retag of an index with deleted children: %v", err)
		}
		return
	}
	if err != nil {
		p.t.Fatalf("retag %s:%s -> %s: %v", name, tag, d, err)
	}
	r.tags[tag] = d
}

func (p *propEnv) deleteManifest() {
	name, r := p.pickRepo()
	d, ok := p.pickRev(r, nil)
	if !ok {
		return
	}
	if err := p.repo(name).DeleteManifest(p.ctx, d); err != nil {
		p.t.Fatalf("delete %s@%s: %v", name, d, err)
	}
	delete(r.revs, d)
	for t, td := range r.tags {
		if td == d {
			delete(r.tags, t)
		}
	}
}

func (p *propEnv) deleteTag() {
	name, r := p.pickRepo()
	tags := sortedTags(r)
	if len(tags) == 0 {
		return
	}
	t := tags[p.rnd.Intn(len(tags))]
	if err := p.repo(name).DeleteTag(p.ctx, t); err != nil {
		p.t.Fatalf("delete tag %s:%s: %v", name, t, err)
	}
	delete(r.tags, t)
}

func (p *propEnv) step() {
	switch x := p.rnd.Intn(100); {
	case x < 32:
		p.pushImage()
	case x < 45:
		p.pushIndex()
	case x < 62:
		p.pushArtifact()
	case x < 72:
		p.retag()
	case x < 86:
		p.deleteManifest()
	default:
		p.deleteTag()
	}
}

// collectAndCheck runs a dry run, then the collection, and checks the
// property against the model; it updates the model with the removals.
func (p *propEnv) collectAndCheck(deleteUntagged bool) {
	t := p.t
	before := snapshot(t, p.d)
	dry := p.gc(Options{DryRun: true, DeleteUntagged: deleteUntagged})
	if diff := diffSnapshots(before, snapshot(t, p.d)); diff != "" {
		t.Fatalf("dry run changed the store:\n%s", diff)
	}
	rep := p.gc(Options{DeleteUntagged: deleteUntagged, ListRemoved: true})
	if !reflect.DeepEqual(dry.Removed, rep.Removed) {
		t.Fatalf("dry run listed %d items, run removed %d:\n%v\n%v", len(dry.Removed), len(rep.Removed), dry.Removed, rep.Removed)
	}
	if len(rep.Warnings) != 0 {
		t.Fatalf("warnings: %v", rep.Warnings)
	}

	// What the model says must stay, per repository and globally.
	needed := map[digest.Digest]bool{}
	liveByRepo := map[string]map[digest.Digest]bool{}
	removed := 0
	for name, r := range p.m.repos {
		live := p.m.live(name, deleteUntagged)
		liveByRepo[name] = live
		for d := range live {
			needed[d] = true
			for _, b := range p.m.manifests[d].blobs {
				needed[b] = true
			}
		}
		for _, d := range sortedDigests(r.revs) {
			if live[d] {
				continue
			}
			if !deleteUntagged {
				t.Fatalf("model: %s@%s is a revision but not live", name, d)
			}
			// Dead: it must be gone.
			if _, err := p.repo(name).GetManifest(p.ctx, d.String()); !storage.ErrNotFound(err) {
				t.Fatalf("%s@%s should have been removed: %v", name, d, err)
			}
			delete(r.revs, d)
			removed++
		}
	}
	if rep.ManifestsRemoved != removed {
		t.Fatalf("removed %d manifests, the model says %d", rep.ManifestsRemoved, removed)
	}

	// Every blob left is needed, and every needed one is there.
	inStore := p.blobs()
	for d := range inStore {
		if !needed[d] {
			t.Errorf("blob %s left though no live manifest references it", d)
		}
	}
	for d := range needed {
		if _, ok := inStore[d]; !ok {
			t.Errorf("needed blob %s was removed", d)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for name, r := range p.m.repos {
		repo := p.repo(name)
		// Tags resolve to what was pushed.
		for _, tag := range sortedTags(r) {
			m, err := repo.GetManifest(p.ctx, tag)
			if err != nil {
				t.Fatalf("%s:%s: %v", name, tag, err)
			}
			if m.Digest != r.tags[tag] || !bytes.Equal(m.Content, p.m.manifests[m.Digest].content) {
				t.Fatalf("%s:%s resolves to %s, want %s", name, tag, m.Digest, r.tags[tag])
			}
		}
		// Every live manifest that is a revision reads back with its blobs,
		// and its referrers are listed.
		for d := range liveByRepo[name] {
			mm := p.m.manifests[d]
			if !r.revs[d] {
				continue // a deleted child of a live index: content kept, not pullable
			}
			m, err := repo.GetManifest(p.ctx, d.String())
			if err != nil || !bytes.Equal(m.Content, mm.content) {
				t.Fatalf("%s@%s: %v", name, d, err)
			}
			for _, b := range mm.blobs {
				got, err := p.readBlob(name, b)
				if err != nil || !bytes.Equal(got, p.m.blobs[b]) {
					t.Fatalf("%s@%s: blob %s: %v", name, d, b, err)
				}
			}
			refs, err := repo.Referrers(p.ctx, d, "")
			if err != nil {
				t.Fatal(err)
			}
			var got, want []digest.Digest
			for _, rd := range refs {
				got = append(got, rd.Digest)
			}
			for _, rev := range sortedDigests(r.revs) {
				if p.m.manifests[rev].subject == d {
					want = append(want, rev)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("referrers of %s@%s: %v, want %v", name, d, got, want)
			}
		}
		// No link names a blob that is gone.
		if err := repo.LayerLinks(p.ctx, func(d digest.Digest) error {
			if _, ok := inStore[d]; !ok {
				return fmt.Errorf("%s links %s, which is gone", name, d)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPropertyCollection(t *testing.T) {
	const rounds = 3
	for _, drv := range drivers {
		for seed := int64(1); seed <= drv.seeds; seed++ {
			for _, mode := range drv.modes {
				t.Run(fmt.Sprintf("%s/seed=%d/%s", drv.name, seed, mode), func(t *testing.T) {
					t.Parallel()
					if testing.Short() && drv.name != "inmemory" {
						t.Skip("synced writes are slow; -short checks the in-memory driver only")
					}
					checkProperty(t, newEnvOn(t, drv.new(t)), seed, mode, rounds, drv.ops)
				})
			}
		}
	}
}

func checkProperty(t *testing.T, e *env, seed int64, mode string, rounds, opsPerRound int) {
	p := &propEnv{
		env:   e,
		m:     &model{manifests: map[digest.Digest]*mManifest{}, blobs: map[digest.Digest][]byte{}, repos: map[string]*mRepo{}},
		rnd:   rand.New(rand.NewSource(seed)),
		names: []string{"a", "a/b", "lib/x", "c"},
		tags:  []string{"v1", "v2", "latest"},
	}
	for i := 0; i < 8; i++ {
		p.layers = append(p.layers, bytes.Repeat([]byte{byte('a' + i)}, 100+37*i))
	}
	for round := 0; round < rounds; round++ {
		for i := 0; i < opsPerRound; i++ {
			p.step()
		}
		untagged := mode == "delete-untagged" || (mode == "alternate" && round%2 == 1)
		p.collectAndCheck(untagged)
	}
}
