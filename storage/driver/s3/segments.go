package s3

// Appended objects are stored in segments.
//
// An object written by a Writer is its base object, at the path's key K,
// followed by zero or more segment objects at hidden keys
//
//	K!seg/<gen>/<offset, 20 decimal digits>
//
// No valid driver path contains "!" (one of the characters S3 calls safe
// in keys, unlike "~", one to avoid), so no path maps to these keys, and
// nothing a path names is ever below K!. A segment's key says where its
// bytes start in the object. <gen> is a random generation the base carries
// in its metadata (x-amz-meta-registryd-seg-gen): only segments of the
// base's generation belong to the object, so a base replaced by a
// non-appending Writer or PutContent (new generation, or none) never picks
// up the segments of its predecessor, even before they are removed. An
// object without the metadata (written by PutContent, or by a Move) is
// only its base: reading it costs one request, as before.
//
// The object's content is the base, then the chain of segments starting
// at the base's size: the segment at offset base.size, then the one at the
// offset where that one ends, and so on; a segment not on the chain is
// debris of an interrupted operation and is ignored. Every piece of the
// chain but the last is at least MinChunkSize (5 MiB), S3's minimum for a
// part, so that Move can assemble the pieces with a server-side multipart
// copy.
//
// An appending Writer makes exactly one atomic write, when it is closed
// or committed: a PutObject or a CompleteMultipartUpload of one key.
//   - If the last piece is at least MinChunkSize, the writer creates the
//     segment at offset = the object's size, holding just the new bytes.
//     Before that write the chain ends at the old size (no segment starts
//     there); after it the chain includes the new segment.
//   - If the last piece (the base or a segment) is smaller, the writer reads
//     it back (at most 5 MiB, once per writer) into its buffer and replaces
//     the same key with the old bytes followed by the new ones. S3 replaces
//     an object atomically, so readers see the old piece or the longer one;
//     the bytes before the end of the old piece are the same in both.
//
// Either way nothing is visible until the one write succeeds, a writer that
// dies leaves at most an incomplete multipart upload (invisible), and no
// crash can duplicate or lose bytes: there is never a moment at which two
// keys hold the same bytes of the object's chain. Readers take the chain
// from one listing and read every piece with a bounded range, so a piece
// growing meanwhile does not change what they read.
//
// Operations on several keys order their steps so that every intermediate
// state is the old object, the new one, or the old one plus invisible
// debris: Move composes the pieces into the destination (one atomic
// CompleteMultipartUpload), then removes the source's base (the source is
// gone), then its segments. Delete removes the base first, then the
// segments. A Writer that starts a new generation writes the new base,
// then removes the segments of other generations.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

const (
	// hiddenSep starts the hidden keys of a path: K!...
	hiddenSep = "!"
	segDir    = hiddenSep + "seg/"
	tmpDir    = hiddenSep + "tmp/"
	// genHeader carries the generation of a segmented base.
	genMetaKey = "Registryd-Seg-Gen"
	genHeader  = "X-Amz-Meta-" + genMetaKey
	// maxParts is S3's limit on the parts of a multipart upload.
	maxParts = 10000
)

func newGen() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func genOf(h http.Header) string { return h.Get(genHeader) }

func segPrefix(key, gen string) string { return key + segDir + gen + "/" }

func segKey(key, gen string, off int64) string {
	return fmt.Sprintf("%s%020d", segPrefix(key, gen), off)
}

// piece is the base or a segment of an object.
type piece struct {
	key  string
	off  int64 // where its bytes start in the object
	size int64
	etag string
	mod  time.Time
}

// object is an object's chain of pieces.
type object struct {
	gen    string  // "" for an object that is only its base
	pieces []piece // base first; never empty
	size   int64
	mod    time.Time
}

func (o object) last() piece { return o.pieces[len(o.pieces)-1] }

// objectOf lists the chain of the object whose base is oi.
func (d *Driver) objectOf(ctx context.Context, p, key string, oi minio.ObjectInfo) (object, error) {
	o := object{
		gen:    genOf(oi.Metadata),
		pieces: []piece{{key: key, size: oi.Size, etag: oi.ETag, mod: oi.LastModified}},
		size:   oi.Size,
		mod:    oi.LastModified,
	}
	if o.gen == "" {
		return o, nil
	}
	prefix := segPrefix(key, o.gen)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Keys are listed in lexical order, which is offset order.
	for si := range d.client.ListObjects(lctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if si.Err != nil {
			return o, wrap("list", p, si.Err)
		}
		off, err := strconv.ParseInt(strings.TrimPrefix(si.Key, prefix), 10, 64)
		if err != nil || off < o.size {
			continue // not a segment, or not on the chain
		}
		if off > o.size {
			break // a gap: the chain ends
		}
		o.pieces = append(o.pieces, piece{key: si.Key, off: off, size: si.Size, etag: si.ETag, mod: si.LastModified})
		o.size += si.Size
		if si.LastModified.After(o.mod) {
			o.mod = si.LastModified
		}
	}
	return o, nil
}

// object stats the base at p and lists its chain.
func (d *Driver) object(ctx context.Context, p string) (object, error) {
	key := d.key(p)
	oi, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNoKey(err) {
			return object{}, notFound(p)
		}
		return object{}, wrap("stat", p, err)
	}
	return d.objectOf(ctx, p, key, oi)
}

// segReader reads the object at p from offset, piece after piece, each
// with a ranged GET opened when the previous piece is exhausted.
func (d *Driver) segReader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	o, err := d.object(ctx, p)
	if err != nil {
		return nil, err
	}
	if offset > o.size {
		return nil, invalidOffset(p, offset)
	}
	r := &chainReader{ctx: ctx, d: d, path: p}
	for _, pc := range o.pieces {
		end := pc.off + pc.size
		if end <= offset || pc.size == 0 {
			continue
		}
		start := max(offset, pc.off) - pc.off
		r.parts = append(r.parts, rangeOf{key: pc.key, start: start, length: pc.size - start})
	}
	return r, nil
}

type rangeOf struct {
	key           string
	start, length int64
}

// chainReader concatenates ranges of several objects.
type chainReader struct {
	ctx   context.Context
	d     *Driver
	path  string
	parts []rangeOf
	cur   io.ReadCloser
	left  int64 // bytes still expected from cur
}

func (r *chainReader) Read(b []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.parts) == 0 {
				return 0, io.EOF
			}
			pr := r.parts[0]
			r.parts = r.parts[1:]
			var opts minio.GetObjectOptions
			if err := opts.SetRange(pr.start, pr.start+pr.length-1); err != nil {
				return 0, err
			}
			rc, _, _, err := r.d.core.GetObject(r.ctx, r.d.bucket, pr.key, opts)
			if err != nil {
				if isNoKey(err) {
					return 0, fmt.Errorf("s3: read %s: a piece was removed while reading: %w", r.path, io.ErrUnexpectedEOF)
				}
				return 0, wrap("get", r.path, err)
			}
			r.cur, r.left = rc, pr.length
		}
		n, err := r.cur.Read(b[:min(int64(len(b)), r.left)])
		r.left -= int64(n)
		if r.left == 0 {
			_ = r.cur.Close()
			r.cur = nil
			err = nil
		} else if err == io.EOF {
			return n, fmt.Errorf("s3: read %s: %w", r.path, io.ErrUnexpectedEOF)
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (r *chainReader) Close() error {
	r.parts = nil
	if r.cur != nil {
		err := r.cur.Close()
		r.cur = nil
		return err
	}
	return nil
}

// removePrefix removes every key below prefix for which keep is false (nil
// keeps none), listing and deleting in batches. It reports whether any key
// was seen.
func (d *Driver) removePrefix(ctx context.Context, p, prefix string, keep func(string) bool) (bool, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objs := make(chan minio.ObjectInfo)
	var listErr error
	found := false
	go func() {
		defer close(objs)
		for oi := range d.client.ListObjects(lctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				listErr = oi.Err
				return
			}
			found = true
			if keep != nil && keep(oi.Key) {
				continue
			}
			select {
			case objs <- oi:
			case <-lctx.Done():
				return
			}
		}
	}()
	var errs []error
	for re := range d.client.RemoveObjects(lctx, d.bucket, objs, minio.RemoveObjectsOptions{}) {
		if re.Err != nil && !isNoKey(re.Err) {
			errs = append(errs, fmt.Errorf("%s: %w", re.ObjectName, re.Err))
		}
	}
	if listErr != nil {
		return found, wrap("list", p, listErr)
	}
	if len(errs) > 0 {
		return found, wrap("delete", p, errors.Join(errs...))
	}
	return found, nil
}

// removeStaleSegments removes the segments of K of every generation but gen.
func (d *Driver) removeStaleSegments(ctx context.Context, p, key, gen string) error {
	keep := segPrefix(key, gen)
	_, err := d.removePrefix(ctx, p, key+segDir, func(k string) bool { return strings.HasPrefix(k, keep) })
	return err
}

// copyPart is one UploadPartCopy of a compose.
type copyPart struct {
	src           piece
	start, length int64
}

// partsOf splits pieces into copy parts: a piece of more than chunk bytes
// into parts of chunk to 2*chunk bytes (and at most maxCopyPartSize), all
// of a piece's parts about the same size, so that none is below 5 MiB
// where the piece is not (chunk is at least that) and the parts of one
// large piece are copied in parallel.
func partsOf(pieces []piece, chunk int64) []copyPart {
	var out []copyPart
	for _, pc := range pieces {
		if pc.size == 0 {
			continue
		}
		n := max(pc.size/chunk, (pc.size+maxCopyPartSize-1)/maxCopyPartSize, 1)
		var off int64
		for i := range n {
			length := pc.size / n
			if i == n-1 {
				length = pc.size - off
			}
			out = append(out, copyPart{src: pc, start: off, length: length})
			off += length
		}
	}
	return out
}

// compose writes the concatenation of pieces to dstKey with server-side
// copies, each conditional on the piece's ETag, and returns the ETag of
// the result. With more parts than S3 allows in one upload the pieces are
// first composed in groups into temporary objects below tmpBase (hidden
// keys of the source), which are removed afterwards.
func (d *Driver) compose(ctx context.Context, p, dstKey string, pieces []piece, opts minio.PutObjectOptions, tmpBase string) error {
	limit := d.maxParts
	if limit < 2 {
		limit = maxParts
	}
	parts := partsOf(pieces, d.copyChunk)
	if len(parts) <= limit {
		return d.composeOnce(ctx, p, dstKey, parts, opts)
	}
	// Stage: groups of consecutive pieces of at most limit parts each.
	stage := tmpBase + newGen() + "/"
	defer func() {
		_, _ = d.removePrefix(context.WithoutCancel(ctx), p, stage, nil)
	}()
	var staged []piece
	var group []piece
	n := 0
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		var size int64
		for _, g := range group {
			size += g.size
		}
		key := fmt.Sprintf("%s%06d", stage, len(staged))
		if err := d.composeOnce(ctx, p, key, partsOf(group, d.copyChunk), minio.PutObjectOptions{}); err != nil {
			return err
		}
		oi, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return wrap("stat", p, err)
		}
		if oi.Size != size {
			return fmt.Errorf("s3: compose %s: staged %d bytes, want %d", p, oi.Size, size)
		}
		staged = append(staged, piece{key: key, size: oi.Size, etag: oi.ETag})
		group, n = nil, 0
		return nil
	}
	for _, pc := range pieces {
		k := len(partsOf([]piece{pc}, d.copyChunk))
		if n+k > limit {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, pc)
		n += k
	}
	if err := flush(); err != nil {
		return err
	}
	return d.compose(ctx, p, dstKey, staged, opts, tmpBase)
}

// errSourceChanged says a piece changed while it was copied.
var errSourceChanged = errors.New("s3: the source changed while it was copied")

// composeOnce is one multipart upload of copy parts.
func (d *Driver) composeOnce(ctx context.Context, p, dstKey string, parts []copyPart, opts minio.PutObjectOptions) error {
	if len(parts) == 0 {
		_, err := d.core.PutObject(ctx, d.bucket, dstKey, strings.NewReader(""), 0, "", "", opts)
		return wrap("put", p, err)
	}
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, dstKey, opts)
	if err != nil {
		return wrap("start upload", p, err)
	}
	done := make([]minio.CompletePart, len(parts))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, d.copyConcurrency)
	for i, cp := range parts {
		sem <- struct{}{}
		if cctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			part, err := d.core.CopyObjectPart(cctx, d.bucket, cp.src.key, d.bucket, dstKey, id, i+1, cp.start, cp.length,
				map[string]string{"x-amz-copy-source-if-match": cp.src.etag})
			if err == nil {
				d.moveCopied.Add(cp.length)
				done[i] = minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag}
				return
			}
			if isNoKey(err) || minio.ToErrorResponse(err).Code == "PreconditionFailed" {
				err = errSourceChanged
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = err
				cancel()
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr == nil {
		_, firstErr = d.core.CompleteMultipartUpload(ctx, d.bucket, dstKey, id, done, minio.PutObjectOptions{})
	}
	if firstErr != nil {
		_ = d.core.AbortMultipartUpload(context.WithoutCancel(ctx), d.bucket, dstKey, id)
		if errors.Is(firstErr, errSourceChanged) {
			return firstErr
		}
		return wrap("copy", p, firstErr)
	}
	return nil
}
