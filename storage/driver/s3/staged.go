package s3

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// stagedParts is how many parts a staged writer sends at once while it
// receives the next: the writer holds stagedParts+1 parts in memory. One
// in flight already overlaps receiving with sending; more only helps a
// store with long round trips.
const stagedParts = 1

// StagedWriter implements driver.Stager with a multipart upload at the
// path's own key, completed by Commit: S3 shows nothing of an upload
// until it is completed, and then the whole object at once, replacing
// what was there. Parts are sent as they fill (stagedParts at a time,
// while the next is received), so the writer holds a bounded number of
// parts whatever the size. Content that fits in one part is sent by
// Commit as one PUT, and nothing at all is sent before. Cancel, Close
// without Commit and a failed Commit abort the upload; a process that
// dies leaves an incomplete multipart upload, invisible to every method
// (and reclaimed by a bucket lifecycle rule, or by MinIO itself).
//
// The object is a plain one (no segment generation), as Move makes them.
func (d *Driver) StagedWriter(ctx context.Context, p string) (driver.FileWriter, error) {
	if err := checkObject(p); err != nil {
		return nil, err
	}
	return &stagedWriter{
		d: d, ctx: ctx, path: p, key: d.key(p),
		buf:         make([]byte, 0, min(d.chunkSize, 64<<10)),
		sem:         make(chan struct{}, stagedParts),
		free:        make(chan []byte, stagedParts+1),
		WriterState: driver.WriterState{DriverName: name},
	}, nil
}

type stagedWriter struct {
	d    *Driver
	ctx  context.Context // the request's: cancelling it fails the parts under way
	path string
	key  string
	buf  []byte // bytes not yet sent, at most chunkSize
	size int64

	uploadID string
	next     int            // number of the next part
	sem      chan struct{}  // parts being sent
	free     chan []byte    // whole-part buffers sent parts gave back
	wg       sync.WaitGroup // parts being sent
	mu       sync.Mutex
	parts    []minio.CompletePart // by part number - 1
	err      error                // the first part that failed

	driver.WriterState
}

// getBuf returns a whole part's buffer: one a sent part gave back, or a
// new one. A writer so holds at most stagedParts+1 of them, and none once
// it is done (a pool shared by writers would keep them for good, or, as
// sync.Pool does across processors, miss them and allocate more).
func (w *stagedWriter) getBuf() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
		return make([]byte, 0, w.d.chunkSize)
	}
}

func (w *stagedWriter) putBuf(b []byte) {
	if int64(cap(b)) != w.d.chunkSize {
		return
	}
	select {
	case w.free <- b:
	default:
	}
}

func (w *stagedWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *stagedWriter) Write(p []byte) (int, error) {
	if err := w.Usable(); err != nil {
		return 0, err
	}
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.d.chunkSize {
			if err := w.send(); err != nil {
				return n, err
			}
		}
		k := min(len(p), int(w.d.chunkSize)-len(w.buf))
		if len(w.buf)+k > cap(w.buf) {
			// Grow by doubling up to 1 MiB, then to a whole part from
			// the pool: a small blob never holds a part's worth of
			// memory, a big one leaves little garbage behind.
			var nb []byte
			if c := max(2*cap(w.buf), len(w.buf)+k); c <= 1<<20 {
				nb = make([]byte, 0, c)
			} else {
				nb = w.getBuf()
			}
			w.buf = append(nb, w.buf...)
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
		w.size += int64(k)
	}
	return n, nil
}

func (w *stagedWriter) Size() int64 { return w.size }

// send starts sending the buffer as the next part, once fewer than
// stagedParts are under way, and continues with a fresh buffer.
func (w *stagedWriter) send() error {
	d := w.d
	if w.next >= d.maxParts {
		return fmt.Errorf("s3: %s: more than %d parts of %d bytes", w.path, d.maxParts, d.chunkSize)
	}
	if w.uploadID == "" {
		id, err := d.core.NewMultipartUpload(w.ctx, d.bucket, w.key, d.putContentOpts)
		if err != nil {
			return wrap("start upload", w.path, err)
		}
		w.uploadID = id
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	if err := w.failed(); err != nil {
		<-w.sem
		return err
	}
	w.next++
	num, buf := w.next, w.buf
	w.mu.Lock()
	w.parts = append(w.parts, minio.CompletePart{})
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		part, err := d.core.PutObjectPart(w.ctx, d.bucket, w.key, w.uploadID, num,
			bytes.NewReader(buf), int64(len(buf)), minio.PutObjectPartOptions{})
		w.putBuf(buf)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = wrap("put part", w.path, err)
			}
			return
		}
		w.parts[num-1] = minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag}
	}()
	w.buf = w.getBuf()
	return nil
}

// wait waits for the parts under way and returns the first failure.
func (w *stagedWriter) wait() error {
	w.wg.Wait()
	return w.failed()
}

func (w *stagedWriter) abort() {
	w.wg.Wait()
	if w.uploadID != "" {
		_ = w.d.core.AbortMultipartUpload(context.WithoutCancel(w.ctx), w.d.bucket, w.key, w.uploadID)
		w.uploadID = ""
	}
	w.release()
}

func (w *stagedWriter) release() {
	if w.buf != nil {
		w.putBuf(w.buf)
		w.buf = nil
	}
}

// Commit sends what is left and completes the upload: the object appears
// whole. Content of at most one part is one PUT.
func (w *stagedWriter) Commit(ctx context.Context) error {
	if err := w.BeginCommit(); err != nil {
		return err
	}
	d := w.d
	if w.uploadID == "" {
		_, err := d.client.PutObject(ctx, d.bucket, w.key, bytes.NewReader(w.buf), int64(len(w.buf)), d.putContentOpts)
		w.release()
		return wrap("put", w.path, err)
	}
	err := w.failed()
	if err == nil && len(w.buf) > 0 {
		err = w.send()
	}
	if err == nil {
		err = w.wait()
	}
	if err == nil {
		_, err = d.core.CompleteMultipartUpload(ctx, d.bucket, w.key, w.uploadID, w.parts, minio.PutObjectOptions{})
		err = wrap("complete upload", w.path, err)
	}
	if err != nil {
		w.abort()
		return err
	}
	w.uploadID = ""
	w.release()
	return nil
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
