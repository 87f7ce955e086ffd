package storage

// Enumeration and removal primitives for garbage collection. They keep the
// knowledge of the layout in this package: a collector asks for
// repositories, revisions, tags, layer links and blobs, and removes them by
// digest, without building a path itself.
//
// None of these take locks against concurrent writers: garbage collection
// runs while every registry serving the storage is stopped or read-only
// (instances.go is how that is checked). Callbacks may remove what they are
// given: every enumeration reads a directory completely before it calls
// back for its entries.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
)

// ErrCorruptContent is matched by errors.Is for stored content that cannot
// be what its digest names: its bytes hash to something else, it is not a
// manifest a registry could have stored, or it is far larger than one.
var ErrCorruptContent = errors.New("corrupt stored content")

// maxStoredManifestBytes bounds what ManifestContent reads into memory. It
// is larger than any manifest limit so that manifests the reference (or an
// older configuration) accepted are still read; beyond it the "manifest"
// is corrupt.
const maxStoredManifestBytes = 64 << 20

// WalkRepositories calls fn for every repository directory at any depth: a
// directory below repositories/ that holds _manifests or _layers. A
// repository comes before those nested below it ("a" before "a/b"),
// siblings in lexical order. Directory names are not checked against the
// name grammar, so that a collector sees every repository whose links
// reference content, valid name or not. An error from fn stops the walk and
// is returned unchanged.
func (r *Registry) WalkRepositories(ctx context.Context, fn func(repo *Repository) error) error {
	return r.walkRepoDirs(ctx, reposRoot(), "", fn)
}

func (r *Registry) walkRepoDirs(ctx context.Context, dir, name string, fn func(*Repository) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	children, err := r.driver.List(ctx, dir)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		// A stray file where a directory could be: nothing below it.
		if fi, serr := r.driver.Stat(ctx, dir); serr == nil && !fi.IsDir() {
			return nil
		}
		return storageErr(err)
	}
	isRepo := false
	var subdirs []string
	for _, c := range children {
		base := path.Base(c)
		switch {
		case base == "_manifests" || base == "_layers":
			isRepo = true
		case strings.HasPrefix(base, "_"):
			// _uploads, _referrers and whatever else is not a nested name.
		default:
			subdirs = append(subdirs, base)
		}
	}
	if isRepo && name != "" {
		if err := fn(&Repository{reg: r, name: name}); err != nil {
			return err
		}
	}
	for _, s := range subdirs {
		child := s
		if name != "" {
			child = name + "/" + s
		}
		if err := r.walkRepoDirs(ctx, path.Join(dir, s), child, fn); err != nil {
			return err
		}
	}
	return nil
}

// digestFromDirs builds the digest stored as <alg>/<hex> path components and
// reports whether it is a valid digest.
func digestFromDirs(alg, hex string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// Revisions calls fn for the digest of every manifest revision of the
// repository: every _manifests/revisions/<alg>/<hex> that has a link file,
// which is what the reference registry counts as a revision too. A
// directory whose link was deleted (the reference deletes only the link) is
// not a revision. The digest is taken from the directory names; the link
// file is not read. Revisions are listed completely before fn is called.
func (repo *Repository) Revisions(ctx context.Context, fn func(d digest.Digest) error) error {
	root := revisionsRoot(repo.name)
	var ds []digest.Digest
	err := repo.reg.driver.Walk(ctx, root, func(fi driver.FileInfo) error {
		rel := strings.TrimPrefix(fi.Path(), root+"/")
		parts := strings.Split(rel, "/")
		if fi.IsDir() {
			if len(parts) > 2 {
				return driver.ErrSkipDir // below <alg>/<hex>/ only the link matters
			}
			return nil
		}
		if len(parts) == 3 && parts[2] == "link" {
			if d, ok := digestFromDirs(parts[0], parts[1]); ok {
				ds = append(ds, d)
			}
		}
		return nil
	})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// TagsAndTargets returns every tag of the repository with the digest its
// current link points at. A tag directory without a current link (a crash
// between the history entry and the current link) is left out; a current
// link that cannot be read or parsed is an error, since nobody can tell what
// it protects.
func (repo *Repository) TagsAndTargets(ctx context.Context) (map[string]digest.Digest, error) {
	tags, err := repo.allTags(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]digest.Digest, len(tags))
	for _, t := range tags {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := repo.reg.readLink(ctx, tagCurrentPath(repo.name, t))
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tag %s of %s: %w", t, repo.name, storageErr(err))
		}
		out[t] = d
	}
	return out, nil
}

// LayerLinks calls fn for the digest of every blob linked into the
// repository (_layers/<alg>/<hex>), taken from the directory names. Each
// algorithm's links are listed completely before fn is called for them.
func (repo *Repository) LayerLinks(ctx context.Context, fn func(d digest.Digest) error) error {
	root := path.Join(repoPath(repo.name), "_layers")
	algs, err := repo.reg.driver.List(ctx, root)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	for _, a := range algs {
		hexes, err := repo.reg.driver.List(ctx, a)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			if fi, serr := repo.reg.driver.Stat(ctx, a); serr == nil && !fi.IsDir() {
				continue
			}
			return storageErr(err)
		}
		for _, h := range hexes {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, ok := digestFromDirs(path.Base(a), path.Base(h))
			if !ok {
				continue
			}
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// UnlinkLayer removes the repository's link to blob d. Unlike DeleteBlob it
// does not require the link to be valid, and a missing link is not an
// error. The content stays in the store.
func (repo *Repository) UnlinkLayer(ctx context.Context, d digest.Digest) error {
	err := driver.DeleteDir(ctx, repo.reg.driver, layerLinkDir(repo.name, d), "link")
	if err == nil || isNotFound(err) {
		return nil
	}
	return storageErr(err)
}

// ManifestContent reads the stored bytes of manifest d from the content
// store, whatever repository links it, and verifies them against d. A
// missing blob satisfies ErrNotFound; content that does not hash to d or is
// larger than any manifest satisfies errors.Is(err, ErrCorruptContent); any
// other error is the storage failing.
func (r *Registry) ManifestContent(ctx context.Context, d digest.Digest) ([]byte, error) {
	if b, ok := r.manifests.get(d); ok {
		return b, nil
	}
	// One read through a bounded Reader rather than Stat then GetContent:
	// a syscall (or a request) less per manifest.
	rc, err := r.driver.Reader(ctx, blobDataPath(d), 0)
	if isNotFound(err) {
		return nil, manifestUnknown(d.String())
	}
	if err != nil {
		return nil, storageErr(err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxStoredManifestBytes+1))
	_ = rc.Close()
	if err != nil {
		return nil, storageErr(err)
	}
	if len(b) > maxStoredManifestBytes {
		return nil, fmt.Errorf("%w: manifest %s is larger than %d bytes", ErrCorruptContent, d, maxStoredManifestBytes)
	}
	if !d.Algorithm().Available() || d.Algorithm().FromBytes(b) != d {
		return nil, fmt.Errorf("%w: content stored under %s does not match the digest", ErrCorruptContent, d)
	}
	r.manifests.add(d, b)
	return b, nil
}

// References is what a stored manifest points at.
type References struct {
	// MediaType is the manifest's media type as stored or inferred.
	MediaType string
	// Subject is the digest of the manifest's subject, "" without one.
	Subject digest.Digest
	// Manifests are the child manifests of an index.
	Manifests []digest.Digest
	// Blobs are the config and layers of an image manifest (including
	// layers with URLs, which may not be in the store), the blobSums of a
	// schema 1 manifest and the blobs of a draft OCI artifact manifest.
	Blobs []digest.Digest
}

// storedReferences reads every field through which a manifest of any kind
// registryd or the reference registry ever stored can point at content.
type storedReferences struct {
	SchemaVersion *int             `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Config        *descriptorRef   `json:"config"`
	Layers        []descriptorRef  `json:"layers"`
	Blobs         []descriptorRef  `json:"blobs"`
	Manifests     []descriptorRef  `json:"manifests"`
	Subject       *descriptorRef   `json:"subject"`
	FSLayers      []schema1BlobRef `json:"fsLayers"`
}

type descriptorRef struct {
	Digest digest.Digest `json:"digest"`
}

type schema1BlobRef struct {
	BlobSum digest.Digest `json:"blobSum"`
}

// ParseReferences extracts the references of stored manifest content. It
// is deliberately lenient: anything that names a digest is reported, so
// that a collector keeps whatever a manifest could need. Content that is not
// a JSON object satisfies errors.Is(err, ErrCorruptContent). Digests that do
// not parse are left out (they cannot name stored content).
func ParseReferences(content []byte) (References, error) {
	var m storedReferences
	if err := json.Unmarshal(content, &m); err != nil {
		return References{}, fmt.Errorf("%w: manifest is not a JSON object: %v", ErrCorruptContent, err)
	}
	_, mt, err := parseStored(content)
	if err != nil {
		mt = m.MediaType
	}
	refs := References{MediaType: mt}
	add := func(list *[]digest.Digest, d digest.Digest) {
		if d.Validate() == nil {
			*list = append(*list, d)
		}
	}
	if m.Config != nil {
		add(&refs.Blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		add(&refs.Blobs, l.Digest)
	}
	for _, l := range m.Blobs {
		add(&refs.Blobs, l.Digest)
	}
	for _, l := range m.FSLayers {
		add(&refs.Blobs, l.BlobSum)
	}
	for _, c := range m.Manifests {
		add(&refs.Manifests, c.Digest)
	}
	if m.Subject != nil && m.Subject.Digest.Validate() == nil {
		refs.Subject = m.Subject.Digest
	}
	return refs, nil
}

// WalkBlobs calls fn for every blob in the content store with the size of
// its data, blobs/<alg>/<hex[:2]>/<hex>/data. It streams: one two-digit
// prefix directory is read at a time and fn is called for its blobs after
// it has been read, so memory stays bounded by the largest prefix and fn may
// delete the blob it is given. Directories that do not form a valid digest,
// or whose prefix does not match, are skipped: nothing here is ever reported
// that a link could not name.
func (r *Registry) WalkBlobs(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	type blob struct {
		d    digest.Digest
		size int64
	}
	return r.walkBlobPrefixes(ctx, func(alg, prefix, pdir string) error {
		var batch []blob
		err := r.driver.Walk(ctx, pdir, func(fi driver.FileInfo) error {
			rel := strings.TrimPrefix(fi.Path(), pdir+"/")
			parts := strings.Split(rel, "/")
			if fi.IsDir() {
				if len(parts) > 1 {
					return driver.ErrSkipDir // nothing below <hex>/ but data
				}
				return nil
			}
			if len(parts) != 2 || parts[1] != "data" || !strings.HasPrefix(parts[0], prefix) || len(prefix) != 2 {
				return nil
			}
			if d, ok := digestFromDirs(alg, parts[0]); ok {
				batch = append(batch, blob{d, fi.Size()})
			}
			return nil
		})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return storageErr(err)
		}
		for _, b := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(b.d, b.size); err != nil {
				return err
			}
		}
		return nil
	})
}

// walkBlobPrefixes calls fn for every prefix directory of the content
// store, blobs/<alg>/<prefix>, one at a time in lexical order, with the
// algorithm and prefix named by the path. A missing or non-directory
// algorithm entry is skipped; fn handles what is inside a prefix.
func (r *Registry) walkBlobPrefixes(ctx context.Context, fn func(alg, prefix, pdir string) error) error {
	algs, err := r.driver.List(ctx, blobsRoot())
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	for _, a := range algs {
		prefixes, err := r.driver.List(ctx, a)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			if fi, serr := r.driver.Stat(ctx, a); serr == nil && !fi.IsDir() {
				continue
			}
			return storageErr(err)
		}
		for _, pdir := range prefixes {
			if err := fn(path.Base(a), path.Base(pdir), pdir); err != nil {
				return err
			}
		}
	}
	return nil
}

// WalkBlobDigests calls fn for the digest of every directory in the content
// store that is named like a blob, blobs/<alg>/<hex[:2]>/<hex>, without
// looking inside: it lists one directory per prefix and reads no size, so
// a collector that keeps most blobs pays one List per prefix and nothing
// per blob. Whether a directory holds a blob is BlobDataSize's to say. Each
// prefix is listed completely before fn is called for its entries, so fn
// may delete the blob it is given.
func (r *Registry) WalkBlobDigests(ctx context.Context, fn func(d digest.Digest) error) error {
	return r.walkBlobPrefixes(ctx, func(alg, prefix, pdir string) error {
		if len(prefix) != 2 {
			return nil
		}
		hexes, err := r.driver.List(ctx, pdir)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			if fi, serr := r.driver.Stat(ctx, pdir); serr == nil && !fi.IsDir() {
				return nil
			}
			return storageErr(err)
		}
		for _, h := range hexes {
			if err := ctx.Err(); err != nil {
				return err
			}
			hex := path.Base(h)
			if !strings.HasPrefix(hex, prefix) {
				continue
			}
			d, ok := digestFromDirs(alg, hex)
			if !ok {
				continue
			}
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// BlobDataSize returns the size of blob d's data in the content store; ok
// is false when there is no data file (a directory without data is not a
// blob, as for WalkBlobs).
func (r *Registry) BlobDataSize(ctx context.Context, d digest.Digest) (size int64, ok bool, err error) {
	if d.Validate() != nil {
		return 0, false, fmt.Errorf("blob size: invalid digest %q", d)
	}
	fi, err := r.driver.Stat(ctx, blobDataPath(d))
	if isNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, storageErr(err)
	}
	if fi.IsDir() {
		return 0, false, nil
	}
	return fi.Size(), true, nil
}

// FlushRemovals makes durable, on drivers whose removals are not durable
// on return (driver.Flusher), the repository's removals of the layer links
// to links and of the revisions revisions: the directories those were
// removed from, and for revisions the tags and referrers directories
// (RemoveRevisions removes tags pointing at them and their referrer
// links). Garbage collection calls it between removing links and removing
// what they pointed at. On file systems that journal metadata in order
// (ext4, xfs, btrfs) the first sync commits every earlier removal, tag
// history entries and nested referrer directories included.
func (repo *Repository) FlushRemovals(ctx context.Context, links, revisions []digest.Digest) error {
	var dirs []string
	for _, d := range links {
		dirs = append(dirs, path.Dir(layerLinkDir(repo.name, d)))
	}
	for _, d := range revisions {
		dirs = append(dirs, path.Dir(revisionDir(repo.name, d)))
	}
	if len(revisions) > 0 {
		dirs = append(dirs, tagsRoot(repo.name), path.Join(repoPath(repo.name), "_referrers"))
	}
	if len(dirs) == 0 {
		return nil
	}
	return storageErr(driver.Flush(ctx, repo.reg.driver, dirs...))
}

// DeleteBlobContent removes blob d from the content store, data and
// directory, whatever links to it. It is for garbage collection only, once
// nothing live references d: every repository that still links d loses the
// blob. A blob that is already gone is not an error.
func (r *Registry) DeleteBlobContent(ctx context.Context, d digest.Digest) error {
	if d.Validate() != nil {
		return fmt.Errorf("delete blob: invalid digest %q", d)
	}
	r.manifests.remove(d)
	err := driver.DeleteDir(ctx, r.driver, blobDir(d), "data")
	if err == nil || isNotFound(err) {
		return nil
	}
	return storageErr(err)
}

// RemoveRevision removes manifest revision d from the repository, as
// RemoveRevisions does for one digest.
func (repo *Repository) RemoveRevision(ctx context.Context, d digest.Digest) error {
	return repo.RemoveRevisions(ctx, []digest.Digest{d})
}

// RemoveRevisions removes manifest revisions from the repository: the tags
// whose current link points at one of them, their entries in every tag's
// history, their links in the referrers of their subjects, then the
// revisions themselves. It does what DeleteManifest does for each digest,
// but reads the tags and referrers once for the whole batch (DeleteManifest
// reads every tag per manifest) and does not need the manifest content to
// find its referrer link. Revisions that are already gone are not an error.
// The content stays in the store.
//
// The order is the crash-safe one: a tag never points at a revision that
// is gone, and an interrupted removal leaves untagged revisions that the
// next run removes.
func (repo *Repository) RemoveRevisions(ctx context.Context, ds []digest.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	reg := repo.reg
	defer reg.invalidateSizes(repo.name)
	// Its tags go through the listing; its place in the catalog through
	// the mark. Told however far the removal got.
	defer func() { _ = reg.noteChange(ctx, repo.name, nil, false) }()
	doomed := make(map[digest.Digest]bool, len(ds))
	for _, d := range ds {
		if d.Validate() != nil {
			return fmt.Errorf("remove revision: invalid digest %q", d)
		}
		doomed[d] = true
	}
	del := func(p string) error {
		if err := reg.driver.Delete(ctx, p); err != nil && !isNotFound(err) {
			return storageErr(err)
		}
		return nil
	}

	tags, err := repo.allTags(ctx)
	if err != nil {
		return err
	}
	for _, t := range tags {
		cur, err := reg.readLink(ctx, tagCurrentPath(repo.name, t))
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("tag %s of %s: %w", t, repo.name, storageErr(err))
		}
		if err == nil && doomed[cur] {
			if err := del(tagDir(repo.name, t)); err != nil {
				return err
			}
			continue
		}
		// The tag's history: index/<alg>/<hex>/link.
		indexRoot := path.Join(tagDir(repo.name, t), "index")
		algs, err := reg.driver.List(ctx, indexRoot)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return storageErr(err)
		}
		for _, a := range algs {
			hexes, err := reg.driver.List(ctx, a)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return storageErr(err)
			}
			for _, h := range hexes {
				if d, ok := digestFromDirs(path.Base(a), path.Base(h)); ok && doomed[d] {
					if err := del(h); err != nil {
						return err
					}
				}
			}
		}
	}

	// Referrer links: _referrers/<alg>/<hex>/<alg>/<hex>/link, found by the
	// referrer's digest so that a manifest whose content is gone loses its
	// link too.
	refRoot := path.Join(repoPath(repo.name), "_referrers")
	var refLinks []string
	err = reg.driver.Walk(ctx, refRoot, func(fi driver.FileInfo) error {
		rel := strings.TrimPrefix(fi.Path(), refRoot+"/")
		parts := strings.Split(rel, "/")
		if fi.IsDir() {
			if len(parts) == 4 {
				if d, ok := digestFromDirs(parts[2], parts[3]); ok && doomed[d] {
					refLinks = append(refLinks, fi.Path())
				}
				return driver.ErrSkipDir
			}
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return storageErr(err)
	}
	for _, p := range refLinks {
		if err := del(p); err != nil {
			return err
		}
		// <subject>/<alg>/ and <subject>/, when nothing else is left there.
		if err := repo.removeIfEmpty(ctx, path.Dir(p)); err != nil {
			return err
		}
		if err := repo.removeIfEmpty(ctx, path.Dir(path.Dir(p))); err != nil {
			return err
		}
	}

	sorted := append([]digest.Digest(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	if err := reg.unsure(ctx, repo.name); err != nil {
		return err
	}
	for _, d := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := driver.DeleteDir(ctx, reg.driver, revisionDir(repo.name, d), "link")
		if err != nil && !isNotFound(err) {
			return storageErr(err)
		}
	}
	return reg.unsure(ctx, repo.name)
}

// removeIfEmpty deletes dir if it has no children (backends without
// directories have nothing to remove).
func (repo *Repository) removeIfEmpty(ctx context.Context, dir string) error {
	children, err := repo.reg.driver.List(ctx, dir)
	if isNotFound(err) || (err == nil && len(children) > 0) {
		return nil
	}
	if err != nil {
		return storageErr(err)
	}
	if err := repo.reg.driver.Delete(ctx, dir); err != nil && !isNotFound(err) {
		return storageErr(err)
	}
	return nil
}
