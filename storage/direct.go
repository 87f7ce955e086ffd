package storage

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// Monolithic uploads straight into the content store.
//
// Where the driver can stage a write at its final path (driver.Stager: an
// object store's multipart upload), a blob whose digest is known before
// its first byte arrives (POST ?digest= with the body, or a PUT with the
// whole body on an upload that has received nothing) is written once, at
// blobs/<alg>/<xx>/<hex>/data, instead of into the upload and then copied
// there by the commit: on an object store that copy is a second write of
// every byte. The staged write becomes visible only when it is committed,
// after the bytes hashed to the digest; a body that fails (cut off, too
// long, the wrong digest) cancels it and nothing appears. A blob already
// in the store is not written again: the body is hashed and dropped.
//
// What other readers of the store see is what a commit through an upload
// shows them: the blob's data complete and verified, then its link in the
// repository.

// stager is the driver's Stager, when it has one.
func (r *Registry) stager() (driver.Stager, bool) {
	if r.noStaged {
		return nil, false
	}
	return driver.As[driver.Stager](r.driver)
}

// SizedBody is a body that knows its length in advance (a request body
// with a Content-Length): ExpectedSize returns it, or -1 when unknown.
// A blob already in the store is not written again when the body's
// length matches it (the bytes are still hashed).
type SizedBody interface {
	io.Reader
	ExpectedSize() int64
}

// bodySize is what body announces, or -1.
func bodySize(body io.Reader) int64 {
	if s, ok := body.(SizedBody); ok {
		return s.ExpectedSize()
	}
	return -1
}

// PutBlob stores a whole blob whose digest is known in advance and links
// it into the repository (POST ?digest= with the body). Without a staging
// driver it goes through an upload session, as a client's POST and PUT
// would.
func (repo *Repository) PutBlob(ctx context.Context, body io.Reader, want digest.Digest) (Descriptor, error) {
	if st, ok := repo.reg.stager(); ok {
		return repo.putStaged(ctx, st, body, want)
	}
	up, err := repo.NewUpload(ctx, want.Algorithm())
	if err != nil {
		return Descriptor{}, err
	}
	desc, err := up.Commit(ctx, body, -1, want)
	if err != nil {
		_ = up.Cancel(ctx)
		return Descriptor{}, err
	}
	return desc, nil
}

// commitStaged is Commit for an upload that has received nothing, on a
// staging driver: the body goes straight to the blob's path, then the
// session is removed. ok is false when the upload is not such a one, and
// Commit goes the usual way.
func (u *Upload) commitStaged(ctx context.Context, body io.Reader, start int64, want digest.Digest) (desc Descriptor, ok bool, err error) {
	st, staged := u.repo.reg.stager()
	if !staged || start > 0 {
		return Descriptor{}, false, nil
	}
	got, err := u.Size(ctx)
	if err != nil || got != 0 {
		return Descriptor{}, false, nil
	}
	desc, err = u.repo.putStaged(ctx, st, body, want)
	if err != nil {
		// The session stays as it was, empty: the client may retry.
		return Descriptor{}, true, err
	}
	if err := u.repo.reg.driver.Delete(ctx, uploadDir(u.repo.name, u.id)); err != nil && !isNotFound(err) {
		return Descriptor{}, true, storageErr(err)
	}
	return desc, true, nil
}

// putStaged writes body to the blob's path through the driver's staged
// writer and commits it once it hashed to want, then links it.
func (repo *Repository) putStaged(ctx context.Context, st driver.Stager, body io.Reader, want digest.Digest) (Descriptor, error) {
	alg := want.Algorithm()
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return Descriptor{}, errcode.Newf(errcode.DigestInvalid, "unsupported digest algorithm %q", clip(string(alg)))
	}
	reg := repo.reg
	dst := blobDataPath(want)
	h := newHash(alg)
	var w driver.FileWriter
	size := bodySize(body)
	if fi, err := reg.driver.Stat(ctx, dst); err == nil && !fi.IsDir() && size >= 0 && fi.Size() == size {
		// Already in the store (pushed before, maybe to another
		// repository): the body is only checked.
		w = &discardWriter{}
	} else {
		if w, err = st.StagedWriter(ctx, dst, size); err != nil {
			return Descriptor{}, storageErr(err)
		}
	}
	n, err := copyHashing(w, h, body)
	if err != nil {
		_ = w.Cancel(context.WithoutCancel(ctx))
		switch {
		case errcode.From(err) != nil:
			return Descriptor{}, err // the body's reader judged the request
		case isStorageSide(err):
			// The storage failed, not the request: 500, or 503 when it
			// is full or its backend busy or away (faults.go).
			return Descriptor{}, storageErr(err)
		}
		return Descriptor{}, errcode.Newf(errcode.BlobUploadInvalid, "upload interrupted after %d bytes", n).Wrap(err)
	}
	if got := digest.NewDigest(alg, h); got != want {
		_ = w.Cancel(context.WithoutCancel(ctx))
		return Descriptor{}, errcode.Newf(errcode.DigestInvalid, "digest %s does not match uploaded content (%s, %d bytes)", want, got, n).WithDetail(map[string]string{"digest": want.String()})
	}
	err = w.Commit(ctx)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Descriptor{}, storageErr(err)
	}
	// The link as a blob commit makes it (uploads.go): one batch with a
	// Keep of the data, which a staged write's Commit made durable
	// already, but which, when it was found in the store, may be a
	// concurrent commit's, not yet durable on a driver that batches.
	if err := driver.Batch(ctx, reg.driver, driver.KeepOp(dst), repo.linkOp(ctx, want)); err != nil {
		return Descriptor{}, storageErr(err)
	}
	return Descriptor{Digest: want, Size: n}, nil
}

// discardWriter is a FileWriter that keeps nothing: for a body that is
// only hashed.
type discardWriter struct{ n int64 }

func (w *discardWriter) Write(p []byte) (int, error)      { w.n += int64(len(p)); return len(p), nil }
func (w *discardWriter) Size() int64                      { return w.n }
func (w *discardWriter) Close() error                     { return nil }
func (w *discardWriter) Cancel(context.Context) error     { return nil }
func (w *discardWriter) Commit(ctx context.Context) error { return nil }
