package storage

import (
	"context"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/registryd/registryd/storage/driver"
)

// Catalog returns up to n repository names after last and whether more
// follow. Names are ordered component by component ("a/b" before "a-b"),
// which is the order a depth-first walk of the store yields and the order
// the reference registry uses, so "last" means the same to both. A
// repository is listed while it holds at least one manifest revision.
//
// The walk descends only into directories that can hold names after last,
// so a page costs what it lists plus the directories on the path to last.
//
// keep, when not nil, hides repositories (those the caller may not pull);
// pages are counted in what is shown.
func (r *Registry) Catalog(ctx context.Context, last string, n int, keep func(name string) bool) ([]string, bool, error) {
	var out []string
	more := false
	if n == 0 {
		return []string{}, false, nil
	}
	if ix := r.index; ix != nil && (last == "" || ValidateName(last) == nil) {
		ready, err := ix.ready(ctx)
		if err != nil {
			return nil, false, err
		}
		if ready {
			return ix.page(ctx, "", last, n, func(name string) bool {
				return !r.deleting(name) && (keep == nil || keep(name))
			})
		}
		// Not built (a new store, or one written by the reference): the
		// layout answers while a build runs.
		ix.startBuild()
	}
	var lastParts []string
	if last != "" {
		lastParts = strings.Split(last, "/")
	}
	r.syncWatches(ctx)
	since := r.repos.epoch()
	root, err := r.list(ctx, reposRoot())
	if isNotFound(err) {
		return []string{}, false, nil
	}
	if err != nil {
		return nil, false, storageErr(err)
	}
	if n > 0 {
		out = make([]string, 0, min(n, 1<<14))
	}
	err = r.walkCatalog(ctx, since, reposRoot(), root, 0, lastParts, func(name string) error {
		if (keep != nil && !keep(name)) || r.deleting(name) {
			return nil
		}
		if n >= 0 && len(out) == n {
			more = true
			return errStopWalk
		}
		out = append(out, name)
		return nil
	})
	if err != nil && err != errStopWalk {
		return nil, false, storageErr(err)
	}
	if out == nil {
		out = []string{}
	}
	return out, more, nil
}

type stopWalk struct{}

func (stopWalk) Error() string { return "stop" }

var errStopWalk error = stopWalk{}

// walkCatalog visits the repositories below dir (depth name components
// below the repositories root, whose sorted children are children) in
// catalog order, skipping those not after lastParts.
func (r *Registry) walkCatalog(ctx context.Context, since uint64, dir string, children []string, depth int, lastParts []string, fn func(string) error) error {
	// Only the branch that lies on last's path is compared with it; every
	// branch after it is walked whole.
	onPath := lastParts != nil && depth < len(lastParts)
	if onPath {
		// Children are sorted: skip to the first one not before last's
		// component at this depth instead of comparing them all.
		prefix := dir + "/"
		i := sort.SearchStrings(children, prefix+lastParts[depth])
		children = children[i:]
	}
	// Repositories are examined in batches, several at once (each costs
	// system calls, mostly stats), and then reported in order. Batches
	// start small, so a short page examines few more than it shows.
	batch := 16
	var cands []catalogCand
	for i := 0; i < len(children); {
		if err := ctx.Err(); err != nil {
			return err
		}
		cands = cands[:0]
		for ; i < len(children) && len(cands) < batch; i++ {
			c := children[i]
			base := path.Base(c)
			if !validComponent(base) {
				continue
			}
			cand := catalogCand{dir: c, base: base}
			if onPath {
				switch cmp := strings.Compare(base, lastParts[depth]); {
				case cmp < 0:
					continue
				case cmp == 0:
					cand.last = lastParts
				}
			}
			cands = append(cands, cand)
		}
		batch = min(batch*2, 256)
		r.repoDirs(ctx, since, cands)
		for _, cand := range cands {
			if cand.err != nil {
				return cand.err
			}
			// The name is the directory's path below the repositories
			// root: a substring, nothing to allocate.
			name := strings.TrimPrefix(cand.dir, reposRootPath+"/")
			// A directory is a repository when it has revisions; it may
			// also hold further repositories below it ("a" and "a/b" both
			// exist). On last's path the name is last or a prefix of it,
			// so it comes before last and is not listed; only its subtree
			// may follow.
			if cand.last == nil && cand.has {
				if err := fn(name); err != nil {
					return err
				}
			}
			if len(cand.subdirs) > 0 {
				if err := r.walkCatalog(ctx, since, cand.dir, cand.subdirs, depth+1, cand.last, fn); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// catalogCand is a directory the catalog walk examines, and what repoDir
// found.
type catalogCand struct {
	dir, base string
	last      []string // lastParts when the directory is on last's path
	subdirs   []string
	has       bool
	err       error
}

// repoDirs runs repoDir for every candidate: those the watched cache
// answers at once (a memory read each, not worth a goroutine), the others
// on as many goroutines as there are processors when there are enough of
// them.
func (r *Registry) repoDirs(ctx context.Context, since uint64, cands []catalogCand) {
	var miss []*catalogCand
	for i := range cands {
		c := &cands[i]
		var ok bool
		if c.subdirs, c.has, ok = r.cachedRepoDir(c.dir); !ok {
			miss = append(miss, c)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(miss)/8)
	if workers <= 1 {
		for _, c := range miss {
			c.subdirs, c.has, c.err = r.repoDir(ctx, c.dir, since)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(miss) {
					return
				}
				c := miss[i]
				c.subdirs, c.has, c.err = r.repoDir(ctx, c.dir, since)
			}
		})
	}
	wg.Wait()
}

// WarmCatalog walks the catalog once, discarding the names, so that the
// listing and repository caches hold the settled part of the store before
// the first catalog request. It does nothing on drivers without directory
// times, where nothing can be cached.
func (r *Registry) WarmCatalog(ctx context.Context) error {
	if ix := r.index; ix != nil {
		// The index is the cache; build it if it is missing.
		if ready, err := ix.ready(ctx); err == nil && !ready {
			ix.startBuild()
		}
		return nil
	}
	r.syncWatches(ctx)
	since := r.repos.epoch()
	fi, err := r.driver.Stat(ctx, reposRoot())
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.ModTime().IsZero() {
		r.noDirTimes.Store(true)
		return nil
	}
	root, err := r.list(ctx, reposRoot())
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.walkCatalog(ctx, since, reposRoot(), root, 0, nil, func(string) error { return nil })
}

// hasRevisions reports whether the repository directory holds at least one
// manifest revision, so that a repository whose manifests were all deleted
// leaves the catalog.
func (r *Registry) hasRevisions(ctx context.Context, repoDir string) (bool, error) {
	// Nearly every revision is sha256: one listing answers for most
	// repositories, where listing the algorithms first takes two (the
	// catalog's main cost).
	hs, err := r.driver.List(ctx, path.Join(repoDir, "_manifests", "revisions", "sha256"))
	if err == nil && len(hs) > 0 {
		return true, nil
	}
	if err != nil && !isNotFound(err) {
		return false, err
	}
	algs, err := r.driver.List(ctx, path.Join(repoDir, "_manifests", "revisions"))
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, a := range algs {
		hs, err := r.driver.List(ctx, a)
		if err != nil && !isNotFound(err) {
			return false, err
		}
		if len(hs) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// walkUploadRepos calls fn for every repository that has an _uploads
// directory; other underscore directories are not descended into.
func (r *Registry) walkUploadRepos(ctx context.Context, fn func(name string) error) error {
	root := reposRoot()
	err := r.driver.Walk(ctx, root, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			return nil
		}
		base := path.Base(fi.Path())
		if !strings.HasPrefix(base, "_") {
			return nil
		}
		if base == "_uploads" {
			if err := fn(strings.TrimPrefix(path.Dir(fi.Path()), root+"/")); err != nil {
				return err
			}
		}
		return driver.ErrSkipDir
	})
	if isNotFound(err) {
		return nil
	}
	return err
}
