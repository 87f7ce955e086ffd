package s3

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// Writer implements driver.StorageDriver.
//
// Without append the writer starts empty and, when it is closed or
// committed, replaces the object with a new base of a new generation (see
// segments.go), then removes the segments of the old one.
//
// With append it continues the object at the path, writing one piece (see
// segments.go for why every state in between is consistent):
//   - After a last piece of at least MinChunkSize, a new segment holding
//     only the new bytes. Nothing is copied or read back: appends cost
//     what they send.
//   - A last piece smaller than that (S3 refuses smaller parts but the
//     last) is read back into the buffer, and the writer replaces it with
//     its old bytes followed by the new ones.
//   - An object without generation (written by PutContent, or by a
//     version of this driver before segments) of at least MinChunkSize
//     becomes the first part(s) of the writer's multipart upload by
//     server-side copy, once: the result has a generation, so later
//     appends add segments. The copy is conditional on the object's ETag,
//     so an object replaced meanwhile fails the write instead of mixing
//     two contents; a segment written after its base was replaced by
//     another generation is removed again and fails the write likewise.
//
// The writer holds at most ChunkSize bytes: two parts of half of it, one
// sent while the other fills (parts.go).
func (d *Driver) Writer(ctx context.Context, p string, appending bool) (driver.FileWriter, error) {
	if err := checkObject(p); err != nil {
		return nil, err
	}
	key := d.key(p)
	w := &writer{d: d, ctx: context.WithoutCancel(ctx), path: p, key: key, target: key, WriterState: driver.WriterState{DriverName: name}}
	if !appending {
		w.dirty = true // Close replaces (truncates) the object even if nothing is written
		w.gen, w.newGen = newGen(), true
		w.setup()
		return w, nil
	}
	oi, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	switch {
	case err != nil && isNoKey(err):
		w.dirty = true // Close creates the object
		w.gen, w.newGen = newGen(), true
		w.setup()
		return w, nil
	case err != nil:
		return nil, wrap("stat", p, err)
	}
	o, err := d.objectOf(ctx, p, key, oi)
	if err != nil {
		return nil, err
	}
	w.size = o.size
	last := o.last()
	switch {
	case o.gen == "" && last.size >= MinChunkSize:
		w.gen, w.newGen = newGen(), true
		w.existing, w.etag = last.size, last.etag
	case last.size >= MinChunkSize:
		w.gen = o.gen
		w.target = segKey(key, o.gen, o.size)
	default:
		w.gen, w.newGen = o.gen, o.gen == ""
		if w.newGen {
			w.gen = newGen()
		}
		w.target = last.key
	}
	w.setup()
	if w.target == last.key && last.size > 0 && last.size < MinChunkSize {
		var opts minio.GetObjectOptions
		if err := opts.SetRange(0, last.size-1); err != nil {
			return nil, err
		}
		if err := opts.SetMatchETag(last.etag); err != nil {
			return nil, err
		}
		rc, _, _, err := d.core.GetObject(ctx, d.bucket, last.key, opts)
		if err != nil {
			return nil, wrap("get", p, err)
		}
		b := make([]byte, last.size)
		_, err = io.ReadFull(rc, b)
		_ = rc.Close()
		if err != nil {
			return nil, wrap("get", p, err)
		}
		w.preload(b)
		d.appendReread.Add(last.size)
	}
	return w, nil
}

type writer struct {
	d    *Driver
	ctx  context.Context // for Write, which has none; not cancelled with the request that opened the writer
	path string
	key  string // the base's key
	// target is the key the writer writes: the base, a new segment, or
	// the last segment it replaces.
	target string
	gen    string // the generation of the object being written
	newGen bool   // the writer writes the base of a new generation

	*parts          // the upload of target, and the bytes not yet sent
	size     int64  // the object's size so far, existing content included
	existing int64  // bytes of an existing base without generation to copy as the first part(s)
	etag     string // that base's ETag
	dirty    bool   // the object must be written when the writer finishes

	driver.WriterState
}

// setup makes the writer's upload of its target.
func (w *writer) setup() {
	w.parts = newParts(w.ctx, w.d, w.path, w.target, w.d.partSize(), w.putOpts())
	if w.existing > 0 {
		w.begin = w.copyExisting
	}
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.Usable(); err != nil {
		return 0, err
	}
	n, err := w.write(p)
	w.size += int64(n)
	if n > 0 {
		w.dirty = true
	}
	return n, err
}

func (w *writer) Size() int64 { return w.size }

// putOpts are the options of the object the writer writes: a base
// carries its generation.
func (w *writer) putOpts() minio.PutObjectOptions {
	opts := w.d.putContentOpts
	if w.target == w.key {
		opts.UserMetadata = map[string]string{genMetaKey: w.gen}
	}
	return opts
}

// copyExisting copies the existing object's content in as the upload's
// first parts, when it has no generation yet: parts of at most 5 GiB, all
// of about the same size, so that none is below 5 MiB (the existing
// object is at least that).
func (w *writer) copyExisting(ctx context.Context) error {
	d := w.d
	n := (w.existing + maxCopyPartSize - 1) / maxCopyPartSize
	var off int64
	for i := range n {
		length := w.existing / n
		if i == n-1 {
			length = w.existing - off
		}
		cp, err := d.core.CopyObjectPart(ctx, d.bucket, w.key, d.bucket, w.key, w.uploadID, int(i)+1, off, length,
			map[string]string{"x-amz-copy-source-if-match": w.etag})
		if err != nil {
			if isNoKey(err) || minio.ToErrorResponse(err).Code == "PreconditionFailed" {
				return errors.New("s3: " + w.path + " was replaced or removed while a writer appended to it")
			}
			return wrap("copy part", w.path, err)
		}
		w.added(minio.CompletePart{PartNumber: cp.PartNumber, ETag: cp.ETag})
		d.appendCopied.Add(length)
		off += length
	}
	return nil
}

// finish puts everything written into the bucket with one atomic write
// of the target key.
func (w *writer) finish(ctx context.Context) error {
	if !w.dirty {
		return nil
	}
	d := w.d
	if !w.started() && w.existing == 0 {
		// Everything is in the buffer: one PUT.
		_, err := d.client.PutObject(ctx, d.bucket, w.target, bytes.NewReader(w.buf), int64(len(w.buf)), w.putOpts())
		if err != nil {
			return wrap("put", w.path, err)
		}
		w.release()
	} else if err := w.complete(ctx); err != nil {
		return err
	}
	w.dirty = false
	if w.newGen {
		// Segments of the previous generation are invisible already;
		// failing to remove them leaves debris that Delete removes.
		_ = d.removeStaleSegments(ctx, w.path, w.key, w.gen)
		return nil
	}
	if w.target != w.key {
		// A segment belongs to the object only while the base is of its
		// generation.
		oi, err := d.client.StatObject(ctx, d.bucket, w.key, minio.StatObjectOptions{})
		if err != nil && !isNoKey(err) {
			return wrap("stat", w.path, err)
		}
		if err != nil || genOf(oi.Metadata) != w.gen {
			_ = d.client.RemoveObject(ctx, d.bucket, w.target, minio.RemoveObjectOptions{})
			return errors.New("s3: " + w.path + " was replaced or removed while a writer appended to it")
		}
	}
	return nil
}

// Close writes what the writer received into the object, where a later
// appending Writer finds it.
func (w *writer) Close() error {
	if err := w.BeginClose(); err != nil {
		return err
	}
	if w.Committed() {
		w.release()
		return nil
	}
	err := w.finish(w.ctx)
	if err != nil {
		w.abort()
	}
	return err
}

// Cancel aborts the multipart upload and removes the object: its base,
// then its segments.
func (w *writer) Cancel(ctx context.Context) error {
	if err := w.BeginCancel(); err != nil {
		return err
	}
	w.abort()
	if err := w.d.client.RemoveObject(ctx, w.d.bucket, w.key, minio.RemoveObjectOptions{}); err != nil && !isNoKey(err) {
		return wrap("delete", w.path, err)
	}
	_, err := w.d.removePrefix(ctx, w.path, w.key+hiddenSep, nil)
	return err
}

// Commit completes the object: once it returns, the content is stored.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.BeginCommit(); err != nil {
		return err
	}
	return w.finish(ctx)
}
