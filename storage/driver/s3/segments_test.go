package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// allKeys lists every key of the driver's bucket.
func allKeys(t *testing.T, d *Driver) []string {
	t.Helper()
	var out []string
	for oi := range d.Client().ListObjects(context.Background(), d.Bucket(), minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		out = append(out, oi.Key)
	}
	return out
}

func hiddenKeys(t *testing.T, d *Driver) []string {
	var out []string
	for _, k := range allKeys(t, d) {
		if strings.Contains(k, hiddenSep) {
			out = append(out, k)
		}
	}
	return out
}

func noIncompleteUploads(t *testing.T, d *Driver) {
	t.Helper()
	for u := range d.Client().ListIncompleteUploads(context.Background(), d.Bucket(), "", true) {
		t.Errorf("incomplete upload left: %+v", u)
	}
}

// appendPiece opens an appending writer on p, writes piece and closes.
func appendPiece(t *testing.T, d *Driver, p string, piece []byte, wantStart int64) {
	t.Helper()
	ctx := context.Background()
	w, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != wantStart {
		t.Fatalf("writer starts at %d, want %d", w.Size(), wantStart)
	}
	for off := 0; off < len(piece); {
		k := min(len(piece)-off, 1+off%(2<<20))
		if _, err := w.Write(piece[off : off+k]); err != nil {
			t.Fatal(err)
		}
		off += k
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFrom(t *testing.T, d *Driver, p string, off int64) []byte {
	t.Helper()
	rc, err := d.Reader(context.Background(), p, off)
	if err != nil {
		t.Fatalf("Reader(%d): %v", off, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Reader(%d): read: %v", off, err)
	}
	return b
}

// Twenty appends of pieces below and above the 5 MiB part minimum: the
// object reads back exactly through Stat, Reader at many offsets,
// GetContent, Walk, and after Move; hidden keys never show.
func TestSegmentedAppends(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	const p = "/uploads/u1/data"
	if err := d.PutContent(ctx, "/uploads/u1/startedat", []byte("now")); err != nil {
		t.Fatal(err)
	}
	sizes := []int{1 << 20, 3 << 20, 2 << 20, 7 << 20, 100, 6 << 20, 4 << 20, 1, 5 << 20, 0,
		(5 << 20) - 1, 1, 2 << 20, 9<<20 + 3, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 12345}
	var all []byte
	var bounds []int64 // where each append started
	for i, n := range sizes {
		piece := randomBytes(n)
		bounds = append(bounds, int64(len(all)))
		appendPiece(t, d, p, piece, int64(len(all)))
		all = append(all, piece...)
		fi, err := d.Stat(ctx, p)
		if err != nil || fi.Size() != int64(len(all)) || fi.IsDir() {
			t.Fatalf("Stat after append %d: %v %v, want size %d", i, fi, err, len(all))
		}
	}
	if len(hiddenKeys(t, d)) == 0 {
		t.Fatal("no segments: appends rewrote the object")
	}
	size := int64(len(all))
	offsets := append([]int64{1, 5 << 20, size - 1, size}, bounds...)
	for _, b := range bounds {
		offsets = append(offsets, b+1, max(b-1, 0))
	}
	for _, off := range offsets {
		if got := readFrom(t, d, p, off); !bytes.Equal(got, all[off:]) {
			t.Fatalf("Reader(%d): %d bytes, want %d (equal %v)", off, len(got), size-off, bytes.Equal(got, all[off:]))
		}
	}
	if _, err := d.Reader(ctx, p, size+1); !errors.As(err, new(driver.InvalidOffsetError)) {
		t.Fatalf("Reader past the end: %v", err)
	}
	if got, err := d.GetContent(ctx, p); err != nil || !bytes.Equal(got, all) {
		t.Fatalf("GetContent: %d bytes, %v", len(got), err)
	}
	if ls, err := d.List(ctx, "/uploads/u1"); err != nil || fmt.Sprint(ls) != "[/uploads/u1/data /uploads/u1/startedat]" {
		t.Fatalf("List: %v %v", ls, err)
	}
	var walked []string
	if err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path())
		if fi.Path() == p && fi.Size() != size {
			t.Errorf("Walk: %s has size %d, want %d", p, fi.Size(), size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(walked) != "[/uploads /uploads/u1 /uploads/u1/data /uploads/u1/startedat]" {
		t.Fatalf("Walk: %v", walked)
	}
	// a commit with nothing more is a no-op
	w, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	const dst = "/blobs/sha256/ab/data"
	if err := d.Move(ctx, p, dst); err != nil {
		t.Fatal(err)
	}
	if got := readFrom(t, d, dst, 0); !bytes.Equal(got, all) {
		t.Fatalf("after Move: %d bytes, want %d", len(got), size)
	}
	if got := readFrom(t, d, dst, 7<<20); !bytes.Equal(got, all[7<<20:]) {
		t.Fatalf("after Move, from 7 MiB: %d bytes", len(got))
	}
	if _, err := d.Stat(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("Stat of the moved source: %v", err)
	}
	if hk := hiddenKeys(t, d); len(hk) != 0 {
		t.Fatalf("hidden keys left after Move: %v", hk)
	}
	oi, err := d.Client().StatObject(ctx, d.Bucket(), d.key(dst), minio.StatObjectOptions{})
	if err != nil || genOf(oi.Metadata) != "" || oi.Size != size {
		t.Fatalf("destination is not a plain object: %v %v", oi.Metadata, err)
	}
	noIncompleteUploads(t, d)
}

// Appends cost what they send: 40 appends of 6 MiB copy and read back
// nothing, and the final Move copies every byte once. The design before
// segments copied the whole object at every append: 20.5 times the total.
//
// REGISTRYD_S3_APPENDS and REGISTRYD_S3_APPEND_MIB change the pattern
// (e.g. 128 appends of 8 MiB for a 1 GiB push).
func TestAppendsAreLinear(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, func(p *Parameters) { p.ChunkSize = 0 })
	n, mib := 40, 6
	if v, err := strconv.Atoi(os.Getenv("REGISTRYD_S3_APPENDS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("REGISTRYD_S3_APPEND_MIB")); err == nil && v > 0 {
		mib = v
	}
	const p = "/up/data"
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	piece := randomBytes(mib << 20)
	var total int64
	var old int64 // what the design before segments copied
	for range n {
		if total >= MinChunkSize {
			old += total
		}
		piece[0]++ // not all pieces alike
		appendPiece(t, d, p, piece, total)
		total += int64(len(piece))
	}
	if err := d.Move(ctx, p, "/blob"); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/blob"); err != nil || fi.Size() != total {
		t.Fatalf("Stat after Move: %v %v", fi, err)
	}
	copied, reread, moved := d.appendCopied.Load(), d.appendReread.Load(), d.moveCopied.Load()
	t.Logf("%d appends of %d MiB (%d MiB): appends copied %d B and read back %d B, Move copied %d B; before segments appends copied %d MiB (%.1fx)",
		n, mib, total>>20, copied, reread, moved, old>>20, float64(old)/float64(total))
	if work := copied + reread + moved; work >= 2*total {
		t.Fatalf("server-side copies and read-backs: %d bytes for %d written, not linear", work, total)
	}
	if copied+reread != 0 {
		t.Fatalf("appends after a piece of at least 5 MiB copied %d and read back %d bytes", copied, reread)
	}
	if moved != total {
		t.Fatalf("Move copied %d bytes, want %d", moved, total)
	}
}

// Small appends read back at most the small last piece each time.
func TestSmallAppendsRereadBounded(t *testing.T) {
	d := newTestDriver(t, nil)
	const p = "/up/data"
	var total int64
	for range 30 {
		appendPiece(t, d, p, randomBytes(1<<20), total)
		total += 1 << 20
	}
	reread := d.appendReread.Load()
	t.Logf("30 appends of 1 MiB: read back %d MiB", reread>>20)
	// A piece grows to 5 MiB by 1 MiB appends reading back 1+2+3+4 MiB:
	// at most 4 MiB per append, twice what was written.
	if reread > 30*(4<<20) || reread > 2*total {
		t.Fatalf("read back %d bytes for %d written", reread, total)
	}
	if got := readFrom(t, d, p, 0); int64(len(got)) != total {
		t.Fatalf("read %d bytes, want %d", len(got), total)
	}
}

// A writer that dies before Close leaves the object as it was, and
// segments of another generation never become content.
func TestSegmentsCrashAndStale(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	const p = "/up/data"
	a, b := randomBytes(6<<20), randomBytes(2<<20)
	appendPiece(t, d, p, a, 0)
	appendPiece(t, d, p, b, int64(len(a)))
	all := append(append([]byte{}, a...), b...)

	// A writer replacing the small last segment, and one adding a
	// segment after a large one, send parts and die.
	for _, extra := range []int{7 << 20, 1} {
		w, err := d.Writer(ctx, p, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randomBytes(extra)); err != nil {
			t.Fatal(err)
		}
		// no Close: the process is gone
		if got := readFrom(t, d, p, 0); !bytes.Equal(got, all) {
			t.Fatalf("content changed by an unfinished writer: %d bytes", len(got))
		}
		if fi, err := d.Stat(ctx, p); err != nil || fi.Size() != int64(len(all)) {
			t.Fatalf("Stat: %v %v", fi, err)
		}
		if extra == 1 {
			break
		}
		// the next writer continues from the last completed append
		c := randomBytes(3 << 20)
		appendPiece(t, d, p, c, int64(len(all)))
		all = append(all, c...)
	}
	// abandoned multipart uploads of the dead writers
	for u := range d.Client().ListIncompleteUploads(ctx, d.Bucket(), "", true) {
		_ = d.core.AbortMultipartUpload(ctx, d.Bucket(), u.Key, u.UploadID)
	}

	// Debris: a segment of another generation that would extend the chain.
	oi, err := d.Client().StatObject(ctx, d.Bucket(), d.key(p), minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := segKey(d.key(p), "0123456789abcdef", int64(len(all)))
	if _, err := d.Client().PutObject(ctx, d.Bucket(), stale, bytes.NewReader([]byte("stale")), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, p); err != nil || fi.Size() != int64(len(all)) {
		t.Fatalf("Stat with a stale segment: %v %v", fi, err)
	}
	_ = oi

	// PutContent replaces the object: its segments are not content.
	if err := d.PutContent(ctx, p, []byte("small")); err != nil {
		t.Fatal(err)
	}
	if got, err := d.GetContent(ctx, p); err != nil || string(got) != "small" {
		t.Fatalf("GetContent after PutContent: %q %v", got, err)
	}
	if fi, err := d.Stat(ctx, p); err != nil || fi.Size() != 5 {
		t.Fatalf("Stat after PutContent: %v %v", fi, err)
	}
	// appending to it starts a new generation and removes the old segments
	appendPiece(t, d, p, []byte("+more"), 5)
	if got := readFrom(t, d, p, 0); string(got) != "small+more" {
		t.Fatalf("content: %q", got)
	}
	if hk := hiddenKeys(t, d); len(hk) != 0 {
		t.Fatalf("stale segments left: %v", hk)
	}

	// A non-appending writer truncates a segmented object.
	appendPiece(t, d, p, randomBytes(6<<20), 10)
	appendPiece(t, d, p, randomBytes(6<<20), 10+6<<20)
	w, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFrom(t, d, p, 0); string(got) != "fresh" {
		t.Fatalf("after truncating writer: %d bytes", len(got))
	}
	if hk := hiddenKeys(t, d); len(hk) != 0 {
		t.Fatalf("segments left after a truncating writer: %v", hk)
	}

	// Delete and Cancel remove the segments too.
	appendPiece(t, d, p, randomBytes(6<<20), 5)
	appendPiece(t, d, p, randomBytes(1<<20), 5+6<<20)
	if err := d.Delete(ctx, "/up"); err != nil {
		t.Fatal(err)
	}
	if keys := allKeys(t, d); len(keys) != 0 {
		t.Fatalf("keys left after Delete: %v", keys)
	}
	appendPiece(t, d, p, randomBytes(6<<20), 0)
	appendPiece(t, d, p, randomBytes(1<<20), 6<<20)
	w, err = d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if keys := allKeys(t, d); len(keys) != 0 {
		t.Fatalf("keys left after Cancel: %v", keys)
	}
	noIncompleteUploads(t, d)
}

// An appending writer fails when the object was replaced meanwhile, and
// its segment does not stay.
func TestSegmentAppendReplacedObject(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	const p = "/x"
	appendPiece(t, d, p, randomBytes(6<<20), 0)
	w, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("tail"))
	w2, err := d.Writer(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w2.Write([]byte("replaced"))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close appended to an object replaced meanwhile")
	}
	if got, err := d.GetContent(ctx, p); err != nil || string(got) != "replaced" {
		t.Fatalf("content: %q %v", got, err)
	}
	if hk := hiddenKeys(t, d); len(hk) != 0 {
		t.Fatalf("segment left: %v", hk)
	}
}

// More pieces than an upload may have parts are composed in stages.
func TestMoveStaged(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	d.maxParts = 3
	const p = "/up/data"
	var all []byte
	for i := range 8 {
		n := 5 << 20
		if i == 7 {
			n = 1000
		}
		piece := randomBytes(n)
		appendPiece(t, d, p, piece, int64(len(all)))
		all = append(all, piece...)
	}
	if n := len(hiddenKeys(t, d)); n != 7 {
		t.Fatalf("%d segments, want 7", n)
	}
	if err := d.Move(ctx, p, "/blob"); err != nil {
		t.Fatal(err)
	}
	if got := readFrom(t, d, "/blob", 0); !bytes.Equal(got, all) {
		t.Fatalf("staged Move: %d bytes, want %d", len(got), len(all))
	}
	if keys := allKeys(t, d); fmt.Sprint(keys) != "[registry/blob]" {
		t.Fatalf("keys after Move: %v", keys)
	}
	noIncompleteUploads(t, d)
}
