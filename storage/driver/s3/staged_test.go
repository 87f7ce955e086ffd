package s3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func TestStagedSuite(t *testing.T) {
	// 12 MiB: two whole 5 MiB parts sent before Commit, and a last one.
	testsuite.RunStaged(t, 12<<20+7, func(t *testing.T) driver.StorageDriver {
		d := newTestDriver(t, nil)
		t.Cleanup(func() { noIncompleteUploads(t, d) })
		return d
	})
}

// incompleteParts returns the parts S3 holds for the incomplete uploads of
// key.
func incompleteParts(t *testing.T, d *Driver, key string) (uploads, parts int) {
	t.Helper()
	ctx := context.Background()
	for u := range d.Client().ListIncompleteUploads(ctx, d.Bucket(), key, false) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		if u.Key != key {
			continue
		}
		uploads++
		res, err := d.core.ListObjectParts(ctx, d.Bucket(), key, u.UploadID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		parts += len(res.ObjectParts)
	}
	return uploads, parts
}

// The process that writes a staged object dies after sending parts and
// before completing the upload (SIGKILL of a child process, which
// TestStagedCrashChild is): the path shows nothing, to every method, in
// any process; the parts sit in an incomplete upload that nothing reads;
// and a later staged write of the path is unaffected by it.
func TestStagedCrashBeforeCommit(t *testing.T) {
	if os.Getenv("REGISTRYD_STAGED_CHILD") != "" {
		t.Skip("in the child")
	}
	ctx := context.Background()
	d := newTestDriver(t, nil)
	p := "/blobs/sha256/ab/abcd/data"
	key := d.key(p)

	cmd := exec.Command(os.Args[0], "-test.run=^TestStagedCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(),
		"REGISTRYD_STAGED_CHILD="+strings.Join([]string{theMinio.Endpoint, d.Bucket(), p}, " "))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "written, not committed") {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("the child ended before writing")
	}
	// Its parts are in (the child waited for them), its upload is open.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ups, parts := incompleteParts(t, d, key)
		if ups == 1 && parts >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's upload: %d uploads, %d parts; want 1 with 2 or more", ups, parts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// A new driver, as another process or a restart would have.
	d2 := newDriverOn(t, d.Bucket())
	for _, dd := range []*Driver{d, d2} {
		if _, err := dd.Stat(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("Stat after the crash: %v", err)
		}
		if _, err := dd.Reader(ctx, p, 0); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("Reader after the crash: %v", err)
		}
		if _, err := dd.List(ctx, "/blobs"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("List after the crash: %v", err)
		}
		var seen []string
		if err := dd.Walk(ctx, "/", func(fi driver.FileInfo) error { seen = append(seen, fi.Path()); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 0 {
			t.Fatalf("Walk after the crash: %v", seen)
		}
	}
	if keys := allKeys(t, d); len(keys) != 0 {
		t.Fatalf("keys after the crash: %v", keys)
	}
	// The same path written again: the stale upload does not mix in.
	data := []byte("the blob, this time whole")
	w, err := d2.StagedWriter(ctx, p, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := d2.GetContent(ctx, p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after a new write: %q %v", got, err)
	}
	if ups, _ := incompleteParts(t, d, key); ups != 1 {
		t.Fatalf("%d incomplete uploads, want the dead one's", ups)
	}
	// What a lifecycle rule (or MinIO's cleanup) does to it.
	for u := range d.Client().ListIncompleteUploads(ctx, d.Bucket(), key, false) {
		_ = d.core.AbortMultipartUpload(ctx, d.Bucket(), key, u.UploadID)
	}
	if got, err := d2.GetContent(ctx, p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the dead upload is aborted: %q %v", got, err)
	}
}

// TestStagedCrashChild is the process TestStagedCrashBeforeCommit kills:
// it writes three 5 MiB parts of a staged object, waits until they are
// sent, says so and waits to be killed.
func TestStagedCrashChild(t *testing.T) {
	env := os.Getenv("REGISTRYD_STAGED_CHILD")
	if env == "" {
		t.Skip("run by TestStagedCrashBeforeCommit")
	}
	f := strings.Fields(env)
	d, err := New(Parameters{AccessKey: minioUser, SecretKey: minioPassword, RegionEndpoint: f[0],
		Bucket: f[1], ForcePathStyle: true, RootDirectory: "/registry", ChunkSize: MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.StagedWriter(context.Background(), f[2], 3*MinChunkSize+1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(3*MinChunkSize + 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.(*stagedWriter).wait(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("written, not committed\n")
	time.Sleep(time.Minute)
	t.Fatal("not killed")
}

// newDriverOn is a second driver on the bucket of another.
func newDriverOn(t *testing.T, bucket string) *Driver {
	t.Helper()
	d, err := New(Parameters{AccessKey: minioUser, SecretKey: minioPassword, RegionEndpoint: theMinio.Endpoint,
		Bucket: bucket, ForcePathStyle: true, RootDirectory: "/registry", ChunkSize: MinChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A staged write fails at its Commit when a part failed: nothing appears
// and its upload is aborted.
func TestStagedPartFailure(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	w, err := d.StagedWriter(ctx, "/f/data", -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomBytes(MinChunkSize + 1)); err != nil {
		t.Fatal(err)
	}
	sw := w.(*stagedWriter)
	if err := sw.wait(); err != nil {
		t.Fatal(err)
	}
	// The upload disappears under the writer (as an expiry would make it).
	if err := d.core.AbortMultipartUpload(ctx, d.Bucket(), sw.key, sw.uploadID); err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(randomBytes(MinChunkSize))
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit succeeded without its upload")
	}
	_ = w.Close()
	if _, err := d.Stat(ctx, "/f/data"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("Stat after a failed Commit: %v", err)
	}
	noIncompleteUploads(t, d)
}

// A 64 MiB staged write holds a bounded number of parts in memory: two of
// ChunkSize (10 MiB) without its size, two of 5 MiB with it.
func TestStagedConstantMemory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int64
		bound int64
	}{{"size unknown", -1, 32 << 20}, {"size known", 64<<20 + 12345, 24 << 20}} {
		t.Run(tc.name, func(t *testing.T) { stagedMemory(t, tc.size, tc.bound) })
	}
}

func stagedMemory(t *testing.T, announced, bound int64) {
	ctx := context.Background()
	d := newTestDriver(t, func(p *Parameters) { p.ChunkSize = 0 }) // 10 MiB
	const size = 64<<20 + 12345
	hw := sha256.New()
	src := &streamReader{left: size, h: hw, seed: 5}
	w, err := d.StagedWriter(ctx, "/big", announced)
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
		if w.Size()%(4<<20) == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	grow := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB before, %d MiB peak (+%d MiB) for a %d MiB stream", base>>20, peak>>20, grow>>20, size>>20)
	// the part being filled, stagedParts being sent, the buffers of the
	// growing first part, and the client's
	if grow > bound {
		t.Fatalf("heap grew by %d MiB while streaming %d MiB: not bounded", grow>>20, size>>20)
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
	// A plain object, as Move makes: no segment generation.
	oi, err := d.client.StatObject(ctx, d.Bucket(), d.key("/big"), minio.StatObjectOptions{})
	if err != nil || genOf(oi.Metadata) != "" {
		t.Fatalf("staged object: %v, generation %q", err, genOf(oi.Metadata))
	}
	noIncompleteUploads(t, d)
}
