package storage

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
)

// The protocol's hooks into blob reads, mounts, upload commits and
// manifest puts (see gcprotocol.go). Each is one call from the operation
// it guards, so that the operations stay readable and the protocol stays
// in one place.

// gcRead applies the protocol to a blob HEAD or GET: a digest the sweep
// has reached is unknown (the client uploads it again rather than rely on
// it); a condemned one is pinned, since a client that is told a blob
// exists skips its upload. A state that cannot be read does not stop a
// read: the write that would rely on it checks again, and fails closed.
func (repo *Repository) gcRead(ctx context.Context, d digest.Digest) error {
	if _, err := repo.reg.gcp.rely(ctx, "read", []digest.Digest{d}, nil); swept(err) && !repo.reg.gcp.pinnedNow(ctx, d) {
		return blobUnknown(d)
	}
	return nil
}

// gcManifestSwept reports whether the sweep is deleting manifest d: its
// GET and HEAD say unknown then, so that a client pushing an index
// pushes the child again rather than rely on it.
func (repo *Repository) gcManifestSwept(ctx context.Context, d digest.Digest) bool {
	p := repo.reg.gcp
	if p == nil {
		return false
	}
	v := p.current(ctx, p.maxAge)
	return v.err == nil && v.status(d) == gcInProgress && !p.pinnedNow(ctx, d)
}

// pinnedNow reports whether a writer pinned d in the current plan. A read
// (HEAD or GET) of a digest the sweep has reached serves it when it is
// pinned: the sweep keeps it, unless the pin came later than the sweep's
// listing (a writer slower than MaxAge, which its own re-check then
// refuses). So a read may say 200 for content about to go in that rare
// case; what relies on a read does so through a write, and a write that
// finds a pinned digest being deleted waits until the state says whether
// the sweep kept it, then looks it up: it never relies on the pin.
func (p *gcProtocol) pinnedNow(ctx context.Context, d digest.Digest) bool {
	if p == nil {
		return false
	}
	v := p.view.Load()
	if v == nil || v.st.Plan == "" {
		return false
	}
	p.pinMu.Lock()
	mine := p.pinFor == v.st.Plan && p.pinned[d]
	p.pinMu.Unlock()
	if mine {
		return true
	}
	_, err := p.reg.driver.Stat(ctx, gcPinPath(v.st.Plan, d))
	return err == nil
}

// active reports whether a plan is in force: without one no write relies
// on anything the collector might delete, and the protocol's extra reads
// (a manifest's children's children) are skipped.
func (p *gcProtocol) active(ctx context.Context) bool {
	if p == nil {
		return false
	}
	v := p.current(ctx, p.maxAge)
	return v.err != nil || v.set != nil
}

// gcManifestTicket applies the protocol to a manifest put: refs are what
// the manifest references (config, layers, children), and, while a plan
// is in force, what its children reference in turn, to the bottom: a
// child the sweep keeps because of this write's pin is kept with all it
// references, but what of it the sweep deleted before the pin is not
// brought back, so the put must find it there. d is the manifest's own
// content, which a put of it writes anew if the sweep is deleting it.
func (repo *Repository) gcManifestTicket(ctx context.Context, d digest.Digest, refs, children []digest.Digest) (*gcTicket, error) {
	p := repo.reg.gcp
	if p == nil {
		return nil, nil
	}
	var deepBlobs, deepManifests []digest.Digest
	if len(children) > 0 && p.active(ctx) {
		deepBlobs, deepManifests = repo.reg.gcClosure(ctx, children, refs)
	}
	missing := func(x digest.Digest) error {
		return errcode.Newf(errcode.ManifestBlobUnknown, "%s is not in repository %s (it was garbage collected; push it again)", x, repo.name).
			WithDetail(map[string]string{"digest": x.String()})
	}
	all := append(append(append([]digest.Digest(nil), refs...), deepBlobs...), deepManifests...)
	t, err := p.rely(ctx, "manifest", all, []digest.Digest{d})
	if err != nil {
		var e errGCSwept
		if errors.As(err, &e) {
			return nil, missing(e.d)
		}
		return nil, err
	}
	// What the sweep deleted, and nothing wrote again since, is not there.
	// Direct references are looked up by checkReferences; deeper ones
	// here, in this repository, where a pull will look for them.
	check := func(x digest.Digest, lookup func() error) error {
		if s := t.view.status(x); s != gcGone && s != gcLinksGone {
			return nil
		}
		if err := lookup(); err != nil {
			if errcode.Is(err, errcode.BlobUnknown) || errcode.Is(err, errcode.ManifestUnknown) {
				return missing(x)
			}
			return err
		}
		return nil
	}
	for _, x := range deepBlobs {
		if err := check(x, func() error { _, err := repo.statBlob(ctx, x); return err }); err != nil {
			return nil, err
		}
	}
	for _, x := range deepManifests {
		if err := check(x, func() error { _, err := repo.resolve(ctx, x.String()); return err }); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// gcClosure returns what the manifests roots reference, transitively:
// blobs (configs, layers) and child manifests, leaving out skip. Content
// that cannot be read is left to the put's own checks.
func (r *Registry) gcClosure(ctx context.Context, roots, skip []digest.Digest) (blobs, manifests []digest.Digest) {
	seen := make(map[digest.Digest]bool, len(roots)+len(skip))
	for _, d := range skip {
		seen[d] = true
	}
	for _, d := range roots {
		seen[d] = true
	}
	work := append([]digest.Digest(nil), roots...)
	for len(work) > 0 && ctx.Err() == nil {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		b, err := r.ManifestContent(ctx, d)
		if err != nil {
			continue
		}
		refs, err := ParseReferences(b)
		if err != nil {
			continue
		}
		for _, x := range refs.Blobs {
			if !seen[x] {
				seen[x] = true
				blobs = append(blobs, x)
			}
		}
		for _, x := range refs.Manifests {
			if !seen[x] {
				seen[x] = true
				manifests = append(manifests, x)
				work = append(work, x)
			}
		}
	}
	return blobs, manifests
}
