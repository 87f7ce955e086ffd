package storage

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// fakeClock is a settable clock for push and pull times.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// writeCounter counts PutContent calls by path (the record writes).
type writeCounter struct {
	driver.StorageDriver
	mu     sync.Mutex
	writes map[string]int
}

func (w *writeCounter) PutContent(ctx context.Context, p string, b []byte) error {
	w.mu.Lock()
	if w.writes == nil {
		w.writes = map[string]int{}
	}
	w.writes[p]++
	w.mu.Unlock()
	return w.StorageDriver.PutContent(ctx, p, b)
}

func (w *writeCounter) count(substr string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for p, c := range w.writes {
		if strings.Contains(p, substr) {
			n += c
		}
	}
	return n
}

func (w *writeCounter) reset() {
	w.mu.Lock()
	w.writes = nil
	w.mu.Unlock()
}

func newTimesFixture(t *testing.T, d driver.StorageDriver, clock *fakeClock) *enumFixture {
	return &enumFixture{t: t, ctx: context.Background(), d: d, r: New(d, Options{TrackPulls: true, Now: clock.Now})}
}

func tagInfoMap(t *testing.T, repo *Repository) map[string]TagInfo {
	t.Helper()
	infos, err := repo.TagInfos(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]TagInfo{}
	for i, in := range infos {
		if i > 0 && infos[i-1].Name >= in.Name {
			t.Fatalf("TagInfos not sorted by name: %q before %q", infos[i-1].Name, in.Name)
		}
		m[in.Name] = in
	}
	return m
}

func TestPushTimes(t *testing.T) {
	clock := newFakeClock()
	f := newTimesFixture(t, inmemory.New(), clock)
	t0 := clock.Now()
	m1 := f.image("a/b", "v1", "layer one")
	clock.Add(time.Hour)
	m2 := f.image("a/b", "v2", "layer two")
	got := tagInfoMap(t, f.repo("a/b"))
	if len(got) != 2 || got["v1"].Digest != m1.Digest || !got["v1"].Pushed.Equal(t0) || !got["v2"].Pushed.Equal(t0.Add(time.Hour)) {
		t.Fatalf("infos %+v", got)
	}
	if !got["v1"].LastPulled.IsZero() {
		t.Fatalf("v1 never pulled, got %v", got["v1"].LastPulled)
	}

	// A push of the same tag with the same content is a push.
	t2 := clock.Add(time.Hour)
	if _, err := f.repo("a/b").PutManifest(f.ctx, "v1", "", m1.Content, nil); err != nil {
		t.Fatal(err)
	}
	// Moving a tag records the new digest's push.
	t3 := clock.Add(time.Hour)
	if _, err := f.repo("a/b").PutManifest(f.ctx, "v2", "", m1.Content, []string{"v3"}); err != nil {
		t.Fatal(err)
	}
	got = tagInfoMap(t, f.repo("a/b"))
	if !got["v1"].Pushed.Equal(t2) || !got["v2"].Pushed.Equal(t3) || got["v2"].Digest != m1.Digest || !got["v3"].Pushed.Equal(t3) {
		t.Fatalf("after re-push: %+v", got)
	}
	_ = m2

	// Survives a restart: another Registry over the same storage.
	other := New(f.d, Options{})
	again := tagInfoMap(t, mustRepo(t, other, "a/b"))
	for name, in := range got {
		if again[name] != in {
			t.Fatalf("after restart %s: %+v, want %+v", name, again[name], in)
		}
	}

	// Unknown repository: NAME_UNKNOWN, as tags/list.
	if _, err := f.repo("no/such").TagInfos(f.ctx); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("unknown repository: %v", err)
	}
}

// A store the reference wrote has no records: the current link's time
// is the push time. So is a tag the reference moved (the record names
// another digest).
func TestPushTimeFallsBackToLinkTime(t *testing.T) {
	clock := newFakeClock()
	f := newTimesFixture(t, inmemory.New(), clock)
	m1 := f.image("r", "moved", "l1")
	m2 := f.image("r", "plain", "l2")
	// What the reference does: links only.
	if err := f.d.Delete(f.ctx, tagPushedPath("r", "plain")); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := f.r.writeLink(f.ctx, tagCurrentPath("r", "moved"), m2.Digest); err != nil {
		t.Fatal(err)
	}
	got := tagInfoMap(t, f.repo("r"))
	fi, err := f.d.Stat(f.ctx, tagCurrentPath("r", "plain"))
	if err != nil {
		t.Fatal(err)
	}
	if !got["plain"].Pushed.Equal(fi.ModTime().UTC()) {
		t.Fatalf("plain: %v, want the link's time %v", got["plain"].Pushed, fi.ModTime())
	}
	if got["moved"].Digest != m2.Digest || got["moved"].Pushed.Before(before.Add(-time.Second)) || got["moved"].Pushed.Equal(clock.Now()) {
		t.Fatalf("moved: %+v: want the link's time (about %v), not the stale record", got["moved"], before)
	}
	_ = m1
}

// A tag deleted and pushed again by digest-only links (the reference)
// does not inherit the deleted tag's record: the record goes with the tag.
func TestTagDeleteTakesItsRecord(t *testing.T) {
	clock := newFakeClock()
	f := newTimesFixture(t, inmemory.New(), clock)
	m := f.image("r", "t", "l1")
	if err := f.repo("r").DeleteTag(f.ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Stat(f.ctx, tagPushedPath("r", "t")); !isNotFound(err) {
		t.Fatalf("record survived the tag: %v", err)
	}
	if err := f.r.writeLink(f.ctx, tagCurrentPath("r", "t"), m.Digest); err != nil {
		t.Fatal(err)
	}
	if got := tagInfoMap(t, f.repo("r"))["t"]; got.Pushed.Equal(clock.Now()) {
		t.Fatalf("re-tagged without a record, got the old record's time %v", got.Pushed)
	}
}

func TestPullTimes(t *testing.T) {
	clock := newFakeClock()
	wc := &writeCounter{StorageDriver: inmemory.New()}
	f := newTimesFixture(t, wc, clock)
	m := f.image("team/app", "v1", "l1")
	f.image("team/app", "v2", "l2")
	repo := f.repo("team/app")

	wc.reset()
	t1 := clock.Add(time.Minute)
	for range 1000 {
		got, err := repo.GetManifest(f.ctx, "v1")
		if err != nil {
			t.Fatal(err)
		}
		repo.RecordPull(got.Digest)
	}
	if n := wc.count("/_registryd/"); n != 0 {
		t.Fatalf("%d writes on the request path", n)
	}
	// Held in memory, already visible.
	if got := tagInfoMap(t, repo)["v1"]; !got.LastPulled.Equal(t1) {
		t.Fatalf("pending pull: %v, want %v", got.LastPulled, t1)
	}
	n, err := f.r.FlushPulls(f.ctx)
	if err != nil || n != 1 || wc.count("/_registryd/pulled/") != 1 {
		t.Fatalf("flush wrote %d (%v), %d writes: want one write for 1000 pulls", n, err, wc.count("/_registryd/pulled/"))
	}
	// Nothing new: nothing written, and the entry is forgotten.
	if n, err := f.r.FlushPulls(f.ctx); n != 0 || err != nil {
		t.Fatalf("idle flush wrote %d (%v)", n, err)
	}
	if _, ok := f.r.pulls.m.Load(pullKey{"team/app", m.Digest}); ok {
		t.Fatal("idle entry kept in memory")
	}
	// Another instance reads it; v2, never pulled, is unknown.
	other := tagInfoMap(t, mustRepo(t, New(f.d, Options{}), "team/app"))
	if !other["v1"].LastPulled.Equal(t1) || !other["v2"].LastPulled.IsZero() {
		t.Fatalf("from storage: %+v", other)
	}
	// A pull within a second of the last is not even stored in memory
	// again; a later one is, and flushed once.
	clock.Add(300 * time.Millisecond)
	repo.RecordPull(m.Digest)
	t2 := clock.Add(time.Minute)
	repo.RecordPull(m.Digest)
	if n, _ := f.r.FlushPulls(f.ctx); n != 1 {
		t.Fatalf("second flush wrote %d", n)
	}
	if got, _ := repo.LastPulled(f.ctx, m.Digest); !got.Equal(t2) {
		t.Fatalf("last pulled %v, want %v", got, t2)
	}
}

// Several instances flush the same manifest: the latest pull stays.
func TestPullTimesKeepTheLatest(t *testing.T) {
	d := inmemory.New()
	clockA, clockB := newFakeClock(), newFakeClock()
	a := newTimesFixture(t, d, clockA)
	m := a.image("r", "t", "l")
	b := New(d, Options{TrackPulls: true, Now: clockB.Now})
	late := clockA.Add(time.Hour)
	mustRepo(t, a.r, "r").RecordPull(m.Digest)
	clockB.Add(time.Minute)
	mustRepo(t, b, "r").RecordPull(m.Digest)
	if _, err := a.r.FlushPulls(a.ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := b.FlushPulls(a.ctx); n != 0 || err != nil {
		t.Fatalf("earlier pull overwrote a later one (%d, %v)", n, err)
	}
	if got, _ := mustRepo(t, New(d, Options{}), "r").LastPulled(a.ctx, m.Digest); !got.Equal(late) {
		t.Fatalf("stored %v, want %v", got, late)
	}
}

// A pull of a manifest deleted before the flush writes nothing: no
// record outlives its manifest, and a repository whose manifests are all
// gone gets no _registryd directory back.
func TestPullOfDeletedManifestNotWritten(t *testing.T) {
	clock := newFakeClock()
	f := newTimesFixture(t, inmemory.New(), clock)
	m := f.image("r", "t", "l")
	f.repo("r").RecordPull(m.Digest)
	if _, err := f.r.FlushPulls(f.ctx); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	f.repo("r").RecordPull(m.Digest)
	if err := f.repo("r").DeleteManifest(f.ctx, m.Digest); err != nil {
		t.Fatal(err)
	}
	if n, err := f.r.FlushPulls(f.ctx); n != 0 || err != nil {
		t.Fatalf("flush wrote %d (%v)", n, err)
	}
	if _, err := f.d.Stat(f.ctx, pulledPath("r", m.Digest)); !isNotFound(err) {
		t.Fatalf("pull record of a deleted manifest: %v", err)
	}
	// Pushed again, it starts unpulled.
	if _, err := f.repo("r").PutManifest(f.ctx, "t", "", m.Content, nil); err != nil {
		t.Fatal(err)
	}
	if got := tagInfoMap(t, f.repo("r"))["t"]; !got.LastPulled.IsZero() {
		t.Fatalf("re-pushed manifest inherits a pull: %v", got.LastPulled)
	}
}

// The records are data, not file times: a copy of the data directory that
// resets every modification time keeps them.
func TestTimesSurviveACopy(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	clock := newFakeClock()
	fd, err := filesystem.New(src)
	if err != nil {
		t.Fatal(err)
	}
	f := newTimesFixture(t, fd, clock)
	m := f.image("ns/app", "v1", "l1")
	clock.Add(time.Hour)
	f.image("ns/app", "v2", "l2")
	clock.Add(time.Hour)
	f.repo("ns/app").RecordPull(m.Digest)
	if _, err := f.r.FlushPulls(f.ctx); err != nil {
		t.Fatal(err)
	}
	want := tagInfoMap(t, f.repo("ns/app"))

	// cp -r: new files, new times.
	err = filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if de.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	fd2, err := filesystem.New(dst)
	if err != nil {
		t.Fatal(err)
	}
	got := tagInfoMap(t, mustRepo(t, New(fd2, Options{}), "ns/app"))
	for name, in := range want {
		if got[name] != in {
			t.Fatalf("after the copy %s: %+v, want %+v", name, got[name], in)
		}
	}
	if want["v1"].LastPulled.IsZero() || want["v2"].Pushed.IsZero() {
		t.Fatalf("nothing recorded: %+v", want)
	}
}

// Pulls recorded from many goroutines while flushes run: every pull is
// either written or still held, never lost (run with -race).
func TestPullTimesConcurrentFlush(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	d := inmemory.New()
	r := New(d, Options{TrackPulls: true, Now: clock})
	f := &enumFixture{t: t, ctx: context.Background(), d: d, r: r}
	var ds []digest.Digest
	for i := range 4 {
		ds = append(ds, f.image("r", "t"+string(rune('a'+i)), "layer"+string(rune('a'+i))).Digest)
	}
	repo := f.repo("r")
	// seen[i] is the latest time read just before a pull of ds[i]: the
	// pull itself is at least as late.
	seen := make([]atomic.Int64, len(ds))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if g == 0 {
					now.Add(int64(700 * time.Millisecond))
				}
				if i%64 == 0 {
					runtime.Gosched()
				}
				k := i % len(ds)
				before := now.Load()
				repo.RecordPull(ds[k])
				for {
					cur := seen[k].Load()
					if before <= cur || seen[k].CompareAndSwap(cur, before) {
						break
					}
				}
			}
		})
	}
	allPulled := func() bool {
		for i := range seen {
			if seen[i].Load() == 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < 50 || !allPulled(); i++ {
		if _, err := r.FlushPulls(f.ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	// After a last flush, the stored pull of each manifest is its last
	// pull, within the resolution of one second.
	if _, err := r.FlushPulls(f.ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Unix(0, now.Load())
	for i, dg := range ds {
		stored, err := r.readPulled(f.ctx, "r", dg)
		if err != nil {
			t.Fatal(err)
		}
		last := time.Unix(0, seen[i].Load())
		if stored.After(stopped) || stored.Before(last.Add(-time.Duration(pullResolution))) {
			t.Fatalf("%s: stored %v, last pull at or after %v", dg, stored, last)
		}
	}
}

// The request path's cost of a pull: what RecordPull adds to a manifest
// GET, from many goroutines on one manifest (the hot case).
func BenchmarkRecordPull(b *testing.B) {
	r := New(inmemory.New(), Options{TrackPulls: true})
	repo, _ := r.Repository("hot/app")
	d := digest.FromString("manifest")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			repo.RecordPull(d)
		}
	})
}

// With the flusher running, pulls take the coarse clock.
func BenchmarkRecordPullCoarseClock(b *testing.B) {
	r := New(inmemory.New(), Options{TrackPulls: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.RunPullFlusher(ctx, time.Minute, nil)
	for r.pulls.clock.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	repo, _ := r.Repository("hot/app")
	d := digest.FromString("manifest")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			repo.RecordPull(d)
		}
	})
}
