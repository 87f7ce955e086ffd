package s3

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/minio/minio-go/v7"
)

// partsInFlight is how many parts a writer sends at once while it
// receives the next: it holds partsInFlight+1 parts in memory. One in
// flight already overlaps receiving with sending; more only helps a store
// with long round trips.
const partsInFlight = 1

// partSize is the part size of writers of unknown size: half the chunk
// size (at least S3's 5 MiB), so that the two parts a writer holds are
// the chunk size the configuration promises a writer holds.
func (d *Driver) partSize() int64 { return max(MinChunkSize, d.chunkSize/2) }

// parts is the multipart upload of one writer: the bytes it buffers, up
// to a part, and the parts it sends, partsInFlight at a time while the
// next fills, each from its own buffer (so that minio-go can send a part
// again when the store asks it to retry; retry.go). Parts are numbered in
// the order they are added, sent or copied.
type parts struct {
	d    *Driver
	ctx  context.Context // of the sends
	path string          // for errors
	key  string
	opts minio.PutObjectOptions // of the upload
	size int64                  // of a part
	// begin, when set, runs once the upload is created, before any part
	// is sent (the appending writer copies the existing content in).
	begin func(ctx context.Context) error

	buf []byte // bytes not yet sent, at most size

	uploadID string
	sem      chan struct{}  // parts being sent
	free     chan []byte    // whole-part buffers sent parts gave back
	wg       sync.WaitGroup // parts being sent
	mu       sync.Mutex
	list     []minio.CompletePart // by part number - 1
	err      error                // the first send that failed
}

func newParts(ctx context.Context, d *Driver, path, key string, size int64, opts minio.PutObjectOptions) *parts {
	return &parts{
		d: d, ctx: ctx, path: path, key: key, opts: opts, size: size,
		buf:  make([]byte, 0, min(size, 64<<10)),
		sem:  make(chan struct{}, partsInFlight),
		free: make(chan []byte, partsInFlight+1),
	}
}

// getBuf returns a whole part's buffer: one a sent part gave back, or a
// new one. A writer so holds at most partsInFlight+1 of them, and none
// once it is done (a pool shared by writers would keep them for good, or,
// as sync.Pool does across processors, miss them and allocate more).
func (p *parts) getBuf() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return make([]byte, 0, p.size)
	}
}

func (p *parts) putBuf(b []byte) {
	if int64(cap(b)) != p.size {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

func (p *parts) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// write buffers b, sending each part as it fills.
func (p *parts) write(b []byte) (int, error) {
	if err := p.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(b) > 0 {
		if int64(len(p.buf)) == p.size {
			if err := p.send(); err != nil {
				return n, err
			}
		}
		k := min(len(b), int(p.size)-len(p.buf))
		if len(p.buf)+k > cap(p.buf) {
			// Grow by doubling up to 1 MiB, then to a whole part: a small
			// object never holds a part's worth of memory, a big one
			// leaves little garbage behind.
			var nb []byte
			if c := max(2*cap(p.buf), len(p.buf)+k); c <= 1<<20 {
				nb = make([]byte, 0, c)
			} else {
				nb = p.getBuf()
			}
			p.buf = append(nb, p.buf...)
		}
		p.buf = append(p.buf, b[:k]...)
		b = b[k:]
		n += k
	}
	return n, nil
}

// preload makes b (an existing last piece read back) the start of the
// buffer.
func (p *parts) preload(b []byte) {
	nb := p.getBuf()
	p.buf = append(nb, b...)
}

// started reports whether the upload exists.
func (p *parts) started() bool { return p.uploadID != "" }

// start creates the upload, if it does not exist yet, and runs begin.
func (p *parts) start(ctx context.Context) error {
	if p.uploadID != "" {
		return nil
	}
	id, err := p.d.core.NewMultipartUpload(ctx, p.d.bucket, p.key, p.opts)
	if err != nil {
		return wrap("start upload", p.path, err)
	}
	p.uploadID = id
	if p.begin != nil {
		return p.begin(ctx)
	}
	return nil
}

// added records a part done in place (a server-side copy), as the next.
func (p *parts) added(cp minio.CompletePart) {
	p.mu.Lock()
	p.list = append(p.list, cp)
	p.mu.Unlock()
}

// send starts sending the buffer as the next part, once fewer than
// partsInFlight are under way, and continues with a fresh buffer.
func (p *parts) send() error {
	d := p.d
	if err := p.start(p.ctx); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	if err := p.failed(); err != nil {
		<-p.sem
		return err
	}
	p.mu.Lock()
	if len(p.list) >= d.maxParts {
		p.mu.Unlock()
		<-p.sem
		return fmt.Errorf("s3: %s: more than %d parts of %d bytes", p.path, d.maxParts, p.size)
	}
	p.list = append(p.list, minio.CompletePart{})
	num := len(p.list)
	p.mu.Unlock()
	buf := p.buf
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.sem }()
		part, err := d.core.PutObjectPart(p.ctx, d.bucket, p.key, p.uploadID, num,
			bytes.NewReader(buf), int64(len(buf)), minio.PutObjectPartOptions{})
		p.putBuf(buf)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			if p.err == nil {
				p.err = wrap("put part", p.path, err)
			}
			return
		}
		p.list[num-1] = minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag}
	}()
	p.buf = p.getBuf()
	return nil
}

// complete sends what is buffered (also nothing, as the only part, when
// no part was added yet), waits for the parts under way and completes the
// upload; on failure it aborts it.
func (p *parts) complete(ctx context.Context) error {
	err := p.start(ctx)
	if err == nil {
		err = p.failed()
	}
	if err == nil && (len(p.buf) > 0 || len(p.list) == 0) {
		err = p.send()
	}
	if err == nil {
		p.wg.Wait()
		err = p.failed()
	}
	if err == nil {
		_, err = p.d.core.CompleteMultipartUpload(ctx, p.d.bucket, p.key, p.uploadID, p.list, minio.PutObjectOptions{})
		err = wrap("complete upload", p.path, err)
	}
	if err != nil {
		p.abort()
		return err
	}
	p.uploadID = ""
	p.release()
	return nil
}

// abort waits for the parts under way and aborts the upload.
func (p *parts) abort() {
	p.wg.Wait()
	if p.uploadID != "" {
		_ = p.d.core.AbortMultipartUpload(context.WithoutCancel(p.ctx), p.d.bucket, p.key, p.uploadID)
		p.uploadID = ""
	}
	p.mu.Lock()
	p.list = nil
	p.mu.Unlock()
	p.release()
}

// release gives up the buffer.
func (p *parts) release() {
	if p.buf != nil {
		p.putBuf(p.buf)
		p.buf = nil
	}
}
