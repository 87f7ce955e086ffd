package testsuite

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// RunHierarchical checks what drivers with real directories (filesystem,
// inmemory) have in common beyond Run: a file and a directory cannot share
// a path, whole directories move, and open readers keep the content they
// opened, as an open file does. Object stores, where "/a" and "/a/b" are
// two unrelated keys, run only Run.
func RunHierarchical(t *testing.T, newDriver func(t *testing.T) driver.StorageDriver) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d driver.StorageDriver)
	}{
		{"FileInTheWay", testFileInTheWay},
		{"DirectoryInTheWay", testDirectoryInTheWay},
		{"MoveDirectory", testMoveDirectory},
		{"ReaderKeepsContent", testReaderKeepsContent},
		{"WriterKeepsItsFile", testWriterKeepsItsFile},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
}

// wantConflict checks that err is a plain failure: neither a path the
// driver refuses nor a path it did not find.
func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || errors.As(err, new(driver.InvalidPathError)) || errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("%s: %v, want a conflict error", what, err)
	}
}

func testFileInTheWay(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/f", []byte("file"))
	mustPut(t, d, "/other", []byte("other"))
	wantConflict(t, "PutContent below a file", d.PutContent(ctx, "/f/x", []byte("x")))
	wantConflict(t, "PutContent deep below a file", d.PutContent(ctx, "/f/x/y", []byte("x")))
	w, err := d.Writer(ctx, "/f/x", false)
	if w != nil {
		_ = w.Cancel(ctx)
	}
	wantConflict(t, "Writer below a file", err)
	wantConflict(t, "Move below a file", d.Move(ctx, "/other", "/f/x"))
	if got := mustGet(t, d, "/f"); string(got) != "file" {
		t.Fatalf("file in the way changed: %q", got)
	}
	if got := mustGet(t, d, "/other"); string(got) != "other" {
		t.Fatalf("move source changed: %q", got)
	}
}

func testDirectoryInTheWay(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/d/x", []byte("x"))
	mustPut(t, d, "/file", []byte("file"))
	mustPut(t, d, "/tree/y", []byte("y"))
	wantConflict(t, "PutContent over a directory", d.PutContent(ctx, "/d", []byte("d")))
	for _, appnd := range []bool{false, true} {
		w, err := d.Writer(ctx, "/d", appnd)
		if w != nil {
			_ = w.Cancel(ctx)
		}
		wantConflict(t, "Writer over a directory", err)
	}
	wantConflict(t, "Move of a file over a directory", d.Move(ctx, "/file", "/d"))
	wantConflict(t, "Move of a directory over a file", d.Move(ctx, "/tree", "/file"))
	wantConflict(t, "Move of a directory over a directory", d.Move(ctx, "/tree", "/d"))
	for p, want := range map[string]string{"/d/x": "x", "/file": "file", "/tree/y": "y"} {
		if got := mustGet(t, d, p); string(got) != want {
			t.Fatalf("%s changed: %q", p, got)
		}
	}
}

func testMoveDirectory(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/tree/a", []byte("a"))
	mustPut(t, d, "/tree/sub/b", []byte("b"))
	if err := d.Move(ctx, "/tree", "/moved/here"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := d.Walk(ctx, "/moved", func(fi driver.FileInfo) error {
		seen = append(seen, fi.Path())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "/moved/here /moved/here/a /moved/here/sub /moved/here/sub/b" {
		t.Fatalf("moved tree: %s", got)
	}
	_, err := d.Stat(ctx, "/tree")
	wantNotFound(t, "Stat of a moved directory", err)
	wantConflict(t, "Move of a directory into itself", d.Move(ctx, "/moved", "/moved/here/sub/x"))
	if got := mustGet(t, d, "/moved/here/sub/b"); string(got) != "b" {
		t.Fatalf("after refused move: %q", got)
	}
	if err := d.Move(ctx, "/moved/here/a", "/moved/here/a"); err != nil {
		t.Fatalf("Move onto itself: %v", err)
	}
	if got := mustGet(t, d, "/moved/here/a"); string(got) != "a" {
		t.Fatalf("after Move onto itself: %q", got)
	}
}

// An open reader keeps reading what it opened when the path is replaced,
// moved over or deleted.
func testReaderKeepsContent(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	mustPut(t, d, "/r", []byte("old content"))
	mustPut(t, d, "/s", []byte("source"))
	r1, err := d.Reader(ctx, "/r", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	mustPut(t, d, "/r", []byte("new"))
	r2, err := d.Reader(ctx, "/r", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := d.Move(ctx, "/s", "/r"); err != nil {
		t.Fatal(err)
	}
	r3, err := d.Reader(ctx, "/r", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if err := d.Delete(ctx, "/r"); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		r    io.Reader
		want string
	}{{r1, "content"}, {r2, "new"}, {r3, "source"}} {
		if b, err := io.ReadAll(c.r); err != nil || string(b) != c.want {
			t.Fatalf("reader %d: %q %v, want %q", i+1, b, err, c.want)
		}
	}
}

// A writer writes to the file it opened: when the path is replaced, its
// bytes do not land in the new content; when the file is moved, they
// follow it.
func testWriterKeepsItsFile(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	w, err := d.Writer(ctx, "/u/data", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "one ")
	if err := d.Move(ctx, "/u/data", "/v/data"); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "two")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/v/data"); string(got) != "one two" {
		t.Fatalf("moved file: %q", got)
	}

	w, err = d.Writer(ctx, "/v/data", true)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, d, "/v/data", []byte("replaced"))
	_, _ = io.WriteString(w, " three")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, d, "/v/data"); string(got) != "replaced" {
		t.Fatalf("replaced file: %q", got)
	}
}
