package filesystem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func newDriver(t testing.TB) *Driver {
	t.Helper()
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriverSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return newDriver(t) })
}

func TestHierarchicalSuite(t *testing.T) {
	testsuite.RunHierarchical(t, func(t *testing.T) driver.StorageDriver { return newDriver(t) })
}

func TestNew(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "yet")
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if d.Name() != "filesystem" {
		t.Fatalf("Name %q", d.Name())
	}
	// a relative root is made absolute, so a later chdir changes nothing
	if !filepath.IsAbs(d.root) {
		t.Fatalf("root %q is not absolute", d.root)
	}
	if _, err := New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file); err == nil {
		t.Fatal("New on a file succeeded")
	}
}

// rawTemporaries returns every temporary file below the root.
func rawTemporaries(t *testing.T, d *Driver) []string {
	t.Helper()
	var tmps []string
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			tmps = append(tmps, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tmps
}

// A crash leaves temporaries behind (a PutContent that never reached its
// rename) and writers that were never committed or closed. After a
// restart, temporaries are never listed, walked or read, and cannot even be
// named; the real content is what was last committed.
func TestCrashLeavesNothingVisible(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/repo/link", []byte("sha256:good")); err != nil {
		t.Fatal(err)
	}
	// a PutContent that crashed between writing its temporary and renaming
	tmp, err := createTemp(filepath.Join(d.root, "repo"), "link")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString("sha256:to"); err != nil {
		t.Fatal(err)
	}
	tmpName := tmp.Name()
	// (the crash: the temporary is never closed by the dead process)
	t.Cleanup(func() { tmp.Close() })
	// a temporary in a directory of its own, the only entry there
	if err := os.MkdirAll(filepath.Join(d.root, "lonely"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.root, "lonely", tmpPrefix+"x-0123"), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	// an upload writer that was neither committed nor closed
	w, err := d.Writer(ctx, "/repo/_uploads/u1/data", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("partial upload"))

	// restart: a new driver on the same root
	d2, err := New(d.root)
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := d2.List(ctx, "/repo"); err != nil || fmt.Sprint(ls) != "[/repo/_uploads /repo/link]" {
		t.Fatalf("List shows %v %v", ls, err)
	}
	if ls, err := d2.List(ctx, "/lonely"); err != nil || len(ls) != 0 {
		t.Fatalf("List of a directory holding only a temporary: %v %v", ls, err)
	}
	var walked []string
	if err := d2.Walk(ctx, "/", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(walked); got != "[/lonely /repo /repo/_uploads /repo/_uploads/u1 /repo/_uploads/u1/data /repo/link]" {
		t.Fatalf("Walk shows %s", got)
	}
	if b, err := d2.GetContent(ctx, "/repo/link"); err != nil || string(b) != "sha256:good" {
		t.Fatalf("GetContent %q %v", b, err)
	}
	// an uncommitted writer's file is there under its own name (resumable
	// uploads continue from it), with what reached the file: the buffered
	// bytes never did
	if fi, err := d2.Stat(ctx, "/repo/_uploads/u1/data"); err != nil || fi.Size() != 0 {
		t.Fatalf("Stat of the abandoned upload: %v %v", fi, err)
	}
	// temporaries cannot be addressed at all
	rel := "/repo/" + filepath.Base(tmpName)
	if _, err := d2.GetContent(ctx, rel); !errors.As(err, new(driver.InvalidPathError)) {
		t.Fatalf("GetContent of a temporary: %v", err)
	}
	if _, err := d2.Stat(ctx, rel); !errors.As(err, new(driver.InvalidPathError)) {
		t.Fatalf("Stat of a temporary: %v", err)
	}
	if err := d2.PutContent(ctx, "/a/"+tmpPrefix+"x/b", nil); !errors.As(err, new(driver.InvalidPathError)) {
		t.Fatalf("PutContent below a temporary name: %v", err)
	}
	// content written after the crash replaces cleanly
	if err := d2.PutContent(ctx, "/repo/link", []byte("sha256:next")); err != nil {
		t.Fatal(err)
	}
	if b, _ := d2.GetContent(ctx, "/repo/link"); string(b) != "sha256:next" {
		t.Fatalf("after crash: %q", b)
	}
}

// PutContent leaves no temporaries: not on success, not concurrently, and
// not when the rename fails.
func TestPutContentLeavesNoTemporaries(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				p := fmt.Sprintf("/p/%d/link", j%3)
				if err := d.PutContent(ctx, p, bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := d.PutContent(ctx, "/dir/child", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/dir", []byte("over a directory")); err == nil {
		t.Fatal("PutContent over a directory succeeded")
	}
	if tmps := rawTemporaries(t, d); len(tmps) != 0 {
		t.Fatalf("temporaries left: %v", tmps)
	}
}

// Reader hands net/http the file itself, so blobs go out with sendfile.
func TestReaderIsFile(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/blob", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Reader(ctx, "/blob", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, ok := rc.(*os.File)
	if !ok {
		t.Fatalf("Reader returned %T, not *os.File", rc)
	}
	if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 3 {
		t.Fatalf("file position %d %v", pos, err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "3456789" {
		t.Fatalf("%q", b)
	}
}

// The root is a boundary: a symlink planted inside is not followed by Walk.
func TestWalkDoesNotFollowSymlinks(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/a/file", []byte("x")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.root, "a", "escape")); err != nil {
		t.Skip("no symlinks:", err)
	}
	var walked []string
	if err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		walked = append(walked, fi.Path())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(walked); got != "[/a /a/file]" {
		t.Fatalf("Walk: %s", got)
	}
}

// Files and directories are created with the usual modes, and a Writer's
// parents exist before anything is written.
func TestModesAndParents(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/m/a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer(ctx, "/m/w/x/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(d.root, "m", "w", "x", "data")); err != nil || fi.Size() != 0 {
		t.Fatalf("Writer did not create its file: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for rel, isDir := range map[string]bool{"m": true, "m/a": true, "m/a/b": false, "m/w/x": true, "m/w/x/data": false} {
		fi, err := os.Stat(filepath.Join(d.root, rel))
		if err != nil {
			t.Fatal(err)
		}
		perm := fi.Mode().Perm()
		if isDir && (!fi.IsDir() || perm&^0o755 != 0 || perm&0o700 != 0o700) {
			t.Errorf("%s: mode %v", rel, fi.Mode())
		}
		if !isDir && (fi.IsDir() || perm&^0o644 != 0 || perm&0o600 != 0o600) {
			t.Errorf("%s: mode %v", rel, fi.Mode())
		}
	}
}

// Delete leaves emptied parents for the layer above to decide about.
func TestDeleteKeepsEmptyParents(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/e/f/g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "/e/f/g"); err != nil {
		t.Fatal(err)
	}
	if ls, err := d.List(ctx, "/e/f"); err != nil || len(ls) != 0 {
		t.Fatalf("List of the emptied parent: %v %v", ls, err)
	}
}

// List reads names without a stat per entry; a large directory lists in
// one pass and sorted.
func TestListManyEntries(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	const n = 5000
	dir := filepath.Join(d.root, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("r%05d", n-1-i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := d.List(ctx, "/many")
	if err != nil || len(ls) != n {
		t.Fatalf("List: %d entries, %v", len(ls), err)
	}
	for i, p := range ls {
		if p != fmt.Sprintf("/many/r%05d", i) {
			t.Fatalf("entry %d is %s", i, p)
		}
	}
}

// BenchmarkWriterCommit streams 64 MiB per op through a Writer in 1 MiB
// writes and commits it.
func BenchmarkWriterCommit(b *testing.B) {
	ctx := context.Background()
	d := newDriver(b)
	buf := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(64 << 20)
	for b.Loop() {
		w, err := d.Writer(ctx, "/bench/data", false)
		if err != nil {
			b.Fatal(err)
		}
		for range 64 {
			if _, err := w.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutContentSmall is the cost of an atomic, durable link write.
func BenchmarkPutContentSmall(b *testing.B) {
	ctx := context.Background()
	d := newDriver(b)
	link := []byte("sha256:" + strings.Repeat("a", 64))
	for b.Loop() {
		if err := d.PutContent(ctx, "/repo/_manifests/tags/latest/current/link", link); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList100k lists a directory of 100,000 repositories.
func BenchmarkList100k(b *testing.B) {
	ctx := context.Background()
	d := newDriver(b)
	dir := filepath.Join(d.root, "repositories")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 100000 {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("repo-%06d", i)), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		ls, err := d.List(ctx, "/repositories")
		if err != nil || len(ls) != 100000 {
			b.Fatalf("%d %v", len(ls), err)
		}
	}
}

// Scratch state (driver.WithScratch) is written and readable like any
// other, but nothing strictly below the scratch root is synced, while the
// root and the directories above it are created durably and a Writer's
// Commit still syncs its content. Durable writes sync as before: the
// first round (contents and the parents of new directories) in any order,
// then the directory the name appeared in.
func TestScratchSkipsSyncsBelowRoot(t *testing.T) {
	d := newDriver(t)
	var mu sync.Mutex
	var synced []string
	syncHook = func(name string) {
		rel, _ := filepath.Rel(d.root, name)
		if strings.HasPrefix(filepath.Base(rel), tmpPrefix) {
			rel = filepath.Join(filepath.Dir(rel), "TMP")
		}
		mu.Lock()
		synced = append(synced, filepath.ToSlash(rel))
		mu.Unlock()
	}
	defer func() { syncHook = nil }()
	// rounds sorts what was synced but the last n, which come in order.
	rounds := func(n int) string {
		first := synced[:len(synced)-n]
		slices.Sort(first)
		return fmt.Sprint(first, synced[len(synced)-n:])
	}
	ctx := driver.WithScratch(context.Background(), "/r/_up")

	if err := d.PutContent(ctx, "/r/_up/id/startedat", []byte("now")); err != nil {
		t.Fatal(err)
	}
	// "r" and "_up" are new: their entries are synced, "id" and the file not.
	if got := rounds(0); got != "[. r] []" {
		t.Fatalf("scratch PutContent synced %s", got)
	}
	synced = nil
	w, err := d.Writer(ctx, "/r/_up/id/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := fmt.Sprint(synced); got != "[r/_up/id/data]" {
		t.Fatalf("scratch Writer synced %s", got)
	}
	if b, err := d.GetContent(ctx, "/r/_up/id/startedat"); err != nil || string(b) != "now" {
		t.Fatalf("scratch content: %q %v", b, err)
	}
	// The scratch context does not cover paths outside its root.
	synced = nil
	if err := d.PutContent(ctx, "/r/_layers/l/link", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := rounds(1); got != "[r r/_layers r/_layers/l/TMP] [r/_layers/l]" {
		t.Fatalf("durable PutContent synced %s", got)
	}
	synced = nil
	if err := d.Move(ctx, "/r/_up/id/data", "/blobs/x/data"); err != nil {
		t.Fatal(err)
	}
	if got := rounds(1); got != "[. blobs] [blobs/x]" {
		t.Fatalf("Move synced %s", got)
	}
}

func TestScratchRoot(t *testing.T) {
	if driver.ScratchRoot(context.Background()) != "" {
		t.Fatal("scratch root without WithScratch")
	}
	if got := driver.ScratchRoot(driver.WithScratch(context.Background(), "/a")); got != "/a" {
		t.Fatal(got)
	}
	for _, c := range []struct {
		p, root string
		want    bool
	}{
		{"/a/b", "/a", true}, {"/a", "/a", false}, {"/ab", "/a", false}, {"/a/b/c", "/a/b", true}, {"/x", "", false},
	} {
		if got := below(c.p, c.root); got != c.want {
			t.Errorf("below(%q, %q) = %v", c.p, c.root, got)
		}
	}
}

// ListDir is List with the directory's Stat, and refuses files.
func TestListDir(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/a/c/d", []byte("x")); err != nil {
		t.Fatal(err)
	}
	names, fi, err := d.ListDir(ctx, "/a")
	if err != nil || fmt.Sprint(names) != "[/a/b /a/c]" {
		t.Fatalf("ListDir: %v %v", names, err)
	}
	st, _ := d.Stat(ctx, "/a")
	if !fi.IsDir() || !fi.ModTime().Equal(st.ModTime()) || fi.Path() != "/a" {
		t.Fatalf("ListDir info %+v, Stat %+v", fi, st)
	}
	if _, _, err := d.ListDir(ctx, "/a/b"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("ListDir of a file: %v", err)
	}
	if _, _, err := d.ListDir(ctx, "/nope"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("ListDir of nothing: %v", err)
	}
}

func TestDeleteDir(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	put := func(p string) {
		t.Helper()
		if err := d.PutContent(ctx, p, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(p string) {
		t.Helper()
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there (%v)", p, err)
		}
	}
	// Exactly the named files.
	put("/a/data")
	if err := d.DeleteDir(ctx, "/a", "data"); err != nil {
		t.Fatal(err)
	}
	gone("a")
	// More than the named files, a subdirectory, a named file missing.
	put("/b/data")
	put("/b/other")
	put("/b/sub/deep")
	if err := d.DeleteDir(ctx, "/b", "data", "missing"); err != nil {
		t.Fatal(err)
	}
	gone("b")
	// A named "file" that is a directory.
	put("/c/data/x")
	if err := d.DeleteDir(ctx, "/c", "data"); err != nil {
		t.Fatal(err)
	}
	gone("c")
	// A file where the directory would be is removed, as Delete does.
	put("/f")
	if err := d.DeleteDir(ctx, "/f", "data"); err != nil {
		t.Fatal(err)
	}
	gone("f")
	// Missing paths, and paths below a file.
	put("/g")
	for _, p := range []string{"/never", "/g/below"} {
		if err := d.DeleteDir(ctx, p, "data"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("DeleteDir(%s): %v, want not found", p, err)
		}
	}
	// Names are single valid components.
	put("/h/data")
	for _, n := range []string{"../g", "a/b", "", tmpPrefix + "x", ".."} {
		if err := d.DeleteDir(ctx, "/h", n); !errors.As(err, new(driver.InvalidPathError)) {
			t.Fatalf("DeleteDir(/h, %q): %v, want invalid", n, err)
		}
	}
	if err := d.DeleteDir(ctx, "/", "data"); !errors.As(err, new(driver.InvalidPathError)) {
		t.Fatalf("DeleteDir(/): %v, want invalid", err)
	}
	if _, err := os.Stat(filepath.Join(root, "h", "data")); err != nil {
		t.Fatal(err)
	}
}

func TestFlush(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	if err := d.PutContent(ctx, "/a/b/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "/a/b/f"); err != nil {
		t.Fatal(err)
	}
	// Directories, twice, missing ones and a file are fine.
	if err := d.PutContent(ctx, "/file", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx, "/a/b", "/a", "/a/b", "/missing/dir", "/file", "/"); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx, "/a/../b"); !errors.As(err, new(driver.InvalidPathError)) {
		t.Fatalf("Flush of an invalid path: %v", err)
	}
}

// TestWriteBehind checks that a writer starts the writeback of what it
// writes in order, each byte once, so that Commit's fsync finds little
// left to write: every full writeBehind window as it is written and, at
// Close, the rest unless it is small.
func TestWriteBehind(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name    string
		initial int64   // bytes in the file before the writer opens it (append)
		writes  []int64 // sizes of the Write calls
		commit  bool
		want    [][2]int64
	}{
		{"small file, none", 0, []int64{4096}, false, nil},
		{"just under the close threshold", 0, []int64{writeBehind/8 - 1}, false, nil},
		{"close threshold", 0, []int64{writeBehind / 8}, false, [][2]int64{{0, writeBehind / 8}}},
		{"one window in 1 MiB writes", 0, repeat(mib, 8), false, [][2]int64{{0, writeBehind}}},
		{"windows then a tail", 0, repeat(mib, 20), false, [][2]int64{{0, 8 * mib}, {8 * mib, 8 * mib}, {16 * mib, 4 * mib}}},
		{"odd sizes", 0, repeat(3*mib, 6), false, [][2]int64{{0, 9 * mib}, {9 * mib, 9 * mib}}},
		{"appending writer starts at the end", 5 * mib, repeat(mib, 9), false, [][2]int64{{5 * mib, 8 * mib}, {13 * mib, mib}}},
		{"appending small chunk", 5 * mib, []int64{100}, false, nil},
		{"committed: the fsync writes the tail", 0, repeat(mib, 12), true, [][2]int64{{0, 8 * mib}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t)
			ctx := context.Background()
			if tc.initial > 0 {
				if err := d.PutContent(ctx, "/f", make([]byte, tc.initial)); err != nil {
					t.Fatal(err)
				}
			}
			var got [][2]int64
			writebackHook = func(name string, off, n int64) { got = append(got, [2]int64{off, n}) }
			defer func() { writebackHook = nil }()
			w, err := d.Writer(ctx, "/f", tc.initial > 0)
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, n := range tc.writes {
				if _, err := w.Write(make([]byte, n)); err != nil {
					t.Fatal(err)
				}
				total += n
			}
			if tc.commit {
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("writeback ranges %v, want %v", got, tc.want)
			}
			fi, err := d.Stat(ctx, "/f")
			if err != nil || fi.Size() != tc.initial+total {
				t.Fatalf("size %v (%v), want %d", fi, err, tc.initial+total)
			}
		})
	}
}

func repeat(n int64, times int) []int64 {
	out := make([]int64, times)
	for i := range out {
		out[i] = n
	}
	return out
}

// TestGetContentSizes reads files around readFile's buffer growth steps
// back byte for byte, and maps what is not a file as before.
func TestGetContentSizes(t *testing.T) {
	d := newDriver(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, 71, 511, 512, 513, 1024, 4097, 1 << 20} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + n)
		}
		p := fmt.Sprintf("/sizes/%d", n)
		if err := d.PutContent(ctx, p, b); err != nil {
			t.Fatal(err)
		}
		got, err := d.GetContent(ctx, p)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: got %d bytes, %v", n, len(got), err)
		}
	}
	for _, p := range []string{"/sizes", "/missing", "/sizes/0/below-a-file"} {
		if _, err := d.GetContent(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
			t.Errorf("GetContent(%s) = %v, want PathNotFoundError", p, err)
		}
	}
}
