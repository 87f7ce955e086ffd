package storage

import (
	"context"
	"sync"
	"time"
)

// listCache keeps the sorted listings of large directories (the catalog's
// repositories, a repository's tags) so that a page costs a stat and a
// binary search instead of reading 100,000 names again.
//
// Where the driver watches the directory (driver.DirWatcher), a listing is
// reused while the directory's version is the one taken before it was
// read: no stat, no racy window (a change while reading moves the version),
// and any size is worth keeping. The caller calls syncWatches once at the
// start of the request. Elsewhere, a listing is reused only while the directory's modification time is the
// one it was read at. Timestamps are coarse (a clock tick), so two changes
// within one tick can leave the time unchanged; a directory modified less
// than racyWindow ago is therefore never cached, which is how git treats
// its "racily clean" index entries. Drivers without directory times (zero
// ModTime) are never cached, and every instance sharing the storage sees
// the same times, so the cache needs no coordination.
type listCache struct {
	mu       sync.Mutex
	entries  map[string]listEntry
	names    int // names held, to bound memory
	maxNames int
	now      func() time.Time
}

type listEntry struct {
	mod      time.Time // zero when kept under ver
	ver      uint64    // the directory's version, when watched
	children []string
}

const racyWindow = 2 * time.Second

// minCachedListing: small directories are cheaper to list than to track.
const minCachedListing = 256

func newListCache(maxNames int) *listCache {
	return &listCache{entries: map[string]listEntry{}, maxNames: maxNames, now: time.Now}
}

// list returns the sorted full paths below dir, from the cache when valid.
func (r *Registry) list(ctx context.Context, dir string) ([]string, error) {
	c := r.lists
	if c == nil {
		return r.driver.List(ctx, dir)
	}
	if r.noDirTimes.Load() {
		// Nothing can be cached: the stat would only cost a request.
		return r.driver.List(ctx, dir)
	}
	c.mu.Lock()
	e, ok := c.entries[dir]
	c.mu.Unlock()
	if ok && r.unchanged(dir, e.ver) {
		return e.children, nil
	}
	if ver, watched := r.watch(ctx, dir); watched {
		children, err := r.driver.List(ctx, dir)
		if err != nil {
			return nil, err
		}
		c.put(dir, listEntry{ver: ver, children: children})
		return children, nil
	}
	fi, err := r.driver.Stat(ctx, dir)
	if err != nil {
		return nil, err
	}
	mod := fi.ModTime()
	if mod.IsZero() && fi.IsDir() {
		r.noDirTimes.Store(true)
	}
	if ok && !mod.IsZero() && e.mod.Equal(mod) {
		return e.children, nil
	}
	children, err := r.driver.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	if mod.IsZero() || len(children) < minCachedListing || c.now().Sub(mod) < racyWindow {
		return children, nil
	}
	c.put(dir, listEntry{mod: mod, children: children})
	return children, nil
}

// put keeps e, within maxNames.
func (c *listCache) put(dir string, e listEntry) {
	children := e.children
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[dir]; ok {
		c.names -= len(old.children)
	}
	if c.names+len(children) > c.maxNames {
		// Simple and bounded: start over rather than track recency.
		c.entries = map[string]listEntry{}
		c.names = 0
	}
	c.entries[dir] = e
	c.names += len(children)
}
