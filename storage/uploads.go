package storage

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"math"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// An Upload is a resumable blob upload. Its whole state lives in storage
// (data, start time, hash state keyed by offset), so a PATCH may arrive after
// a restart or at another instance sharing the storage.
type Upload struct {
	repo      *Repository
	id        string
	alg       digest.Algorithm
	startedAt time.Time
}

// uploadScratch declares an upload session's files scratch state
// (driver.WithScratch): the filesystem driver then skips the fsyncs of its
// startedat, algorithm and hash-state files, of its data file's directory
// entry and of the directories below _uploads. This is safe because:
//   - a session lost in a crash only makes the client upload again (the
//     spec lets a registry forget an upload at any time);
//   - a hash state that is missing, empty or torn is either refused by
//     resumeHash (wrong length or offset: rebuilt from the data) or, if it
//     still parses, yields a digest that does not match the client's, so
//     Commit refuses the upload: nothing unverified is ever stored;
//   - the data file's content is still synced by Commit before the file is
//     moved into the content store, and the move syncs the blob directory
//     it lands in, so a committed blob is exactly as durable as before;
//   - _uploads itself and everything above it (the repository directory,
//     which committed links live below) are still created durably.
func uploadScratch(ctx context.Context, name string) context.Context {
	return driver.WithScratch(ctx, uploadsRoot(name))
}

func uploadUnknown(id string) error {
	return errcode.New(errcode.BlobUploadUnknown).WithDetail(map[string]string{"uuid": clip(id)})
}

// NewUpload starts an upload session. alg is the digest algorithm hashed
// while bytes stream in (sha256 unless the client announced another).
func (repo *Repository) NewUpload(ctx context.Context, alg digest.Algorithm) (*Upload, error) {
	if alg == "" {
		alg = digest.SHA256
	}
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return nil, errcode.Newf(errcode.DigestInvalid, "unsupported digest algorithm %q", clip(string(alg)))
	}
	id := uuid.NewString()
	now := time.Now().UTC()
	d := repo.reg.driver
	ctx = uploadScratch(ctx, repo.name)
	// startedat is what upload purging ages by, and what proves the upload
	// exists; it is written first so that, while the system runs, there is
	// never data without it. None of the session is made durable (see
	// uploadScratch): after a crash it may be missing or empty, and the
	// client starts again, or purging ages the directory by its time.
	if err := d.PutContent(ctx, uploadStartedAtPath(repo.name, id), []byte(now.Format(time.RFC3339Nano))); err != nil {
		return nil, storageErr(err)
	}
	if alg != digest.SHA256 {
		if err := d.PutContent(ctx, path.Join(uploadDir(repo.name, id), "algorithm"), []byte(alg)); err != nil {
			return nil, storageErr(err)
		}
	}
	w, err := d.Writer(ctx, uploadDataPath(repo.name, id), false)
	if err != nil {
		return nil, storageErr(err)
	}
	if err := w.Close(); err != nil {
		return nil, storageErr(err)
	}
	return &Upload{repo: repo, id: id, alg: alg, startedAt: now}, nil
}

// Upload resumes the upload with the given id.
func (repo *Repository) Upload(ctx context.Context, id string) (*Upload, error) {
	if !ValidUploadID(id) {
		return nil, uploadUnknown(id)
	}
	d := repo.reg.driver
	b, err := d.GetContent(ctx, uploadStartedAtPath(repo.name, id))
	if isNotFound(err) {
		return nil, uploadUnknown(id)
	}
	if err != nil {
		return nil, storageErr(err)
	}
	started, _ := time.Parse(time.RFC3339, string(b))
	alg := digest.SHA256
	if a, err := d.GetContent(ctx, path.Join(uploadDir(repo.name, id), "algorithm")); err == nil {
		alg = digest.Algorithm(a)
		if alg != digest.SHA256 && alg != digest.SHA512 {
			// Torn by a crash (the file is scratch state): the session
			// cannot be resumed, the client starts again.
			return nil, uploadUnknown(id)
		}
	}
	return &Upload{repo: repo, id: id, alg: alg, startedAt: started}, nil
}

// ID is the upload's id.
func (u *Upload) ID() string { return u.id }

// StartedAt is when the upload began.
func (u *Upload) StartedAt() time.Time { return u.startedAt }

// Size is the number of bytes received so far.
func (u *Upload) Size(ctx context.Context) (int64, error) {
	fi, err := u.repo.reg.driver.Stat(ctx, uploadDataPath(u.repo.name, u.id))
	if isNotFound(err) {
		return 0, uploadUnknown(u.id)
	}
	if err != nil {
		return 0, storageErr(err)
	}
	return fi.Size(), nil
}

// ErrRangeInvalid is the error for a chunk that does not start where the
// upload ends: 416 with BLOB_UPLOAD_INVALID... the spec's answer for chunks
// out of order.
func rangeInvalid(size int64) error {
	return errcode.Newf(errcode.RangeInvalid, "chunk does not start at the end of the upload (%d bytes received)", size).WithStatus(http.StatusRequestedRangeNotSatisfiable)
}

// Append streams body onto the end of the upload, hashing it on the way.
// start is the first byte's offset from Content-Range, or -1 when the client
// sent none; a chunk that does not start at the current end is refused with
// 416 before any byte is written. It returns the new size.
func (u *Upload) Append(ctx context.Context, body io.Reader, start int64) (int64, error) {
	unlock := u.repo.reg.uploadLocks.Lock(u.repo.name + "/" + u.id)
	defer unlock()
	size, _, err := u.appendLocked(ctx, body, start, true)
	return size, err
}

// appendLocked does the work of Append and returns the hash of the whole
// upload. Nothing is made durable here: a chunk is scratch state, and the
// commit's batch syncs the data before it moves it into the store.
func (u *Upload) appendLocked(ctx context.Context, body io.Reader, start int64, saveState bool) (int64, hash.Hash, error) {
	d := u.repo.reg.driver
	ctx = uploadScratch(ctx, u.repo.name)
	size, err := u.Size(ctx)
	if err != nil {
		return 0, nil, err
	}
	if start >= 0 && start != size {
		return size, nil, rangeInvalid(size)
	}
	h, err := u.resumeHash(ctx, size)
	if err != nil {
		return size, nil, err
	}
	w, err := d.Writer(ctx, uploadDataPath(u.repo.name, u.id), true)
	if err != nil {
		return size, nil, storageErr(err)
	}
	n, copyErr := copyHashing(w, h, body)
	newSize := size + n
	if closeErr := w.Close(); copyErr == nil {
		copyErr = storageSide(closeErr)
	}
	if copyErr != nil {
		// What was written stays: the upload's size is what it is, and the
		// client can ask (GET) and resume. The hash state for the new size
		// is simply not saved; resumeHash rebuilds it from the data.
		if e := errcode.From(copyErr); e != nil {
			// The body's reader judged the request (a chunk longer or
			// shorter than its Content-Range): its code is the answer.
			return newSize, nil, copyErr
		}
		if isStorageSide(copyErr) {
			// The storage failed, not the request: 500, or 503 when it
			// is full or its backend busy or away (faults.go).
			return newSize, nil, storageErr(copyErr)
		}
		return newSize, nil, errcode.Newf(errcode.BlobUploadInvalid, "upload interrupted after %d bytes", newSize).Wrap(copyErr)
	}
	if saveState && n > 0 {
		if err := u.saveHash(ctx, h, newSize); err != nil {
			return newSize, nil, err
		}
	}
	return newSize, h, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyHashing copies r into w and h with large buffers, so the socket, the
// hash and the file each see big reads and writes. The hash of a buffer runs
// on another goroutine while it is written and the next one is read: sha256
// and write(2) each take a good part of a core, and overlapping them is
// most of what an upload can gain on a multi-core machine.
func copyHashing(w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	var bufs [2]*[]byte
	for i := range bufs {
		bufs[i] = copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bufs[i])
	}
	hashed := make(chan struct{}, 1)
	hashed <- struct{}{} // no hash running
	defer func() { <-hashed }()
	var n int64
	for i := 0; ; i ^= 1 {
		buf := *bufs[i]
		k, rerr := fill(r, buf)
		if k > 0 {
			// The previous buffer's hash must be done before the next
			// starts (order) and before that buffer is read into again.
			<-hashed
			go func(p []byte) {
				h.Write(p)
				hashed <- struct{}{}
			}(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return n, storageSide(err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// fill reads into buf until it is full or r ends. Unlike io.ReadFull it
// passes on every error of r as it is, io.ErrUnexpectedEOF included: that
// is how net/http reports a body cut off before its Content-Length, and
// ReadFull would make it indistinguishable from a short last buffer. The
// end of r is io.EOF, with k >= 0 bytes read before it.
func fill(r io.Reader, buf []byte) (k int, err error) {
	for k < len(buf) {
		var m int
		m, err = r.Read(buf[k:])
		k += m
		if err != nil {
			return k, err
		}
	}
	return k, nil
}

func newHash(alg digest.Algorithm) hash.Hash {
	if alg == digest.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// resumeHash returns the hash of the first size bytes of the upload: from
// the saved state for that offset when there is one, else by reading the
// data again (an upload begun by the reference registry, or one whose last
// chunk was cut off before its state was saved).
func (u *Upload) resumeHash(ctx context.Context, size int64) (hash.Hash, error) {
	h := newHash(u.alg)
	if size == 0 {
		return h, nil
	}
	d := u.repo.reg.driver
	if st, err := d.GetContent(ctx, uploadHashStatePath(u.repo.name, u.id, u.alg, size)); err == nil && hashStateLen(st) == size {
		if um, ok := h.(encoding.BinaryUnmarshaler); ok && um.UnmarshalBinary(st) == nil {
			return h, nil
		}
		h.Reset()
	}
	rc, err := d.Reader(ctx, uploadDataPath(u.repo.name, u.id), 0)
	if err != nil {
		return nil, storageErr(err)
	}
	defer rc.Close()
	if _, err := io.CopyN(h, rc, size); err != nil {
		return nil, storageErr(err)
	}
	return h, nil
}

// hashStateLen is the number of bytes a marshalled crypto/sha256 or
// crypto/sha512 state has hashed: its last 8 bytes, big-endian (the
// standard library's format, which it keeps compatible). A state that is
// too short to hold it (an empty file left by a crash) gives -1. Hash
// states are not synced (uploadScratch), so resumeHash only uses one that
// was saved for the very offset it needs; a torn state that still
// passes is caught by the digest check at Commit.
func hashStateLen(st []byte) int64 {
	if len(st) < 8 {
		return -1
	}
	n := binary.BigEndian.Uint64(st[len(st)-8:])
	if n > math.MaxInt64 {
		return -1
	}
	return int64(n)
}

func (u *Upload) saveHash(ctx context.Context, h hash.Hash, size int64) error {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil
	}
	st, err := m.MarshalBinary()
	if err != nil {
		return nil
	}
	ctx = uploadScratch(ctx, u.repo.name)
	return storageErr(u.repo.reg.driver.PutContent(ctx, uploadHashStatePath(u.repo.name, u.id, u.alg, size), st))
}

// Commit appends the final chunk (body may be empty), verifies the whole
// upload against want, makes it durable and moves it into the content store
// under its digest, links it into the repository and removes the session.
// Content becomes visible only here, complete and verified.
//
// The move and the link are one driver batch (driver.Batch): on the
// filesystem the data's fsync, the link's and those of new directories
// run at once, then the two renames, then the flush of the two
// directories they changed, shared with concurrent commits. A crash
// before it returns may leave the link without the blob (the blob is then
// unknown, as before the push) or the blob without the link (garbage),
// never a blob with wrong bytes: its name appears only after its content
// is durable.
func (u *Upload) Commit(ctx context.Context, body io.Reader, start int64, want digest.Digest) (Descriptor, error) {
	unlock := u.repo.reg.uploadLocks.Lock(u.repo.name + "/" + u.id)
	defer unlock()
	if desc, ok, err := u.commitStaged(ctx, body, start, want); ok {
		return desc, err // nothing received before: written once (direct.go)
	}
	size, h, err := u.appendLocked(ctx, body, start, false)
	if err != nil {
		return Descriptor{}, err
	}
	var got digest.Digest
	if want.Algorithm() == u.alg {
		got = digest.NewDigest(u.alg, h)
	} else {
		// The client announced no algorithm and finished with another one
		// (sha512 after a sha256 session): the only way to know is to read
		// the data once more.
		got, err = u.rehash(ctx, want.Algorithm())
		if err != nil {
			return Descriptor{}, err
		}
	}
	if got != want {
		return Descriptor{}, errcode.Newf(errcode.DigestInvalid, "digest %s does not match uploaded content (%s, %d bytes)", want, got, size).WithDetail(map[string]string{"digest": want.String()})
	}
	reg := u.repo.reg
	dst := blobDataPath(want)
	src := uploadDataPath(u.repo.name, u.id)
	blob := driver.MoveOp(src, dst)
	if fi, err := reg.driver.Stat(ctx, dst); err == nil && !fi.IsDir() && fi.Size() == size {
		// Already in the store (pushed before, maybe to another repository,
		// maybe by a commit still flushing it): keep the existing file,
		// durably, and drop the upload's copy below.
		blob = driver.KeepOp(dst)
	}
	if err := driver.Batch(ctx, reg.driver, blob, u.repo.linkOp(ctx, want)); err != nil {
		return Descriptor{}, storageErr(err)
	}
	if err := reg.driver.Delete(ctx, uploadDir(u.repo.name, u.id)); err != nil && !isNotFound(err) {
		return Descriptor{}, storageErr(err)
	}
	return Descriptor{Digest: want, Size: size}, nil
}

func (u *Upload) rehash(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if !alg.Available() {
		return "", errcode.Newf(errcode.DigestInvalid, "unsupported digest algorithm %q", alg)
	}
	rc, err := u.repo.reg.driver.Reader(ctx, uploadDataPath(u.repo.name, u.id), 0)
	if err != nil {
		return "", storageErr(err)
	}
	defer rc.Close()
	return alg.FromReader(rc)
}

// Cancel removes the upload and everything it received.
func (u *Upload) Cancel(ctx context.Context) error {
	unlock := u.repo.reg.uploadLocks.Lock(u.repo.name + "/" + u.id)
	defer unlock()
	err := u.repo.reg.driver.Delete(ctx, uploadDir(u.repo.name, u.id))
	if isNotFound(err) {
		return uploadUnknown(u.id)
	}
	return storageErr(err)
}

// PurgeUploads removes uploads started before olderThan in every
// repository, and returns how many it removed (or would remove, dryRun).
func (r *Registry) PurgeUploads(ctx context.Context, olderThan time.Time, dryRun bool) (int, error) {
	var removed int
	var errs []error
	err := r.walkUploadRepos(ctx, func(name string) error {
		ups, err := r.driver.List(ctx, uploadsRoot(name))
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range ups {
			id := path.Base(p)
			started := time.Time{}
			if b, err := r.driver.GetContent(ctx, uploadStartedAtPath(name, id)); err == nil {
				started, _ = time.Parse(time.RFC3339, string(b))
			}
			if started.IsZero() {
				// No start time, or an empty or torn one (startedat is
				// not synced, see uploadScratch): age it by the directory.
				if fi, err := r.driver.Stat(ctx, p); err == nil {
					started = fi.ModTime()
				}
			}
			if started.IsZero() || !started.Before(olderThan) {
				continue
			}
			removed++
			if dryRun {
				continue
			}
			if err := r.driver.Delete(ctx, p); err != nil && !isNotFound(err) {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// hashStateOffsets is used by tests to see which states are saved.
func (u *Upload) hashStateOffsets(ctx context.Context) ([]int64, error) {
	ps, err := u.repo.reg.driver.List(ctx, uploadHashStatesDir(u.repo.name, u.id, u.alg))
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, p := range ps {
		n, err := strconv.ParseInt(path.Base(p), 10, 64)
		if err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}
