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
	// Logical sums the size of the image behind every tag, counting a
	// blob shared by two images twice.
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
	seen := map[digest.Digest]bool{}
	for _, t := range tags {
		m, err := w.c.Manifest(ctx, r.WithTag(t))
		if err != nil {
			if IsNotFound(err) {
				continue // deleted meanwhile
			}
			return u, nil, fmt.Errorf("%s:%s: %w", name, t, err)
		}
		w.remember(m)
		size, err := w.walk(ctx, r, m, blobs, seen, 0)
		if err != nil {
			return u, nil, err
		}
		u.Logical += size
	}
	return u, blobs, nil
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

// walk adds what manifest m references to blobs and returns the image's
// logical size (manifest, config, layers; an index with its children).
// Referrers of each manifest are added to blobs once, not to the size.
func (w *usageWalker) walk(ctx context.Context, r Reference, m *Manifest, blobs map[digest.Digest]int64, seen map[digest.Digest]bool, depth int) (int64, error) {
	if depth > 4 {
		return 0, fmt.Errorf("%s@%s: manifests nested too deep", r.Repository, m.Descriptor.Digest)
	}
	size := m.Descriptor.Size
	blobs[m.Descriptor.Digest] = m.Descriptor.Size
	first := !seen[m.Descriptor.Digest]
	seen[m.Descriptor.Digest] = true
	if m.Config != nil {
		blobs[m.Config.Digest] = m.Config.Size
		size += m.Config.Size
	}
	for _, l := range m.Layers {
		if stored(l) {
			blobs[l.Digest] = l.Size
			size += l.Size
		}
	}
	for _, d := range m.Manifests {
		child, err := w.manifest(ctx, r, d.Digest)
		if err != nil {
			if IsNotFound(err) {
				continue // a child the registry does not hold (a partial mirror)
			}
			return 0, fmt.Errorf("%s@%s: %w", r.Repository, d.Digest, err)
		}
		s, err := w.walk(ctx, r, child, blobs, seen, depth+1)
		if err != nil {
			return 0, err
		}
		size += s
	}
	if first {
		refs, err := w.referrers(ctx, r, m.Descriptor.Digest)
		if err != nil {
			return 0, err
		}
		for _, d := range refs {
			if seen[d.Digest] {
				continue
			}
			rm, err := w.manifest(ctx, r, d.Digest)
			if err != nil {
				if IsNotFound(err) {
					continue
				}
				return 0, err
			}
			if _, err := w.walk(ctx, r, rm, blobs, seen, depth+1); err != nil {
				return 0, err
			}
		}
	}
	return size, nil
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
