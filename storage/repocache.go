package storage

import (
	"context"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// repoCache speeds up the catalog: per directory below repositories/ it
// keeps what the walk needs to know about it, each part validated on every
// use by one Stat of the directory it was read from:
//
//   - the directory's own children that can be nested names (not starting
//     with "_") and whether it has a _manifests child, valid while the
//     directory's modification time is the one it had before it was
//     listed;
//   - the verdict "has at least one manifest revision", cached only when
//     _manifests/revisions/sha256 was found non-empty, valid while that
//     directory's modification time is the one it had before it was
//     listed. Adding or removing a revision changes it; so does removing
//     and re-creating the directory (its time is then the time of the
//     change).
//
// So a warm catalog costs two stats per repository instead of a stat and
// two listings, and it is always correct however the store changes (another
// registryd, garbage-collect, a restore), under the rules listCache
// follows: a time read less than racyWindow after it was set is never
// cached (two changes within one clock tick may leave it equal), and
// drivers without directory times (zero ModTime, S3) are never cached.
// Any verdict not cached (negative ones, revisions only under another
// algorithm) is computed again each time, as without the cache.
//
// Where the driver watches directories (driver.DirWatcher, inotify on
// Linux), each part is kept under the directory's version instead, taken
// (Watch) before the directory is read, and validated by comparing
// versions: a memory read instead of a stat, and no racy window, since a
// change while reading moves the version. The request's consistency
// comes from syncWatches at its start: every change completed before it
// has moved its directory's version by then. Directories the driver
// cannot watch (its watch limit reached, another system) keep using times,
// entry by entry, so a store larger than the limit is partly watched and
// still always correct.
//
// Memory is O(repositories): an entry is two times or versions, a flag
// and usually an empty slice, keyed by the path string the parent's
// listing already holds, plus, for a repository, the path of its
// revisions/sha256 directory. It is bounded by maxEntries (the map starts
// over when full).
type repoCache struct {
	mu         sync.Mutex
	entries    map[string]repoEntry
	maxEntries int
	now        func() time.Time
	// inflight holds the directories being read, so that concurrent walks
	// (the warm-up at start and the first catalog requests) read each once.
	inflight map[string]*repoFlight
	seq      uint64 // flights started so far, under mu
}

type repoFlight struct {
	seq     uint64 // c.seq when it started
	done    chan struct{}
	subdirs []string
	has     bool
	err     error
}

type repoEntry struct {
	dirMod    int64    // UnixNano of the directory's time when listed; 0: unknown
	dirVer    uint64   // the directory's version when listed, if watched; 0: none
	subdirs   []string // full paths of children not starting with "_"
	manifests bool     // it has a _manifests child
	revMod    int64    // UnixNano of revisions/sha256's time when found non-empty; 0: no verdict
	revVer    uint64   // revisions/sha256's version when found non-empty; 0: no verdict
	sha       string   // the path of revisions/sha256, once needed
}

// known reports whether e holds anything worth keeping.
func (e *repoEntry) known() bool {
	return e.dirMod != 0 || e.dirVer != 0 || e.revMod != 0 || e.revVer != 0
}

func newRepoCache(maxEntries int) *repoCache {
	return &repoCache{entries: map[string]repoEntry{}, maxEntries: maxEntries, now: time.Now, inflight: map[string]*repoFlight{}}
}

// settled reports whether a modification time may key a cache entry: it
// is set (the driver has directory times) and older than racyWindow.
func (c *repoCache) settled(mod time.Time) bool {
	return !mod.IsZero() && mod.UnixNano() != 0 && c.now().Sub(mod) >= racyWindow
}

// epoch marks the start of a request for repoDir's since.
func (c *repoCache) epoch() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

func (c *repoCache) get(dir string) repoEntry {
	c.mu.Lock()
	e := c.entries[dir]
	c.mu.Unlock()
	return e
}

func (c *repoCache) put(dir string, e repoEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !e.known() {
		delete(c.entries, dir)
		return
	}
	if _, ok := c.entries[dir]; !ok && len(c.entries) >= c.maxEntries {
		// Simple and bounded: start over rather than track recency.
		c.entries = map[string]repoEntry{}
	}
	c.entries[dir] = e
}

// repoDir describes a directory below repositories/ for the catalog: the
// children that may be nested names (full paths, sorted) and whether it is
// a repository with at least one revision. A directory that is gone, or a
// file, has neither.
//
// since is what epoch returned when the caller's request began: a read of
// the same directory that is under way is joined only if it started after
// that, so that what it finds is as fresh as what this call would find (a
// change that completed before the request began is seen). Its failure
// (its context cancelled, say) is not trusted: the directory is read
// again.
func (r *Registry) repoDir(ctx context.Context, dir string, since uint64) (subdirs []string, has bool, err error) {
	c := r.repos
	if r.noDirTimes.Load() {
		return r.repoDirUncached(ctx, dir)
	}
	c.mu.Lock()
	if f, ok := c.inflight[dir]; ok && f.seq > since {
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err == nil {
				return f.subdirs, f.has, nil
			}
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		return r.readRepoDir(ctx, dir)
	}
	c.seq++
	f := &repoFlight{seq: c.seq, done: make(chan struct{})}
	c.inflight[dir] = f // replaces an older flight, if any
	c.mu.Unlock()
	f.subdirs, f.has, f.err = r.readRepoDir(ctx, dir)
	c.mu.Lock()
	if c.inflight[dir] == f {
		delete(c.inflight, dir)
	}
	c.mu.Unlock()
	close(f.done)
	return f.subdirs, f.has, f.err
}

// cachedRepoDir is repoDir answered from watched cache entries alone, with
// no system call; ok is false when it cannot be (not cached, not watched,
// changed, or a verdict that is not cached).
func (r *Registry) cachedRepoDir(dir string) (subdirs []string, has, ok bool) {
	if r.watcher == nil {
		return nil, false, false
	}
	e := r.repos.get(dir)
	if !r.unchanged(dir, e.dirVer) {
		return nil, false, false
	}
	if !e.manifests {
		return e.subdirs, false, true
	}
	if !r.unchanged(e.sha, e.revVer) {
		return nil, false, false
	}
	return e.subdirs, true, true
}

// readRepoDir is repoDir without the sharing of concurrent reads.
func (r *Registry) readRepoDir(ctx context.Context, dir string) (subdirs []string, has bool, err error) {
	c := r.repos
	e := c.get(dir)
	changed := false
	valid := r.unchanged(dir, e.dirVer)
	if !valid && e.dirMod != 0 {
		fi, err := r.driver.Stat(ctx, dir)
		if isNotFound(err) {
			c.put(dir, repoEntry{})
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		valid = fi.IsDir() && fi.ModTime().UnixNano() == e.dirMod
	}
	if !valid {
		ver, watched := r.watch(ctx, dir)
		var children []string
		var mod time.Time
		var err error
		if watched {
			children, err = r.driver.List(ctx, dir)
		} else {
			children, mod, err = r.listDir(ctx, dir)
		}
		if isNotFound(err) {
			if e.known() {
				c.put(dir, repoEntry{})
			}
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if !watched && mod.IsZero() {
			r.noDirTimes.Store(true)
			return r.repoDirUncached(ctx, dir)
		}
		e.subdirs, e.manifests = splitRepoDir(children)
		e.dirMod, e.dirVer = 0, 0
		switch {
		case watched:
			e.dirVer = ver
		case c.settled(mod):
			e.dirMod = mod.UnixNano()
		}
		changed = true
	}
	if e.manifests {
		has, err = r.cachedHasRevisions(ctx, dir, &e, &changed)
		if err != nil {
			return nil, false, err
		}
	} else if e.revMod != 0 || e.revVer != 0 {
		e.revMod, e.revVer = 0, 0
		changed = true
	}
	if changed {
		c.put(dir, e)
	}
	return e.subdirs, has, nil
}

// listDir lists the directory p with its modification time, read before
// the listing: in one call where the driver can (DirLister), else a Stat
// then a List.
func (r *Registry) listDir(ctx context.Context, p string) ([]string, time.Time, error) {
	if dl, ok := r.driver.(driver.DirLister); ok {
		children, fi, err := dl.ListDir(ctx, p)
		if err != nil {
			return nil, time.Time{}, err
		}
		return children, fi.ModTime(), nil
	}
	fi, err := r.driver.Stat(ctx, p)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !fi.IsDir() {
		return nil, time.Time{}, driver.PathNotFoundError{Path: p, DriverName: r.driver.Name()}
	}
	children, err := r.driver.List(ctx, p)
	return children, fi.ModTime(), err
}

// cachedHasRevisions is hasRevisions through e's cached verdict.
func (r *Registry) cachedHasRevisions(ctx context.Context, dir string, e *repoEntry, changed *bool) (bool, error) {
	c := r.repos
	if e.sha == "" {
		e.sha, *changed = dir+"/_manifests/revisions/sha256", true
	}
	sha := e.sha
	if r.unchanged(sha, e.revVer) {
		return true, nil
	}
	if e.revMod != 0 {
		fi, err := r.driver.Stat(ctx, sha)
		if err == nil && fi.IsDir() && fi.ModTime().UnixNano() == e.revMod {
			return true, nil
		}
		if err != nil && !isNotFound(err) {
			return false, err
		}
	}
	// The version (or time) is read before the listing: a change in
	// between moves it past the one the verdict is kept under.
	ver, watched := r.watch(ctx, sha)
	var hs []string
	var mod time.Time
	var err error
	if watched {
		hs, err = r.driver.List(ctx, sha)
	} else {
		hs, mod, err = r.listDir(ctx, sha)
	}
	if err != nil && !isNotFound(err) {
		return false, err
	}
	if err == nil && len(hs) > 0 {
		rev, rver := int64(0), uint64(0)
		switch {
		case watched:
			rver = ver
		case c.settled(mod):
			rev = mod.UnixNano()
		}
		if rev != e.revMod || rver != e.revVer {
			e.revMod, e.revVer, *changed = rev, rver, true
		}
		return true, nil
	}
	if e.revMod != 0 || e.revVer != 0 {
		e.revMod, e.revVer, *changed = 0, 0, true
	}
	return r.hasRevisions(ctx, dir)
}

// splitRepoDir sorts a repository directory's children into those that may
// be nested names and whether _manifests is among them.
func splitRepoDir(children []string) (subdirs []string, manifests bool) {
	for _, ch := range children {
		switch base := path.Base(ch); {
		case base == "_manifests":
			manifests = true
		case !strings.HasPrefix(base, "_"):
			subdirs = append(subdirs, ch)
		}
	}
	return subdirs, manifests
}

// repoDirUncached is repoDir for drivers without directory times: a
// listing of the directory and, for a repository, of its revisions.
func (r *Registry) repoDirUncached(ctx context.Context, dir string) ([]string, bool, error) {
	children, err := r.driver.List(ctx, dir)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	subdirs, manifests := splitRepoDir(children)
	if !manifests {
		return subdirs, false, nil
	}
	has, err := r.hasRevisions(ctx, dir)
	return subdirs, has, err
}
