// Package s3 is the storage driver for S3-compatible object stores (AWS S3,
// MinIO, Ceph RGW, ...), built on minio-go.
//
// A driver path /a/b/c is the object key <rootdirectory>/a/b/c. Directories
// are implicit: a path is a directory while some key starts with path+"/".
// So Stat of such a prefix says IsDir with a zero ModTime (which also keeps
// the registry's listing cache, keyed on directory times, out of the way),
// and a directory disappears with its last object.
//
// Writers stream into multipart uploads in parts of half of ChunkSize (at
// least 5 MiB), sending one while the next fills, so a writer holds
// ChunkSize bytes in memory whatever the size of the blob. Close
// (and Commit) complete the multipart upload, so everything an upload has
// received is in the bucket between requests, and a later appending
// Writer, in this process or another instance sharing the bucket,
// continues it. An appended object is stored as a base object at the
// path's key plus segment objects at hidden keys (K!seg/<gen>/<offset>),
// one per appending writer, so an append writes only its own bytes: a
// chunked upload costs what it sends, not the square of it. A last piece
// under S3's 5 MiB part minimum is read back and rewritten by the next
// append, as distribution's s3-aws driver does with a small last part.
// segments.go describes the layout and why every crash leaves a
// consistent object; Stat, Reader and GetContent see the base and its
// segments as one object, List and Walk never show hidden keys.
//
// A staged writer (StagedWriter, driver.Stager) streams into a multipart
// upload at the final key and completes it only at Commit: the registry
// writes a blob whose digest it knows in advance once, where it stays,
// and makes it visible only after its digest checked out.
//
// Move is a server-side copy (CopyObject up to MultipartCopyThresholdSize;
// above it, and for a segmented object, a multipart copy of parts of
// MultipartCopyChunkSize, MultipartCopyMaxConcurrency at a time) followed
// by a delete of the source: the destination shows its old content or all
// of the new one, never a mix. List and Walk list one directory at a time
// with the "/" delimiter, paginating through the listing.
//
// Semantics beyond the driver contract:
//   - Cancel on a Writer removes the whole object, including content that
//     was there before an appending Writer was opened (as the filesystem
//     driver does).
//   - A process that dies while a Writer is open leaves an incomplete
//     multipart upload behind, invisible to every method; configure a
//     bucket lifecycle rule (AbortIncompleteMultipartUpload) to reclaim its
//     space. MinIO removes stale ones by itself.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/registryd/registryd/storage/driver"
)

const name = "s3"

// Sizes S3 imposes.
const (
	// MinChunkSize is the smallest part S3 accepts, but for the last.
	MinChunkSize = 5 << 20
	// DefaultChunkSize is what a writer holds in memory (two parts) when
	// none is configured.
	DefaultChunkSize = 10 << 20
	// maxChunkSize bounds the configured chunk size (S3's part limit is 5
	// GiB; a writer holds a chunk in memory).
	maxChunkSize = 1 << 30
	// maxCopyPartSize is the largest part UploadPartCopy accepts.
	maxCopyPartSize = 5 << 30
	// DefaultMultipartCopyThresholdSize: objects larger than this are
	// moved with a multipart copy, as distribution's default.
	DefaultMultipartCopyThresholdSize = 32 << 20
	// DefaultMultipartCopyChunkSize is the part size of multipart copies,
	// as distribution's default.
	DefaultMultipartCopyChunkSize = 32 << 20
	// DefaultMultipartCopyMaxConcurrency bounds the parts of one copy
	// under way at once. Distribution's default is 100; a store on a
	// small machine gains nothing past a few (BENCH.md).
	DefaultMultipartCopyMaxConcurrency = 8
)

// Parameters configure the driver; they are storage.s3 in the
// configuration, in distribution's names.
type Parameters struct {
	AccessKey      string // accesskey; AWS_ACCESS_KEY_ID (and the usual chain) when empty
	SecretKey      string // secretkey; AWS_SECRET_ACCESS_KEY when empty
	SessionToken   string // sessiontoken
	Region         string // region (us-east-1 when empty)
	RegionEndpoint string // regionendpoint: http(s)://host:port of an S3-compatible service
	Bucket         string // bucket
	RootDirectory  string // rootdirectory: key prefix of everything stored
	Secure         bool   // secure: https when the endpoint names no scheme
	SkipVerify     bool   // skipverify: do not verify the endpoint's TLS certificate
	ForcePathStyle bool   // forcepathstyle: http://host/bucket/key instead of http://bucket.host/key
	ChunkSize      int64  // chunksize: writers' part size (default 10 MiB, at least 5 MiB)
	// MultipartCopyThresholdSize: Move uses a multipart copy above it
	// (default 32 MiB, at most 5 GiB).
	MultipartCopyThresholdSize int64
	// MultipartCopyChunkSize: the parts of a multipart copy (default 32
	// MiB, at least 5 MiB, at most 5 GiB).
	MultipartCopyChunkSize int64
	// MultipartCopyMaxConcurrency: the parts of one multipart copy under
	// way at once (default 8).
	MultipartCopyMaxConcurrency int
	StorageClass                string // storageclass: STANDARD, REDUCED_REDUNDANCY, ... (none: the bucket's default)
}

// Driver stores paths as objects of one bucket.
type Driver struct {
	client          *minio.Client
	core            minio.Core
	bucket          string
	root            string // "" or "dir/" (no leading slash)
	chunkSize       int64
	copyThreshold   int64
	copyChunk       int64
	copyConcurrency int
	storageClass    string
	putContentOpts  minio.PutObjectOptions

	// maxParts is S3's limit of parts per upload (tests lower it).
	maxParts int
	// faults is the client's transport (retry.go).
	faults *faultTransport
	// Bytes copied server-side or read back by appending writers, and
	// copied server-side by Move; for tests.
	appendCopied, appendReread, moveCopied atomic.Int64
}

// New returns a driver for the bucket the parameters name. It does not
// contact the service; the first operation does.
func New(p Parameters) (*Driver, error) {
	if p.Bucket == "" {
		return nil, errors.New("s3: bucket is empty")
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if p.ChunkSize < MinChunkSize || p.ChunkSize > maxChunkSize {
		return nil, fmt.Errorf("s3: chunksize %d is outside [%d, %d]", p.ChunkSize, MinChunkSize, maxChunkSize)
	}
	if p.MultipartCopyThresholdSize == 0 {
		p.MultipartCopyThresholdSize = DefaultMultipartCopyThresholdSize
	}
	if p.MultipartCopyThresholdSize < 0 || p.MultipartCopyThresholdSize > maxCopyPartSize {
		return nil, fmt.Errorf("s3: multipartcopythresholdsize %d is outside [0, %d]", p.MultipartCopyThresholdSize, int64(maxCopyPartSize))
	}
	if p.MultipartCopyChunkSize == 0 {
		p.MultipartCopyChunkSize = DefaultMultipartCopyChunkSize
	}
	if p.MultipartCopyChunkSize < MinChunkSize || p.MultipartCopyChunkSize > maxCopyPartSize {
		return nil, fmt.Errorf("s3: multipartcopychunksize %d is outside [%d, %d]", p.MultipartCopyChunkSize, MinChunkSize, int64(maxCopyPartSize))
	}
	if p.MultipartCopyMaxConcurrency == 0 {
		p.MultipartCopyMaxConcurrency = DefaultMultipartCopyMaxConcurrency
	}
	if p.MultipartCopyMaxConcurrency < 1 {
		return nil, fmt.Errorf("s3: multipartcopymaxconcurrency %d is below 1", p.MultipartCopyMaxConcurrency)
	}
	region := p.Region
	if region == "" {
		region = "us-east-1"
	}
	endpoint, secure := "s3.amazonaws.com", p.Secure
	if region != "us-east-1" {
		endpoint = "s3." + region + ".amazonaws.com"
	}
	if p.RegionEndpoint != "" {
		e := p.RegionEndpoint
		if strings.Contains(e, "://") {
			u, err := url.Parse(e)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, fmt.Errorf("s3: regionendpoint %q is not an http(s) URL", e)
			}
			if u.Path != "" && u.Path != "/" {
				return nil, fmt.Errorf("s3: regionendpoint %q has a path; give scheme, host and port only", e)
			}
			e, secure = u.Host, u.Scheme == "https"
		}
		endpoint = e
	}
	var creds *credentials.Credentials
	switch {
	case p.AccessKey != "" || p.SecretKey != "":
		creds = credentials.NewStaticV4(p.AccessKey, p.SecretKey, p.SessionToken)
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if p.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	opts := &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup}
	if p.SkipVerify {
		tr, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.InsecureSkipVerify = true
		opts.Transport = tr
	}
	faults, err := withRetries(opts, secure) // retry.go
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	client, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	root := strings.Trim(p.RootDirectory, "/")
	if root != "" {
		if !driver.ValidPath("/" + root) {
			return nil, fmt.Errorf("s3: rootdirectory %q is not a valid key prefix", p.RootDirectory)
		}
		root += "/"
	}
	return &Driver{
		client:          client,
		core:            minio.Core{Client: client},
		bucket:          p.Bucket,
		root:            root,
		chunkSize:       p.ChunkSize,
		copyThreshold:   p.MultipartCopyThresholdSize,
		copyChunk:       p.MultipartCopyChunkSize,
		copyConcurrency: p.MultipartCopyMaxConcurrency,
		storageClass:    p.StorageClass,
		putContentOpts:  minio.PutObjectOptions{StorageClass: p.StorageClass, ContentType: "application/octet-stream"},
		maxParts:        maxParts,
		faults:          faults,
	}, nil
}

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

// Client is the underlying client (tests create buckets with it).
func (d *Driver) Client() *minio.Client { return d.client }

// CopiedBytes is how many bytes the driver copied within the store
// (server-side copies of Move and of appends), for tests.
func (d *Driver) CopiedBytes() int64 { return d.moveCopied.Load() + d.appendCopied.Load() }

// Bucket is the bucket the driver stores in.
func (d *Driver) Bucket() string { return d.bucket }

func invalid(p string) error  { return driver.InvalidPathError{Path: p, DriverName: name} }
func notFound(p string) error { return driver.PathNotFoundError{Path: p, DriverName: name} }
func invalidOffset(p string, off int64) error {
	return driver.InvalidOffsetError{Path: p, Offset: off, DriverName: name}
}

// key maps a valid path other than "/" to its object key.
func (d *Driver) key(p string) string { return d.root + p[1:] }

// dirPrefix is the key prefix of p's children.
func (d *Driver) dirPrefix(p string) string {
	if p == "/" {
		return d.root
	}
	return d.key(p) + "/"
}

// checkObject validates a path that must name an object: "/" never does.
func checkObject(p string) error {
	if p == "/" || !driver.ValidPath(p) {
		return invalid(p)
	}
	return nil
}

func checkPath(p string) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	return nil
}

// isNoKey reports whether err says the object does not exist.
func isNoKey(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket
}

func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("s3: %s %s: %w", op, p, err)
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, notFound(p)
	}
	rc, _, h, err := d.core.GetObject(ctx, d.bucket, d.key(p), minio.GetObjectOptions{})
	if err != nil {
		if isNoKey(err) {
			return nil, notFound(p)
		}
		return nil, wrap("get", p, err)
	}
	if genOf(h) != "" {
		// a base that may have segments
		_ = rc.Close()
		if rc, err = d.segReader(ctx, p, 0); err != nil {
			return nil, err
		}
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, wrap("get", p, err)
	}
	return b, nil
}

// PutContent implements driver.StorageDriver: one PUT replaces the object
// atomically.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := checkObject(p); err != nil {
		return err
	}
	_, err := d.client.PutObject(ctx, d.bucket, d.key(p), bytes.NewReader(content), int64(len(content)), d.putContentOpts)
	return wrap("put", p, err)
}

// Reader implements driver.StorageDriver with a ranged GET, or a ranged GET
// of each piece of a segmented object from the one holding offset on.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, notFound(p)
	}
	if offset < 0 {
		return nil, invalidOffset(p, offset)
	}
	var opts minio.GetObjectOptions
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, err
		}
	}
	rc, _, h, err := d.core.GetObject(ctx, d.bucket, d.key(p), opts)
	if err == nil {
		if genOf(h) == "" {
			return rc, nil
		}
		_ = rc.Close()
		return d.segReader(ctx, p, offset)
	}
	if isNoKey(err) {
		return nil, notFound(p)
	}
	if minio.ToErrorResponse(err).StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The offset is at or past the end of the base: the end of the
		// object is an empty read, segments are read from their start.
		o, err := d.object(ctx, p)
		switch {
		case err != nil:
			return nil, err
		case o.size == offset:
			return io.NopCloser(bytes.NewReader(nil)), nil
		case offset < o.size:
			return d.segReader(ctx, p, offset)
		}
		return nil, invalidOffset(p, offset)
	}
	return nil, wrap("get", p, err)
}

// Stat implements driver.StorageDriver. An object is a file; a prefix with
// objects below it is a directory, with a zero ModTime.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	if p == "/" {
		return driver.FileInfoFields{P: p, Dir: true}, nil
	}
	oi, err := d.client.StatObject(ctx, d.bucket, d.key(p), minio.StatObjectOptions{})
	if err == nil {
		o, err := d.objectOf(ctx, p, d.key(p), oi)
		if err != nil {
			return nil, err
		}
		return driver.FileInfoFields{P: p, Sz: o.size, MT: o.mod}, nil
	}
	if !isNoKey(err) {
		return nil, wrap("stat", p, err)
	}
	res, err := d.core.ListObjectsV2(d.bucket, d.dirPrefix(p), "", "", "/", 1)
	if err != nil {
		return nil, wrap("list", p, err)
	}
	if len(res.Contents) > 0 || len(res.CommonPrefixes) > 0 {
		return driver.FileInfoFields{P: p, Dir: true}, nil
	}
	return nil, notFound(p)
}

// entry is a child found by listing a directory.
type entry struct {
	name string // the child's name (one path component)
	dir  bool
	size int64
	mod  time.Time
	// segmented: the object has hidden keys (K!seg/...) beside it, so its
	// size and time are those of its chain, not of its base.
	segmented bool
}

// children lists the direct children of directory p, sorted by name (an
// object before a directory of the same name). The listing is paginated by
// the client; only this directory's children are held.
func (d *Driver) children(ctx context.Context, p string) ([]entry, error) {
	prefix := d.dirPrefix(p)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []entry
	var hidden map[string]bool // names with hidden keys beside them
	for oi := range d.client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if oi.Err != nil {
			return nil, wrap("list", p, oi.Err)
		}
		rest := strings.TrimPrefix(oi.Key, prefix)
		dir := strings.HasSuffix(rest, "/")
		rest = strings.TrimSuffix(rest, "/")
		if i := strings.Index(rest, hiddenSep); i >= 0 {
			// hidden keys of an object: "name!seg/", never an entry
			if hidden == nil {
				hidden = map[string]bool{}
			}
			hidden[rest[:i]] = true
			continue
		}
		if rest == "" || strings.Contains(rest, "/") {
			continue // a "directory marker" object, or foreign junk
		}
		e := entry{name: rest, dir: dir}
		if !dir {
			e.size, e.mod = oi.Size, oi.LastModified
		}
		out = append(out, e)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].segmented = !out[i].dir && hidden[out[i].name]
	}
	// S3 sorts whole keys, where "a-b" comes before "a/"; the driver
	// sorts names, where "a" comes before "a-b".
	slices.SortFunc(out, func(a, b entry) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		switch {
		case a.dir == b.dir:
			return 0
		case a.dir:
			return 1
		}
		return -1
	})
	return out, nil
}

// List implements driver.StorageDriver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := checkPath(p); err != nil {
		return nil, err
	}
	es, err := d.children(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 && p != "/" {
		return nil, notFound(p)
	}
	prefix := childPrefix(p)
	out := make([]string, 0, len(es))
	for i, e := range es {
		if i > 0 && es[i-1].name == e.name {
			continue // an object and a directory of one name
		}
		out = append(out, prefix+e.name)
	}
	return out, nil
}

func childPrefix(p string) string {
	if p == "/" {
		return p
	}
	return p + "/"
}

// Move implements driver.StorageDriver: a server-side copy, then a delete
// of the source. A segmented source is composed into the destination by a
// multipart upload of UploadPartCopy parts, one or more per piece (in
// stages when there are more pieces than S3 allows parts); the destination
// is a plain object either way.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := checkObject(src); err != nil {
		return err
	}
	if err := checkObject(dst); err != nil {
		return err
	}
	o, err := d.object(ctx, src)
	if err != nil {
		return err
	}
	if src == dst {
		return nil
	}
	srcKey := d.key(src)
	if o.gen == "" && o.size <= d.copyThreshold {
		oi := o.pieces[0]
		srcOpts := minio.CopySrcOptions{Bucket: d.bucket, Object: srcKey, MatchETag: oi.etag}
		dstOpts := minio.CopyDestOptions{Bucket: d.bucket, Object: d.key(dst)}
		if d.storageClass != "" {
			dstOpts.UserMetadata = map[string]string{"x-amz-storage-class": d.storageClass}
			dstOpts.ReplaceMetadata = true
		}
		if _, err = d.client.CopyObject(ctx, dstOpts, srcOpts); err == nil {
			d.moveCopied.Add(oi.size)
		}
	} else {
		// Parts of at most MultipartCopyChunkSize, copied in parallel. The
		// destination gets no generation: it is a plain object.
		err = d.compose(ctx, src+" to "+dst, d.key(dst), o.pieces, d.putContentOpts, srcKey+tmpDir)
		if errors.Is(err, errSourceChanged) {
			return fmt.Errorf("s3: move %s to %s: %w", src, dst, err)
		}
	}
	if err != nil {
		if isNoKey(err) {
			return notFound(src) // removed meanwhile
		}
		return wrap("copy", src+" to "+dst, err)
	}
	// The base first: then the source is gone, whatever happens next.
	if err := d.client.RemoveObject(ctx, d.bucket, srcKey, minio.RemoveObjectOptions{}); err != nil && !isNoKey(err) {
		return wrap("delete", src, err)
	}
	if o.gen != "" {
		if _, err := d.removePrefix(ctx, src, srcKey+hiddenSep, nil); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements driver.StorageDriver: the object at p (its base, then
// its hidden keys) and every object below p/. Objects are listed and
// deleted in batches as the listing goes, so a large tree is never held
// in memory.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := checkObject(p); err != nil {
		return err
	}
	found := false
	key := d.key(p)
	if _, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{}); err == nil {
		found = true
		if err := d.client.RemoveObject(ctx, d.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNoKey(err) {
			return wrap("delete", p, err)
		}
	} else if !isNoKey(err) {
		return wrap("stat", p, err)
	}
	// Segments (and debris of interrupted operations) without a base are
	// removed too, but do not make p exist.
	if _, err := d.removePrefix(ctx, p, key+hiddenSep, nil); err != nil {
		return err
	}
	below, err := d.removePrefix(ctx, p, d.dirPrefix(p), nil)
	if err != nil {
		return err
	}
	if !found && !below {
		return notFound(p)
	}
	return nil
}

// Walk implements driver.StorageDriver: one directory listing at a time,
// depth first, children by name.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	es, err := d.children(ctx, p)
	if err != nil {
		return err
	}
	if len(es) == 0 && p != "/" {
		// a file (nothing to visit) or nothing at all
		if _, err := d.Stat(ctx, p); err != nil {
			return err
		}
		return nil
	}
	return d.walk(ctx, p, es, fn)
}

func (d *Driver) walk(ctx context.Context, p string, es []entry, fn driver.WalkFn) error {
	prefix := childPrefix(p)
	for _, e := range es {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := prefix + e.name
		if e.segmented {
			fi, err := d.Stat(ctx, child)
			switch {
			case errors.Is(err, driver.ErrPathNotFound):
				continue // removed meanwhile
			case err != nil:
				return err
			}
			e.size, e.mod = fi.Size(), fi.ModTime()
		}
		err := fn(driver.FileInfoFields{P: child, Sz: e.size, MT: e.mod, Dir: e.dir})
		if errors.Is(err, driver.ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if !e.dir {
			continue
		}
		sub, err := d.children(ctx, child)
		if err != nil {
			return err
		}
		if err := d.walk(ctx, child, sub, fn); err != nil {
			return err
		}
	}
	return nil
}

// URLFor returns a presigned GET URL for the object at p, valid for expiry.
// It presigns the object's base: callers ask for blobs, which are plain
// objects (Move composes a segmented upload into one), never for uploads.
func (d *Driver) URLFor(ctx context.Context, p string, expiry time.Duration) (string, error) {
	if err := checkObject(p); err != nil {
		return "", err
	}
	u, err := d.client.PresignedGetObject(ctx, d.bucket, d.key(p), expiry, nil)
	if err != nil {
		return "", wrap("presign", p, err)
	}
	return u.String(), nil
}

var _ driver.StorageDriver = (*Driver)(nil)
