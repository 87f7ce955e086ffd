package filesystem

import (
	"os"
	"path/filepath"
	"sync"
)

// flusher shares directory flushes between concurrent writers, as a
// database shares the flushes of its log (group commit): a writer that
// needs the entries of a directory durable waits for an fsync of it that
// started after its change, and every writer that arrives while one fsync
// runs is covered by the next, which one of them runs for all. So N
// concurrent writers into one directory (the layer links of a repository
// that docker pushes five layers into at once, a repository's tags, a
// blob bucket) cost about two fsyncs of it, not N, and no writer is
// acknowledged before a flush that covers its change has returned.
//
// It also remembers the directories this process created whose entry in
// their parent is not yet durable (mkdir, then the parent's fsync): a
// writer that finds such a directory and stores something in it must
// flush the parent too, or a crash could take its acknowledged object
// away with the directory (see ensureDirs).
type flusher struct {
	mu   sync.Mutex
	dirs map[string]*dirFlush
	// young counts, per directory this process created, the creations
	// whose parent flush has not returned yet.
	young map[string]int
}

// dirFlush is the state of one directory's flushes. Flushes of a
// directory are numbered; only one runs at a time.
type dirFlush struct {
	cond     *sync.Cond // on flusher.mu
	started  uint64     // flushes started
	finished uint64     // flushes finished (the last one started, or one less)
	running  bool
	errGen   uint64 // the last flush that failed, and its error
	err      error
	users    int // callers interested in this state: it is dropped at 0
}

func newFlusher() *flusher {
	return &flusher{dirs: map[string]*dirFlush{}, young: map[string]int{}}
}

// flushDir returns once an fsync of dir that started after the call has
// finished: its error, if it failed. A missing directory is its error
// (fs.ErrNotExist).
func (f *flusher) flushDir(dir string) error {
	f.mu.Lock()
	st := f.dirs[dir]
	if st == nil {
		st = &dirFlush{cond: sync.NewCond(&f.mu)}
		f.dirs[dir] = st
	}
	st.users++
	// A flush running now may have started before the caller's change:
	// only the next one is sure to cover it.
	target := st.started + 1
	for st.finished < target {
		if st.running {
			st.cond.Wait()
			continue
		}
		st.running = true
		st.started++
		gen := st.started
		f.mu.Unlock()
		err := syncDir(dir)
		f.mu.Lock()
		st.running = false
		st.finished = gen
		if err != nil {
			st.errGen, st.err = gen, err
		}
		st.cond.Broadcast()
	}
	var err error
	if st.errGen >= target {
		// A flush at or after the one that covers the caller failed: the
		// change may not be durable.
		err = st.err
	}
	st.users--
	if st.users == 0 && !st.running {
		delete(f.dirs, dir)
	}
	f.mu.Unlock()
	return err
}

// flushDirs flushes each of dirs (each once), concurrently: the fsyncs of
// a journaling filesystem issued together wait for one journal commit.
func (f *flusher) flushDirs(dirs []string) error {
	return parallel(len(dirs), func(i int) error { return f.flushDir(dirs[i]) })
}

// created records that this process created dir and has not yet made its
// entry in its parent durable; settled undoes it once it has (or the
// attempt is over).
func (f *flusher) created(dir string) {
	f.mu.Lock()
	f.young[dir]++
	f.mu.Unlock()
}

func (f *flusher) settled(dir string) {
	f.mu.Lock()
	if f.young[dir]--; f.young[dir] <= 0 {
		delete(f.young, dir)
	}
	f.mu.Unlock()
}

// youngParents appends to out the parent of dir and of each ancestor
// whose creation by this process is not durable yet, stopping at the
// first that is (or that this process did not create): the flushes that
// make dir reachable after a crash.
func (f *flusher) youngParents(dir string, out []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.young) == 0 {
		return out
	}
	for f.young[dir] > 0 {
		parent := filepath.Dir(dir)
		out = append(out, parent)
		if parent == dir {
			break
		}
		dir = parent
	}
	return out
}

// syncFiles fsyncs each of files, concurrently.
func syncFiles(files []*os.File) error {
	return parallel(len(files), func(i int) error { return syncFile(files[i]) })
}

// parallel runs fn(0..n-1) concurrently (the calling goroutine runs one)
// and returns the first error.
func parallel(n int, fn func(i int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return fn(0)
	}
	errs := make(chan error, n-1)
	for i := 1; i < n; i++ {
		go func() { errs <- fn(i) }()
	}
	err := fn(0)
	for i := 1; i < n; i++ {
		if e := <-errs; err == nil {
			err = e
		}
	}
	return err
}
