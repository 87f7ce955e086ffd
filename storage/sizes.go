package storage

// Sizes that know about deduplication.
//
// Three ways of counting the bytes of a scope (a repository, a namespace
// prefix, the registry):
//
//   - logical: the size of every image in scope, a shared blob counted
//     once per image. An image is a manifest revision that is not a child
//     of another revision of its repository (an index's platforms are part
//     of the index's image), with its config, layers and children;
//   - unique: each distinct manifest and blob the scope keeps alive,
//     counted once;
//   - exclusive: what the scope keeps alive and nothing outside it does:
//     what deleting the scope, then collecting, frees.
//
// "Alive" is the garbage collector's mark (gc.markRepo), repository by
// repository: every revision (or, with DeleteUntagged, every tagged
// manifest and the referrers of live manifests) and, through indexes,
// their children, configs and layers. A repository's live set depends on
// nothing outside it, so deleting one repository leaves the others'
// unchanged, and what the collection frees is exactly the part of its
// live set no other repository's holds.
//
// The index. Manifests are read once and kept parsed by digest (their
// content never changes): per manifest its blobs, children, subject and
// size. Per repository the index keeps its revisions as last listed and
// its live set (an array of interned digests), and per digest the number
// of repositories whose live set holds it, so that a repository's
// exclusive bytes are the bytes of its digests held by one repository.
// A repository's state is checked on use: a listing of its revisions
// directory (on a watched filesystem a memory read; elsewhere a stat or,
// on S3, a LIST), at most once a second; a change re-reads its revisions
// and only the manifests not yet known. This process's own pushes and
// deletes invalidate it at once.
//
// Cost: memory of about 100 bytes per distinct digest, plus per manifest
// its parsed references, plus 4 bytes per digest per repository whose
// live set holds it; a request costs one revisions listing per
// repository in scope and arithmetic over their live sets; the first
// request after a start reads every manifest in scope once (what a
// collection's mark reads). Blob sizes come from the descriptors that
// reference them (a descriptor that lies about its size is counted as it
// claims), except foreign layers (descriptors with URLs), which count
// only when the store has them. The store's total (Usage.Total) is a walk
// of the content store, kept for a minute.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
)

// Size counts the bytes of a scope three ways (see above).
type Size struct {
	Logical   int64
	Unique    int64
	Exclusive int64
}

// Usage is the size of a namespace prefix or of the registry.
type Usage struct {
	Prefix       string
	Repositories int
	Size
	// Total is the bytes of every blob in the content store, live or not.
	Total int64
}

// RepositorySummary is what the admin API lists per repository.
type RepositorySummary struct {
	Name     string
	TagCount int
	// Manifests counts its manifest revisions, tagged or not (index
	// children and referrers included): what a repository delete removes.
	Manifests  int
	LastPushed time.Time // zero when no tag has a known push time
	Size       Size
	// Sized is false while the size index is in its first sync after a
	// start (Size is then zero).
	Sized bool
}

// ImageInfo describes the image of a manifest.
type ImageInfo struct {
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	// Platforms are os/architecture[/variant]: an index's children's, or
	// an image's config's.
	Platforms []string
	// Size is the image's logical size: the manifest, its config and
	// layers and, for an index, its children's images.
	Size int64
}

// Impact is what deleting a manifest by digest takes along.
type Impact struct {
	Digest    digest.Digest
	Tags      []string             // tags pointing at it, deleted with it
	Referrers []ocispec.Descriptor // manifests whose subject it is
	// Exclusive is what the delete, then a collection, frees.
	Exclusive int64
}

const (
	// sizeRecheck is how long a repository's state is used without
	// listing its revisions again.
	sizeRecheck = time.Second
	// summaryMaxAge is how often the whole index is checked against the
	// catalog (in the background): what another writer than registryd
	// changed shows within it (registryd instances' changes come through
	// the change log at the next request, changelog.go).
	summaryMaxAge = 30 * time.Second
	// sizesFirstWait is how long after the start of the index's first
	// sync a page of summaries waits for it; past it pages come without
	// sizes, at once, while the sync goes on (at 100,000 repositories it
	// takes tens of seconds: a page must not wait that, nor this at
	// every request meanwhile).
	sizesFirstWait = 2 * time.Second
	// totalMaxAge is how long the content store's total is kept.
	totalMaxAge = time.Minute
)

// sizeIndex is the index of a Registry (see above).
type sizeIndex struct {
	// first is closed when the first sync after a start has ended
	// (sizesReady).
	firstOnce  sync.Once
	first      chan struct{}
	firstStart time.Time

	mu    sync.Mutex
	ids   map[digest.Digest]uint32
	nodes []sizeNode
	repos map[string]*repoSizes
	// gen changes whenever some node's count does: cached exclusive
	// figures computed under another gen are stale.
	gen uint64

	// synced is when the index was last made complete (syncSizes);
	// pending are the repositories this process changed since.
	synced  time.Time
	pending map[string]bool
	syncing bool // a background sync is under way

	totalMu  sync.Mutex
	total    int64
	totalAt  time.Time
	untagged bool // roots as gc's DeleteUntagged
}

type sizeNode struct {
	d digest.Digest
	// size is the bytes the store holds under d: what collecting it
	// frees (0 for a manifest not in the store).
	size int64
	// claimed is an index's descriptor's size for a child manifest, the
	// child's logical size while it is not in the store.
	claimed int64
	// sized is set once size is known (from a descriptor, or the
	// manifest's own length).
	sized bool
	// count is the number of repositories whose live set holds it.
	count int32
	m     *manifestNode // set once the manifest was read
}

type manifestNode struct {
	missing      bool // not in the store, or not a manifest: no references
	mediaType    string
	artifactType string
	subject      digest.Digest
	blobs        []uint32 // config and layers
	children     []uint32 // an index's manifests
	// platforms of an index's children; an image's come from its config,
	// read when asked (platformsRead).
	platforms     []string
	platformsRead bool
	config        digest.Digest
	// imageSize memoises the image's logical size (0: not yet).
	imageSize int64
}

type repoSizes struct {
	revs    []digest.Digest // as last listed, sorted
	tags    map[string]digest.Digest
	live    []uint32 // sorted
	unique  int64
	logical int64
	excl    int64
	exclGen uint64
	checked time.Time
	dirty   bool
	listing []string // tags and revision directories as listed
}

func newSizeIndex(untagged bool) *sizeIndex {
	return &sizeIndex{ids: map[digest.Digest]uint32{}, repos: map[string]*repoSizes{}, pending: map[string]bool{}, untagged: untagged}
}

// id interns d; s.mu is held.
func (s *sizeIndex) id(d digest.Digest) uint32 {
	if i, ok := s.ids[d]; ok {
		return i
	}
	i := uint32(len(s.nodes))
	s.nodes = append(s.nodes, sizeNode{d: d})
	s.ids[d] = i
	return i
}

// invalidate forgets what is known of the repository's roots (its own
// writes call it).
func (r *Registry) invalidateSizes(name string) {
	s := r.sizes
	s.mu.Lock()
	if rs := s.repos[name]; rs != nil {
		rs.dirty = true
	}
	s.pending[name] = true
	s.mu.Unlock()
}

// dropSizes forgets the repository: it no longer holds anything alive.
func (r *Registry) dropSizes(name string) {
	s := r.sizes
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.repos[name]; old != nil {
		s.swapLive(old, &repoSizes{})
		delete(s.repos, name)
	}
	delete(s.pending, name)
}

// syncSizes makes the index complete, as exclusive figures need: every
// repository in the catalog is in it (a digest held by a repository the
// index does not know would count as exclusive to another). The
// repositories this process changed are read again at once; the whole
// catalog, at most once per summaryMaxAge (or with names, the catalog the
// caller just read): repositories new to the index are read, those that
// left the catalog (deleted, or emptied by a collection, here or
// elsewhere) stop holding their digests, and every other is checked by
// its listing. So this process's changes show in the figures at once,
// other registryd instances' at the next request (their change log
// entries mark the repositories, changelog.go), other writers' within
// summaryMaxAge.
func (r *Registry) syncSizes(ctx context.Context, names []string) error {
	if names == nil {
		// The first sync after a start is shared (sizesReady).
		select {
		case <-r.sizesReady():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r.syncSizesNow(ctx, names)
}

// syncSizesNow is syncSizes without waiting for the first sync.
func (r *Registry) syncSizesNow(ctx context.Context, names []string) error {
	s := r.sizes
	s.mu.Lock()
	never := s.synced.IsZero()
	due := never || time.Since(s.synced) >= summaryMaxAge
	pending := slices.Collect(maps.Keys(s.pending))
	clear(s.pending)
	background := names == nil && due && !never && !s.syncing
	if background {
		s.syncing = true
	}
	s.mu.Unlock()
	if background {
		// The index is complete, if up to summaryMaxAge old: the request
		// goes on with it (a page stays a page's work) while a full sync
		// runs behind it.
		go func() {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
			defer cancel()
			_ = r.syncSizesNow(bg, nil)
			s.mu.Lock()
			s.syncing = false
			s.mu.Unlock()
		}()
	}
	if names == nil && (!due || background) {
		return r.refreshRepos(ctx, pending)
	}
	if names == nil {
		// The name index has the catalog (nameindex.go); a walk of the
		// store where it cannot be kept.
		var err error
		if err = r.syncIndexes(ctx); err == nil {
			names, err = r.syncNames(ctx)
		}
		if err != nil {
			if names, _, err = r.Catalog(ctx, "", -1, nil); err != nil {
				return err
			}
		}
		names = slices.DeleteFunc(slices.Clone(names), r.deleting)
	}
	started := time.Now()
	in := make(map[string]bool, len(names))
	for _, n := range names {
		in[n] = true
	}
	s.mu.Lock()
	for name, rs := range s.repos {
		if !in[name] {
			s.swapLive(rs, &repoSizes{})
			delete(s.repos, name)
		}
	}
	s.mu.Unlock()
	if err := r.refreshRepos(ctx, append(names, pending...)); err != nil {
		return err
	}
	s.mu.Lock()
	s.synced = started
	s.compact()
	s.mu.Unlock()
	return nil
}

// compact drops the digests no repository holds alive any more (deleted,
// collected, or never more than a subject or a child named by a manifest
// since gone), once they are most of the index, so that a registry that
// runs for years with images coming and going keeps an index the size of
// what it holds. Live digests keep their parsed manifests; the others are
// read again should they come back. s.mu is held.
func (s *sizeIndex) compact() {
	live := 0
	for i := range s.nodes {
		if s.nodes[i].count > 0 {
			live++
		}
	}
	if len(s.nodes) < 1024 || len(s.nodes) < 2*live {
		return
	}
	remap := make([]uint32, len(s.nodes))
	nodes := make([]sizeNode, 0, live)
	for i := range s.nodes {
		remap[i] = ^uint32(0)
		if s.nodes[i].count > 0 {
			remap[i] = uint32(len(nodes))
			nodes = append(nodes, s.nodes[i])
		}
	}
	// A live manifest's blobs and children are live too (its repository
	// holds its closure), so every reference kept is remapped.
	ids := make(map[digest.Digest]uint32, len(nodes))
	for j := range nodes {
		ids[nodes[j].d] = uint32(j)
		if m := nodes[j].m; m != nil {
			m.blobs = remapAll(m.blobs, remap)
			m.children = remapAll(m.children, remap)
		}
	}
	for _, rs := range s.repos {
		rs.live = remapAll(rs.live, remap)
	}
	s.nodes, s.ids = nodes, ids
	s.gen++
}

// remapAll renumbers ids, leaving out those dropped.
func remapAll(ids []uint32, remap []uint32) []uint32 {
	out := ids[:0]
	for _, i := range ids {
		if j := remap[i]; j != ^uint32(0) {
			out = append(out, j)
		}
	}
	return out
}

// refreshRepos brings the named repositories' states up to date; one
// left with no revision is dropped.
func (r *Registry) refreshRepos(ctx context.Context, names []string) error {
	return parallel(ctx, len(names), func(i int) error {
		if ValidateName(names[i]) != nil {
			return nil
		}
		if r.deleting(names[i]) {
			r.dropSizes(names[i])
			return nil
		}
		_, err := r.repoState(ctx, names[i])
		return err
	})
}

// parsedForSizes is what the index reads of a manifest.
type parsedForSizes struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Blobs        []ocispec.Descriptor `json:"blobs"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	FSLayers     []struct {
		BlobSum digest.Digest `json:"blobSum"`
	} `json:"fsLayers"`
}

// loadedManifest is a manifest read outside the lock, to be added.
type loadedManifest struct {
	d       digest.Digest
	size    int64
	missing bool
	p       parsedForSizes
	mt      string
	present map[digest.Digest]int64 // foreign layers found in the store
}

// readManifest reads and parses manifest d for the index.
func (r *Registry) readManifest(ctx context.Context, d digest.Digest) (loadedManifest, error) {
	lm := loadedManifest{d: d}
	b, err := r.ManifestContent(ctx, d)
	if err != nil {
		if ErrNotFound(err) || errors.Is(err, ErrCorruptContent) {
			lm.missing = true
			return lm, nil
		}
		return lm, err
	}
	lm.size = int64(len(b))
	if json.Unmarshal(b, &lm.p) != nil {
		lm.missing = true // stored, but nothing it references is known
		return lm, nil
	}
	_, lm.mt, _ = parseStored(b)
	// Foreign layers count only where the store has them.
	for _, l := range lm.p.Layers {
		if len(l.URLs) > 0 && l.Digest.Validate() == nil {
			if size, ok, err := r.BlobDataSize(ctx, l.Digest); err != nil {
				return lm, err
			} else if ok {
				if lm.present == nil {
					lm.present = map[digest.Digest]int64{}
				}
				lm.present[l.Digest] = size
			}
		}
	}
	return lm, nil
}

// add records lm in the index; s.mu is held.
func (s *sizeIndex) add(lm loadedManifest) {
	i := s.id(lm.d)
	if s.nodes[i].m != nil {
		return
	}
	mn := &manifestNode{missing: lm.missing}
	if !lm.missing {
		s.nodes[i].size, s.nodes[i].sized = lm.size, true
		p := lm.p
		mn.mediaType = lm.mt
		mn.artifactType = p.ArtifactType
		if p.Subject != nil && p.Subject.Digest.Validate() == nil {
			mn.subject = p.Subject.Digest
		}
		blob := func(desc ocispec.Descriptor) {
			if desc.Digest.Validate() != nil {
				return
			}
			j := s.id(desc.Digest)
			mn.blobs = append(mn.blobs, j)
			n := &s.nodes[j]
			if n.sized {
				return
			}
			switch size, ok := lm.present[desc.Digest]; {
			case ok:
				n.size, n.sized = size, true
			case len(desc.URLs) > 0:
				// Foreign and not stored: no bytes, but another
				// descriptor may still size it.
			default:
				n.size, n.sized = max(desc.Size, 0), true
			}
		}
		if p.Config != nil {
			blob(*p.Config)
			mn.config = p.Config.Digest
			if mn.artifactType == "" && !isImageConfigType(p.Config.MediaType) {
				mn.artifactType = p.Config.MediaType
			}
		}
		for _, l := range p.Layers {
			blob(l)
		}
		for _, l := range p.Blobs {
			blob(l)
		}
		for _, l := range p.FSLayers {
			blob(ocispec.Descriptor{Digest: l.BlobSum})
		}
		for _, c := range p.Manifests {
			if c.Digest.Validate() != nil {
				continue
			}
			j := s.id(c.Digest)
			mn.children = append(mn.children, j)
			if s.nodes[j].claimed == 0 {
				s.nodes[j].claimed = max(c.Size, 0)
			}
			if pl := c.Platform; pl != nil && pl.OS != "" && pl.OS != "unknown" {
				mn.platforms = appendUnique(mn.platforms, platformString(pl))
			}
		}
		mn.platformsRead = isIndexType(lm.mt) || p.Config == nil
	}
	s.nodes[i].m = mn
}

func isImageConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == "application/vnd.docker.container.image.v1+json"
}

func platformString(p *ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// ensureManifests reads (outside the lock) the manifests among ds, and
// the children of indexes among them, that the index does not know yet.
func (r *Registry) ensureManifests(ctx context.Context, ds []digest.Digest) error {
	s := r.sizes
	for len(ds) > 0 {
		s.mu.Lock()
		var todo []digest.Digest
		for _, d := range ds {
			if i, ok := s.ids[d]; !ok || s.nodes[i].m == nil {
				todo = append(todo, d)
			}
		}
		s.mu.Unlock()
		if len(todo) == 0 {
			return nil
		}
		loaded := make([]loadedManifest, len(todo))
		if err := parallel(ctx, len(todo), func(i int) error {
			var err error
			loaded[i], err = r.readManifest(ctx, todo[i])
			return err
		}); err != nil {
			return err
		}
		// Next round: the children of the indexes just read.
		ds = ds[:0:0]
		s.mu.Lock()
		for _, lm := range loaded {
			s.add(lm)
			for _, c := range lm.p.Manifests {
				if c.Digest.Validate() == nil {
					ds = append(ds, c.Digest)
				}
			}
		}
		s.mu.Unlock()
	}
	return nil
}

// revisionListing is the cheap check of a repository's revisions: the
// directories below _manifests/revisions, through the listing cache.
func (r *Registry) revisionListing(ctx context.Context, name string) ([]string, error) {
	root := revisionsRoot(name)
	algs, err := r.list(ctx, root)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range algs {
		hs, err := r.list(ctx, a)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, hs...)
	}
	if tags, err := r.list(ctx, tagsRoot(name)); err == nil {
		out = append(out, tags...)
	} else if !isNotFound(err) {
		return nil, err
	}
	return out, nil
}

// repoState returns the repository's state in the index, brought up to
// date. ok is false when the repository has no revision (it is not in the
// catalog). The caller holds no lock.
func (r *Registry) repoState(ctx context.Context, name string) (rs *repoSizes, err error) {
	s := r.sizes
	now := time.Now()
	s.mu.Lock()
	cur := s.repos[name]
	if cur != nil && !cur.dirty && now.Sub(cur.checked) < sizeRecheck {
		s.mu.Unlock()
		return cur, nil
	}
	s.mu.Unlock()
	listing, err := r.revisionListing(ctx, name)
	if err != nil {
		return nil, storageErr(err)
	}
	// With DeleteUntagged the tags are roots: a tag moved between two
	// revisions changes no listing, so they are read every time.
	repo := &Repository{reg: r, name: name}
	var tags map[string]digest.Digest
	if s.untagged {
		if tags, err = repo.TagsAndTargets(ctx); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	if cur = s.repos[name]; cur != nil && !cur.dirty && slices.Equal(cur.listing, listing) && maps.Equal(cur.tags, tags) {
		cur.checked = now
		s.mu.Unlock()
		return cur, nil
	}
	s.mu.Unlock()

	// Changed (or new): read its revisions, and the manifests not known
	// yet.
	var revs []digest.Digest
	if err := repo.Revisions(ctx, func(d digest.Digest) error { revs = append(revs, d); return nil }); err != nil {
		return nil, err
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
	need := append([]digest.Digest(nil), revs...)
	for _, d := range tags {
		need = append(need, d)
	}
	if err := r.ensureManifests(ctx, need); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs = &repoSizes{revs: revs, tags: tags, listing: listing, checked: now}
	rs.live = s.liveSet(revs, tags, nil)
	rs.logical = s.logicalOf(revs)
	for _, i := range rs.live {
		rs.unique += s.nodes[i].size
	}
	old := s.repos[name]
	s.swapLive(old, rs)
	if len(revs) == 0 && len(tags) == 0 {
		delete(s.repos, name)
	} else {
		s.repos[name] = rs
	}
	return rs, nil
}

// swapLive replaces old's live set by rs's in the counts; s.mu is held.
func (s *sizeIndex) swapLive(old, rs *repoSizes) {
	var oldLive []uint32
	if old != nil {
		oldLive = old.live
	}
	if slices.Equal(oldLive, rs.live) {
		return
	}
	for _, i := range oldLive {
		s.nodes[i].count--
	}
	for _, i := range rs.live {
		s.nodes[i].count++
	}
	s.gen++
}

// liveSet is gc's mark of one repository over the index: the closure of
// its roots (revisions, or tags and then the referrers of live
// manifests), without the revision skip (nil: none). s.mu is held and
// every root's manifest is loaded.
func (s *sizeIndex) liveSet(revs []digest.Digest, tags map[string]digest.Digest, skip map[digest.Digest]bool) []uint32 {
	var roots []digest.Digest
	if s.untagged {
		for _, d := range tags {
			if !skip[d] {
				roots = append(roots, d)
			}
		}
	} else {
		for _, d := range revs {
			if !skip[d] {
				roots = append(roots, d)
			}
		}
	}
	// subject -> referrers among the revisions (DeleteUntagged only).
	var referrers map[uint32][]uint32
	if s.untagged {
		referrers = map[uint32][]uint32{}
		for _, d := range revs {
			if skip[d] {
				continue
			}
			i := s.id(d)
			if m := s.nodes[i].m; m != nil && m.subject != "" {
				j := s.id(m.subject)
				referrers[j] = append(referrers[j], i)
			}
		}
	}
	seen := map[uint32]bool{}
	var live []uint32
	mark := func(i uint32) bool {
		if seen[i] {
			return false
		}
		seen[i] = true
		live = append(live, i)
		return true
	}
	work := make([]uint32, 0, len(roots))
	for _, d := range roots {
		work = append(work, s.id(d))
	}
	manifests := map[uint32]bool{}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		if manifests[i] {
			continue
		}
		manifests[i] = true
		mark(i)
		if m := s.nodes[i].m; m != nil && !m.missing {
			for _, b := range m.blobs {
				mark(b)
			}
			work = append(work, m.children...)
		}
		work = append(work, referrers[i]...)
	}
	slices.Sort(live)
	return live
}

// logicalOf sums the images of the revisions that are not children of
// another of them; s.mu is held.
func (s *sizeIndex) logicalOf(revs []digest.Digest) int64 {
	child := map[uint32]bool{}
	for _, d := range revs {
		if m := s.nodes[s.id(d)].m; m != nil {
			for _, c := range m.children {
				child[c] = true
			}
		}
	}
	var sum int64
	for _, d := range revs {
		if i := s.id(d); !child[i] {
			sum += s.imageSize(i, 0)
		}
	}
	return sum
}

// imageSize is the logical size of manifest i's image; s.mu is held.
func (s *sizeIndex) imageSize(i uint32, depth int) int64 {
	n := &s.nodes[i]
	m := n.m
	if m == nil || m.missing {
		// Not in the store (a sparse index): what its index says.
		return max(n.size, n.claimed)
	}
	if m.imageSize > 0 || depth > 8 {
		return m.imageSize
	}
	size := n.size
	for _, b := range m.blobs {
		size += s.nodes[b].size
	}
	for _, c := range m.children {
		size += s.imageSize(c, depth+1)
	}
	m.imageSize = size
	return size
}

// exclusiveOf is the bytes of rs's live set no other repository holds;
// s.mu is held.
func (s *sizeIndex) exclusiveOf(rs *repoSizes) int64 {
	if rs.exclGen == s.gen && s.gen != 0 {
		return rs.excl
	}
	var sum int64
	for _, i := range rs.live {
		if s.nodes[i].count == 1 {
			sum += s.nodes[i].size
		}
	}
	rs.excl, rs.exclGen = sum, s.gen
	return sum
}

// RepositorySize is the repository's size. A repository without manifests
// (or being deleted) is NAME_UNKNOWN.
func (r *Registry) RepositorySize(ctx context.Context, name string) (Size, error) {
	if _, err := r.Repository(name); err != nil {
		return Size{}, err
	}
	r.syncWatches(ctx)
	if err := r.syncSizes(ctx, nil); err != nil {
		return Size{}, err
	}
	rs, err := r.repoState(ctx, name)
	if err != nil {
		return Size{}, err
	}
	if len(rs.revs) == 0 {
		return Size{}, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": name})
	}
	s := r.sizes
	s.mu.Lock()
	defer s.mu.Unlock()
	return Size{Logical: rs.logical, Unique: rs.unique, Exclusive: s.exclusiveOf(rs)}, nil
}

// RepositorySummaries describes the named repositories (a page of the
// catalog): tags, last push and size. Names that have no manifest (or are
// being deleted) are left out. The tag count and last push come from the
// push-order index (pushorder.go), current at every call; the sizes from
// the size index, once its first sync after a start is over (pages wait
// for it until sizesFirstWait after it started, then come without sizes:
// Sized is false).
func (r *Registry) RepositorySummaries(ctx context.Context, names []string) ([]RepositorySummary, error) {
	if err := r.syncIndexes(ctx); err != nil {
		return nil, err
	}
	sized := false
	ready := r.sizesReady()
	select {
	case <-ready:
		sized = true
	default:
		wait := time.NewTimer(time.Until(r.sizes.firstStart.Add(sizesFirstWait)))
		defer wait.Stop()
		select {
		case <-ready:
			sized = true
		case <-wait.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if sized {
		if err := r.syncSizes(ctx, nil); err != nil {
			return nil, err
		}
	}
	out := make([]RepositorySummary, len(names))
	ok := make([]bool, len(names))
	err := parallel(ctx, len(names), func(i int) error {
		sum, found, err := r.repositorySummary(ctx, names[i], sized)
		out[i], ok[i] = sum, found
		return err
	})
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for i := range out {
		if ok[i] {
			kept = append(kept, out[i])
		}
	}
	return kept, nil
}

func (r *Registry) repositorySummary(ctx context.Context, name string, sized bool) (RepositorySummary, bool, error) {
	if ValidateName(name) != nil || r.deleting(name) {
		return RepositorySummary{}, false, nil
	}
	var rs *repoSizes
	if sized {
		var err error
		if rs, err = r.repoState(ctx, name); err != nil {
			return RepositorySummary{}, false, err
		}
		if len(rs.revs) == 0 {
			return RepositorySummary{}, false, nil
		}
	}
	repo := &Repository{reg: r, name: name}
	manifests := 0
	if sized {
		manifests = len(rs.revs)
	} else {
		// Without the size index, a listing of its revisions.
		err := repo.Revisions(ctx, func(digest.Digest) error { manifests++; return nil })
		if errcode.Is(err, errcode.NameUnknown) || (err == nil && manifests == 0) {
			return RepositorySummary{}, false, nil
		}
		if err != nil {
			return RepositorySummary{}, false, err
		}
	}
	count, last, err := repo.pushSummarySynced(ctx)
	if errcode.Is(err, errcode.NameUnknown) {
		return RepositorySummary{}, false, nil
	}
	if err != nil {
		return RepositorySummary{}, false, err
	}
	out := RepositorySummary{Name: name, TagCount: count, Manifests: manifests, LastPushed: last, Sized: sized}
	if sized {
		s := r.sizes
		s.mu.Lock()
		out.Size = Size{Logical: rs.logical, Unique: rs.unique, Exclusive: s.exclusiveOf(rs)}
		s.mu.Unlock()
	}
	return out, true, nil
}

// sizesReady starts the size index's first sync, once, in the
// background (RunIndexes starts it when serving starts), and returns a
// channel closed when it has ended. It reads every repository's revisions
// and every manifest once: at 100,000 repositories, tens of seconds.
func (r *Registry) sizesReady() <-chan struct{} {
	s := r.sizes
	s.firstOnce.Do(func() {
		s.first, s.firstStart = make(chan struct{}), time.Now()
		go func() {
			defer close(s.first)
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			// The name index, when it can, saves the sync its catalog
			// walk.
			var names []string
			if err := r.syncIndexes(ctx); err == nil {
				names, _ = r.syncNames(ctx)
			}
			_ = r.syncSizesNow(ctx, names)
		}()
	})
	return s.first
}

// Usage is the size of the repositories whose names start with prefix
// ("" for the registry): logical and unique over them, exclusive against
// every other repository; and the content store's total.
func (r *Registry) Usage(ctx context.Context, prefix string) (Usage, error) {
	names, _, err := r.Catalog(ctx, "", -1, nil)
	if err != nil {
		return Usage{}, err
	}
	if err := r.syncSizes(ctx, names); err != nil {
		return Usage{}, err
	}
	u := Usage{Prefix: prefix}
	var scope []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			scope = append(scope, n)
		}
	}
	states := make([]*repoSizes, len(scope))
	if err := parallel(ctx, len(scope), func(i int) error {
		var err error
		states[i], err = r.repoState(ctx, scope[i])
		return err
	}); err != nil {
		return Usage{}, err
	}
	s := r.sizes
	s.mu.Lock()
	inScope := map[uint32]int32{}
	for _, rs := range states {
		if len(rs.revs) == 0 {
			continue
		}
		u.Repositories++
		u.Logical += rs.logical
		for _, i := range rs.live {
			inScope[i]++
		}
	}
	for i, c := range inScope {
		n := &s.nodes[i]
		u.Unique += n.size
		if c >= n.count {
			u.Exclusive += n.size
		}
	}
	s.mu.Unlock()
	if u.Total, err = r.storeTotal(ctx); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// storeTotal is the bytes of every blob in the content store, walked at
// most once per totalMaxAge.
func (r *Registry) storeTotal(ctx context.Context) (int64, error) {
	s := r.sizes
	s.totalMu.Lock()
	defer s.totalMu.Unlock()
	if !s.totalAt.IsZero() && time.Since(s.totalAt) < totalMaxAge {
		return s.total, nil
	}
	var total int64
	if err := r.WalkBlobs(ctx, func(_ digest.Digest, size int64) error {
		total += size
		return nil
	}); err != nil {
		return 0, err
	}
	s.total, s.totalAt = total, time.Now()
	return total, nil
}

// Image describes the image of manifest d (the tag list's columns). A
// manifest that is not in the store is MANIFEST_UNKNOWN.
func (repo *Repository) Image(ctx context.Context, d digest.Digest) (ImageInfo, error) {
	infos, err := repo.Images(ctx, []digest.Digest{d})
	if err != nil {
		return ImageInfo{}, err
	}
	return infos[0], nil
}

// Images is Image for several manifests; a manifest missing from the
// store gets an ImageInfo with its digest alone.
func (repo *Repository) Images(ctx context.Context, ds []digest.Digest) ([]ImageInfo, error) {
	r := repo.reg
	for _, d := range ds {
		if d.Validate() != nil {
			return nil, errcode.New(errcode.DigestInvalid)
		}
	}
	if err := r.ensureManifests(ctx, ds); err != nil {
		return nil, err
	}
	// Images' platforms are in their configs: read those not read yet.
	s := r.sizes
	var configs, owners []digest.Digest
	s.mu.Lock()
	for _, d := range ds {
		if m := s.nodes[s.id(d)].m; m != nil && !m.missing && !m.platformsRead && m.config.Validate() == nil {
			configs = append(configs, m.config)
			owners = append(owners, d)
		}
	}
	s.mu.Unlock()
	plats := make([][]string, len(configs))
	_ = parallel(ctx, len(configs), func(i int) error {
		plats[i] = r.configPlatform(ctx, configs[i])
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, d := range owners {
		// By digest again: the index may have been compacted meanwhile.
		if m := s.nodes[s.id(d)].m; m != nil {
			m.platforms, m.platformsRead = plats[k], true
		}
	}
	out := make([]ImageInfo, len(ds))
	for k, d := range ds {
		i := s.id(d)
		info := ImageInfo{Digest: d}
		if m := s.nodes[i].m; m != nil && !m.missing {
			info.MediaType = m.mediaType
			info.ArtifactType = m.artifactType
			info.Platforms = append([]string(nil), m.platforms...)
			info.Size = s.imageSize(i, 0)
		}
		out[k] = info
	}
	return out, nil
}

// configPlatform reads os/architecture[/variant] from an image config; nil
// when it has none or cannot be read.
func (r *Registry) configPlatform(ctx context.Context, d digest.Digest) []string {
	rc, err := r.driver.Reader(ctx, blobDataPath(d), 0)
	if err != nil {
		return nil
	}
	defer rc.Close()
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	dec := json.NewDecoder(io.LimitReader(rc, 1<<20))
	if dec.Decode(&cfg) != nil || cfg.OS == "" || cfg.Architecture == "" {
		return nil
	}
	return []string{platformString(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})}
}

// ManifestImpact is what DELETE of manifest d in the repository takes
// along: the tags pointing at it, its referrers, and the bytes a
// collection then frees.
func (repo *Repository) ManifestImpact(ctx context.Context, d digest.Digest) (Impact, error) {
	r := repo.reg
	if _, err := repo.resolve(ctx, d.String()); err != nil {
		return Impact{}, err
	}
	r.syncWatches(ctx)
	if err := r.syncSizes(ctx, nil); err != nil {
		return Impact{}, err
	}
	rs, err := r.repoState(ctx, repo.name)
	if err != nil {
		return Impact{}, err
	}
	tags, err := repo.TagsAndTargets(ctx)
	if err != nil {
		return Impact{}, err
	}
	imp := Impact{Digest: d, Tags: []string{}}
	for t, td := range tags {
		if td == d {
			imp.Tags = append(imp.Tags, t)
		}
	}
	sort.Strings(imp.Tags)
	if imp.Referrers, err = repo.Referrers(ctx, d, ""); err != nil {
		return Impact{}, err
	}
	// The repository's live set without d (and, with DeleteUntagged,
	// without the tags on it): what was live only through d, and held by
	// no other repository, is freed.
	remaining := map[string]digest.Digest{}
	for t, td := range tags {
		if td != d {
			remaining[t] = td
		}
	}
	if err := r.ensureManifests(ctx, slices.Collect(mapValues(remaining))); err != nil {
		return Impact{}, err
	}
	imp.Exclusive = r.sizes.freedWithout(rs, remaining, map[digest.Digest]bool{d: true})
	return imp, nil
}

func mapValues(m map[string]digest.Digest) func(func(digest.Digest) bool) {
	return func(yield func(digest.Digest) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}
