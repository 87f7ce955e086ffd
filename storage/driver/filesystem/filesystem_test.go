package filesystem

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func newDriver(t *testing.T) *Driver {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return newDriver(t) })
}

// A crash leaves temporary files behind (a PutContent that never reached
// its rename). They are never listed, walked or read as content.
func TestTemporariesInvisible(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/dir/link", []byte("sha256:abc")); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(d.root, "dir", tmpPrefix+"link-deadbeef")
	if err := os.WriteFile(leftover, []byte("sha256:torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	ls, err := d.List(ctx, "/dir")
	if err != nil || len(ls) != 1 || ls[0] != "/dir/link" {
		t.Fatalf("List shows %v", ls)
	}
	err = d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if strings.Contains(fi.Path(), tmpPrefix) {
			t.Errorf("Walk shows %s", fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := d.GetContent(ctx, "/dir/link"); string(b) != "sha256:abc" {
		t.Fatalf("content %q", b)
	}
	// PutContent itself leaves nothing behind
	entries, _ := os.ReadDir(filepath.Join(d.root, "dir"))
	if len(entries) != 2 {
		t.Fatalf("entries: %v", entries)
	}
}

// Reader hands net/http the file itself, so blobs go out with sendfile.
func TestReaderIsFile(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	d.PutContent(ctx, "/blob", []byte("0123456789"))
	rc, err := d.Reader(ctx, "/blob", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("Reader returned %T, not *os.File", rc)
	}
	b, _ := io.ReadAll(rc)
	if string(b) != "3456789" {
		t.Fatalf("%q", b)
	}
}

// The root is a boundary: a symlink planted inside is not followed by Walk.
func TestWalkDoesNotFollowSymlinks(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	d.PutContent(ctx, "/a/file", []byte("x"))
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.Symlink(outside, filepath.Join(d.root, "a", "escape"))
	d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if strings.Contains(fi.Path(), "secret") {
			t.Fatalf("walked outside the root: %s", fi.Path())
		}
		return nil
	})
}

func BenchmarkWriterCommit(b *testing.B) {
	ctx := context.Background()
	d, _ := New(b.TempDir())
	buf := make([]byte, 1<<20)
	b.SetBytes(64 << 20)
	for i := 0; i < b.N; i++ {
		w, _ := d.Writer(ctx, "/bench/data", false)
		for j := 0; j < 64; j++ {
			w.Write(buf)
		}
		w.Commit(ctx)
		w.Close()
	}
}

func BenchmarkPutContentSmall(b *testing.B) {
	ctx := context.Background()
	d, _ := New(b.TempDir())
	link := []byte("sha256:" + strings.Repeat("a", 64))
	for i := 0; i < b.N; i++ {
		d.PutContent(ctx, "/repo/_manifests/tags/latest/current/link", link)
	}
}
