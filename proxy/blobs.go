package proxy

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/registryd/registryd/errcode"
)

// Blob is a blob the cache does not hold yet: a fill under way (or, for a
// HEAD, what the upstream says of it).
type Blob struct {
	f    *fill // nil for a HEAD answered by the upstream
	size int64
	r    *Repo
}

// Size is the blob's length, from the upstream's Content-Length.
func (b *Blob) Size() int64 { return b.size }

// rangeAhead is how far past the bytes already downloaded a Range request
// may start and still be served from the fill: further ahead, it is
// forwarded to the upstream rather than waiting for the download to get
// there.
const rangeAhead = 4 << 20

// Open returns n bytes from off. They come from the fill as they arrive,
// the last one once the whole blob is verified; a read fails, rather than
// ending early, when the fill fails. A range that starts far beyond what
// has arrived is forwarded to the upstream instead (the fill goes on for
// the whole blob): those bytes are the upstream's answer, relayed as they
// come, since no digest can vouch for part of a blob.
func (b *Blob) Open(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if b.f == nil {
		return nil, errcode.Newf(errcode.BlobUnknown, "blob not cached")
	}
	b.f.mu.Lock()
	ahead := off > b.f.written+rangeAhead && b.f.spool != nil
	b.f.mu.Unlock()
	var rc io.ReadCloser
	var err error
	if ahead {
		rc, err = b.r.forwardRange(ctx, b.f.d, off, n)
	}
	if rc == nil {
		rc, err = b.f.reader(ctx, off, n)
	}
	if err != nil {
		return nil, err
	}
	return &countingReader{ReadCloser: rc, c: b.r.p.m.pushedBytes.WithLabelValues("blob", b.r.up.name)}, nil
}

// countingReader counts the bytes sent to a client.
type countingReader struct {
	io.ReadCloser
	c prometheus.Counter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.c.Add(float64(n))
	return n, err
}

// Blob looks for d in the cache, and when it is not there starts (or
// joins) its fill. A nil Blob with a nil error means the blob is in the
// cache repository: the API serves it from storage as any blob.
//
// A blob already stored for another repository is linked into this one
// only after the upstream confirms (HEAD) that this repository has it:
// the content is the same, but a client allowed to pull one cached
// repository must not read another's blobs by guessing digests. The same
// holds for joining a fill started for another repository.
func (r *Repo) Blob(ctx context.Context, h http.Header, d digest.Digest, head bool) (*Blob, error) {
	p := r.p
	if !head {
		p.m.requests.WithLabelValues("blob", r.up.name).Inc()
	}
	desc, err := r.local.StatBlob(ctx, d)
	if err == nil {
		if !head {
			p.m.hits.WithLabelValues("blob", r.up.name).Inc()
			p.m.pushedBytes.WithLabelValues("blob", r.up.name).Add(float64(desc.Size))
		}
		return nil, nil
	}
	if !errcode.Is(err, errcode.BlobUnknown) {
		return nil, err
	}
	unknown := func() *errcode.Error {
		return errcode.New(errcode.BlobUnknown).WithDetail(map[string]string{"digest": d.String()})
	}
	key := r.up.name + "|" + d.String()
	if f := p.fills.get(key); f == nil || f.remote != r.remote {
		if _, stored, err := p.reg.HasContent(ctx, d); err == nil && stored || f != nil {
			size, err := r.headBlob(ctx, d)
			if err != nil {
				return nil, clientError(err, unknown)
			}
			if stored {
				if _, err := r.local.MountBlob(ctx, nil, d); err == nil {
					if !head {
						p.m.hits.WithLabelValues("blob", r.up.name).Inc()
						p.m.pushedBytes.WithLabelValues("blob", r.up.name).Add(float64(size))
					}
					return nil, nil
				}
			}
		}
	}
	if head {
		// A HEAD fetches nothing: a fill under way knows the size, else
		// the upstream's HEAD answers (so caches can chain).
		if f := p.fills.get(key); f != nil {
			if b, err := r.await(ctx, f, unknown); err == nil {
				return b, nil
			}
		}
		size, err := r.headBlob(ctx, d)
		if err != nil {
			return nil, clientError(err, unknown)
		}
		return &Blob{size: size, r: r}, nil
	}
	f, joined, err := p.fills.join(key, func() (*fill, error) { return p.startFill(r, key, d) })
	if err != nil {
		return nil, err
	}
	if joined {
		p.m.coalesced.WithLabelValues("blob", r.up.name).Inc()
		if f.remote != r.remote {
			// Confirmed above (a fill of another repository).
			f.alsoFor(ctx, r.local)
		}
	}
	return r.await(ctx, f, unknown)
}

// await waits for the fill's headers.
func (r *Repo) await(ctx context.Context, f *fill, unknown func() *errcode.Error) (*Blob, error) {
	select {
	case <-f.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	err, size := f.err, f.size
	f.mu.Unlock()
	if size < 0 {
		if err == nil {
			err = unavailable(r.up.name, nil, "blob %s: download ended", f.d)
		}
		return nil, clientError(err, unknown)
	}
	return &Blob{f: f, size: size, r: r}, nil
}

// headBlob asks the upstream for the blob's size.
func (r *Repo) headBlob(ctx context.Context, d digest.Digest) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*r.up.timeout)
	defer cancel()
	resp, err := r.up.do(ctx, request{method: http.MethodHead, repo: r.remote, path: r.remote + "/blobs/" + d.String()})
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(r.up.name, resp, "HEAD blob "+r.remote+"@"+d.String())
	}
	if resp.ContentLength < 0 {
		return 0, &upstreamError{upstream: r.up.name, kind: kindInvalid, msg: "HEAD blob " + d.String() + " without a Content-Length"}
	}
	return resp.ContentLength, nil
}

// forwardRange fetches bytes [off, off+n) of a blob straight from the
// upstream, for a client asking for a range the fill has not reached.
func (r *Repo) forwardRange(ctx context.Context, d digest.Digest, off, n int64) (io.ReadCloser, error) {
	rctx, cancel := context.WithCancel(ctx)
	resp, err := r.up.do(rctx, request{method: http.MethodGet, repo: r.remote, path: r.remote + "/blobs/" + d.String(),
		header: http.Header{"Range": {"bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)}}})
	if err != nil {
		cancel()
		return nil, err
	}
	start, end, _, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if resp.StatusCode != http.StatusPartialContent || !ok || start != off || end != off+n-1 {
		resp.Body.Close()
		cancel()
		return nil, statusError(r.up.name, resp, "ranged GET blob "+d.String())
	}
	r.p.m.pulledBytes.WithLabelValues("blob", r.up.name).Add(float64(n))
	return &cancelReadCloser{ReadCloser: newIdleReader(resp.Body, r.up.timeout, cancel), cancel: cancel, left: n}, nil
}

type cancelReadCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
	left   int64
}

func (c *cancelReadCloser) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *cancelReadCloser) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
