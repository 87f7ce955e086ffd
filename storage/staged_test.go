package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/miniotest"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/s3"
)

// sizedReader is a body that announces its length, as a request body with
// a Content-Length does.
type sizedReader struct {
	io.Reader
	n int64
}

func (r sizedReader) ExpectedSize() int64 { return r.n }

func sized(b []byte) io.Reader { return sizedReader{bytes.NewReader(b), int64(len(b))} }

// failingReader gives n bytes of r, then an error: a body cut off.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(len(p), f.n)]
	k, err := f.r.Read(p)
	f.n -= k
	return k, err
}

func randomBlob(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// s3Registry is a Registry over a new bucket of the test MinIO.
func s3Registry(t *testing.T, opts Options) (*Registry, *s3.Driver) {
	t.Helper()
	d := miniotest.Driver(t, miniotest.Params(t, "storage"))
	return New(d, opts), d
}

// keysUnder lists the bucket's keys below the store's root path p.
func keysUnder(t *testing.T, d *s3.Driver, p string) []string {
	t.Helper()
	var out []string
	prefix := "registry" + p
	for oi := range d.Client().ListObjects(context.Background(), d.Bucket(), miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		out = append(out, strings.TrimPrefix(oi.Key, "registry"))
	}
	return out
}

func incompleteUploads(t *testing.T, d *s3.Driver) []string {
	t.Helper()
	var out []string
	for u := range d.Client().ListIncompleteUploads(context.Background(), d.Bucket(), "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		out = append(out, u.Key)
	}
	return out
}

// A monolithic upload on S3 (POST ?digest=, or a PUT with the whole body
// on an empty upload) writes the blob once, at its final key: no copy,
// no upload data, and nothing visible until the digest checked out.
func TestStagedUploadsOnS3(t *testing.T) {
	ctx := context.Background()
	r, d := s3Registry(t, Options{})
	repo := mustRepo(t, r, "staged/app")
	big := randomBlob(1, 12<<20+3) // three parts of 5 MiB
	small := []byte("a small layer")

	for _, tc := range []struct {
		name string
		put  func(body io.Reader, want digest.Digest) (Descriptor, error)
	}{
		{"POST ?digest=", func(body io.Reader, want digest.Digest) (Descriptor, error) {
			return repo.PutBlob(ctx, body, want)
		}},
		{"POST then PUT", func(body io.Reader, want digest.Digest) (Descriptor, error) {
			up, err := repo.NewUpload(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			return up.Commit(ctx, body, -1, want)
		}},
		{"POST then PUT 0-", func(body io.Reader, want digest.Digest) (Descriptor, error) {
			up, err := repo.NewUpload(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			return up.Commit(ctx, body, 0, want)
		}},
	} {
		for _, blob := range [][]byte{big, small} {
			copied := d.CopiedBytes()
			want := digest.FromBytes(blob)
			desc, err := tc.put(sized(blob), want)
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", tc.name, len(blob), err)
			}
			if desc.Digest != want || desc.Size != int64(len(blob)) {
				t.Fatalf("%s: descriptor %+v", tc.name, desc)
			}
			if got := readAllBlob(t, repo, want); !bytes.Equal(got, blob) {
				t.Fatalf("%s: read back %d bytes", tc.name, len(got))
			}
			if c := d.CopiedBytes() - copied; c != 0 {
				t.Fatalf("%s: %d bytes copied within the store, want none", tc.name, c)
			}
			if ks := keysUnder(t, d, uploadsRoot("staged/app")); len(ks) != 0 {
				t.Fatalf("%s: the upload is still there: %v", tc.name, ks)
			}
			if err := repo.DeleteBlob(ctx, want); err != nil {
				t.Fatal(err)
			}
			if err := d.Delete(ctx, blobDir(want)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ups := incompleteUploads(t, d); len(ups) != 0 {
		t.Fatalf("incomplete uploads left: %v", ups)
	}

	// Through an upload that received a chunk first: the usual way, with
	// its copy.
	up, err := repo.NewUpload(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Append(ctx, bytes.NewReader(big[:6<<20]), 0); err != nil {
		t.Fatal(err)
	}
	copied := d.CopiedBytes()
	if _, err := up.Commit(ctx, bytes.NewReader(big[6<<20:]), 6<<20, digest.FromBytes(big)); err != nil {
		t.Fatal(err)
	}
	if d.CopiedBytes() == copied {
		t.Fatal("a chunked upload was committed without its copy: which path was that?")
	}
	if got := readAllBlob(t, repo, digest.FromBytes(big)); !bytes.Equal(got, big) {
		t.Fatalf("chunked: read back %d bytes", len(got))
	}
}

// A direct-to-final upload that does not check out leaves nothing: the
// wrong digest, a body cut off, a request cancelled; the blob is not in
// the store, not linked, no multipart upload is left open, and an upload
// session stays as it was (empty) for the client to retry.
func TestStagedUploadFailuresOnS3(t *testing.T) {
	ctx := context.Background()
	r, d := s3Registry(t, Options{})
	repo := mustRepo(t, r, "staged/fail")
	big := randomBlob(2, 11<<20)
	want := digest.FromBytes(big)
	wrong := digest.FromString("something else")

	check := func(what string, err error, code errcode.Code, d1 digest.Digest) {
		t.Helper()
		if !errcode.Is(err, code) {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
		if _, err := d.Stat(ctx, blobDataPath(d1)); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("%s: the blob's data: %v, want not found", what, err)
		}
		if _, err := repo.StatBlob(ctx, d1); !errcode.Is(err, errcode.BlobUnknown) {
			t.Fatalf("%s: StatBlob: %v, want BLOB_UNKNOWN", what, err)
		}
		if ups := incompleteUploads(t, d); len(ups) != 0 {
			t.Fatalf("%s: incomplete uploads left: %v", what, ups)
		}
		if ks := keysUnder(t, d, blobsRoot()); len(ks) != 0 {
			t.Fatalf("%s: keys in the content store: %v", what, ks)
		}
	}
	_, err := repo.PutBlob(ctx, sized(big), wrong)
	check("POST ?digest= with the wrong digest", err, errcode.DigestInvalid, wrong)
	check("POST ?digest= with the wrong digest (its content)", err, errcode.DigestInvalid, want)

	_, err = repo.PutBlob(ctx, &failingReader{r: bytes.NewReader(big), n: 7 << 20}, want)
	check("POST ?digest= cut off", err, errcode.BlobUploadInvalid, want)

	cctx, cancel := context.WithCancel(ctx)
	cut := &failingReader{r: bytes.NewReader(big), n: 6 << 20}
	_, err = repo.PutBlob(cctx, readerFunc(func(p []byte) (int, error) {
		if cut.n == 0 {
			cancel()
			return 0, context.Canceled
		}
		return cut.Read(p)
	}), want)
	check("POST ?digest= cancelled", err, errcode.BlobUploadInvalid, want)

	up, err := repo.NewUpload(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = up.Commit(ctx, sized(big), -1, wrong)
	check("PUT with the wrong digest", err, errcode.DigestInvalid, want)
	if size, err := up.Size(ctx); err != nil || size != 0 {
		t.Fatalf("the upload after a failed PUT: %d bytes, %v", size, err)
	}
	// The client retries on the same upload, right this time.
	if _, err := up.Commit(ctx, sized(big), -1, want); err != nil {
		t.Fatal(err)
	}
	if got := readAllBlob(t, repo, want); !bytes.Equal(got, big) {
		t.Fatalf("after the retry: %d bytes", len(got))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A blob already in the store is not written again: the body is hashed
// and the blob linked; a body that does not match it changes nothing.
func TestStagedUploadDeduplicatesOnS3(t *testing.T) {
	ctx := context.Background()
	r, d := s3Registry(t, Options{})
	blob := randomBlob(3, 6<<20)
	want := digest.FromBytes(blob)
	if _, err := mustRepo(t, r, "first").PutBlob(ctx, sized(blob), want); err != nil {
		t.Fatal(err)
	}
	key := "registry" + blobDataPath(want)
	before, err := d.Client().StatObject(ctx, d.Bucket(), key, miniogo.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second := mustRepo(t, r, "second")
	if _, err := second.PutBlob(ctx, sized(blob), want); err != nil {
		t.Fatal(err)
	}
	after, err := d.Client().StatObject(ctx, d.Bucket(), key, miniogo.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.LastModified != before.LastModified || after.ETag != before.ETag {
		t.Fatalf("the blob was written again: %v %s, then %v %s", before.LastModified, before.ETag, after.LastModified, after.ETag)
	}
	if got := readAllBlob(t, second, want); !bytes.Equal(got, blob) {
		t.Fatalf("second: %d bytes", len(got))
	}
	// Same length, other bytes: refused, the stored blob intact.
	other := bytes.Clone(blob)
	other[12345] ^= 1
	third := mustRepo(t, r, "third")
	if _, err := third.PutBlob(ctx, sized(other), want); !errcode.Is(err, errcode.DigestInvalid) {
		t.Fatalf("a body that does not match the stored blob: %v", err)
	}
	if _, err := third.StatBlob(ctx, want); !errcode.Is(err, errcode.BlobUnknown) {
		t.Fatalf("third: %v", err)
	}
	if got := readAllBlob(t, second, want); !bytes.Equal(got, blob) {
		t.Fatal("the stored blob changed")
	}
}

// With NoStaged the same uploads go through the session and its copy, and
// give the same result: what the staged path replaces.
func TestUnstagedUploadsOnS3(t *testing.T) {
	ctx := context.Background()
	r, d := s3Registry(t, Options{NoStaged: true})
	repo := mustRepo(t, r, "unstaged")
	blob := randomBlob(4, 6<<20)
	want := digest.FromBytes(blob)
	if _, err := repo.PutBlob(ctx, sized(blob), want); err != nil {
		t.Fatal(err)
	}
	if d.CopiedBytes() == 0 {
		t.Fatal("no copy without staging: which path was that?")
	}
	if got := readAllBlob(t, repo, want); !bytes.Equal(got, blob) {
		t.Fatalf("read back %d bytes", len(got))
	}
}
