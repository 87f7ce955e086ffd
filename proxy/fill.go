package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// A fill is the one download of a blob from an upstream into the cache,
// shared by every client that asks for the blob while it runs.
//
// The downloader (one goroutine) reads the upstream's body, hashes it and
// appends it to a spool file: an unlinked temporary file, so that nothing
// is left behind whatever happens to the process. Every client reads the
// spool from its own offset as bytes arrive, waking on each append; the
// response headers (Content-Length from the upstream) go out as soon as
// the upstream's arrive. One more reader, the committer, copies the spool
// into an upload session of the storage, whose Commit hashes and verifies
// it again and moves it into the content store: so the blob becomes
// visible in storage only complete and verified, on the filesystem and on
// S3 alike.
//
// Invariants:
//   - At most one fill per (upstream, digest) in this process: fillSet
//     holds it from its start until the committer is done.
//   - A reader gets the last byte of what it asked for (the blob, or a
//     range of it) only after the whole blob hashed to its digest. A fill that fails (the upstream
//     breaks off for good, the digest does not match, the timeout) fails
//     every reader: the API then breaks the client's connection short of
//     its Content-Length, so no client takes unverified bytes for the blob,
//     and the upload is cancelled, so nothing is stored.
//   - The download is detached from the clients: it runs on its own
//     context, bounded by CacheWriteTimeout, and goes on when they leave.
//     When the upstream's body ends early (a reset, a proxy that drops the
//     connection) it is resumed with a Range request from where it stopped,
//     up to maxRetries times.
//   - The spool is closed when the download and the committer are over and
//     no reader holds it; a client that opens the blob after that reads it
//     from storage (it is there) or gets the fill's error.
type fill struct {
	p      *Proxy
	up     *upstream
	key    string
	d      digest.Digest
	remote string
	local  *storage.Repository
	repo   *Repo

	ready      chan struct{} // closed once size is known, or the fill failed first
	downloaded chan struct{} // closed when the download is over (verified or failed)
	size       int64

	mu        sync.Mutex
	spool     *os.File // nil once closed
	written   int64
	verified  bool
	err       error
	wake      chan struct{} // closed and replaced at every change
	refs      int           // holders of the spool: downloader, committer, readers
	committed bool
	downDone  bool
	commDone  bool
	// others are the cache repositories besides local whose requests
	// joined the fill (the upstream confirmed each has the blob): the
	// blob is linked into them too once stored, so that their images pull
	// from the cache alone.
	others map[string]*storage.Repository
}

// alsoFor links the blob into repo as well once the fill has stored it,
// or at once if it has.
func (f *fill) alsoFor(ctx context.Context, repo *storage.Repository) {
	if repo.Name() == f.local.Name() {
		return
	}
	f.mu.Lock()
	done := f.commDone || f.committed
	if !done {
		if f.others == nil {
			f.others = map[string]*storage.Repository{}
		}
		f.others[repo.Name()] = repo
	}
	committed := f.committed
	f.mu.Unlock()
	if done && committed {
		_, _ = repo.MountBlob(ctx, nil, f.d)
	}
}

// fillSet is the fills under way in this process.
type fillSet struct {
	mu sync.Mutex
	m  map[string]*fill
}

// errDigestMismatch fails a fill whose bytes do not hash to the digest.
var errDigestMismatch = errors.New("the upstream's content does not match its digest")

// join returns the fill of key under way, or starts one with start.
func (s *fillSet) join(key string, start func() (*fill, error)) (f *fill, joined bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.m[key]; f != nil {
		return f, true, nil
	}
	f, err = start()
	if err != nil {
		return nil, false, err
	}
	if s.m == nil {
		s.m = make(map[string]*fill)
	}
	s.m[key] = f
	return f, false, nil
}

func (s *fillSet) get(key string) *fill {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

func (s *fillSet) remove(f *fill) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[f.key] == f {
		delete(s.m, f.key)
	}
}

// startFill begins downloading d from r's upstream into r's repository.
// Called with fillSet.mu held: it only creates the spool and starts the
// goroutines.
func (p *Proxy) startFill(r *Repo, key string, d digest.Digest) (*fill, error) {
	spool, err := os.CreateTemp(p.opts.SpoolDir, "registryd-fill-*")
	if err != nil {
		return nil, fmt.Errorf("proxy: spool file: %w", err)
	}
	// Unlinked at once: the file lives as long as it is open, and a crash
	// leaves nothing to clean up.
	_ = os.Remove(spool.Name())
	f := &fill{
		p: p, up: r.up, key: key, d: d, remote: r.remote, local: r.local, repo: r,
		ready: make(chan struct{}), downloaded: make(chan struct{}), size: -1,
		spool: spool, wake: make(chan struct{}), refs: 2, // downloader and committer
	}
	p.m.fillsActive.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.CacheWriteTimeout)
	go func() {
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); f.commit(ctx) }()
		f.download(ctx)
		wg.Wait()
		p.m.fillsActive.Dec()
	}()
	return f, nil
}

// changed wakes the readers. Called with f.mu held.
func (f *fill) changed() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// fail ends the fill with err (the first failure wins).
func (f *fill) fail(err error) {
	f.mu.Lock()
	if f.err == nil && !f.verified {
		f.err = err
	}
	f.changed()
	f.mu.Unlock()
	f.setReady(-1)
}

func (f *fill) setReady(size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.ready:
	default:
		if size >= 0 {
			f.size = size
		}
		close(f.ready)
	}
}

// release drops a hold on the spool; the last one closes it.
func (f *fill) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.spool != nil {
		f.spool.Close()
		f.spool = nil
	}
}

// download fetches the blob into the spool, resuming with Range when the
// body breaks off, and verifies its digest.
func (f *fill) download(ctx context.Context) {
	defer func() {
		f.mu.Lock()
		f.downDone = true
		f.mu.Unlock()
		close(f.downloaded)
		f.release()
	}()
	h := f.d.Algorithm().Hash()
	buf := make([]byte, 512<<10) // two buffers of 256 KiB
	var lastErr error
	for attempt := 0; attempt <= f.up.maxRetries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				f.fail(unavailable(f.up.name, ctx.Err(), "blob %s: fill timed out after %d bytes", f.d, f.written))
				return
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		done, retry, err := f.fetchOnce(ctx, h, buf)
		if done {
			break
		}
		if !retry {
			f.fail(err)
			return
		}
		lastErr = err
		f.p.log.WithError(err).WithField("digest", f.d.String()).Warnf("proxy: blob download from %s broke off at %d bytes; resuming", f.up.name, f.written)
		if attempt == f.up.maxRetries {
			f.fail(unavailable(f.up.name, lastErr, "blob %s: gave up after %d attempts", f.d, attempt+1))
			return
		}
	}
	if digest.NewDigest(f.d.Algorithm(), h) != f.d {
		f.p.m.fills.WithLabelValues(f.up.name, "digest_mismatch").Inc()
		f.p.log.WithField("digest", f.d.String()).Errorf("proxy: blob from %s does not match its digest: discarded, clients' downloads broken off", f.up.name)
		f.fail(&upstreamError{upstream: f.up.name, kind: kindInvalid, msg: "blob " + f.d.String(), err: errDigestMismatch})
		return
	}
	f.mu.Lock()
	f.verified = true
	f.changed()
	f.mu.Unlock()
}

// fetchOnce is one upstream request for the rest of the blob. done: the
// whole blob is in; retry: it broke off and can be resumed.
func (f *fill) fetchOnce(ctx context.Context, h hash.Hash, buf []byte) (done, retry bool, err error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hdr := http.Header{}
	off := f.written
	if off > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := f.up.do(rctx, request{method: http.MethodGet, repo: f.remote, path: f.remote + "/blobs/" + f.d.String(), header: hdr})
	if err != nil {
		var ue *upstreamError
		// A failure on the first request is the upstream's answer; on a
		// resume, another attempt may still get the rest.
		return false, off > 0 && errors.As(err, &ue) && ue.kind == kindUnavailable && ctx.Err() == nil, err
	}
	body := newIdleReader(resp.Body, f.up.timeout, cancel)
	defer body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		if off == 0 {
			f.setReady(resp.ContentLength)
		} else if _, err := io.CopyN(io.Discard, body, off); err != nil {
			// The upstream ignored the Range: skip what is spooled already.
			return false, true, err
		}
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		start, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off || (f.size >= 0 && total >= 0 && total != f.size) {
			return false, false, unavailable(f.up.name, nil, "blob %s: resumed with Content-Range %q, wanted bytes from %d", f.d, resp.Header.Get("Content-Range"), off)
		}
	default:
		e := statusError(f.up.name, resp, "GET blob "+f.remote+"@"+f.d.String())
		return false, off > 0 && e.kind == kindUnavailable, e
	}
	// The hash of one buffer runs while the next is written and read (as
	// the uploads' copyHashing): on a multi-core machine the digest costs
	// the download no time. hashed holds a token while no hash runs.
	hashed := make(chan struct{}, 1)
	hashed <- struct{}{}
	defer func() { <-hashed }()
	bufs := [2][]byte{buf[:len(buf)/2], buf[len(buf)/2:]}
	for i := 0; ; i ^= 1 {
		b := bufs[i]
		n, rerr := body.Read(b)
		if n > 0 {
			if f.size >= 0 && f.written+int64(n) > f.size {
				return false, false, &upstreamError{upstream: f.up.name, kind: kindInvalid, msg: fmt.Sprintf("blob %s is longer than its %d bytes", f.d, f.size)}
			}
			// The previous buffer's hash is done before this one's
			// starts (order), and before the other buffer is read into.
			<-hashed
			go func(p []byte) { h.Write(p); hashed <- struct{}{} }(b[:n])
			if _, err := f.spool.WriteAt(b[:n], f.written); err != nil {
				return false, false, fmt.Errorf("proxy: spool: %w", err)
			}
			f.p.m.pulledBytes.WithLabelValues("blob", f.up.name).Add(float64(n))
			f.mu.Lock()
			f.written += int64(n)
			f.changed()
			f.mu.Unlock()
		}
		if rerr == io.EOF {
			if f.size < 0 {
				f.setReady(f.written) // a body without a length: complete at its end
				return true, false, nil
			}
			if f.written == f.size {
				return true, false, nil
			}
			return false, true, unavailable(f.up.name, io.ErrUnexpectedEOF, "blob %s: body ended at %d of %d bytes", f.d, f.written, f.size)
		}
		if rerr != nil {
			if f.size >= 0 && f.written == f.size {
				return true, false, nil
			}
			return false, f.size >= 0 && ctx.Err() == nil, unavailable(f.up.name, rerr, "blob %s: body broke off at %d bytes", f.d, f.written)
		}
	}
}

// parseContentRange reads "bytes start-end/total" (total "*": -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	v, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	start, err1 = strconv.ParseInt(s, 10, 64)
	end, err2 = strconv.ParseInt(e, 10, 64)
	total = -1
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	return start, end, total, err1 == nil && err2 == nil && err3 == nil && start >= 0 && end >= start
}

// commit copies the spool into the storage through an upload session,
// whose Commit verifies the digest again and makes the blob visible.
func (f *fill) commit(ctx context.Context) {
	p := f.p
	defer func() {
		f.mu.Lock()
		f.commDone = true
		f.changed()
		f.mu.Unlock()
		p.fills.remove(f)
		f.release()
	}()
	// The copy into storage starts once the download is over: clients
	// get the bytes as fast as the upstream sends them, and the copy does
	// not compete with them for the CPU (a second pass over the bytes,
	// hashed again by the upload). Clients that come meanwhile join the
	// fill, which is still listed, and read the spool.
	select {
	case <-f.downloaded:
	case <-ctx.Done():
		return
	}
	f.mu.Lock()
	failed, size := f.err, f.size
	f.mu.Unlock()
	if failed != nil || size < 0 {
		if failed != nil && !errors.Is(failed, errDigestMismatch) {
			p.m.fills.WithLabelValues(f.up.name, "failed").Inc()
		}
		return
	}
	up, err := f.local.NewUpload(ctx, f.d.Algorithm())
	if err != nil {
		p.m.fills.WithLabelValues(f.up.name, "failed").Inc()
		p.log.WithError(err).Error("proxy: starting the cache upload")
		return
	}
	rd, err := f.reader(ctx, 0, size)
	if err == nil {
		_, err = up.Commit(ctx, rd, -1, f.d)
		rd.Close()
	}
	if err != nil {
		_ = up.Cancel(context.Background())
		f.mu.Lock()
		ferr := f.err
		f.mu.Unlock()
		if ferr == nil {
			p.m.fills.WithLabelValues(f.up.name, "failed").Inc()
			p.log.WithError(err).WithField("digest", f.d.String()).Error("proxy: storing a fetched blob")
		} else if !errors.Is(ferr, errDigestMismatch) {
			p.m.fills.WithLabelValues(f.up.name, "failed").Inc()
		}
		return
	}
	f.mu.Lock()
	f.committed = true
	others := f.others
	f.others = nil
	f.mu.Unlock()
	for _, repo := range others {
		if _, err := repo.MountBlob(ctx, nil, f.d); err != nil {
			p.log.WithError(err).WithField("repository", repo.Name()).Warn("proxy: linking a fetched blob")
		}
	}
	p.m.fills.WithLabelValues(f.up.name, "stored").Inc()
	p.m.misses.WithLabelValues("blob", f.up.name).Inc()
	p.evict.blobAdded(f.local.Name(), f.d, size)
	p.notifyFill(f.repo, f.d, notifications.BlobMediaType, size, "")
}

// reader reads n bytes of the blob from off as they arrive.
func (f *fill) reader(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	f.mu.Lock()
	if f.spool == nil {
		committed, err := f.committed, f.err
		f.mu.Unlock()
		if committed {
			// Over and stored: read it where it is now.
			rc, _, err := f.local.OpenBlob(ctx, f.d, off)
			if err != nil {
				return nil, err
			}
			return &limitedReadCloser{io.LimitReader(rc, n), rc}, nil
		}
		if err == nil {
			err = unavailable(f.up.name, nil, "blob %s: download ended", f.d)
		}
		return nil, err
	}
	f.refs++
	f.mu.Unlock()
	return &fillReader{f: f, ctx: ctx, off: off, end: off + n}, nil
}

type limitedReadCloser struct {
	io.Reader
	io.Closer
}

// fillReader reads a range of a fill's spool, waiting for bytes.
type fillReader struct {
	f      *fill
	ctx    context.Context
	off    int64
	end    int64
	closed bool
}

func (r *fillReader) Read(p []byte) (int, error) {
	f := r.f
	if r.off >= r.end {
		return 0, io.EOF
	}
	for {
		f.mu.Lock()
		avail := f.written
		if !f.verified && avail >= r.end {
			// The last byte of every read waits for the digest: a
			// client must never finish a download (of the blob or of a
			// range of it) that is not the blob's.
			avail = r.end - 1
		}
		err, wake, spool := f.err, f.wake, f.spool
		f.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if r.off < avail {
			n := min(int64(len(p)), avail-r.off, r.end-r.off)
			k, rerr := spool.ReadAt(p[:n], r.off)
			r.off += int64(k)
			if k > 0 {
				return k, nil
			}
			if rerr == nil {
				rerr = io.ErrNoProgress
			}
			return 0, rerr
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.f.release()
	}
	return nil
}
