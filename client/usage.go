package client

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RepoUsage is one repository's bytes, counted three ways (as the admin
// API's admin.Size).
type RepoUsage struct {
	Repository string `json:"repository"`
	Tags       int    `json:"tags"`
	// Logical sums the size of every image (each once, however many
	// tags it has), counting a blob shared by two images twice.
	Logical int64 `json:"logical"`
	// Unique counts each distinct blob and manifest of the repository
	// once.
	Unique int64 `json:"unique"`
	// Exclusive is what no other repository references: what deleting
	// the repository, then collecting garbage, frees.
	Exclusive int64 `json:"exclusive"`
}

// UsageProgress is told each repository walked.
type UsageProgress func(done, total int)

// ComputeUsage computes the sizes of repositories from their manifests, for
// registries without the admin API. Exclusive bytes need to know what every
// other repository references, so all of repos are walked; want (nil: all)
// says which are reported. Only what tags reach is seen (with index children
// and referrers): the V2 API cannot list untagged manifests.
func (c *Client) ComputeUsage(ctx context.Context, host string, repos []string, want func(string) bool, progress UsageProgress) ([]RepoUsage, error) {
	w := &usageWalker{c: c, host: host, manifests: map[digest.Digest]*Manifest{}}
	type result struct {
		usage RepoUsage
		blobs map[digest.Digest]int64
		err   error
	}
	results := make([]result, len(repos))
	var mu sync.Mutex
	done := 0
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(8, len(repos)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				u, blobs, err := w.repo(ctx, repos[i])
				results[i] = result{u, blobs, err}
				mu.Lock()
				done++
				if progress != nil {
					progress(done, len(repos))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range repos {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	refs := map[digest.Digest]int{} // in how many repositories
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		for d := range r.blobs {
			refs[d]++
		}
	}
	var out []RepoUsage
	for _, r := range results {
		if want != nil && !want(r.usage.Repository) {
			continue
		}
		for d, size := range r.blobs {
			r.usage.Unique += size
			if refs[d] == 1 {
				r.usage.Exclusive += size
			}
		}
		out = append(out, r.usage)
	}
	return out, nil
}

// usageWalker reads manifests once per digest: a digest names the same
// bytes in every repository.
type usageWalker struct {
	c    *Client
	host string

	mu        sync.Mutex
	manifests map[digest.Digest]*Manifest
	// noReferrersAPI is set after the registry answered 404 to the
	// referrers API: the tag schema's tags are then walked as tags.
	noReferrersAPI bool
}

func (w *usageWalker) repo(ctx context.Context, name string) (RepoUsage, map[digest.Digest]int64, error) {
	r := Reference{Host: w.host, Repository: name}
	u := RepoUsage{Repository: name}
	blobs := map[digest.Digest]int64{}
	tags, err := w.c.Tags(ctx, r)
	if err != nil {
		if IsNotFound(err) {
			return u, blobs, nil // listed in the catalog, but empty
		}
		return u, nil, fmt.Errorf("tags of %s: %w", name, err)
	}
	u.Tags = len(tags)
	rs := &repoWalk{w: w, r: r, blobs: blobs, reached: map[digest.Digest]*Manifest{}, children: map[digest.Digest]bool{}}
	for _, t := range tags {
		m, err := w.c.Manifest(ctx, r.WithTag(t))
		if err != nil {
			if IsNotFound(err) {
				continue // deleted meanwhile
			}
			return u, nil, fmt.Errorf("%s:%s: %w", name, t, err)
		}
		w.remember(m)
		if err := rs.visit(ctx, m, 0); err != nil {
			return u, nil, err
		}
	}
	// Logical: each image once, whatever its number of tags; an image is
	// a manifest that is not a child of another (an index's platforms are
	// part of the index's image). The server's admin API counts the same.
	for d := range rs.reached {
		if !rs.children[d] {
			u.Logical += rs.imageSize(d, 0)
		}
	}
	return u, blobs, nil
}

// repoWalk is one repository's manifests as the tags reach them.
type repoWalk struct {
	w        *usageWalker
	r        Reference
	blobs    map[digest.Digest]int64 // every manifest and blob, with its size
	reached  map[digest.Digest]*Manifest
	children map[digest.Digest]bool // manifests that are an index's child
}

func (w *usageWalker) remember(m *Manifest) {
	w.mu.Lock()
	w.manifests[m.Descriptor.Digest] = m
	w.mu.Unlock()
}

func (w *usageWalker) manifest(ctx context.Context, r Reference, d digest.Digest) (*Manifest, error) {
	w.mu.Lock()
	m := w.manifests[d]
	w.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := w.c.Manifest(ctx, r.WithDigest(d))
	if err != nil {
		return nil, err
	}
	w.remember(m)
	return m, nil
}

// visit adds manifest m, what it references, its children and its
// referrers to the walk, once each.
func (rs *repoWalk) visit(ctx context.Context, m *Manifest, depth int) error {
	d := m.Descriptor.Digest
	if rs.reached[d] != nil {
		return nil
	}
	if depth > 8 {
		return fmt.Errorf("%s@%s: manifests nested too deep", rs.r.Repository, d)
	}
	rs.reached[d] = m
	addBlobs(rs.blobs, m)
	for _, c := range m.Manifests {
		rs.children[c.Digest] = true
		child, err := rs.w.manifest(ctx, rs.r, c.Digest)
		if err != nil {
			if IsNotFound(err) {
				continue // a child the registry does not hold (a partial mirror)
			}
			return fmt.Errorf("%s@%s: %w", rs.r.Repository, c.Digest, err)
		}
		if err := rs.visit(ctx, child, depth+1); err != nil {
			return err
		}
	}
	refs, err := rs.w.referrers(ctx, rs.r, d)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		rm, err := rs.w.manifest(ctx, rs.r, ref.Digest)
		if err != nil {
			if IsNotFound(err) {
				continue
			}
			return err
		}
		if err := rs.visit(ctx, rm, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// imageSize is manifest d's image: itself, its config and layers, and its
// children's images (a child the registry lacks counts as its descriptor
// says).
func (rs *repoWalk) imageSize(d digest.Digest, depth int) int64 {
	m := rs.reached[d]
	if m == nil || depth > 8 {
		return 0
	}
	size := m.Descriptor.Size
	if m.Config != nil {
		size += m.Config.Size
	}
	for _, l := range m.Layers {
		if stored(l) {
			size += l.Size
		}
	}
	for _, c := range m.Manifests {
		if rs.reached[c.Digest] != nil {
			size += rs.imageSize(c.Digest, depth+1)
		} else {
			size += c.Size
		}
	}
	return size
}

// referrers asks the referrers API, once it is known to exist; without it
// the tag schema's tags are tags like any other, and walked as such.
func (w *usageWalker) referrers(ctx context.Context, r Reference, d digest.Digest) ([]ocispec.Descriptor, error) {
	w.mu.Lock()
	no := w.noReferrersAPI
	w.mu.Unlock()
	if no {
		return nil, nil
	}
	var idx ocispec.Index
	_, err := w.c.getJSON(ctx, request{host: r.Host, path: "/v2/" + r.Repository + "/referrers/" + string(d),
		scopes: []string{pullScope(r.Repository)}}, &idx)
	if err != nil {
		if IsNotFound(err) || IsUnsupported(err) {
			w.mu.Lock()
			w.noReferrersAPI = true
			w.mu.Unlock()
			return nil, nil
		}
		return nil, fmt.Errorf("referrers of %s@%s: %w", r.Repository, d, err)
	}
	return slices.DeleteFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return d.Digest == "" }), nil
}

// addBlobs adds manifest m and what it references that the registry
// stores (its config and layers) to blobs, with their sizes.
func addBlobs(blobs map[digest.Digest]int64, m *Manifest) {
	blobs[m.Descriptor.Digest] = m.Descriptor.Size
	if m.Config != nil {
		blobs[m.Config.Digest] = m.Config.Size
	}
	for _, l := range m.Layers {
		if stored(l) {
			blobs[l.Digest] = l.Size
		}
	}
}
