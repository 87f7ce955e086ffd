package storage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// writeRepo lays out a repository with one revision straight on disk (as
// another process would), fast enough for 100,000 repositories.
func writeRepo(t testing.TB, root, name string, rev byte) {
	t.Helper()
	full := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	d := digest.Digest("sha256:" + digestHex(rev))
	if err := os.MkdirAll(full(revisionDir(name, d)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full(revisionLinkPath(name, d)), []byte(d), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(full(repoPath(name)+"/_layers"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// backdate sets every directory's time an hour back, as if the store had
// settled (the caches only keep what is older than racyWindow).
func backdate(t testing.TB, root string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func catalogString(t testing.TB, r *Registry) string {
	t.Helper()
	got, _, err := r.Catalog(context.Background(), "", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, ",")
}

// The cache follows changes made behind its back by another registry on
// the same storage: new repositories, nested ones, a repository emptied by
// deleting its last revision, each seen at once (within the racy window)
// and again after the store has settled and been cached.
func TestCatalogCacheFollowsOtherWriters(t *testing.T) {
	forWatchModes(t, testCatalogCacheFollowsOtherWriters)
}

// watchModes are the ways the caches validate what they keep: by the
// driver's watches (inotify), and by directory times, which serve where
// the driver cannot watch (another system, the watch limit reached).
var watchModes = []struct {
	name  string
	watch bool
}{{"watched", true}, {"times", false}}

// newFSRegistry is a Registry over a filesystem driver at root that
// watches directories or not (its watcher closed: every Watch fails, as
// when the limit is reached).
func newFSRegistry(t testing.TB, root string, watch bool) (*Registry, *filesystem.Driver) {
	t.Helper()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !watch {
		d.Close()
	}
	return New(d, Options{}), d
}

func forWatchModes(t *testing.T, f func(t *testing.T, watch bool)) {
	for _, m := range watchModes {
		t.Run(m.name, func(t *testing.T) { f(t, m.watch) })
	}
}

// cachedDir and cachedRev report whether e keeps a directory's listing or
// its revision verdict, under a time or a version.
func cachedDir(e repoEntry) bool { return e.dirMod != 0 || e.dirVer != 0 }
func cachedRev(e repoEntry) bool { return e.revMod != 0 || e.revVer != 0 }

func testCatalogCacheFollowsOtherWriters(t *testing.T, watch bool) {
	ctx := context.Background()
	root := t.TempDir()
	r, _ := newFSRegistry(t, root, watch)
	other, _ := newFSRegistry(t, root, watch)
	writeRepo(t, root, "a", 'a')
	writeRepo(t, root, "b", 'b')
	writeRepo(t, root, "c/d", 'c')
	backdate(t, root)
	if got := catalogString(t, r); got != "a,b,c/d" {
		t.Fatal(got)
	}
	if e := r.repos.get(repoPath("a")); !cachedDir(e) || !cachedRev(e) {
		t.Fatalf("a settled repository was not cached: %+v", e)
	}
	if e := r.repos.get(repoPath("c")); !cachedDir(e) || len(e.subdirs) != 1 {
		t.Fatalf("a settled namespace was not cached: %+v", e)
	}

	check := func(step, want string) {
		t.Helper()
		if got := catalogString(t, r); got != want {
			t.Fatalf("%s: catalog %q, want %q", step, got, want)
		}
		if got := catalogString(t, other); got != want {
			t.Fatalf("%s: fresh registry lists %q, want %q", step, got, want)
		}
	}
	for round := range 2 {
		// new top-level and nested repositories, below a repository and
		// below a namespace
		writeRepo(t, root, "a0", 'd')
		writeRepo(t, root, "a/b/c", 'e')
		writeRepo(t, root, "c/e", 'f')
		check("added", "a,a/b/c,a0,b,c/d,c/e")
		// emptied: its only revision deleted through the other registry
		if err := mustRepo(t, other, "b").DeleteManifest(ctx, digest.Digest("sha256:"+digestHex('b'))); err != nil {
			t.Fatal(err)
		}
		check("b emptied", "a,a/b/c,a0,c/d,c/e")
		// a nested repository emptied, its namespace left behind
		if err := os.RemoveAll(filepath.Join(root, filepath.FromSlash(revisionsRoot("a/b/c")), "sha256", digestHex('e'))); err != nil {
			t.Fatal(err)
		}
		check("a/b/c emptied", "a,a0,c/d,c/e")
		// a whole repository removed, and one re-created under the same name
		if err := os.RemoveAll(filepath.Join(root, filepath.FromSlash(repoPath("c/d")))); err != nil {
			t.Fatal(err)
		}
		check("c/d removed", "a,a0,c/e")
		writeRepo(t, root, "b", 'b')
		check("b back", "a,a0,b,c/e")
		if round == 0 {
			// settle the store, cache it, and undo the changes
			backdate(t, root)
			check("settled", "a,a0,b,c/e")
			for _, n := range []string{"a0", "a/b", "c/e"} {
				if err := os.RemoveAll(filepath.Join(root, filepath.FromSlash(repoPath(n)))); err != nil {
					t.Fatal(err)
				}
			}
			writeRepo(t, root, "c/d", 'c')
			check("reset", "a,b,c/d")
			backdate(t, root)
			check("reset settled", "a,b,c/d")
		}
	}
}

// Within racyWindow of a change a directory's time may not move on the
// next change (coarse timestamps): nothing read then is cached, so a
// second change that leaves the time as it was is still seen.
func TestCatalogCacheRacyWindow(t *testing.T) {
	forWatchModes(t, testCatalogCacheRacyWindow)
}

func testCatalogCacheRacyWindow(t *testing.T, watch bool) {
	root := t.TempDir()
	r, _ := newFSRegistry(t, root, watch)
	writeRepo(t, root, "x", 'a')
	backdate(t, root)
	tick := time.Now().Add(-time.Hour)
	// the clock reads one second after the last change
	r.repos.now = func() time.Time { return tick.Add(time.Second) }
	sha := filepath.Join(root, filepath.FromSlash(revisionsRoot("x")), "sha256")
	xdir := filepath.Join(root, filepath.FromSlash(repoPath("x")))
	for _, p := range []string{sha, xdir} {
		if err := os.Chtimes(p, tick, tick); err != nil {
			t.Fatal(err)
		}
	}
	if got := catalogString(t, r); got != "x" {
		t.Fatal(got)
	}
	if e := r.repos.get(repoPath("x")); e.dirMod != 0 || e.revMod != 0 {
		t.Fatalf("racily clean directory cached: %+v", e)
	}
	if e := r.repos.get(repoPath("x")); watch && (e.dirVer == 0 || e.revVer == 0) {
		t.Fatalf("a watched directory was not cached at once: %+v", e)
	}
	// a nested repository appears in the same tick
	writeRepo(t, root, "x/y", 'b')
	if err := os.Chtimes(xdir, tick, tick); err != nil {
		t.Fatal(err)
	}
	if got := catalogString(t, r); got != "x,x/y" {
		t.Fatalf("nested repository added in the same tick: %q", got)
	}
	// x's last revision goes in the same tick
	if err := os.RemoveAll(filepath.Join(sha, digestHex('a'))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sha, tick, tick); err != nil {
		t.Fatal(err)
	}
	if got := catalogString(t, r); got != "x/y" {
		t.Fatalf("revision removed in the same tick: %q", got)
	}
	// once the store has settled, the same directories are cached
	r.repos.now = time.Now
	backdate(t, root)
	if got := catalogString(t, r); got != "x/y" {
		t.Fatal(got)
	}
	if e := r.repos.get(repoPath("x/y")); !cachedDir(e) || !cachedRev(e) {
		t.Fatalf("settled directory not cached: %+v", e)
	}
}

// noTimes hides directory times, as S3 does.
type noTimes struct{ driver.StorageDriver }

func (n noTimes) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	fi, err := n.StorageDriver.Stat(ctx, p)
	if err != nil || !fi.IsDir() {
		return fi, err
	}
	return driver.FileInfoFields{P: fi.Path(), Dir: true}, nil
}

// Without directory times nothing is cached and every change shows.
func TestCatalogCacheWithoutDirectoryTimes(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	r := New(noTimes{mem}, Options{})
	link := func(name string, c byte) {
		d := digest.Digest("sha256:" + digestHex(c))
		if err := mem.PutContent(ctx, revisionLinkPath(name, d), []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	link("a", 'a')
	link("a/b", 'b')
	if got := catalogString(t, r); got != "a,a/b" {
		t.Fatal(got)
	}
	if !r.noDirTimes.Load() || len(r.repos.entries) != 0 || len(r.lists.entries) != 0 {
		t.Fatalf("cached without directory times: %v %d %d", r.noDirTimes.Load(), len(r.repos.entries), len(r.lists.entries))
	}
	link("c", 'c')
	if err := mem.Delete(ctx, revisionDir("a", digest.Digest("sha256:"+digestHex('a')))); err != nil {
		t.Fatal(err)
	}
	if got := catalogString(t, r); got != "a/b,c" {
		t.Fatal(got)
	}
}

// The cache holds at most maxEntries directories.
func TestCatalogCacheBounded(t *testing.T) {
	forWatchModes(t, testCatalogCacheBounded)
}

func testCatalogCacheBounded(t *testing.T, watch bool) {
	root := t.TempDir()
	r, _ := newFSRegistry(t, root, watch)
	r.repos.maxEntries = 10
	var want []string
	for i := range 25 {
		n := fmt.Sprintf("r%02d", i)
		writeRepo(t, root, n, 'a')
		want = append(want, n)
	}
	backdate(t, root)
	for range 2 {
		if got := catalogString(t, r); got != strings.Join(want, ",") {
			t.Fatal(got)
		}
		if len(r.repos.entries) > 10 {
			t.Fatalf("%d entries", len(r.repos.entries))
		}
	}
}

func benchCatalog(b *testing.B, repos int) {
	root := b.TempDir()
	for i := range repos {
		writeRepo(b, root, fmt.Sprintf("catalog/r%06d", i), 'a')
	}
	backdate(b, root)
	d, _ := filesystem.New(root)
	r := New(d, Options{})
	ctx := context.Background()
	if _, _, err := r.Catalog(ctx, "", -1, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if got, _, err := r.Catalog(ctx, "", -1, nil); err != nil || len(got) != repos {
				b.Fatal(len(got), err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		// a fresh driver too: its watches are set up as the walk goes
		for b.Loop() {
			d, _ := filesystem.New(root)
			// NOWATCH=1 measures the directory-time path instead, for
			// comparison (what the cache costs where it cannot watch).
			if os.Getenv("NOWATCH") != "" {
				d.SetMaxWatches(0)
			}
			r := New(d, Options{})
			if got, _, err := r.Catalog(ctx, "", -1, nil); err != nil || len(got) != repos {
				b.Fatal(len(got), err)
			}
			b.StopTimer()
			t0 := time.Now()
			d.Close()
			b.ReportMetric(float64(time.Since(t0).Microseconds()), "close-µs")
			b.StartTimer()
		}
	})
	b.Run("page", func(b *testing.B) {
		last := fmt.Sprintf("catalog/r%06d", repos/2)
		for b.Loop() {
			if got, _, err := r.Catalog(ctx, last, 100, nil); err != nil || len(got) != 100 {
				b.Fatal(len(got), err)
			}
		}
	})
}

func BenchmarkCatalog10k(b *testing.B)  { benchCatalog(b, 10000) }
func BenchmarkCatalog100k(b *testing.B) { benchCatalog(b, 100000) }

// A read of a directory under way is shared only with requests that began
// before it started: one that began earlier might have read the store
// before a change the later request must see.
func TestCatalogSharedReadsAreFresh(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := filesystem.New(root)
	r := New(d, Options{})
	writeRepo(t, root, "x", 'a')
	dir := repoPath("x")
	c := r.repos

	// a stale read, started before this request: never joined (its done
	// channel is never closed, so joining it would hang)
	c.mu.Lock()
	c.seq++
	c.inflight[dir] = &repoFlight{seq: c.seq, done: make(chan struct{}), has: false}
	c.mu.Unlock()
	since := c.epoch()
	if _, has, err := r.repoDir(ctx, dir, since); err != nil || !has {
		t.Fatalf("stale read joined: %v %v", has, err)
	}

	// a read that started after the request began is joined
	since = c.epoch()
	c.mu.Lock()
	c.seq++
	f := &repoFlight{seq: c.seq, done: make(chan struct{}), subdirs: []string{"/joined"}}
	c.inflight[dir] = f
	c.mu.Unlock()
	close(f.done)
	if sub, _, err := r.repoDir(ctx, dir, since); err != nil || fmt.Sprint(sub) != "[/joined]" {
		t.Fatalf("fresh read not joined: %v %v", sub, err)
	}
	// unless it failed
	f.err = context.Canceled
	if sub, has, err := r.repoDir(ctx, dir, since); err != nil || !has || len(sub) != 0 {
		t.Fatalf("failed read trusted: %v %v %v", sub, has, err)
	}
}
