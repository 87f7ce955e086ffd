package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

const testRmax = 20 * time.Millisecond

func newDeleteFixture(t *testing.T, d driver.StorageDriver) *enumFixture {
	return &enumFixture{t: t, ctx: context.Background(), d: d, r: New(d, Options{TrackPulls: true, TombstoneRefresh: testRmax})}
}

func catalogOf(t *testing.T, r *Registry) []string {
	t.Helper()
	names, _, err := r.Catalog(context.Background(), "", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// sharedStore pushes three repositories sharing layers: a (two tags on
// one digest, an untagged manifest, an upload in progress), a/b nested
// below it, and c.
func sharedStore(f *enumFixture) map[string]*Manifest {
	out := map[string]*Manifest{}
	out["a:v1"] = f.image("a", "v1", "shared layer", "a only")
	if _, err := f.repo("a").PutManifest(f.ctx, "latest", "", out["a:v1"].Content, nil); err != nil {
		f.t.Fatal(err)
	}
	out["a:untagged"] = f.image("a", "", "untagged layer")
	if _, err := f.repo("a").NewUpload(f.ctx, ""); err != nil {
		f.t.Fatal(err)
	}
	out["a/b:v1"] = f.image("a/b", "v1", "shared layer", "nested only")
	out["c:v1"] = f.image("c", "v1", "shared layer", "c only")
	f.repo("a").RecordPull(out["a:v1"].Digest)
	if _, err := f.r.FlushPulls(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// pullsWhole reads every blob of image m from repository name and checks
// it against its digest.
func pullsWhole(t *testing.T, r *Registry, name string, m *Manifest) {
	t.Helper()
	repo := mustRepo(t, r, name)
	got, err := repo.GetManifest(context.Background(), m.Digest.String())
	if err != nil || !bytes.Equal(got.Content, m.Content) {
		t.Fatalf("%s@%s: %v", name, m.Digest, err)
	}
	refs, err := ParseReferences(m.Content)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range refs.Blobs {
		if b := readAllBlob(t, repo, d); digest.FromBytes(b) != d {
			t.Fatalf("%s: blob %s reads back other bytes", name, d)
		}
	}
}

func TestDeleteRepository(t *testing.T) {
	f := newDeleteFixture(t, inmemory.New())
	ms := sharedStore(f)
	res, err := f.r.DeleteRepository(f.ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if res != (RepositoryDeleted{Name: "a", Tags: 2, Manifests: 2}) {
		t.Fatalf("result %+v", res)
	}
	if got := catalogOf(t, f.r); !slices.Equal(got, []string{"a/b", "c"}) {
		t.Fatalf("catalog %v", got)
	}
	if _, _, err := f.repo("a").Tags(f.ctx, "", -1); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("tags of the deleted repository: %v", err)
	}
	if has, err := f.r.hasOwnState(f.ctx, "a"); has || err != nil {
		t.Fatalf("own state left: %v %v", has, err)
	}
	if _, err := f.d.Stat(f.ctx, tombstonePath("a")); !isNotFound(err) {
		t.Fatalf("tombstone left: %v", err)
	}
	// The others pull byte-identical, shared layer included; the content
	// stays until a collection.
	pullsWhole(t, f.r, "a/b", ms["a/b:v1"])
	pullsWhole(t, f.r, "c", ms["c:v1"])
	if _, ok, _ := f.r.BlobDataSize(f.ctx, digest.FromString("a only")); !ok {
		t.Fatal("blob removed by a repository delete")
	}
	// Again: nothing there.
	if _, err := f.r.DeleteRepository(f.ctx, "a"); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := f.r.DeleteRepository(f.ctx, "never/was"); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := f.r.DeleteRepository(f.ctx, "Bad/Name"); !errcode.Is(err, errcode.NameInvalid) {
		t.Fatalf("invalid: %v", err)
	}

	// A later push starts clean: no old tags, links, pull times.
	m := f.image("a", "new", "fresh layer")
	infos, err := f.repo("a").TagInfos(f.ctx)
	if err != nil || len(infos) != 1 || infos[0].Name != "new" || !infos[0].LastPulled.IsZero() {
		t.Fatalf("after re-push: %+v %v", infos, err)
	}
	if _, err := f.repo("a").StatBlob(f.ctx, digest.FromString("a only")); !errcode.Is(err, errcode.BlobUnknown) {
		t.Fatalf("old layer link survived: %v", err)
	}
	if _, err := f.repo("a").GetManifest(f.ctx, ms["a:untagged"].Digest.String()); !errcode.Is(err, errcode.ManifestUnknown) {
		t.Fatalf("old revision survived: %v", err)
	}
	pullsWhole(t, f.r, "a", m)
}

// While the deletion runs, the name is unknown to this instance at once,
// and to another instance sharing the storage within Rmax; it takes no
// writes; a second delete joins the first.
func TestDeleteRepositoryVisibility(t *testing.T) {
	d := inmemory.New()
	f := newDeleteFixture(t, d)
	sharedStore(f)
	other := New(d, Options{TombstoneRefresh: testRmax})
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	if err := other.StartRepositoryDeletes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	paused := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	f.r.deleteHook = func(step, arg string) {
		if step == "remove" {
			once.Do(func() { close(paused); <-release })
		}
	}
	type result struct {
		res RepositoryDeleted
		err error
	}
	results := make(chan result, 2)
	go func() {
		res, err := f.r.DeleteRepository(f.ctx, "a")
		results <- result{res, err}
	}()
	select {
	case <-paused:
	case r := <-results:
		t.Fatalf("delete ended without removing anything: %+v %v", r.res, r.err)
	}
	for _, r := range []*Registry{f.r, other} {
		deadline := time.Now().Add(10 * time.Second)
		for slices.Contains(catalogOf(t, r), "a") {
			if time.Now().After(deadline) {
				t.Fatal("the deleting repository stays in the catalog")
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := r.Repository("a"); !errcode.Is(err, errcode.NameUnknown) {
			t.Fatalf("Repository: %v", err)
		}
		if err := r.CheckWritable(f.ctx, "a"); !errcode.Is(err, errcode.NameUnknown) {
			t.Fatalf("CheckWritable: %v", err)
		}
		if err := r.CheckWritable(f.ctx, "a/b"); err != nil {
			t.Fatalf("nested repository: %v", err)
		}
		if got := catalogOf(t, r); !slices.Equal(got, []string{"a/b", "c"}) {
			t.Fatalf("catalog %v", got)
		}
	}
	go func() {
		res, err := f.r.DeleteRepository(f.ctx, "a")
		results <- result{res, err}
	}()
	close(release)
	for range 2 {
		r := <-results
		if r.err != nil || r.res.Tags != 2 || r.res.Manifests != 2 {
			t.Fatalf("delete: %+v %v", r.res, r.err)
		}
	}
	// Once done, the other instance frees the name too.
	deadline := time.Now().Add(10 * time.Second)
	for other.deleting("a") {
		if time.Now().After(deadline) {
			t.Fatal("the other instance still sees the deletion")
		}
		time.Sleep(time.Millisecond)
	}
}

// crashDriver stops working (every call fails) after a number of
// mutating calls, as a process killed there would: nothing after that
// point reaches the storage.
type crashDriver struct {
	driver.StorageDriver
	left atomic.Int64
}

var errCrashed = errors.New("crashed")

func (c *crashDriver) step() error {
	if c.left.Add(-1) < 0 {
		return errCrashed
	}
	return nil
}

func (c *crashDriver) dead() bool { return c.left.Load() < 0 }

func (c *crashDriver) PutContent(ctx context.Context, p string, b []byte) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.StorageDriver.PutContent(ctx, p, b)
}

func (c *crashDriver) Delete(ctx context.Context, p string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.StorageDriver.Delete(ctx, p)
}

func (c *crashDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if c.dead() {
		return nil, errCrashed
	}
	return c.StorageDriver.GetContent(ctx, p)
}

func (c *crashDriver) List(ctx context.Context, p string) ([]string, error) {
	if c.dead() {
		return nil, errCrashed
	}
	return c.StorageDriver.List(ctx, p)
}

// A deletion cut off after every possible number of storage writes is
// finished by the next start: the repository is gone, the others whole,
// and the name free.
func TestDeleteRepositoryResumesAfterCrash(t *testing.T) {
	for cut := 0; ; cut++ {
		base := inmemory.New()
		f := newDeleteFixture(t, base)
		ms := sharedStore(f)
		cd := &crashDriver{StorageDriver: base}
		cd.left.Store(int64(cut))
		crashed := New(cd, Options{TombstoneRefresh: testRmax})
		_, err := crashed.DeleteRepository(f.ctx, "a")
		if _, serr := base.Stat(f.ctx, tombstonePath("a")); err != nil && isNotFound(serr) && cd.dead() {
			// Cut before the tombstone: the delete failed and nothing of
			// the repository may have gone.
			pullsWhole(t, New(base, Options{}), "a", ms["a:v1"])
			continue
		}
		if err == nil {
			if cut < 3 {
				t.Fatalf("cut %d: finished without its writes", cut)
			}
			t.Logf("a delete takes %d storage writes", cut)
			return
		}
		// The next start (this process: the tombstone names our pid)
		// takes the deletion over.
		next := New(base, Options{TombstoneRefresh: testRmax})
		ctx, cancel := context.WithCancel(f.ctx)
		if err := next.StartRepositoryDeletes(ctx, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			next.tombs.mu.Lock()
			busy := len(next.tombs.local) > 0
			next.tombs.mu.Unlock()
			_, serr := base.Stat(f.ctx, tombstonePath("a"))
			if !busy && isNotFound(serr) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cut %d: the deletion was not finished", cut)
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		if has, err := next.hasOwnState(f.ctx, "a"); has || err != nil {
			t.Fatalf("cut %d: own state left: %v %v", cut, has, err)
		}
		if got := catalogOf(t, next); !slices.Equal(got, []string{"a/b", "c"}) {
			t.Fatalf("cut %d: catalog %v", cut, got)
		}
		pullsWhole(t, next, "a/b", ms["a/b:v1"])
		pullsWhole(t, next, "c", ms["c:v1"])
		if cut > 200 {
			t.Fatal("no end to the writes of a delete")
		}
	}
}

// A deletion taken over by another owner stops at its next step.
func TestDeleteRepositoryFencedByOwner(t *testing.T) {
	f := newDeleteFixture(t, inmemory.New())
	sharedStore(f)
	var removed []string
	var mu sync.Mutex
	took := false
	f.r.deleteHook = func(step, arg string) {
		mu.Lock()
		defer mu.Unlock()
		if step != "remove" {
			return
		}
		removed = append(removed, arg)
		if !took {
			took = true
			tb, _, _ := f.r.readTombstoneAt(f.ctx, tombstonePath("a"))
			tb.Owner = "someone else"
			if err := f.r.writeTombstone(f.ctx, tb); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := f.r.DeleteRepository(f.ctx, "a"); !errors.Is(err, errNotOwner) {
		t.Fatalf("fenced run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(removed) != 1 {
		t.Fatalf("went on after losing the tombstone: %v", removed)
	}
	// The tombstone is still there: the name stays unknown.
	if _, err := f.r.Repository("a"); !errcode.Is(err, errcode.NameUnknown) {
		t.Fatalf("after the fenced run: %v", err)
	}
}

// The catalog lists a repository while it holds a manifest: one whose
// last manifest was deleted leaves it (the reference keeps it, #1585).
func TestCatalogDropsEmptiedRepository(t *testing.T) {
	f := newDeleteFixture(t, inmemory.New())
	m1 := f.image("x/y", "v1", "l1")
	m2 := f.image("x/y", "", "l2")
	f.image("z", "v1", "l3")
	for _, m := range []*Manifest{m1, m2} {
		if got := catalogOf(t, f.r); !slices.Contains(got, "x/y") {
			t.Fatalf("catalog %v", got)
		}
		if err := f.repo("x/y").DeleteManifest(f.ctx, m.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if got := catalogOf(t, f.r); !slices.Equal(got, []string{"z"}) {
		t.Fatalf("catalog after deleting every manifest: %v", got)
	}
}

// Deleting repositories concurrently with pushes into others and reads of
// the same name (run with -race).
func TestDeleteRepositoryConcurrent(t *testing.T) {
	f := newDeleteFixture(t, inmemory.New())
	for i := range 6 {
		f.image(fmt.Sprintf("r%d", i), "v1", "shared", fmt.Sprintf("own %d", i))
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if _, err := f.r.DeleteRepository(f.ctx, fmt.Sprintf("r%d", i)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			for range 20 {
				_, _, _ = f.r.Catalog(f.ctx, "", -1, nil)
				if repo, err := f.r.Repository(fmt.Sprintf("r%d", i)); err == nil {
					_, _, _ = repo.Tags(f.ctx, "", -1)
				}
			}
		})
	}
	wg.Wait()
	got := catalogOf(t, f.r)
	sort.Strings(got)
	if !slices.Equal(got, []string{"r3", "r4", "r5"}) {
		t.Fatalf("catalog %v", got)
	}
}
