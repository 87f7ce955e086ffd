package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// How a tag was removed.
const (
	// TagDeleteOCI is DELETE /v2/REPO/manifests/TAG (OCI distribution
	// 1.1, registryd, distribution v3, zot).
	TagDeleteOCI = "OCI delete by tag"
	// TagDeletePlaceholder is regctl's way on registries that delete only
	// by digest (distribution 2.x): push a unique placeholder manifest to
	// the tag, then delete the placeholder by its digest, which takes the
	// tag with it and leaves every other tag of the old manifest alone.
	TagDeletePlaceholder = "placeholder manifest pushed to the tag, then deleted by digest"
)

// TagsOf maps each digest of a repository to the tags that point to it, by
// a HEAD of every tag (8 at a time).
func (c *Client) TagsOf(ctx context.Context, r Reference) (map[digest.Digest][]string, error) {
	tags, err := c.Tags(ctx, r)
	if err != nil {
		return nil, err
	}
	digests := make([]digest.Digest, len(tags))
	errs := make([]error, len(tags))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, t := range tags {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := c.Head(ctx, r.WithTag(t))
			if err != nil && !IsNotFound(err) {
				errs[i] = fmt.Errorf("%s:%s: %w", r.Repository, t, err)
			}
			digests[i] = d.Digest
		}()
	}
	wg.Wait()
	out := map[digest.Digest][]string{}
	for i, t := range tags {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if digests[i] != "" {
			out[digests[i]] = append(out[digests[i]], t)
		}
	}
	for _, ts := range out {
		sort.Strings(ts)
	}
	return out, nil
}

// DeleteTag removes only the tag r names: the OCI delete by tag where the
// registry has it, else a placeholder pushed over the tag and deleted by
// digest. It returns the method used (TagDeleteOCI or
// TagDeletePlaceholder). If the placeholder cannot be deleted after it was
// pushed, the error says so: the tag then points to the placeholder.
func (c *Client) DeleteTag(ctx context.Context, r Reference) (string, error) {
	if r.Tag == "" || r.Digest != "" {
		return "", fmt.Errorf("%s: a tag, not a digest, is needed", r)
	}
	err := c.DeleteManifest(ctx, r)
	if err == nil {
		return TagDeleteOCI, nil
	}
	if !IsUnsupported(err) {
		return "", err
	}
	body, mt, err := placeholderManifest()
	if err != nil {
		return "", err
	}
	if _, err := c.PutBlob(ctx, r, emptyJSON); err != nil {
		return "", fmt.Errorf("the registry has no delete by tag, and the placeholder's config could not be uploaded: %w", err)
	}
	d, err := c.PutManifest(ctx, r, mt, body)
	if err != nil {
		return "", fmt.Errorf("the registry has no delete by tag, and the placeholder could not be pushed: %w", err)
	}
	if err := c.DeleteManifest(ctx, r.WithDigest(d)); err != nil {
		return "", fmt.Errorf("tag %s now points to the placeholder %s, which could not be deleted: %w", r.Tag, d, err)
	}
	return TagDeletePlaceholder, nil
}

// emptyJSON is the OCI empty descriptor's content.
var emptyJSON = []byte("{}")

// placeholderManifest is an OCI manifest with the empty config, no layers
// and a random annotation: its digest is new, so deleting it by digest can
// only ever take the tag it was just pushed to.
func placeholderManifest() ([]byte, string, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", err
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: mediaTypeEmpty,
			Digest:    digest.FromBytes(emptyJSON),
			Size:      int64(len(emptyJSON)),
		},
		Layers: []ocispec.Descriptor{},
		Annotations: map[string]string{
			"io.registryd.tag-rm.placeholder": hex.EncodeToString(nonce),
		},
	}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	return b, ocispec.MediaTypeImageManifest, err
}

// ManifestImpact is what deleting a manifest by digest takes along.
type ManifestImpact struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType,omitempty"`
	// Tags are every tag pointing to it: they all go.
	Tags []string `json:"tags"`
	// Referrers point to it (signatures, SBOMs): they stay, pointing
	// to nothing, until a collection removes them.
	Referrers []Referrer `json:"referrers"`
	// Exclusive is the bytes the next collection frees, when the admin
	// API says; -1 when unknown.
	Exclusive int64 `json:"exclusive"`
	// Children are an index's manifests: they stay, untagged.
	Children []digest.Digest `json:"children,omitempty"`
}

// Impact tells what DELETE of manifest r (by digest) takes along: from the
// admin API when the server has it, else from the tag list (a HEAD per tag)
// and the referrers.
func (c *Client) Impact(ctx context.Context, r Reference) (*ManifestImpact, error) {
	desc, err := c.Head(ctx, r)
	if err != nil {
		return nil, err
	}
	imp := &ManifestImpact{Digest: desc.Digest, MediaType: desc.MediaType, Tags: []string{}, Referrers: []Referrer{}, Exclusive: -1}
	if IsIndex(desc.MediaType) {
		m, err := c.Manifest(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, d := range m.Manifests {
			imp.Children = append(imp.Children, d.Digest)
		}
	}
	if info, err := c.Admin(ctx, r.Host); err == nil && info != nil {
		if a, err := c.AdminImpact(ctx, r.Repo(), desc.Digest); err == nil {
			imp.Tags = append(imp.Tags, a.Tags...)
			for _, ref := range a.Referrers {
				imp.Referrers = append(imp.Referrers, Referrer{Digest: digest.Digest(ref.Digest), ArtifactType: ref.ArtifactType, MediaType: ref.MediaType, Size: ref.Size})
			}
			imp.Exclusive = a.Exclusive
			return imp, nil
		} else if !IsNotFound(err) {
			return nil, err
		}
	}
	byDigest, err := c.TagsOf(ctx, r.Repo())
	if err != nil && !IsNotFound(err) {
		return nil, err
	}
	imp.Tags = append(imp.Tags, byDigest[desc.Digest]...)
	refs, err := c.Referrers(ctx, r.Repo(), desc.Digest)
	if err != nil {
		return nil, err
	}
	for _, d := range refs {
		imp.Referrers = append(imp.Referrers, Referrer{Digest: d.Digest, MediaType: d.MediaType, ArtifactType: d.ArtifactType, Size: d.Size})
	}
	return imp, nil
}

// RepoContents is what a repository holds as the V2 API sees it: its tags
// and every manifest they reach (index children, referrers).
type RepoContents struct {
	Tags map[string]digest.Digest
	// Manifests in the order to delete them: breadth first from the
	// tags, so that an index goes before its children and a crash half way
	// leaves no index pointing to a deleted child.
	Manifests []digest.Digest
	// Unique is the bytes of the distinct manifests and blobs they
	// reference (configs, layers the registry stores).
	Unique int64
}

// Contents lists a repository's tags and the manifests they reach.
func (c *Client) Contents(ctx context.Context, r Reference) (*RepoContents, error) {
	byDigest, err := c.TagsOf(ctx, r)
	if err != nil {
		return nil, err
	}
	rc := &RepoContents{Tags: map[string]digest.Digest{}}
	seen := map[digest.Digest]bool{}
	blobs := map[digest.Digest]int64{}
	var queue []digest.Digest
	add := func(d digest.Digest) {
		if d != "" && !seen[d] {
			seen[d] = true
			queue = append(queue, d)
		}
	}
	roots := slices.Sorted(maps.Keys(byDigest))
	for _, d := range roots {
		for _, t := range byDigest[d] {
			rc.Tags[t] = d
		}
		add(d)
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		m, err := c.Manifest(ctx, r.WithDigest(d))
		if err != nil {
			if IsNotFound(err) {
				continue
			}
			return nil, err
		}
		rc.Manifests = append(rc.Manifests, d)
		addBlobs(blobs, m)
		for _, ch := range m.Manifests {
			add(ch.Digest)
		}
		refs, err := c.Referrers(ctx, r, d)
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			add(ref.Digest)
		}
	}
	for _, size := range blobs {
		rc.Unique += size
	}
	return rc, nil
}
