package storage

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// Descriptor is what the registry knows of a stored blob.
type Descriptor struct {
	Digest digest.Digest
	Size   int64
}

func blobUnknown(d digest.Digest) error {
	return errcode.New(errcode.BlobUnknown).WithDetail(map[string]string{"digest": d.String()})
}

// StatBlob describes a blob linked into the repository. A blob that exists
// in the content store but is not linked here is unknown: repositories see
// only what was pushed or mounted into them.
func (repo *Repository) StatBlob(ctx context.Context, d digest.Digest) (Descriptor, error) {
	linked, err := repo.reg.readLink(ctx, layerLinkPath(repo.name, d))
	if isNotFound(err) || (err == nil && linked != d) {
		return Descriptor{}, blobUnknown(d)
	}
	if err != nil {
		return Descriptor{}, storageErr(err)
	}
	return repo.reg.statContent(ctx, d)
}

// statContent describes d in the global content store.
func (r *Registry) statContent(ctx context.Context, d digest.Digest) (Descriptor, error) {
	fi, err := r.driver.Stat(ctx, blobDataPath(d))
	if isNotFound(err) {
		return Descriptor{}, blobUnknown(d)
	}
	if err != nil {
		return Descriptor{}, storageErr(err)
	}
	if fi.IsDir() {
		return Descriptor{}, blobUnknown(d)
	}
	return Descriptor{Digest: d, Size: fi.Size()}, nil
}

// OpenBlob opens a linked blob for reading from offset. The reader is the
// driver's; for the filesystem driver it is an *os.File, which net/http
// sends with sendfile.
func (repo *Repository) OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, Descriptor, error) {
	desc, err := repo.StatBlob(ctx, d)
	if err != nil {
		return nil, Descriptor{}, err
	}
	rc, err := repo.reg.driver.Reader(ctx, blobDataPath(d), offset)
	if isNotFound(err) {
		return nil, Descriptor{}, blobUnknown(d)
	}
	if err != nil {
		return nil, Descriptor{}, storageErr(err)
	}
	return rc, desc, nil
}

// BlobURL returns a URL to download the blob from the backend directly, or
// "" when the registry has no such URLs (Options.BlobURL unset). The blob
// must be linked into the repository, as for OpenBlob.
func (repo *Repository) BlobURL(ctx context.Context, d digest.Digest) (string, error) {
	if repo.reg.blobURL == nil {
		return "", nil
	}
	if _, err := repo.StatBlob(ctx, d); err != nil {
		return "", err
	}
	u, err := repo.reg.blobURL(ctx, blobDataPath(d))
	if err != nil {
		return "", storageErr(err)
	}
	return u, nil
}

// DeleteBlob unlinks a blob from the repository. The content stays in the
// store until garbage collection finds nothing else references it.
func (repo *Repository) DeleteBlob(ctx context.Context, d digest.Digest) error {
	if _, err := repo.StatBlob(ctx, d); err != nil {
		return err
	}
	err := repo.reg.driver.Delete(ctx, layerLinkDir(repo.name, d))
	if isNotFound(err) {
		return blobUnknown(d)
	}
	return storageErr(err)
}

// MountBlob links a blob that from already has into this repository.
// from == nil mounts any blob present in the content store (the OCI 1.1
// mount without "from"); the caller decides whether that is allowed.
func (repo *Repository) MountBlob(ctx context.Context, from *Repository, d digest.Digest) (Descriptor, error) {
	var desc Descriptor
	var err error
	if from != nil {
		desc, err = from.StatBlob(ctx, d)
	} else {
		desc, err = repo.reg.statContent(ctx, d)
	}
	if err != nil {
		return Descriptor{}, err
	}
	if err := repo.linkBlob(ctx, d); err != nil {
		return Descriptor{}, err
	}
	return desc, nil
}

func (repo *Repository) linkBlob(ctx context.Context, d digest.Digest) error {
	return storageErr(driver.Batch(ctx, repo.reg.driver, repo.linkOp(ctx, d)))
}

// linkOp is the batch operation that links d into the repository. An
// existing link with the right content is not rewritten (pushes of layers
// that are already there are common), only kept: it may be a concurrent
// push's, not yet durable, and this request's answer must not get ahead
// of it.
func (repo *Repository) linkOp(ctx context.Context, d digest.Digest) driver.BatchOp {
	p := layerLinkPath(repo.name, d)
	if linked, err := repo.reg.readLink(ctx, p); err == nil && linked == d {
		return driver.KeepOp(p)
	}
	return linkPut(p, d)
}

// linkPut is the batch operation that writes a link file naming d.
func linkPut(p string, d digest.Digest) driver.BatchOp {
	return driver.PutOp(p, []byte(d.String()))
}

// contentOp is the batch operation that stores small content under its
// digest (manifests, whose bodies are in memory anyway), or keeps it when
// it is already there.
func (r *Registry) contentOp(ctx context.Context, d digest.Digest, b []byte) driver.BatchOp {
	if fi, err := r.driver.Stat(ctx, blobDataPath(d)); err == nil && !fi.IsDir() && fi.Size() == int64(len(b)) {
		return driver.KeepOp(blobDataPath(d))
	}
	return driver.PutOp(blobDataPath(d), b)
}

// getContent reads small content by digest, through the manifest cache.
func (r *Registry) getContent(ctx context.Context, d digest.Digest) ([]byte, error) {
	if b, ok := r.manifests.get(d); ok {
		return b, nil
	}
	fi, err := r.driver.Stat(ctx, blobDataPath(d))
	if err != nil {
		return nil, err
	}
	if fi.Size() > r.maxManifest {
		return nil, errcode.Newf(errcode.ManifestInvalid, "stored manifest %s is larger than %d bytes", d, r.maxManifest)
	}
	b, err := r.driver.GetContent(ctx, blobDataPath(d))
	if err != nil {
		return nil, err
	}
	// Content read from storage is verified once before it is cached, so a
	// damaged file is reported instead of being served as the digest.
	if d.Algorithm().Available() && d.Algorithm().FromBytes(b) != d {
		return nil, errcode.Newf(errcode.Unknown, "stored content does not match its digest %s", d)
	}
	r.manifests.add(d, b)
	return b, nil
}
