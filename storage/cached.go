package storage

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// PutCachedManifest stores a manifest that a pull-through cache fetched
// from its upstream: exactly these bytes under their digest, as a revision
// of the repository, tagged tag unless tag is "". want, when set, is the
// digest the content must have (the reference it was fetched by, or the
// digest the upstream announced).
//
// Unlike PutManifest it does not require what the manifest references to
// be in the repository: a cache fetches blobs and an index's children when
// clients ask for them, and the upstream vouches for the whole. The
// manifest must still parse as one registryd serves.
func (repo *Repository) PutCachedManifest(ctx context.Context, want digest.Digest, contentType string, content []byte, tag string) (*Manifest, error) {
	if int64(len(content)) > repo.reg.maxManifest {
		return nil, manifestTooLarge(repo.reg.maxManifest)
	}
	alg := digest.SHA256
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, errcode.Newf(errcode.DigestInvalid, "invalid digest %q", clip(want.String()))
		}
		alg = want.Algorithm()
	}
	if tag != "" {
		if err := ValidateTag(tag); err != nil {
			return nil, err
		}
	}
	d := alg.FromBytes(content)
	if want != "" && d != want {
		return nil, errcode.Newf(errcode.DigestInvalid, "manifest digest %s does not match %s", d, want).WithDetail(map[string]string{"digest": want.String()})
	}
	m, mt, err := parseManifest(content, contentType)
	if err != nil {
		return nil, err
	}
	// One driver batch, as PutManifest writes a pushed manifest: the
	// content, the revision link and the referrer link, then, once those
	// are durable, the tag.
	reg := repo.reg
	ops := []driver.BatchOp{reg.contentOp(ctx, d, content), linkPut(revisionLinkPath(repo.name, d), d)}
	out := &Manifest{Digest: d, MediaType: mt, Content: content}
	if m.Subject != nil {
		out.Subject = m.Subject.Digest
		ops = append(ops, linkPut(referrerLinkPath(repo.name, m.Subject.Digest, d), d))
	}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	tagOps, err := repo.tagOps(ctx, tags, d)
	if err != nil {
		return nil, err
	}
	if err := driver.Batch(ctx, reg.driver, append(ops, tagOps...)...); err != nil {
		return nil, storageErr(err)
	}
	reg.manifests.add(d, content)
	reg.invalidateSizes(repo.name)
	return out, nil
}

// HasContent reports whether the store holds content under d, in any
// repository: a cache links it into another repository of the same
// upstream instead of fetching it again.
func (r *Registry) HasContent(ctx context.Context, d digest.Digest) (Descriptor, bool, error) {
	desc, err := r.statContent(ctx, d)
	if errcode.Is(err, errcode.BlobUnknown) {
		return Descriptor{}, false, nil
	}
	if err != nil {
		return Descriptor{}, false, err
	}
	return desc, true, nil
}
