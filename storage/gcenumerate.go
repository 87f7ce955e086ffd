package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
)

// What the online collector needs of the layout beyond the offline one's
// enumerate.go: the age of what it condemns, batched deletes, and the
// startup check of the store's consistency.

// itemInfo stats p: its modification time, ok false when it is missing.
func (r *Registry) itemInfo(ctx context.Context, p string) (size int64, mod time.Time, ok bool, err error) {
	fi, err := r.driver.Stat(ctx, p)
	if isNotFound(err) {
		return 0, time.Time{}, false, nil
	}
	if err != nil {
		return 0, time.Time{}, false, storageErr(err)
	}
	if fi.IsDir() {
		return 0, time.Time{}, false, nil
	}
	return fi.Size(), fi.ModTime(), true, nil
}

// LayerLinkModTime is when the repository's link to blob d was written
// (store time); ok is false without a link.
func (repo *Repository) LayerLinkModTime(ctx context.Context, d digest.Digest) (time.Time, bool, error) {
	_, mod, ok, err := repo.reg.itemInfo(ctx, layerLinkPath(repo.name, d))
	return mod, ok, err
}

// RevisionModTime is when the repository's revision link of manifest d
// was written (store time); ok is false without one.
func (repo *Repository) RevisionModTime(ctx context.Context, d digest.Digest) (time.Time, bool, error) {
	_, mod, ok, err := repo.reg.itemInfo(ctx, revisionLinkPath(repo.name, d))
	return mod, ok, err
}

// BlobDataInfo is the size of blob d's data and when it was written (store
// time); ok is false when there is no data file.
func (r *Registry) BlobDataInfo(ctx context.Context, d digest.Digest) (size int64, mod time.Time, ok bool, err error) {
	if d.Validate() != nil {
		return 0, time.Time{}, false, fmt.Errorf("blob info: invalid digest %q", d)
	}
	return r.itemInfo(ctx, blobDataPath(d))
}

// LayerLink names a repository's link to a blob.
type LayerLink struct {
	Repository string
	Digest     digest.Digest
}

// UnlinkLayers removes repositories' links to blobs, in batches where the
// driver can (driver.BatchDeleter: one request per thousand links on S3).
// Missing links are not an error; nothing is synced (FlushRemovals).
func (r *Registry) UnlinkLayers(ctx context.Context, links []LayerLink) error {
	for _, l := range links {
		if ValidateName(l.Repository) != nil || l.Digest.Validate() != nil {
			return fmt.Errorf("unlink layer: invalid link %s -> %q", clip(l.Repository), clip(string(l.Digest)))
		}
	}
	if bd, ok := driver.As[driver.BatchDeleter](r.driver); ok {
		ps := make([]string, len(links))
		for i, l := range links {
			ps[i] = layerLinkPath(l.Repository, l.Digest)
		}
		return storageErr(bd.DeleteFiles(ctx, ps))
	}
	var errs []error
	for _, l := range links {
		repo := &Repository{reg: r, name: l.Repository}
		if err := repo.UnlinkLayer(ctx, l.Digest); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteBlobContents removes blobs from the content store, as
// DeleteBlobContent does, in batches where the driver can.
func (r *Registry) DeleteBlobContents(ctx context.Context, ds []digest.Digest) error {
	for _, d := range ds {
		if d.Validate() != nil {
			return fmt.Errorf("delete blob: invalid digest %q", d)
		}
		r.manifests.remove(d)
	}
	if bd, ok := driver.As[driver.BatchDeleter](r.driver); ok {
		ps := make([]string, len(ds))
		for i, d := range ds {
			ps[i] = blobDataPath(d)
		}
		return storageErr(bd.DeleteFiles(ctx, ps))
	}
	var errs []error
	for _, d := range ds {
		if err := r.DeleteBlobContent(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// FlushBlobRemovals makes the removal of blobs ds durable on drivers
// whose removals are not (driver.Flusher).
func (r *Registry) FlushBlobRemovals(ctx context.Context, ds []digest.Digest) error {
	seen := map[string]bool{}
	var dirs []string
	for _, d := range ds {
		if dir := path.Dir(blobDir(d)); !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	return storageErr(driver.Flush(ctx, r.driver, dirs...))
}

// CheckConsistency checks that the store gives the read-after-write
// behaviour online collection relies on: a probe written is read back,
// listed, overwritten and read back changed, and a conditional write with
// a stale version is refused. A store that answers stale (an S3-compatible
// service with eventual consistency, a cache in front of it) or ignores
// conditions fails, and online collection must not run on it.
func (r *Registry) CheckConsistency(ctx context.Context) error {
	id := uuid.NewString()
	p := gcProbePath(id)
	defer func() { _ = r.driver.Delete(context.WithoutCancel(ctx), p) }()
	a, b := []byte("probe-a-"+id), []byte("probe-b-"+id)
	fail := func(step string, err error) error {
		return fmt.Errorf("the store is not consistent enough for online garbage collection: %s: %w", step, err)
	}
	if err := r.driver.PutContent(ctx, p, a); err != nil {
		return fail("writing a probe", err)
	}
	if got, err := r.driver.GetContent(ctx, p); err != nil || string(got) != string(a) {
		return fail("reading a probe just written", staleErr(got, err))
	}
	ps, err := r.driver.List(ctx, path.Dir(p))
	found := false
	for _, x := range ps {
		found = found || x == p
	}
	if err != nil || !found {
		return fail("listing a probe just written", staleErr(nil, err))
	}
	if err := r.driver.PutContent(ctx, p, b); err != nil {
		return fail("overwriting a probe", err)
	}
	if got, err := r.driver.GetContent(ctx, p); err != nil || string(got) != string(b) {
		return fail("reading a probe just overwritten", staleErr(got, err))
	}
	cw, err := r.conditional()
	if err != nil {
		return err
	}
	_, v, err := cw.GetContentVersion(ctx, p)
	if err != nil {
		return fail("reading a probe's version", err)
	}
	if _, err := cw.PutContentIf(ctx, p, a, ""); !errors.Is(err, driver.ErrPreconditionFailed) {
		return fail("a create-only write over an existing object was not refused", staleErr(nil, err))
	}
	v2, err := cw.PutContentIf(ctx, p, a, v)
	if err != nil {
		return fail("a conditional write with the current version", err)
	}
	if _, err := cw.PutContentIf(ctx, p, b, v); !errors.Is(err, driver.ErrPreconditionFailed) {
		return fail("a conditional write with a stale version was not refused", staleErr(nil, err))
	}
	if _, got, err := cw.GetContentVersion(ctx, p); err != nil || got != v2 {
		return fail("reading back a conditional write", staleErr(nil, err))
	}
	return nil
}

func staleErr(got []byte, err error) error {
	if err != nil {
		return err
	}
	if got != nil {
		return fmt.Errorf("got %q", clip(string(got)))
	}
	return errors.New("stale answer")
}
