package filesystem

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// event is one step a batch took, as the test hooks saw it.
type event struct {
	op   string // mkdir, sync, rename
	a, b string // full paths (rename: from, to)
}

// recorder collects the events of the driver's test hooks, relative to
// its root.
type recorder struct {
	mu     sync.Mutex
	root   string
	events []event
}

func record(t *testing.T, d *Driver) *recorder {
	r := &recorder{root: d.root}
	rel := func(p string) string {
		x, err := filepath.Rel(d.root, p)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(x)
	}
	add := func(op, a, b string) {
		r.mu.Lock()
		r.events = append(r.events, event{op, a, b})
		r.mu.Unlock()
	}
	syncHook = func(name string) { add("sync", rel(name), "") }
	mkdirHook = func(dir string) { add("mkdir", rel(dir), "") }
	renameHook = func(from, to string) { add("rename", rel(from), rel(to)) }
	t.Cleanup(func() { syncHook, mkdirHook, renameHook = nil, nil, nil })
	return r
}

func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// dirOf is the directory of a root-relative path ("." for the root).
func dirOf(p string) string { return filepath.ToSlash(filepath.Dir(p)) }

// within reports whether p is x or below it (root-relative paths).
func within(p, x string) bool { return p == x || x == "." || strings.HasPrefix(p, x+"/") }

// syncedBetween reports whether dir was synced after event i and before
// event j (j = len(events) for "before the batch returned").
func syncedBetween(events []event, dir string, i, j int) bool {
	for k := i + 1; k < j; k++ {
		if events[k].op == "sync" && events[k].a == dir {
			return true
		}
	}
	return false
}

// The crash argument of a batch, checked on what it did: a model-based
// random test. Random batches of puts, moves (of uploads closed without
// Commit) and keeps, in one to three parts, over a small tree where
// directories are sometimes new and sometimes there, with and without a
// scratch root, must each leave the model's contents and must have:
//
//   - synced an object's content before the rename that names it;
//   - synced the parent of every directory created above a name before
//     that name appeared in it;
//   - synced, before any rename of a part, the directories of the renames
//     of the parts before it (the barrier);
//   - synced, before returning, the directory of every rename and keep;
//   - synced nothing strictly below the scratch root.
func TestBatchCrashOrder(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 42))
		d := newDriver(t)
		comp := func(n int) string { return []string{"a", "b", "c"}[rng.IntN(n)] }
		randPath := func() string {
			return fmt.Sprintf("/r%d/%s/%s/f%d", rng.IntN(2), comp(2), comp(3), rng.IntN(2))
		}
		model := map[string]string{}
		// Some objects exist before the batch.
		for range rng.IntN(6) {
			p, c := randPath(), fmt.Sprint("before ", rng.Int())
			if err := d.PutContent(ctx, p, []byte(c)); err != nil {
				t.Fatal(err)
			}
			model[p] = c
		}
		bctx, scratch := ctx, ""
		if rng.IntN(4) == 0 {
			scratch = fmt.Sprintf("/r%d/%s", rng.IntN(2), comp(2))
			bctx = driver.WithScratch(ctx, scratch)
		}
		var ops []driver.BatchOp
		part := map[string]int{} // target -> part
		parts := 1 + rng.IntN(3)
		for k := range parts {
			if k > 0 {
				ops = append(ops, driver.Barrier)
			}
			for range 1 + rng.IntN(4) {
				p := randPath()
				if _, dup := part[p]; dup {
					continue // one operation per path (and per batch, for the model)
				}
				part[p] = k
				c := fmt.Sprint("batch ", rng.Int())
				switch rng.IntN(4) {
				case 0:
					src := fmt.Sprintf("/up/%d/data", len(ops))
					w, err := d.Writer(ctx, src, false)
					if err != nil {
						t.Fatal(err)
					}
					w.Write([]byte(c))
					w.Close() // not committed: the batch syncs it
					ops = append(ops, driver.MoveOp(src, p))
					model[p] = c
				case 1:
					ops = append(ops, driver.KeepOp(p))
				default:
					ops = append(ops, driver.PutOp(p, []byte(c)))
					model[p] = c
				}
			}
		}
		rec := record(t, d)
		if err := d.Batch(bctx, ops...); err != nil {
			t.Fatalf("seed %d: %v (%v)", seed, err, ops)
		}
		ev := rec.take()
		syncHook, mkdirHook, renameHook = nil, nil, nil
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d, batch %v, scratch %q:\n%s\nevents %v", seed, ops, scratch, fmt.Sprintf(format, args...), ev)
		}
		durable := func(p string) bool { return scratch == "" || !within(p, scratch[1:]) || p == scratch[1:] }
		for p, want := range model {
			b, err := d.GetContent(ctx, p)
			if err != nil || string(b) != want {
				fail("%s holds %q (%v), want %q", p, b, err, want)
			}
		}
		var renames []int
		for i, e := range ev {
			switch {
			case e.op == "sync" && scratch != "" && within(e.a, scratch[1:]) && e.a != scratch[1:]:
				fail("synced %s, below the scratch root", e.a)
			case e.op != "rename" || !durable(e.b):
				continue
			}
			renames = append(renames, i)
			if !syncedBetween(ev, e.a, -1, i) {
				fail("renamed %s to %s before syncing its content", e.a, e.b)
			}
			for j, m := range ev[:i] {
				if m.op == "mkdir" && durable(m.a) && within(dirOf(e.b), m.a) && !syncedBetween(ev, dirOf(m.a), j, i) {
					fail("renamed into %s before syncing %s, where %s was created", dirOf(e.b), dirOf(m.a), m.a)
				}
			}
			if !syncedBetween(ev, dirOf(e.b), i, len(ev)) {
				fail("returned before syncing %s after renaming %s into it", dirOf(e.b), e.b)
			}
		}
		for _, i := range renames {
			for _, j := range renames {
				if pi, pj := part["/"+ev[i].b], part["/"+ev[j].b]; pi < pj && !syncedBetween(ev, dirOf(ev[i].b), i, j) {
					fail("renamed %s (part %d) before %s (part %d) was durable", ev[j].b, pj, ev[i].b, pi)
				}
			}
		}
		for _, op := range ops {
			if op.Kind == driver.OpKeep && durable(op.Path[1:]) {
				if _, err := d.Stat(ctx, filepath.Dir(op.Path)); err == nil && !syncedBetween(ev, dirOf(op.Path[1:]), -1, len(ev)) {
					fail("kept %s without syncing its directory", op.Path)
				}
			}
		}
	}
}

// Group commit: callers that need a directory flushed while an fsync of it
// runs (which may have started before their change) wait for the next one,
// and one fsync covers them all.
func TestFlushDirGroupCommit(t *testing.T) {
	d := newDriver(t)
	var mu sync.Mutex
	syncs := 0
	running := make(chan struct{})
	release := make(chan struct{})
	syncHook = func(name string) {
		if name != d.root {
			return
		}
		mu.Lock()
		syncs++
		n := syncs
		mu.Unlock()
		if n == 1 {
			close(running)
			<-release // the first flush stays in progress
		}
	}
	defer func() { syncHook = nil }()
	f := d.flush
	first := make(chan error)
	go func() { first <- f.flushDir(d.root) }()
	<-running
	const waiters = 8
	done := make(chan int, waiters)
	for range waiters {
		go func() {
			if err := f.flushDir(d.root); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			done <- syncs // how many fsyncs had finished when it returned
		}()
	}
	// Every waiter is queued behind the running flush.
	for deadline := time.Now().Add(10 * time.Second); ; {
		f.mu.Lock()
		users := f.dirs[d.root].users
		f.mu.Unlock()
		if users == waiters+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users of the flush, want %d", users, waiters+1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if n := <-done; n < 2 {
			t.Fatalf("a waiter returned after %d fsyncs: covered by a flush that may have started before its change", n)
		}
	}
	if syncs != 2 {
		t.Fatalf("%d fsyncs for %d waiters behind one flush, want 2", syncs, waiters)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.dirs) != 0 {
		t.Fatalf("flush states left behind: %v", f.dirs)
	}
}

// A directory that a batch has created but not yet made durable (its
// parent's flush has not run) is young: another batch that stores into it
// flushes its parent itself before answering; once the creator's flush
// is done, nobody needs to.
func TestYoungDirectory(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t)
	paused, resume := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	batchHook = func(stage string) {
		if first.CompareAndSwap(false, true) { // the creator only
			close(paused)
			<-resume
		}
	}
	defer func() { batchHook = nil }()
	creator := make(chan error)
	go func() { creator <- d.Batch(ctx, driver.PutOp("/x/new/f", []byte("1"))) }()
	<-paused // x and x/new exist, their parents not synced

	rec := record(t, d)
	if err := d.Batch(ctx, driver.PutOp("/x/new/g", []byte("2"))); err != nil {
		t.Fatal(err)
	}
	var synced []string
	for _, e := range rec.take() {
		if e.op == "sync" && !strings.Contains(e.a, tmpPrefix) {
			synced = append(synced, e.a)
		}
	}
	slices.Sort(synced)
	if got := fmt.Sprint(synced); got != "[. x x/new]" {
		t.Fatalf("storing into young directories synced %s, want their parents and the directory", got)
	}
	close(resume)
	if err := <-creator; err != nil {
		t.Fatal(err)
	}
	rec.take() // the creator's own flushes
	if err := d.Batch(ctx, driver.PutOp("/x/new/h", []byte("3"))); err != nil {
		t.Fatal(err)
	}
	synced = nil
	for _, e := range rec.take() {
		if e.op == "sync" && !strings.Contains(e.a, tmpPrefix) {
			synced = append(synced, e.a)
		}
	}
	if got := fmt.Sprint(synced); got != "[x/new]" {
		t.Fatalf("storing into settled directories synced %s", got)
	}
	d.flush.mu.Lock()
	defer d.flush.mu.Unlock()
	if len(d.flush.young) != 0 {
		t.Fatalf("young directories left: %v", d.flush.young)
	}
}
