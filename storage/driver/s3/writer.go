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
// Without append the writer starts empty and replaces the object when it
// is closed or committed. With append it continues the object at the path:
// one smaller than MinChunkSize is read back into the buffer (S3 refuses
// parts below 5 MiB but for the last); a larger one becomes the first
// part(s) of the writer's multipart upload by server-side copy, made only
// when the writer has a part of its own to send. The copy is conditional
// on the object's ETag, so an object replaced meanwhile fails the write
// instead of mixing two contents.
//
// The writer holds at most ChunkSize bytes: a full buffer is sent as a part
// at once.
func (d *Driver) Writer(ctx context.Context, p string, appending bool) (driver.FileWriter, error) {
	if err := checkObject(p); err != nil {
		return nil, err
	}
	w := &writer{d: d, ctx: context.WithoutCancel(ctx), path: p, key: d.key(p), buf: make([]byte, 0, min(d.chunkSize, 1<<20))}
	if !appending {
		w.dirty = true // Close replaces (truncates) the object even if nothing is written
		return w, nil
	}
	oi, err := d.client.StatObject(ctx, d.bucket, w.key, minio.StatObjectOptions{})
	switch {
	case err != nil && isNoKey(err):
		w.dirty = true // Close creates the object
	case err != nil:
		return nil, wrap("stat", p, err)
	case oi.Size < MinChunkSize:
		rc, _, _, err := d.core.GetObject(ctx, d.bucket, w.key, minio.GetObjectOptions{})
		if err != nil {
			return nil, wrap("get", p, err)
		}
		b, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return nil, wrap("get", p, err)
		}
		w.buf = append(w.buf[:0], b...)
		w.size = int64(len(b))
	default:
		w.existing, w.etag, w.size = oi.Size, oi.ETag, oi.Size
	}
	return w, nil
}

type writer struct {
	d    *Driver
	ctx  context.Context // for Write, which has none; not cancelled with the request that opened the writer
	path string
	key  string

	buf      []byte // bytes not yet sent, at most chunkSize
	size     int64  // the object's size so far, existing content included
	existing int64  // bytes of the existing object to copy as the first part(s)
	etag     string // the existing object's ETag
	dirty    bool   // the object must be written when the writer finishes

	uploadID string
	parts    []minio.CompletePart

	closed, committed, cancelled bool
}

var (
	errClosed    = errors.New("s3: writer already closed")
	errCommitted = errors.New("s3: writer already committed")
	errCancelled = errors.New("s3: writer already cancelled")
)

func (w *writer) usable() error {
	switch {
	case w.cancelled:
		return errCancelled
	case w.closed:
		return errClosed
	case w.committed:
		return errCommitted
	}
	return nil
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.d.chunkSize {
			if err := w.flushPart(w.ctx); err != nil {
				return n, err
			}
		}
		k := min(len(p), int(w.d.chunkSize)-len(w.buf))
		if len(w.buf)+k > cap(w.buf) {
			// grow straight to a whole part, never beyond
			nb := make([]byte, len(w.buf), w.d.chunkSize)
			copy(nb, w.buf)
			w.buf = nb
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		w.size += int64(k)
		w.dirty = true
	}
	return n, nil
}

func (w *writer) Size() int64 { return w.size }

// startUpload begins the multipart upload, with the existing object's
// content copied in as its first parts.
func (w *writer) startUpload(ctx context.Context) error {
	if w.uploadID != "" {
		return nil
	}
	d := w.d
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, w.key, minio.PutObjectOptions{StorageClass: d.storageClass})
	if err != nil {
		return wrap("start upload", w.path, err)
	}
	w.uploadID = id
	// Copy parts of at most 5 GiB, all of about the same size, so that
	// none is below 5 MiB (the existing object is at least that).
	n := (w.existing + maxCopyPartSize - 1) / maxCopyPartSize
	var off int64
	for i := range n {
		length := w.existing / n
		if i == n-1 {
			length = w.existing - off
		}
		cp, err := d.core.CopyObjectPart(ctx, d.bucket, w.key, d.bucket, w.key, id, len(w.parts)+1, off, length,
			map[string]string{"x-amz-copy-source-if-match": w.etag})
		if err != nil {
			if isNoKey(err) || minio.ToErrorResponse(err).Code == "PreconditionFailed" {
				return errors.New("s3: " + w.path + " was replaced or removed while a writer appended to it")
			}
			return wrap("copy part", w.path, err)
		}
		w.parts = append(w.parts, minio.CompletePart{PartNumber: cp.PartNumber, ETag: cp.ETag})
		off += length
	}
	return nil
}

// flushPart sends the buffer as the next part.
func (w *writer) flushPart(ctx context.Context) error {
	if err := w.startUpload(ctx); err != nil {
		return err
	}
	d := w.d
	part, err := d.core.PutObjectPart(ctx, d.bucket, w.key, w.uploadID, len(w.parts)+1,
		bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
	if err != nil {
		return wrap("put part", w.path, err)
	}
	w.parts = append(w.parts, minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag})
	w.buf = w.buf[:0]
	return nil
}

// finish puts everything written into the object at the path.
func (w *writer) finish(ctx context.Context) error {
	if !w.dirty {
		return nil
	}
	d := w.d
	if w.uploadID == "" && w.existing == 0 {
		// Everything is in the buffer: one PUT.
		_, err := d.client.PutObject(ctx, d.bucket, w.key, bytes.NewReader(w.buf), int64(len(w.buf)), d.putContentOpts)
		if err != nil {
			return wrap("put", w.path, err)
		}
		w.buf, w.dirty = nil, false
		return nil
	}
	if len(w.buf) > 0 || w.uploadID == "" {
		if err := w.flushPart(ctx); err != nil {
			w.abort(ctx)
			return err
		}
	}
	if _, err := d.core.CompleteMultipartUpload(ctx, d.bucket, w.key, w.uploadID, w.parts, minio.PutObjectOptions{}); err != nil {
		w.abort(ctx)
		return wrap("complete upload", w.path, err)
	}
	w.uploadID, w.parts, w.buf, w.dirty = "", nil, nil, false
	return nil
}

func (w *writer) abort(ctx context.Context) {
	if w.uploadID != "" {
		_ = w.d.core.AbortMultipartUpload(ctx, w.d.bucket, w.key, w.uploadID)
		w.uploadID, w.parts = "", nil
	}
}

// Close writes what the writer received into the object, where a later
// appending Writer finds it.
func (w *writer) Close() error {
	if w.cancelled {
		return errCancelled
	}
	if w.closed {
		return errClosed
	}
	w.closed = true
	if w.committed {
		return nil
	}
	err := w.finish(w.ctx)
	if err != nil {
		w.abort(w.ctx)
	}
	return err
}

// Cancel aborts the multipart upload and removes the object.
func (w *writer) Cancel(ctx context.Context) error {
	if w.cancelled {
		return errCancelled
	}
	if w.closed {
		return errClosed
	}
	w.cancelled = true
	w.abort(ctx)
	w.buf = nil
	if err := w.d.client.RemoveObject(ctx, w.d.bucket, w.key, minio.RemoveObjectOptions{}); err != nil && !isNoKey(err) {
		return wrap("delete", w.path, err)
	}
	return nil
}

// Commit completes the object: once it returns, the content is stored.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.usable(); err != nil {
		return err
	}
	w.committed = true
	return w.finish(ctx)
}
