// Package testsuite is the one test suite every storage driver passes
// unchanged: the filesystem and in-memory drivers now, object stores later.
// It checks the contract written in package driver, not an implementation,
// so it avoids what drivers may legitimately differ in: whether emptied
// directories linger, what error a file in the way of a directory is, and
// when a Writer's bytes become visible before Commit or Close.
package testsuite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// Run runs the suite. newDriver returns an empty driver; it is called once
// per subtest and may register cleanups on t.
func Run(t *testing.T, newDriver func(t *testing.T) driver.StorageDriver) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d driver.StorageDriver)
	}{
		{"PutGet", testPutGet},
		{"PutContentCopies", testPutContentCopies},
		{"LargeStream", testLargeStream},
		{"ReaderOffsets", testReaderOffsets},
		{"WriterAppendAcrossWriters", testWriterAppend},
		{"WriterCommit", testWriterCommit},
		{"WriterCloseKeeps", testWriterCloseKeeps},
		{"WriterCancel", testWriterCancel},
		{"Stat", testStat},
		{"List", testList},
		{"Move", testMove},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"WalkContext", testWalkContext},
		{"Root", testRoot},
		{"InvalidPaths", testInvalidPaths},
		{"ConcurrentPutSamePath", testConcurrentPut},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Batch", testBatch},
		{"ConcurrentBatches", testConcurrentBatches},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
}

func mustPut(t *testing.T, d driver.StorageDriver, p string, b []byte) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, b); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}

func mustGet(t *testing.T, d driver.StorageDriver, p string) []byte {
	t.Helper()
	b, err := d.GetContent(context.Background(), p)
	if err != nil {
		t.Fatalf("GetContent(%s): %v", p, err)
	}
	return b
}

func mustList(t *testing.T, d driver.StorageDriver, p string) string {
	t.Helper()
	ls, err := d.List(context.Background(), p)
	if err != nil {
		t.Fatalf("List(%s): %v", p, err)
	}
	return fmt.Sprint(ls)
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("%s: %v, want ErrPathNotFound", what, err)
	}
}

func testPutGet(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100000)
	for _, c := range [][]byte{[]byte("hello"), []byte("a longer value"), []byte("short"), {}, big, []byte("x")} {
		mustPut(t, d, "/a/b/c", c)
		if got := mustGet(t, d, "/a/b/c"); !bytes.Equal(got, c) {
			t.Fatalf("GetContent after PutContent of %d bytes: %d bytes", len(c), len(got))
		}
		fi, err := d.Stat(ctx, "/a/b/c")
		if err != nil || fi.Size() != int64(len(c)) || fi.IsDir() {
			t.Fatalf("Stat after PutContent of %d bytes: %v %v", len(c), fi, err)
		}
	}
	mustPut(t, d, "/empty", nil)
	if got, err := d.GetContent(ctx, "/empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty content: %q %v", got, err)
	}
	_, err := d.GetContent(ctx, "/missing")
	wantNotFound(t, "GetContent of a missing path", err)
	_, err = d.GetContent(ctx, "/a/b")
	wantNotFound(t, "GetContent of a directory", err)
	_, err = d.GetContent(ctx, "/a/b/c/below-a-file")
	wantNotFound(t, "GetContent below a file", err)
}

// The driver keeps its own copy of what it is given and gives out.
func testPutContentCopies(t *testing.T, d driver.StorageDriver) {
	in := []byte("original")
	mustPut(t, d, "/p", in)
	copy(in, "XXXXXXXX")
	got := mustGet(t, d, "/p")
	if string(got) != "original" {
		t.Fatalf("stored content changed with the caller's slice: %q", got)
	}
	copy(got, "YYYYYYYY")
	if got := mustGet(t, d, "/p"); string(got) != "original" {
		t.Fatalf("stored content changed with a returned slice: %q", got)
	}
}

// testLargeStream writes 20 MiB through a Writer in uneven chunks (some
// larger than any sane buffer) and reads it back through Reader, comparing
// hashes. GetContent is never used for it.
func testLargeStream(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	const size = 20 << 20
	const mid = 7<<20 + 12345
	data := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	w, err := d.Writer(ctx, "/big/data", false)
	if err != nil {
		t.Fatal(err)
	}
	chunks := []int{1, 4095, 32 << 10, 3 << 20, 17, 1 << 20, 5<<20 + 3}
	for off, i := 0, 0; off < size; i++ {
		n := min(chunks[i%len(chunks)], size-off)
		if k, err := w.Write(data[off : off+n]); err != nil || k != n {
			t.Fatalf("Write of %d bytes at %d: %d, %v", n, off, k, err)
		}
		off += n
		if w.Size() != int64(off) {
			t.Fatalf("Size %d after %d bytes", w.Size(), off)
		}
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, mid} {
		rc, err := d.Reader(ctx, "/big/data", off)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		_ = rc.Close()
		want := sha256.Sum256(data[off:])
		if err != nil || n != size-off || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("read back from %d: %d bytes, %v, hash equal %v", off, n, err, bytes.Equal(h.Sum(nil), want[:]))
		}
	}
	fi, err := d.Stat(ctx, "/big/data")
	if err != nil || fi.Size() != size || fi.IsDir() {
		t.Fatalf("Stat: %v %v", fi, err)
	}
}

func testReaderOffsets(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/f", []byte("0123456789"))
	for _, c := range []struct {
		off  int64
		want string
	}{{0, "0123456789"}, {4, "456789"}, {9, "9"}, {10, ""}} {
		rc, err := d.Reader(ctx, "/f", c.off)
		if err != nil {
			t.Fatalf("offset %d: %v", c.off, err)
		}
		b, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || string(b) != c.want {
			t.Fatalf("offset %d: %q %v, want %q", c.off, b, err, c.want)
		}
	}
	for _, off := range []int64{11, 1 << 40, -1} {
		rc, err := d.Reader(ctx, "/f", off)
		var ioe driver.InvalidOffsetError
		if !errors.As(err, &ioe) || ioe.Offset != off {
			if rc != nil {
				_ = rc.Close()
			}
			t.Fatalf("offset %d: %v, want InvalidOffsetError", off, err)
		}
	}
	mustPut(t, d, "/empty", nil)
	rc, err := d.Reader(ctx, "/empty", 0)
	if err != nil {
		t.Fatalf("Reader of empty content: %v", err)
	}
	if b, err := io.ReadAll(rc); err != nil || len(b) != 0 {
		t.Fatalf("Reader of empty content: %q %v", b, err)
	}
	_ = rc.Close()
	mustPut(t, d, "/dir/x", []byte("x"))
	for _, p := range []string{"/nope", "/dir", "/f/below"} {
		_, err := d.Reader(ctx, p, 0)
		wantNotFound(t, "Reader("+p+")", err)
	}
}

// testWriterAppend is a resumable upload: three chunks through three
// appending Writers, as three requests (maybe to three instances) would.
func testWriterAppend(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	chunks := []string{"first-", "second-chunk-", "third"}
	var total int64
	for i, c := range chunks {
		w, err := d.Writer(ctx, "/up/load/data", true)
		if err != nil {
			t.Fatal(err)
		}
		if w.Size() != total {
			t.Fatalf("writer %d starts at %d, want %d", i, w.Size(), total)
		}
		if _, err := io.WriteString(w, c); err != nil {
			t.Fatal(err)
		}
		total += int64(len(c))
		if w.Size() != total {
			t.Fatalf("writer %d size %d, want %d", i, w.Size(), total)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := d.Stat(ctx, "/up/load/data"); err != nil || fi.Size() != total {
			t.Fatalf("Stat after writer %d: %v %v", i, fi, err)
		}
	}
	if got := mustGet(t, d, "/up/load/data"); string(got) != strings.Join(chunks, "") {
		t.Fatalf("content %q", got)
	}
	// without append a writer truncates
	w, err := d.Writer(ctx, "/up/load/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 0 {
		t.Fatalf("truncating writer starts at %d", w.Size())
	}
	_, _ = io.WriteString(w, "new")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/up/load/data"); string(got) != "new" {
		t.Fatalf("truncating writer: %q", got)
	}
}

func testWriterCommit(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	w, err := d.Writer(ctx, "/w/data", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "committed content")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// committed content is visible before the writer is closed
	rc, err := d.Reader(ctx, "/w/data", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(b) != "committed content" {
		t.Fatalf("after Commit: %q", b)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after Commit: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	if got := mustGet(t, d, "/w/data"); string(got) != "committed content" {
		t.Fatalf("content %q", got)
	}
	// an empty committed writer leaves an empty object
	w, err = d.Writer(ctx, "/w/empty", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/w/empty"); err != nil || fi.Size() != 0 || fi.IsDir() {
		t.Fatalf("empty committed writer: %v %v", fi, err)
	}
}

// Close without Commit keeps what was written for a later appending Writer.
func testWriterCloseKeeps(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	w, err := d.Writer(ctx, "/k/data", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "kept")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	w, err = d.Writer(ctx, "/k/data", true)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 4 {
		t.Fatalf("appending after Close starts at %d, want 4", w.Size())
	}
	_, _ = io.WriteString(w, "+more")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/k/data"); string(got) != "kept+more" {
		t.Fatalf("content %q", got)
	}
}

func testWriterCancel(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/c/keep", []byte("sibling"))
	w, err := d.Writer(ctx, "/c/data", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(bytes.Repeat([]byte("doomed"), 1<<18))
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = d.Stat(ctx, "/c/data")
	wantNotFound(t, "Stat after Cancel", err)
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Cancel succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Cancel succeeded")
	}
	if got := mustGet(t, d, "/c/keep"); string(got) != "sibling" {
		t.Fatalf("sibling changed: %q", got)
	}
}

func testStat(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	before := time.Now()
	mustPut(t, d, "/s/dir/file", []byte("12345"))
	after := time.Now()
	fi, err := d.Stat(ctx, "/s/dir/file")
	if err != nil || fi.IsDir() || fi.Size() != 5 || fi.Path() != "/s/dir/file" {
		t.Fatalf("Stat file: %v %v", fi, err)
	}
	// generous: object stores keep second precision and their own clock
	if mt := fi.ModTime(); mt.Before(before.Add(-5*time.Minute)) || mt.After(after.Add(5*time.Minute)) {
		t.Fatalf("Stat file: modtime %v not near %v", mt, before)
	}
	for _, p := range []string{"/s", "/s/dir"} {
		fi, err := d.Stat(ctx, p)
		if err != nil || !fi.IsDir() || fi.Path() != p {
			t.Fatalf("Stat dir %s: %v %v", p, fi, err)
		}
	}
	for _, p := range []string{"/s/zz", "/s/di", "/s/dir/file/below", "/zz/top"} {
		_, err := d.Stat(ctx, p)
		wantNotFound(t, "Stat("+p+")", err)
	}
}

func testList(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	for _, p := range []string{"/r/b/file", "/r/a", "/r/c/d/e", "/r/c/d/f", "/rx/y", "/r-z", "/other", "/r/B", "/r/a.b"} {
		mustPut(t, d, p, []byte(p))
	}
	if got := mustList(t, d, "/r"); got != "[/r/B /r/a /r/a.b /r/b /r/c]" {
		t.Fatalf("List /r: %s", got)
	}
	if got := mustList(t, d, "/r/c"); got != "[/r/c/d]" {
		t.Fatalf("List /r/c: %s", got)
	}
	if got := mustList(t, d, "/r/c/d"); got != "[/r/c/d/e /r/c/d/f]" {
		t.Fatalf("List /r/c/d: %s", got)
	}
	if got := mustList(t, d, "/"); got != "[/other /r /r-z /rx]" {
		t.Fatalf("List /: %s", got)
	}
	for _, p := range []string{"/nothing", "/r/zz", "/r/c/d/e/f"} {
		_, err := d.List(ctx, p)
		wantNotFound(t, "List("+p+")", err)
	}
	// there is no directory at a file
	_, err := d.List(ctx, "/r/a")
	wantNotFound(t, "List of a file", err)
}

func testMove(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/m/src", []byte("content"))
	mustPut(t, d, "/m/srcx", []byte("sibling"))
	mustPut(t, d, "/n/dst", []byte("old content at dst"))
	if err := d.Move(ctx, "/m/src", "/n/dst"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/n/dst"); string(got) != "content" {
		t.Fatalf("dst %q", got)
	}
	_, err := d.Stat(ctx, "/m/src")
	wantNotFound(t, "Stat of moved src", err)
	if got := mustGet(t, d, "/m/srcx"); string(got) != "sibling" {
		t.Fatalf("sibling of src changed: %q", got)
	}
	// dst's parents are created
	if err := d.Move(ctx, "/n/dst", "/deep/new/parents/x"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/deep/new/parents/x"); string(got) != "content" {
		t.Fatalf("deep dst %q", got)
	}
	if fi, err := d.Stat(ctx, "/deep/new/parents/x"); err != nil || fi.Size() != 7 {
		t.Fatalf("Stat of deep dst: %v %v", fi, err)
	}
	if got := mustList(t, d, "/deep/new/parents"); got != "[/deep/new/parents/x]" {
		t.Fatalf("List of dst's parent: %s", got)
	}
	err = d.Move(ctx, "/m/src", "/y")
	wantNotFound(t, "Move of a missing src", err)
	if _, err := d.Stat(ctx, "/y"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("failed Move created dst: %v", err)
	}
	// a large object moves whole
	w, err := d.Writer(ctx, "/up/data", false)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	_, _ = w.Write(big)
	_ = w.Commit(ctx)
	_ = w.Close()
	if err := d.Move(ctx, "/up/data", "/blobs/ab/abcd/data"); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/blobs/ab/abcd/data"); err != nil || fi.Size() != int64(len(big)) {
		t.Fatalf("Stat of moved blob: %v %v", fi, err)
	}
}

func testDelete(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	for _, p := range []string{"/t/a/1", "/t/a/2", "/t/a/sub/3", "/t/b", "/t/ab", "/t/a-b/c", "/t/a.b"} {
		mustPut(t, d, p, []byte("x"))
	}
	if err := d.Delete(ctx, "/t/b"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "/t/a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/t/a/1", "/t/a/2", "/t/a/sub/3", "/t/a/sub", "/t/b", "/t/a"} {
		_, err := d.Stat(ctx, p)
		wantNotFound(t, "Stat("+p+") after Delete", err)
	}
	// names sharing a prefix with the deleted ones stay
	for _, p := range []string{"/t/ab", "/t/a-b/c", "/t/a.b"} {
		if _, err := d.Stat(ctx, p); err != nil {
			t.Fatalf("%s after deleting /t/a: %v", p, err)
		}
	}
	if got := mustList(t, d, "/t"); got != "[/t/a-b /t/a.b /t/ab]" {
		t.Fatalf("List after Delete: %s", got)
	}
	err := d.Delete(ctx, "/t/a")
	wantNotFound(t, "second Delete", err)
	err = d.Delete(ctx, "/never")
	wantNotFound(t, "Delete of a missing path", err)
	err = d.Delete(ctx, "/t/ab/below-a-file")
	wantNotFound(t, "Delete below a file", err)
	// a path can be reused after its tree was deleted
	mustPut(t, d, "/t/a", []byte("file now"))
	if got := mustGet(t, d, "/t/a"); string(got) != "file now" {
		t.Fatalf("reused path: %q", got)
	}
}

func testWalk(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	files := []string{"/w/b/2", "/w/a/1", "/w/b/1", "/w/c", "/w/skip/x", "/w/skip/y/z", "/w/d/e/f", "/wx/no", "/w-no"}
	for _, p := range files {
		mustPut(t, d, p, []byte(p))
	}
	var seen []string
	err := d.Walk(ctx, "/w", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path())
		if isFile := slices.Contains(files, fi.Path()); fi.IsDir() == isFile {
			t.Errorf("%s: IsDir %v", fi.Path(), fi.IsDir())
		} else if isFile && fi.Size() != int64(len(fi.Path())) {
			t.Errorf("%s: size %d", fi.Path(), fi.Size())
		}
		// fn may use the driver while the walk runs
		if _, err := d.Stat(ctx, fi.Path()); err != nil {
			t.Errorf("Stat(%s) during Walk: %v", fi.Path(), err)
		}
		if err := d.PutContent(ctx, "/side/"+strings.ReplaceAll(fi.Path()[1:], "/", "_"), []byte("x")); err != nil {
			t.Errorf("PutContent during Walk: %v", err)
		}
		if fi.Path() == "/w/skip" {
			return driver.ErrSkipDir
		}
		return nil
	})
	want := "[/w/a /w/a/1 /w/b /w/b/1 /w/b/2 /w/c /w/d /w/d/e /w/d/e/f /w/skip]"
	if err != nil || fmt.Sprint(seen) != want {
		t.Fatalf("Walk: %v %v, want %s", seen, err, want)
	}
	if ls, err := d.List(ctx, "/side"); err != nil || len(ls) != len(seen) {
		t.Fatalf("writes made during Walk: %v %v", ls, err)
	}
	if err := d.Delete(ctx, "/side"); err != nil {
		t.Fatal(err)
	}
	// Depth first with each directory's children in lexical order is not
	// the lexical order of full paths: "/w-no" comes after all of "/w/".
	seen = nil
	if err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want = "[/w /w/a /w/a/1 /w/b /w/b/1 /w/b/2 /w/c /w/d /w/d/e /w/d/e/f /w/skip /w/skip/x /w/skip/y /w/skip/y/z /w-no /wx /wx/no]"
	if fmt.Sprint(seen) != want {
		t.Fatalf("Walk /: %v, want %s", seen, want)
	}
	stop := errors.New("stop")
	calls := 0
	err = d.Walk(ctx, "/w", func(driver.FileInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk error: %v after %d calls, want stop after 1", err, calls)
	}
	calls = 0
	err = d.Walk(ctx, "/w/c", func(driver.FileInfo) error { calls++; return nil })
	if err != nil || calls != 0 {
		t.Fatalf("Walk of a file: %v, %d calls", err, calls)
	}
	err = d.Walk(ctx, "/nothing", func(driver.FileInfo) error { return nil })
	wantNotFound(t, "Walk of a missing path", err)
}

func testWalkContext(t *testing.T, d driver.StorageDriver) {
	for i := range 20 {
		mustPut(t, d, fmt.Sprintf("/cx/%02d/f", i), []byte("x"))
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := d.Walk(cctx, "/cx", func(driver.FileInfo) error { calls++; return nil })
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Fatalf("Walk with a cancelled context: %v after %d calls", err, calls)
	}
	cctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls = 0
	err = d.Walk(cctx, "/cx", func(driver.FileInfo) error {
		calls++
		if calls == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls > 4 {
		t.Fatalf("Walk cancelled during the walk: %v after %d calls", err, calls)
	}
}

// "/" is the root directory: it can be listed, walked and stat'ed, but it
// is not an object to put, write, move or delete.
func testRoot(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/x/y", []byte("y"))
	if fi, err := d.Stat(ctx, "/"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat /: %v %v", fi, err)
	}
	_, err := d.GetContent(ctx, "/")
	wantNotFound(t, "GetContent(/)", err)
	_, err = d.Reader(ctx, "/", 0)
	wantNotFound(t, "Reader(/)", err)
	isInvalid := func(what string, err error) {
		t.Helper()
		if !errors.As(err, new(driver.InvalidPathError)) {
			t.Fatalf("%s: %v, want InvalidPathError", what, err)
		}
	}
	isInvalid("PutContent(/)", d.PutContent(ctx, "/", []byte("x")))
	w, err := d.Writer(ctx, "/", false)
	if w != nil {
		_ = w.Cancel(ctx)
	}
	isInvalid("Writer(/)", err)
	isInvalid("Delete(/)", d.Delete(ctx, "/"))
	isInvalid("Move(/, /z)", d.Move(ctx, "/", "/z"))
	isInvalid("Move(/x/y, /)", d.Move(ctx, "/x/y", "/"))
	if got := mustGet(t, d, "/x/y"); string(got) != "y" {
		t.Fatalf("content after refused root operations: %q", got)
	}
}

func testInvalidPaths(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	bad := []string{
		"", "a", "a/b", "/a/../b", "/a/./b", "//a", "/a//b", "/a/", "/a b", "/a\x00b",
		"/../etc/passwd", "/..", "/.", "/a/..", "/a:b", "/a/\\b", "/a\nb", "/é", "/a*", "/" + strings.Repeat("a", 5000),
	}
	mustPut(t, d, "/ok", []byte("ok"))
	for _, p := range bad {
		errs := map[string]error{}
		_, errs["GetContent"] = d.GetContent(ctx, p)
		errs["PutContent"] = d.PutContent(ctx, p, []byte("x"))
		rc, err := d.Reader(ctx, p, 0)
		if rc != nil {
			_ = rc.Close()
		}
		errs["Reader"] = err
		for _, appnd := range []bool{false, true} {
			w, err := d.Writer(ctx, p, appnd)
			if w != nil {
				_ = w.Cancel(ctx)
			}
			errs[fmt.Sprintf("Writer(append=%v)", appnd)] = err
		}
		_, errs["Stat"] = d.Stat(ctx, p)
		_, errs["List"] = d.List(ctx, p)
		errs["Move src"] = d.Move(ctx, p, "/moved")
		errs["Move dst"] = d.Move(ctx, "/ok", p)
		errs["Delete"] = d.Delete(ctx, p)
		errs["Walk"] = d.Walk(ctx, p, func(driver.FileInfo) error { return nil })
		for m, err := range errs {
			var ipe driver.InvalidPathError
			if !errors.As(err, &ipe) {
				t.Errorf("%s(%q): %v, want InvalidPathError", m, p, err)
			} else if ipe.Path != p {
				t.Errorf("%s(%q): InvalidPathError for %q", m, p, ipe.Path)
			}
		}
	}
	// nothing was created or moved by the refused calls
	if got := mustList(t, d, "/"); got != "[/ok]" {
		t.Fatalf("after invalid paths the root holds %s", got)
	}
}

// testConcurrentPut has 16 goroutines replace the same path while readers
// read it: every read, and the final content, is one whole value.
func testConcurrentPut(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	const writers, rounds = 16, 4
	values := map[string]bool{}
	var vals [][]byte
	for i := range writers {
		v := bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i)
		values[string(v)] = true
		vals = append(vals, v)
	}
	mustPut(t, d, "/same/link", vals[0])
	var done atomic.Bool
	var reads atomic.Int64
	var rwg, wwg sync.WaitGroup
	for range 4 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for !done.Load() {
				got, err := d.GetContent(ctx, "/same/link")
				if err != nil || !values[string(got)] {
					t.Errorf("concurrent read saw %d bytes (%.8q…), %v", len(got), got, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range writers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for range rounds {
				if err := d.PutContent(ctx, "/same/link", vals[i]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wwg.Wait()
	done.Store(true)
	rwg.Wait()
	got := mustGet(t, d, "/same/link")
	if !values[string(got)] {
		t.Fatalf("concurrent PutContent left a mix (%d bytes)", len(got))
	}
	if got := mustList(t, d, "/same"); got != "[/same/link]" {
		t.Fatalf("leftovers: %s", got)
	}
	t.Logf("%d concurrent reads", reads.Load())
}

func testConcurrentWriters(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := d.Writer(ctx, fmt.Sprintf("/cw/%d/data", i), false)
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 2000 {
				if _, err := fmt.Fprintf(w, "%d-%d;", i, j); err != nil {
					t.Error(err)
					return
				}
			}
			if err := w.Commit(ctx); err != nil {
				t.Error(err)
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ls, err := d.List(ctx, "/cw")
	if err != nil || len(ls) != n {
		t.Fatalf("List: %v %v", ls, err)
	}
	for i := range n {
		var want strings.Builder
		for j := range 2000 {
			fmt.Fprintf(&want, "%d-%d;", i, j)
		}
		if got := mustGet(t, d, fmt.Sprintf("/cw/%d/data", i)); string(got) != want.String() {
			t.Fatalf("writer %d: content wrong (%d bytes, want %d)", i, len(got), want.Len())
		}
	}
}

// A batch (driver.Batch, with the driver's Batcher or without) does what
// its operations say, in order across barriers: puts replace, moves take
// a Writer's content (closed, not committed) to a new path creating its
// parents, keeps change nothing and accept a missing path.
func testBatch(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/b/old", []byte("old"))
	mustPut(t, d, "/b/kept", []byte("kept"))
	w, err := d.Writer(ctx, "/up/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("uploaded")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	err = driver.Batch(ctx, d,
		driver.PutOp("/b/old", []byte("new")),
		driver.MoveOp("/up/data", "/blobs/x/y/data"),
		driver.KeepOp("/b/kept"),
		driver.KeepOp("/b/never/there"),
		driver.Barrier,
		driver.PutOp("/b/deep/er/link", []byte("after")),
		driver.Barrier, // empty parts are nothing
		driver.Barrier,
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/b/old": "new", "/blobs/x/y/data": "uploaded", "/b/kept": "kept", "/b/deep/er/link": "after"} {
		if got := string(mustGet(t, d, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	_, err = d.Stat(ctx, "/up/data")
	wantNotFound(t, "moved source", err)
	_, err = d.Stat(ctx, "/b/never/there")
	wantNotFound(t, "kept missing path", err)

	// A move from nowhere is the source's PathNotFoundError; an invalid
	// path is refused.
	wantNotFound(t, "batch move of a missing source", driver.Batch(ctx, d, driver.MoveOp("/nowhere", "/b/x")))
	var inv driver.InvalidPathError
	if err := driver.Batch(ctx, d, driver.PutOp("/a/../b", []byte("x"))); !errors.As(err, &inv) {
		t.Errorf("batch put to an invalid path: %v", err)
	}
	if err := driver.Batch(ctx, d); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

// Concurrent batches into shared new directories (one repository's links,
// pushed layer by layer at once) all land, whole.
func testConcurrentBatches(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			errs <- driver.Batch(ctx, d,
				driver.PutOp(fmt.Sprintf("/r/new/_layers/sha256/%02d/link", i), []byte(fmt.Sprint(i))),
				driver.PutOp(fmt.Sprintf("/blobs/%02d/%02d/data", i%4, i), []byte(fmt.Sprint("blob ", i))),
				driver.Barrier,
				driver.PutOp(fmt.Sprintf("/r/new/_manifests/tags/t%02d/current/link", i), []byte(fmt.Sprint(i))),
			)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 16 {
		if got := string(mustGet(t, d, fmt.Sprintf("/blobs/%02d/%02d/data", i%4, i))); got != fmt.Sprint("blob ", i) {
			t.Errorf("blob %d: %q", i, got)
		}
		if got := string(mustGet(t, d, fmt.Sprintf("/r/new/_manifests/tags/t%02d/current/link", i))); got != fmt.Sprint(i) {
			t.Errorf("tag %d: %q", i, got)
		}
	}
	if got := mustList(t, d, "/r/new/_layers/sha256"); strings.Count(got, "/r/new/_layers/sha256/") != 16 {
		t.Errorf("links: %s", got)
	}
}
