package s3

import (
	"bytes"
	"context"

	"github.com/registryd/registryd/storage/driver"
)

// StagedWriter implements driver.Stager with a multipart upload at the
// path's own key, completed by Commit: S3 shows nothing of an upload
// until it is completed, and then the whole object at once, replacing
// what was there. Parts are sent as they fill, while the next is received
// (parts.go), so the writer holds two parts whatever the size. Content
// that fits in one part is sent by Commit as one PUT, and nothing at all
// is sent before. Cancel, Close without Commit and a failed Commit abort
// the upload; a process that dies leaves an incomplete multipart upload,
// invisible to every method (and reclaimed by a bucket lifecycle rule, or
// by MinIO itself).
//
// The parts are half of ChunkSize (at least 5 MiB), or, when the size is
// known, as small as S3 allows (5 MiB, more for an object above 50 GiB, to
// stay within 10,000 parts). Each part is a buffer, so a part that fails (a throttled
// store) is sent again from it (retry.go), not the whole upload.
//
// The object is a plain one (no segment generation), as Move makes them.
func (d *Driver) StagedWriter(ctx context.Context, p string, size int64) (driver.FileWriter, error) {
	if err := checkObject(p); err != nil {
		return nil, err
	}
	part := d.partSize()
	if size >= 0 {
		part = max(MinChunkSize, (size+int64(d.maxParts)-1)/int64(d.maxParts))
	}
	return &stagedWriter{
		parts:       newParts(ctx, d, p, d.key(p), part, d.putContentOpts),
		WriterState: driver.WriterState{DriverName: name},
	}, nil
}

type stagedWriter struct {
	*parts
	size int64
	driver.WriterState
}

func (w *stagedWriter) Write(p []byte) (int, error) {
	if err := w.Usable(); err != nil {
		return 0, err
	}
	n, err := w.write(p)
	w.size += int64(n)
	return n, err
}

func (w *stagedWriter) Size() int64 { return w.size }

// wait waits for the parts under way and returns the first failure.
func (w *stagedWriter) wait() error {
	w.wg.Wait()
	return w.failed()
}

// Commit sends what is left and completes the upload: the object appears
// whole. Content of at most one part is one PUT.
func (w *stagedWriter) Commit(ctx context.Context) error {
	if err := w.BeginCommit(); err != nil {
		return err
	}
	d := w.d
	if !w.started() {
		_, err := d.client.PutObject(ctx, d.bucket, w.key, bytes.NewReader(w.buf), int64(len(w.buf)), d.putContentOpts)
		w.release()
		return wrap("put", w.path, err)
	}
	return w.complete(ctx)
}

// Close without Commit discards the content: the path keeps what it had.
func (w *stagedWriter) Close() error {
	if err := w.BeginClose(); err != nil {
		return err
	}
	if !w.Committed() {
		w.abort()
	}
	return nil
}

// Cancel discards the content: the path keeps what it had.
func (w *stagedWriter) Cancel(ctx context.Context) error {
	if err := w.BeginCancel(); err != nil {
		return err
	}
	w.abort()
	return nil
}

var _ driver.Stager = (*Driver)(nil)
