package storage

// The repository-name index: every repository name of the store, held in
// memory in catalog order, for what needs all of them at once: search by
// substring (the admin API's and the web UI's q=, where a match may be
// anywhere) and the namespace counts beside a catalog page. A catalog page
// needs no index: it walks the store from last and stops (catalog.go),
// O(page).
//
// It holds, per directory below repositories/ that can hold names (the
// root, every namespace and repository directory), what repoDir reads of
// it: the children that can be nested names and whether it is a
// repository with a revision; and the names, sorted. Memory: about 150
// bytes per directory (the node, its map entry, the name's entries in the
// sorted list and in the list of nodes to check), the paths being the
// catalog cache's own strings: 15 MB at 100,000 repositories. Beyond
// maxNameNodes directories it is not kept and a search walks the catalog.
//
// It is kept current at every request that uses it (syncNames):
//
//   - this process's changes and, through the change log (changelog.go),
//     every other registryd instance's are marked by repository, and
//     those repositories (with their parents, for a new one) are read
//     again: O(changes);
//   - a directory the driver watches (inotify) is checked by its version,
//     a memory read (repocache.go), and read again when it moved: any
//     writer's change, registryd or not, shows at the next request;
//   - a directory that is not watched (the watch limit reached: 100,000
//     repositories need about 300,000 watches; or a driver without
//     watches) is checked by its modification time, a stat, on every
//     request while there are at most nameStatBudget of them. Beyond
//     that a stat of each would cost most of a second per request, so a
//     background pass (RunIndexes) checks them every namePassInterval (or
//     ten times as long as a pass takes, if longer) while the index is
//     in use: on such a store a change made by another writer than
//     registryd (the reference registry, a restore, hand edits) shows in
//     search within that period instead of at once. Catalog pages and
//     tags lists never use the index and show it at once.
//
// A name being deleted (repodelete.go) is left out of every answer.

import (
	"context"
	"errors"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// namePassInterval is the least period of the background pass over
	// unwatched directories.
	namePassInterval = 30 * time.Second
	// nameIdle: the pass runs only while the index was used this
	// recently.
	nameIdle = 10 * time.Minute
	// maxNameNodes bounds the index (about 300 MB).
	maxNameNodes = 2 << 20
)

// nameStatBudget is how many unwatched directories a request checks
// itself (about 5 to 15 ms of stats on a loaded machine). A variable for
// the tests, which set it to 0 to check the change log alone.
var nameStatBudget = 2048

// errNameIndexTooLarge: the store has more directories than the index
// keeps; callers walk the catalog instead.
var errNameIndexTooLarge = errors.New("the name index would exceed its bound")

type nameIndex struct {
	// pmu guards the marks, which writers and the change log set.
	pmu    sync.Mutex
	marked map[string]bool // repository names to read again
	all    bool            // every directory to read again

	// mu serialises syncs and guards what follows.
	mu      sync.Mutex
	built   bool
	tooBig  bool
	nodes   map[string]*nameNode // by directory path; reposRoot() is the root
	pending map[string]bool      // directories the background pass found changed
	// watched and unwatched list the nodes by how they are checked;
	// rebuilt when a node's way changes (listsDirty).
	watched, unwatched []string
	listsDirty         bool
	// scanned is the watcher's change counter before the last check of
	// every watched directory: while it has not moved, none of them
	// changed (zero: unknown).
	scanned  uint64
	usedAt   time.Time
	passEnd  time.Time
	passCost time.Duration

	// names is the sorted list of names, replaced (never changed in
	// place) by each sync that changes it.
	names atomic.Pointer[[]string]
}

type nameNode struct {
	subdirs []string // the children that may be nested names, as repoDir lists them
	has     bool     // it is a repository with a revision
	watched bool     // checked by versions (its repoCache entry is watched)
}

func newNameIndex() *nameIndex {
	ix := &nameIndex{}
	ix.names.Store(&[]string{})
	return ix
}

// mark notes that the repository changed.
func (ix *nameIndex) mark(name string) {
	ix.pmu.Lock()
	if ix.marked == nil {
		ix.marked = map[string]bool{}
	}
	ix.marked[name] = true
	ix.pmu.Unlock()
}

// markAll notes that anything may have changed.
func (ix *nameIndex) markAll() {
	ix.pmu.Lock()
	ix.all = true
	ix.pmu.Unlock()
}

// syncIndexes is the start of every request that uses the indexes: the
// watches' barrier, then the change log.
func (r *Registry) syncIndexes(ctx context.Context) error {
	r.syncWatches(ctx)
	return r.syncChanges(ctx)
}

// syncNames brings the name index up to date (see the top of the file)
// and returns its names. The caller has called syncIndexes.
func (r *Registry) syncNames(ctx context.Context) ([]string, error) {
	ix := r.names
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.tooBig {
		return nil, errNameIndexTooLarge
	}
	ix.usedAt = time.Now()
	since := r.repos.epoch()
	ix.pmu.Lock()
	marked, all := ix.marked, ix.all
	ix.marked, ix.all = nil, false
	ix.pmu.Unlock()

	queued := map[string]bool{}
	var todo []string
	var scanned uint64 // the counter the scan below went by, if it ran
	add := func(dir string) {
		if !queued[dir] {
			queued[dir] = true
			todo = append(todo, dir)
		}
	}
	switch {
	case !ix.built:
		ix.nodes = map[string]*nameNode{}
		ix.pending = nil
		add(reposRoot())
	case all:
		for dir := range ix.nodes {
			add(dir)
		}
	default:
		for name := range marked {
			// A repository new to the index may sit in namespaces new to
			// it: the nearest directory it knows is read again, and what
			// is new below it read in turn.
			dir := repoPath(name)
			for dir != reposRoot() && ix.nodes[dir] == nil {
				dir = path.Dir(dir)
			}
			add(dir)
		}
		for dir := range ix.pending {
			add(dir)
		}
		ix.pending = nil
		ix.refreshLists()
		// The check of every watched directory is a memory read each, but
		// 20 to 40 ms at 100,000 repositories: skipped while the
		// watcher's counter says no version moved since the last one.
		counter := r.watchChanges()
		scanned = ix.scanned
		if counter == 0 || counter != ix.scanned {
			for _, dir := range ix.watched {
				n := ix.nodes[dir]
				sub, has, ok := r.cachedRepoDir(dir)
				if !ok || has != n.has || !slices.Equal(sub, n.subdirs) {
					add(dir)
				}
			}
			scanned = counter
		}
		if len(ix.unwatched) <= nameStatBudget {
			for _, dir := range ix.unwatched {
				add(dir)
			}
		}
	}
	// Until the reads below succeed, what the scan found is only in todo:
	// the next sync scans again.
	ix.scanned = 0
	if err := ix.read(ctx, r, since, todo, queued, !ix.built); err != nil {
		if errors.Is(err, errNameIndexTooLarge) {
			ix.tooBig, ix.nodes = true, nil
			ix.names.Store(&[]string{})
			return nil, err
		}
		// What was to be read is read at the next sync: the marks it
		// took are gone.
		if ix.pending == nil {
			ix.pending = map[string]bool{}
		}
		for _, dir := range todo {
			ix.pending[dir] = true
		}
		return nil, err
	}
	ix.built = true
	ix.scanned = scanned
	return *ix.names.Load(), nil
}

// read reads the directories in todo, and the new ones found below them,
// into the index; ix.mu is held.
func (ix *nameIndex) read(ctx context.Context, r *Registry, since uint64, todo []string, queued map[string]bool, building bool) error {
	var adds, removes []string
	for len(todo) > 0 {
		cands := make([]catalogCand, len(todo))
		for i, dir := range todo {
			cands[i] = catalogCand{dir: dir}
		}
		todo = todo[:0:0]
		r.repoDirs(ctx, since, cands)
		for i := range cands {
			c := &cands[i]
			if c.err != nil {
				return c.err
			}
			n := ix.nodes[c.dir]
			if n == nil {
				if len(ix.nodes) >= maxNameNodes {
					return errNameIndexTooLarge
				}
				n = &nameNode{}
				ix.nodes[c.dir] = n
				ix.listsDirty = true
			}
			has := c.has && c.dir != reposRoot()
			if has != n.has {
				name := strings.TrimPrefix(c.dir, reposRootPath+"/")
				if has {
					adds = append(adds, name)
				} else {
					removes = append(removes, name)
				}
			}
			if !slices.Equal(c.subdirs, n.subdirs) {
				for _, s := range c.subdirs {
					if _, found := slices.BinarySearch(n.subdirs, s); !found && validComponent(path.Base(s)) && !queued[s] {
						queued[s] = true
						todo = append(todo, s)
					}
				}
				for _, s := range n.subdirs {
					if _, found := slices.BinarySearch(c.subdirs, s); !found {
						removes = ix.drop(s, removes)
					}
				}
			}
			n.subdirs, n.has = c.subdirs, has
			if _, _, watched := r.cachedRepoDir(c.dir); watched != n.watched {
				n.watched = watched
				ix.listsDirty = true
			}
		}
	}
	if len(adds)+len(removes) == 0 {
		return nil
	}
	old := *ix.names.Load()
	var names []string
	if building || len(adds)+len(removes) > 64 {
		names = make([]string, 0, len(old)+len(adds))
		for dir, n := range ix.nodes {
			if n.has {
				names = append(names, strings.TrimPrefix(dir, reposRootPath+"/"))
			}
		}
		slices.SortFunc(names, catalogCompare)
	} else {
		names = slices.Clone(old)
		for _, name := range removes {
			if i, found := slices.BinarySearchFunc(names, name, catalogCompare); found {
				names = slices.Delete(names, i, i+1)
			}
		}
		for _, name := range adds {
			if i, found := slices.BinarySearchFunc(names, name, catalogCompare); !found {
				names = slices.Insert(names, i, name)
			}
		}
	}
	ix.names.Store(&names)
	return nil
}

// drop removes dir and everything below it from the index, adding the
// names it held to removes; ix.mu is held.
func (ix *nameIndex) drop(dir string, removes []string) []string {
	n := ix.nodes[dir]
	if n == nil {
		return removes
	}
	delete(ix.nodes, dir)
	ix.listsDirty = true
	if n.has {
		removes = append(removes, strings.TrimPrefix(dir, reposRootPath+"/"))
	}
	for _, s := range n.subdirs {
		removes = ix.drop(s, removes)
	}
	return removes
}

// refreshLists rebuilds the watched and unwatched lists if needed; ix.mu
// is held.
func (ix *nameIndex) refreshLists() {
	if !ix.listsDirty {
		return
	}
	ix.watched, ix.unwatched = ix.watched[:0], ix.unwatched[:0]
	for dir, n := range ix.nodes {
		if n.watched {
			ix.watched = append(ix.watched, dir)
		} else {
			ix.unwatched = append(ix.unwatched, dir)
		}
	}
	ix.listsDirty = false
}

// passNames is the background pass over the unwatched directories (see
// the top of the file): it reads them without holding the index, notes
// those that changed, and applies them by a sync. It does nothing while
// the request's own checks cover them, or when the index is idle or was
// passed over recently.
func (r *Registry) passNames(ctx context.Context) error {
	ix := r.names
	ix.mu.Lock()
	due := ix.built && time.Since(ix.usedAt) < nameIdle &&
		time.Since(ix.passEnd) >= max(namePassInterval, 10*ix.passCost)
	ix.refreshLists()
	if !due || len(ix.unwatched) <= nameStatBudget {
		ix.mu.Unlock()
		return nil
	}
	type state struct {
		dir     string
		subdirs []string
		has     bool
	}
	states := make([]state, len(ix.unwatched))
	for i, dir := range ix.unwatched {
		n := ix.nodes[dir]
		states[i] = state{dir, n.subdirs, n.has}
	}
	ix.mu.Unlock()

	start := time.Now()
	r.syncWatches(ctx)
	since := r.repos.epoch()
	var changed []string
	const chunk = 1024
	for i := 0; i < len(states); i += chunk {
		part := states[i:min(i+chunk, len(states))]
		cands := make([]catalogCand, len(part))
		for j, s := range part {
			cands[j] = catalogCand{dir: s.dir}
		}
		r.repoDirs(ctx, since, cands)
		for j, c := range cands {
			if c.err != nil {
				return c.err
			}
			s := part[j]
			if (c.has && s.dir != reposRoot()) != s.has || !slices.Equal(c.subdirs, s.subdirs) {
				changed = append(changed, s.dir)
			}
		}
	}
	ix.mu.Lock()
	ix.passEnd, ix.passCost = time.Now(), time.Since(start)
	if len(changed) > 0 {
		if ix.pending == nil {
			ix.pending = map[string]bool{}
		}
		for _, dir := range changed {
			ix.pending[dir] = true
		}
	}
	ix.mu.Unlock()
	if len(changed) == 0 {
		return nil
	}
	if err := r.syncIndexes(ctx); err != nil {
		return err
	}
	_, err := r.syncNames(ctx)
	return err
}

// catalogCompare orders names as the catalog lists them, component by
// component ("a/b" before "a-b"): byte by byte with "/" below every byte
// a name component can hold. Names sharing a prefix are contiguous in this
// order.
func catalogCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '/' {
			x = 0
		}
		if y == '/' {
			y = 0
		}
		if x < y {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// SearchCatalog lists up to n repository names after last (in catalog
// order) that start with prefix and contain q, among those keep allows
// (nil: all), and whether more follow; n < 0 is no limit. It answers
// from the name index (see the top of the file): a page costs the
// index's checks and a scan of the names in memory, not a walk of the
// store. q is matched as given (names are lower case).
func (r *Registry) SearchCatalog(ctx context.Context, prefix, q, last string, n int, keep func(name string) bool) ([]string, bool, error) {
	if n == 0 {
		return []string{}, false, nil
	}
	if err := r.syncIndexes(ctx); err != nil {
		return nil, false, err
	}
	names, err := r.syncNames(ctx)
	if errors.Is(err, errNameIndexTooLarge) {
		return r.CatalogPrefix(ctx, prefix, last, n, func(name string) bool {
			return strings.Contains(name, q) && (keep == nil || keep(name))
		})
	}
	if err != nil {
		return nil, false, storageErr(err)
	}
	i := 0
	if prefix != "" {
		i = sort.Search(len(names), func(i int) bool { return catalogCompare(names[i], prefix) >= 0 })
	}
	if last != "" {
		i = max(i, sort.Search(len(names), func(i int) bool { return catalogCompare(names[i], last) > 0 }))
	}
	out := []string{}
	for ; i < len(names); i++ {
		name := names[i]
		if !strings.HasPrefix(name, prefix) {
			break // names with the prefix are contiguous
		}
		if !strings.Contains(name, q) || r.deleting(name) || (keep != nil && !keep(name)) {
			continue
		}
		if n >= 0 && len(out) == n {
			return out, true, nil
		}
		out = append(out, name)
	}
	return out, false, nil
}

// NamespaceCounts counts the repositories whose names start with prefix
// and contain q, among those keep allows: total, those directly at the
// prefix's level (no further "/"), and per next name component the
// number below it. From the name index, like SearchCatalog: O(names in
// memory).
func (r *Registry) NamespaceCounts(ctx context.Context, prefix, q string, keep func(name string) bool) (total, direct int, below map[string]int, err error) {
	if err := r.syncIndexes(ctx); err != nil {
		return 0, 0, nil, err
	}
	names, err := r.syncNames(ctx)
	if errors.Is(err, errNameIndexTooLarge) {
		names, _, err = r.CatalogPrefix(ctx, prefix, "", -1, nil)
	}
	if err != nil {
		return 0, 0, nil, storageErr(err)
	}
	below = map[string]int{}
	i := sort.Search(len(names), func(i int) bool { return catalogCompare(names[i], prefix) >= 0 })
	for ; i < len(names); i++ {
		name := names[i]
		if !strings.HasPrefix(name, prefix) {
			break
		}
		if !strings.Contains(name, q) || r.deleting(name) || (keep != nil && !keep(name)) {
			continue
		}
		total++
		rest := name[len(prefix):]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			below[rest[:j]]++
		} else {
			direct++
		}
	}
	return total, direct, below, nil
}
