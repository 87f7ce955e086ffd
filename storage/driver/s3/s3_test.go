package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	minioserver "github.com/registryd/registryd/internal/minio"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

// The tests run against a real MinIO server that they start themselves
// (one per test binary). Without a minio binary they fail, unless
// REGISTRYD_S3_SKIP=1 says to skip them.
//
//	REGISTRYD_MINIO=path   the minio binary (default: .cache/bin/minio of the
//	                       repository, then $(go env GOPATH)/bin/minio, then $PATH)
//	REGISTRYD_S3_SKIP=1    skip when no minio binary is found

const (
	minioUser     = "registryd-test"
	minioPassword = "registryd-test-secret"
)

var (
	minioOnce sync.Once
	theMinio  *minioserver.Server
	minioDir  string
	minioErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	theMinio.Stop()
	if minioDir != "" {
		_ = os.RemoveAll(minioDir)
	}
	os.Exit(code)
}

// startMinio starts the shared server once.
func startMinio(t testing.TB) *minioserver.Server {
	t.Helper()
	minioOnce.Do(func() {
		bin := minioserver.Find("")
		if bin == "" {
			minioErr = fmt.Errorf("no minio binary: run scripts/install-deps.sh, or set REGISTRYD_MINIO")
			return
		}
		if minioDir, minioErr = os.MkdirTemp("", "registryd-minio-"); minioErr != nil {
			return
		}
		theMinio, minioErr = minioserver.Start(minioserver.Options{Bin: bin, Dir: minioDir, User: minioUser, Password: minioPassword})
	})
	if minioErr != nil {
		if os.Getenv("REGISTRYD_S3_SKIP") == "1" {
			t.Skipf("!!! SKIPPING S3 TESTS (REGISTRYD_S3_SKIP=1): %v", minioErr)
		}
		t.Fatalf("S3 tests need MinIO: %v (set REGISTRYD_S3_SKIP=1 to skip them)", minioErr)
	}
	return theMinio
}

// newTestDriver returns a driver on a new, empty bucket.
func newTestDriver(t testing.TB, mod func(*Parameters)) *Driver {
	t.Helper()
	srv := startMinio(t)
	bucket, err := srv.NewBucket("test")
	if err != nil {
		t.Fatal(err)
	}
	p := Parameters{
		AccessKey: minioUser, SecretKey: minioPassword, RegionEndpoint: srv.Endpoint,
		Bucket: bucket, ForcePathStyle: true, RootDirectory: "/registry",
		ChunkSize: MinChunkSize,
	}
	if mod != nil {
		mod(&p)
	}
	d, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return newTestDriver(t, nil) })
}

// The suite again with no root directory and the default part size.
func TestDriverSuiteBucketRoot(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver {
		return newTestDriver(t, func(p *Parameters) { p.RootDirectory = ""; p.ChunkSize = 0 })
	})
}

func TestNewParameters(t *testing.T) {
	for _, c := range []struct {
		p  Parameters
		ok bool
	}{
		{Parameters{Bucket: "b"}, true},
		{Parameters{}, false},
		{Parameters{Bucket: "b", ChunkSize: 1 << 20}, false},
		{Parameters{Bucket: "b", ChunkSize: 5 << 20}, true},
		{Parameters{Bucket: "b", RegionEndpoint: "ftp://x"}, false},
		{Parameters{Bucket: "b", RegionEndpoint: "http://x:9000/path"}, false},
		{Parameters{Bucket: "b", RegionEndpoint: "minio:9000"}, true},
		{Parameters{Bucket: "b", RootDirectory: "/a/../b"}, false},
		{Parameters{Bucket: "b", MultipartCopyThresholdSize: 6 << 30}, false},
	} {
		_, err := New(c.p)
		if (err == nil) != c.ok {
			t.Errorf("New(%+v): %v, want ok %v", c.p, err, c.ok)
		}
	}
	d, err := New(Parameters{Bucket: "b", RootDirectory: "/x/y/"})
	if err != nil || d.key("/a/b") != "x/y/a/b" || d.dirPrefix("/") != "x/y/" || d.dirPrefix("/a") != "x/y/a/" {
		t.Fatalf("keys: %v %q %q", err, d.key("/a/b"), d.dirPrefix("/"))
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// An upload resumed three times, as three requests to three instances
// would, with pieces below and above S3's 5 MiB part minimum: a small
// last piece is read back and replaced, a large one is followed by a segment.
func TestWriterAppendAcrossCloses(t *testing.T) {
	ctx := context.Background()
	for _, sizes := range [][]int{
		{1 << 20, 7 << 20, 3},          // small, then large, then tiny
		{6 << 20, 100, 5 << 20},        // large first: copy part + small tail
		{3 << 20, 1 << 20, 2 << 20},    // stays below 5 MiB, then crosses it
		{0, 5 << 20, 11<<20 + 17, 1},   // empty start, exact minimum, several parts
		{(5 << 20) - 1, 1, 4 << 20, 0}, // crosses the minimum by one byte
	} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			d := newTestDriver(t, nil)
			var all []byte
			for i, n := range sizes {
				w, err := d.Writer(ctx, "/up/data", i > 0)
				if err != nil {
					t.Fatal(err)
				}
				if w.Size() != int64(len(all)) {
					t.Fatalf("writer %d starts at %d, want %d", i, w.Size(), len(all))
				}
				piece := randomBytes(n)
				// in uneven writes
				for off := 0; off < n; {
					k := min(n-off, 1+off%(3<<20))
					if _, err := w.Write(piece[off : off+k]); err != nil {
						t.Fatal(err)
					}
					off += k
				}
				all = append(all, piece...)
				if w.Size() != int64(len(all)) {
					t.Fatalf("writer %d size %d, want %d", i, w.Size(), len(all))
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				fi, err := d.Stat(ctx, "/up/data")
				if err != nil || fi.Size() != int64(len(all)) {
					t.Fatalf("Stat after writer %d: %v %v", i, fi, err)
				}
			}
			w, err := d.Writer(ctx, "/up/data", true)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rc, err := d.Reader(ctx, "/up/data", 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, all) {
				t.Fatalf("content: %d bytes (%v), want %d, equal %v", len(got), err, len(all), bytes.Equal(got, all))
			}
			// no multipart upload is left behind
			for u := range d.Client().ListIncompleteUploads(ctx, d.Bucket(), "", true) {
				t.Errorf("incomplete upload left: %+v", u)
			}
		})
	}
}

// A writer replaced under an appending writer fails instead of mixing.
func TestWriterAppendReplacedObject(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	if err := d.PutContent(ctx, "/x", randomBytes(6<<20)); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/x", true)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("tail"))
	if err := d.PutContent(ctx, "/x", randomBytes(7<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close appended to an object replaced meanwhile")
	}
	if fi, err := d.Stat(ctx, "/x"); err != nil || fi.Size() != 7<<20 {
		t.Fatalf("Stat: %v %v", fi, err)
	}
}

// streamReader produces n pseudo-random bytes without holding them.
type streamReader struct {
	left int64
	h    io.Writer
	seed byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.left))
	for i := range n {
		r.seed = r.seed*31 + 7
		p[i] = r.seed ^ byte(r.left>>8)
		r.left--
	}
	r.h.Write(p[:n])
	return n, nil
}

// A 64 MiB stream goes through a writer in constant memory: the heap does
// not grow with the size of the stream.
func TestWriterConstantMemory(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, func(p *Parameters) { p.ChunkSize = 0 }) // default, 10 MiB
	const size = 64<<20 + 12345
	hw := sha256.New()
	src := &streamReader{left: size, h: hw, seed: 3}
	w, err := d.Writer(ctx, "/big", false)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	buf := make([]byte, 1<<20)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				t.Fatal(werr)
			}
		}
		if err == io.EOF {
			break
		}
		if w.Size()%(8<<20) == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	grow := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB before, %d MiB peak (+%d MiB) for a %d MiB stream", base>>20, peak>>20, grow>>20, size>>20)
	if grow > 32<<20 { // one 10 MiB part and the client's own buffers; half the stream
		t.Fatalf("heap grew by %d MiB while streaming %d MiB: not constant memory", grow>>20, size>>20)
	}
	rc, err := d.Reader(ctx, "/big", 0)
	if err != nil {
		t.Fatal(err)
	}
	hr := sha256.New()
	n, err := io.Copy(hr, rc)
	rc.Close()
	if err != nil || n != size || !bytes.Equal(hr.Sum(nil), hw.Sum(nil)) {
		t.Fatalf("read back %d bytes, %v, hash equal %v", n, err, bytes.Equal(hr.Sum(nil), hw.Sum(nil)))
	}
	// a move above the multipart copy threshold (32 MiB) is a multipart copy
	if err := d.Move(ctx, "/big", "/moved/big"); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/moved/big"); err != nil || fi.Size() != size {
		t.Fatalf("Stat after Move: %v %v", fi, err)
	}
}

// List and Walk page through directories of more than 1000 keys (S3's page).
func TestListPaginates(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	const n = 2100
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var want []string
	for i := range n {
		var p string
		if i%3 == 0 {
			p = fmt.Sprintf("/many/d%05d/f", i) // directories
		} else {
			p = fmt.Sprintf("/many/f%05d", i)
		}
		if i%3 == 0 {
			want = append(want, fmt.Sprintf("/many/d%05d", i))
		} else {
			want = append(want, p)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := d.PutContent(ctx, p, []byte("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// sorted: all d* names before f* names
	var ds, fs []string
	for _, w := range want {
		if strings.HasPrefix(w, "/many/d") {
			ds = append(ds, w)
		} else {
			fs = append(fs, w)
		}
	}
	want = append(ds, fs...)
	got, err := d.List(ctx, "/many")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List: %d entries, want %d (equal %v)", len(got), n, fmt.Sprint(got) == fmt.Sprint(want))
	}
	// Directories have no modification time, which keeps the registry's
	// listing cache (valid while a directory's time is unchanged) off S3,
	// where another instance may have changed the directory.
	if fi, err := d.Stat(ctx, "/many"); err != nil || !fi.IsDir() || !fi.ModTime().IsZero() {
		t.Fatalf("Stat of a directory: %v %v", fi, err)
	}
	count := 0
	if err := d.Walk(ctx, "/many", func(fi driver.FileInfo) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := n + len(ds); count != want {
		t.Fatalf("Walk visited %d, want %d", count, want)
	}
	if err := d.Delete(ctx, "/many"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.List(ctx, "/many"); err == nil {
		t.Fatal("List after Delete of the tree succeeded")
	}
}

func TestURLFor(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	if err := d.PutContent(ctx, "/blob", []byte("presigned content")); err != nil {
		t.Fatal(err)
	}
	u, err := d.URLFor(ctx, "/blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "presigned content" {
		t.Fatalf("GET presigned URL: %d %q", resp.StatusCode, b)
	}
}
