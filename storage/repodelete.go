package storage

// Repository delete.
//
// Distribution has none ("repositories are not an entity"): people rm -r
// the directory under a running registry. Here a repository is deleted in
// three steps, each durable before the next, so that a crash at any
// instant leaves either the repository, or a tombstone that finishes the
// job, and never a half-visible repository:
//
//  1. A tombstone, _registryd/tombstones/<sha256 of the name>, is written.
//     From then on the name is "being deleted": the catalog leaves it out,
//     and every request under the name (tags/list, manifests, blobs,
//     uploads, referrers, pushes) answers NAME_UNKNOWN.
//  2. Rmax later (see below) the repository's own directories are removed,
//     in repoOwnDirs' order: tags, referrers, revisions, layer links,
//     uploads, registryd's records. Then, Rmax later again, the same a
//     second time: it removes what a write that had passed its check just
//     before the tombstone was seen, and landed after the first pass, left
//     behind. Removals are made durable (driver.Flusher) after each pass.
//     Blobs are not touched: the next collection reclaims those nothing
//     else references, and repositories sharing them pull as before.
//  3. The tombstone is removed. The name is free: a push starts a
//     repository from nothing (no tags, no layer links, no times).
//
// Every registry sharing the storage keeps the set of names being deleted
// in memory, so the check costs a map lookup, no storage operation.
// RunRepositoryDeletes re-reads the tombstones every Rmax/2 (one listing);
// a write (a route that pushes) that finds the set older than Rmax re-reads
// it first. Waiting Rmax after the tombstone is written therefore lets
// every instance see it before anything is removed.
//
// A deletion belongs to its owner, named in the tombstone, which renews
// it every tombstoneRenew while it works. A tombstone whose owner is gone
// (a process of this host that no longer runs, or one that has not renewed
// it for tombstoneStale) is taken over by whichever instance sees it
// first, at its start or at a refresh, and the deletion resumes from the
// beginning: every removal is idempotent (a missing path is done). The
// owner re-reads the tombstone before each removal and stops when it is
// gone or names another owner, so a deleter that was only paused does not
// go on once another took over or finished.
//
// Concurrency with writes: a push racing the delete either fails with
// NAME_UNKNOWN, or lands wholly before the first pass (and is deleted), or
// lands after the tombstone is gone (and starts the new repository). A
// write that passed its check before the tombstone and takes longer than
// 2*Rmax to commit (a blob upload, whose layer link then stays) is the one
// case not covered: its link makes the blob reachable from the new
// repository, which is harmless, and is removed by the next repository
// delete.

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// DefaultTombstoneRefresh is Rmax, the bound on how old an instance's view
// of the tombstones may be when it serves a write.
const DefaultTombstoneRefresh = 2 * time.Second

const (
	// tombstoneRenew is how often the owner of a deletion renews its
	// tombstone.
	tombstoneRenew = 10 * time.Second
	// tombstoneStale is how long a tombstone may go unrenewed before
	// another instance takes the deletion over.
	tombstoneStale = time.Minute
)

// tombstone is the content of a tombstone file.
type tombstone struct {
	Name string `json:"name"`
	// Owner identifies the deletion run; a new owner takes over.
	Owner   string    `json:"owner"`
	Started time.Time `json:"started"`
	Renewed time.Time `json:"renewed"`
	// Where the owner runs, so that an instance on the same host can tell
	// at once that it is gone.
	Hostname     string `json:"hostname,omitempty"`
	PID          int    `json:"pid,omitempty"`
	PIDNamespace string `json:"pidNamespace,omitempty"`
	// Process tells this process from an earlier one with the same pid
	// (a container restarted: pid 1 again).
	Process string `json:"process,omitempty"`
	// What the repository held when the deletion began.
	Tags      int `json:"tags"`
	Manifests int `json:"manifests"`
}

// RepositoryDeleted is what DeleteRepository removed: the tags and
// manifest revisions the repository held when its deletion began.
type RepositoryDeleted struct {
	Name      string
	Tags      int
	Manifests int
}

// tombstones is a Registry's view of the repositories being deleted.
type tombstones struct {
	rmax time.Duration
	// set holds the names being deleted: those found in storage at the
	// last refresh and those this process is deleting. Read on every
	// request, replaced whole on change.
	set atomic.Pointer[map[string]bool]
	// refreshed is when the last successful refresh began (with the
	// monotonic clock); nil before the first.
	refreshed atomic.Pointer[time.Time]
	// running is set once RunRepositoryDeletes keeps the view fresh;
	// without it the process is the only writer it knows of (tests, the
	// command line) and never re-reads on a write.
	running atomic.Bool

	mu     sync.Mutex
	stored map[string]tombstone  // found at the last refresh, by name
	local  map[string]*deleteRun // deletions this process runs, by name
	// starting serialises the start of deletions of one name.
	starting keyedMutex
	refresh  sync.Mutex // one refresh at a time
}

type deleteRun struct {
	tomb tombstone
	done chan struct{}
	err  error
}

func newTombstones(rmax time.Duration) *tombstones {
	if rmax <= 0 {
		rmax = DefaultTombstoneRefresh
	}
	t := &tombstones{rmax: rmax, stored: map[string]tombstone{}, local: map[string]*deleteRun{}}
	t.set.Store(&map[string]bool{})
	return t
}

// publishLocked rebuilds the set from stored and local; t.mu is held.
func (t *tombstones) publishLocked() {
	m := make(map[string]bool, len(t.stored)+len(t.local))
	for n := range t.stored {
		m[n] = true
	}
	for n := range t.local {
		m[n] = true
	}
	t.set.Store(&m)
}

// deleting reports whether the repository name is being deleted, as far
// as this process knows: a map lookup.
func (r *Registry) deleting(name string) bool {
	m := *r.tombs.set.Load()
	return len(m) > 0 && m[name]
}

func errRepoDeleting(name string) error {
	return errcode.Newf(errcode.NameUnknown, "repository %s is being deleted", clip(name)).WithDetail(map[string]string{"name": clip(name)})
}

// CheckWritable refuses a write to a repository being deleted. When the
// view of the tombstones is older than Rmax (a refresh failed or is slow)
// it is read again first, so that no instance writes into a repository
// whose deletion it has not seen for longer than Rmax.
func (r *Registry) CheckWritable(ctx context.Context, name string) error {
	t := r.tombs
	if t.running.Load() {
		if last := t.refreshed.Load(); last == nil || time.Since(*last) > t.rmax {
			if err := r.refreshTombstones(ctx, false); err != nil {
				return errcode.Newf(errcode.Unavailable, "cannot tell whether repository %s is being deleted", clip(name)).WithRetryAfter(5 * time.Second).Wrap(err)
			}
		}
	}
	if r.deleting(name) {
		return errRepoDeleting(name)
	}
	return nil
}

// refreshTombstones re-reads the tombstones. Unless always, a refresh
// that began less than Rmax/2 ago (by another caller, meanwhile) is
// enough.
func (r *Registry) refreshTombstones(ctx context.Context, always bool) error {
	t := r.tombs
	t.refresh.Lock()
	defer t.refresh.Unlock()
	if last := t.refreshed.Load(); !always && last != nil && time.Since(*last) <= t.rmax/2 {
		return nil // another caller refreshed while this one waited
	}
	start := time.Now()
	ps, err := r.driver.List(ctx, tombstonesRoot())
	if isNotFound(err) {
		ps, err = nil, nil
	}
	if err != nil {
		return err
	}
	stored := make(map[string]tombstone, len(ps))
	for _, p := range ps {
		tb, ok, err := r.readTombstoneAt(ctx, p)
		if err != nil {
			return err
		}
		if ok {
			stored[tb.Name] = tb
		}
	}
	t.mu.Lock()
	t.stored = stored
	t.publishLocked()
	t.mu.Unlock()
	t.refreshed.Store(&start)
	return nil
}

// readTombstoneAt reads the tombstone file at p; ok is false when it is
// gone or is not a tombstone registryd wrote for the name it hashes.
func (r *Registry) readTombstoneAt(ctx context.Context, p string) (tombstone, bool, error) {
	b, err := r.driver.GetContent(ctx, p)
	if isNotFound(err) {
		return tombstone{}, false, nil
	}
	if err != nil {
		return tombstone{}, false, err
	}
	var tb tombstone
	if json.Unmarshal(b, &tb) != nil || ValidateName(tb.Name) != nil || tombstonePath(tb.Name) != p {
		return tombstone{}, false, nil
	}
	return tb, true, nil
}

func (r *Registry) writeTombstone(ctx context.Context, tb tombstone) error {
	b, err := json.Marshal(tb)
	if err != nil {
		return err
	}
	return r.driver.PutContent(ctx, tombstonePath(tb.Name), b)
}

// hasOwnState reports whether anything of the repository's own is stored
// (what a delete removes); a directory holding only nested repositories
// has none.
func (r *Registry) hasOwnState(ctx context.Context, name string) (bool, error) {
	children, err := r.driver.List(ctx, repoPath(name))
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		if fi, serr := r.driver.Stat(ctx, repoPath(name)); serr == nil && !fi.IsDir() {
			return false, nil
		}
		return false, err
	}
	own := map[string]bool{}
	for _, d := range repoOwnDirs(name) {
		own[d] = true
	}
	for _, c := range children {
		if own[c] {
			return true, nil
		}
	}
	return false, nil
}

// DeleteRepository deletes the repository name (see the top of this file)
// and returns what it held. It returns once the repository is gone; should
// ctx end first, the deletion goes on in the background (and, should the
// process stop, another instance or the next start finishes it). A name
// with nothing stored and no deletion under way is NAME_UNKNOWN; a second
// delete while one is under way joins it.
func (r *Registry) DeleteRepository(ctx context.Context, name string) (RepositoryDeleted, error) {
	if err := ValidateName(name); err != nil {
		return RepositoryDeleted{}, err
	}
	run, err := r.startDelete(ctx, name, nil)
	if err != nil {
		return RepositoryDeleted{}, err
	}
	select {
	case <-run.done:
	case <-ctx.Done():
		return RepositoryDeleted{}, ctx.Err()
	}
	res := RepositoryDeleted{Name: name, Tags: run.tomb.Tags, Manifests: run.tomb.Manifests}
	return res, storageErr(run.err)
}

// startDelete writes the tombstone of a new deletion run of name, or
// joins the one this process runs. takeover is the tombstone of a
// deletion another owner abandoned, to take over; nil starts a new one.
func (r *Registry) startDelete(ctx context.Context, name string, takeover *tombstone) (*deleteRun, error) {
	t := r.tombs
	unlock := t.starting.Lock(name)
	defer unlock()
	t.mu.Lock()
	if run := t.local[name]; run != nil {
		t.mu.Unlock()
		return run, nil
	}
	t.mu.Unlock()

	now := r.now().UTC()
	self := LocalInstance()
	tb := tombstone{Name: name, Owner: uuid.NewString(), Started: now, Renewed: now,
		Hostname: self.Hostname, PID: self.PID, PIDNamespace: self.PIDNamespace, Process: processToken}
	if takeover != nil {
		tb.Started, tb.Tags, tb.Manifests = takeover.Started, takeover.Tags, takeover.Manifests
	} else {
		old, found, err := r.readTombstoneAt(ctx, tombstonePath(name))
		if err != nil {
			return nil, storageErr(err)
		}
		if found && !abandoned(old, r.now()) {
			// Under way on another instance: wait for it.
			return r.joinRemote(ctx, old)
		}
		if found {
			// Abandoned: a new run from the start.
			tb.Started, tb.Tags, tb.Manifests = old.Started, old.Tags, old.Manifests
		} else {
			has, err := r.hasOwnState(ctx, name)
			if err != nil {
				return nil, storageErr(err)
			}
			if !has {
				return nil, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": name})
			}
			repo := &Repository{reg: r, name: name}
			tags, err := repo.allTags(ctx)
			if err != nil {
				return nil, err
			}
			manifests := 0
			if err := repo.Revisions(ctx, func(digest.Digest) error { manifests++; return nil }); err != nil {
				return nil, err
			}
			tb.Tags, tb.Manifests = len(tags), manifests
		}
	}
	liveOwners.Store(tb.Owner, true)
	if err := r.writeTombstone(ctx, tb); err != nil {
		liveOwners.Delete(tb.Owner)
		return nil, storageErr(err)
	}
	run := &deleteRun{tomb: tb, done: make(chan struct{})}
	t.mu.Lock()
	t.local[name] = run
	t.publishLocked()
	t.mu.Unlock()
	r.pulls.forget(name, "")
	go r.runDelete(run)
	return run, nil
}

// joinRemote returns a run that ends when another instance's deletion
// of tb's name does (its tombstone goes, or is abandoned and taken over
// here), or when ctx ends.
func (r *Registry) joinRemote(ctx context.Context, tb tombstone) (*deleteRun, error) {
	run := &deleteRun{tomb: tb, done: make(chan struct{})}
	r.tombs.mu.Lock()
	r.tombs.stored[tb.Name] = tb
	r.tombs.publishLocked()
	r.tombs.mu.Unlock()
	go func() {
		defer close(run.done)
		tick := time.NewTicker(r.tombs.rmax / 2)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				run.err = ctx.Err()
				return
			case <-tick.C:
			}
			cur, found, err := r.readTombstoneAt(ctx, tombstonePath(tb.Name))
			if err != nil {
				continue
			}
			if !found {
				return
			}
			if abandoned(cur, r.now()) {
				taken, err := r.startDelete(ctx, tb.Name, &cur)
				if err != nil {
					run.err = err
					return
				}
				<-taken.done
				run.err = taken.err
				return
			}
		}
	}()
	return run, nil
}

// errNotOwner stops a deletion run whose tombstone is gone or was taken
// over.
var errNotOwner = errors.New("repository delete: the tombstone is gone or has another owner")

// runDelete carries out the deletion of run's tombstone: two passes Rmax
// apart, then the tombstone's removal.
func (r *Registry) runDelete(run *deleteRun) {
	ctx := context.Background()
	tb := run.tomb
	stopRenew := make(chan struct{})
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		tick := time.NewTicker(tombstoneRenew)
		defer tick.Stop()
		for {
			select {
			case <-stopRenew:
				return
			case <-tick.C:
			}
			if r.checkOwner(ctx, tb) != nil {
				return
			}
			renewed := tb
			renewed.Renewed = r.now().UTC()
			_ = r.writeTombstone(ctx, renewed) // retried at the next tick
		}
	}()
	err := func() error {
		for pass := 0; pass < 2; pass++ {
			time.Sleep(r.tombs.rmax)
			if err := r.deletePass(ctx, tb); err != nil {
				return err
			}
		}
		if err := r.checkOwner(ctx, tb); err != nil {
			return err
		}
		if err := r.driver.Delete(ctx, tombstonePath(tb.Name)); err != nil && !isNotFound(err) {
			return err
		}
		return driver.Flush(ctx, r.driver, tombstonesRoot())
	}()
	close(stopRenew)
	<-renewDone
	liveOwners.Delete(tb.Owner)
	if err == nil {
		r.dropSizes(tb.Name)
	} else {
		r.invalidateSizes(tb.Name)
	}
	_ = r.noteChange(ctx, tb.Name, nil, true)
	// After a failure the tombstone is still there (or another owner's
	// is): the name stays refused here until a refresh says otherwise.
	cur, found := tb, err != nil
	if errors.Is(err, errNotOwner) {
		var rerr error
		cur, found, rerr = r.readTombstoneAt(ctx, tombstonePath(tb.Name))
		if rerr != nil {
			cur, found = tb, true
		}
	}
	t := r.tombs
	t.mu.Lock()
	delete(t.local, tb.Name)
	if found {
		t.stored[tb.Name] = cur
	} else {
		delete(t.stored, tb.Name)
	}
	t.publishLocked()
	t.mu.Unlock()
	run.err = err
	if r.deleteHook != nil {
		r.deleteHook("done", tb.Name)
	}
	close(run.done)
}

// deletePass removes the repository's own directories once.
func (r *Registry) deletePass(ctx context.Context, tb tombstone) error {
	// The catalog index's marker is unsure before revisions go and again
	// after (catalogindex.go): no push confirms one this pass removes,
	// and readers recheck the layout once the pass is done.
	if err := r.unsure(ctx, tb.Name); err != nil {
		return err
	}
	for _, dir := range repoOwnDirs(tb.Name) {
		if err := r.checkOwner(ctx, tb); err != nil {
			return err
		}
		if r.deleteHook != nil {
			r.deleteHook("remove", dir)
		}
		if err := r.driver.Delete(ctx, dir); err != nil && !isNotFound(err) {
			return err
		}
	}
	// Removals are not durable on return on the filesystem: the next
	// step (the second pass's end, the tombstone's removal) must not
	// reach the disk before them.
	if err := driver.Flush(ctx, r.driver, repoPath(tb.Name), path.Join(repoPath(tb.Name), "_manifests")); err != nil {
		return err
	}
	return r.unsure(ctx, tb.Name)
}

// checkOwner fails with errNotOwner unless tb is still the tombstone of
// its name.
func (r *Registry) checkOwner(ctx context.Context, tb tombstone) error {
	cur, ok, err := r.readTombstoneAt(ctx, tombstonePath(tb.Name))
	if err != nil {
		return err
	}
	if !ok || cur.Owner != tb.Owner {
		return errNotOwner
	}
	return nil
}

// processToken identifies this process among those that had its pid.
var processToken = uuid.NewString()

// liveOwners holds the owners of the deletion runs going on in this
// process (of any Registry in it).
var liveOwners sync.Map

// abandoned reports whether the owner of tb is gone: a run of this
// process that ended, a process of this host that no longer runs (or an
// earlier process with this process's pid, in a container restarted),
// or an owner that has not renewed it for tombstoneStale.
func abandoned(tb tombstone, now time.Time) bool {
	if now.Sub(tb.Renewed) > tombstoneStale {
		return true
	}
	if tb.Process == processToken {
		_, live := liveOwners.Load(tb.Owner)
		return !live
	}
	self := LocalInstance()
	if tb.Hostname == self.Hostname && tb.PIDNamespace == self.PIDNamespace && tb.PID > 0 {
		return tb.PID == self.PID || ProcessGone(tb.PID)
	}
	return false
}

// StartRepositoryDeletes reads the tombstones once (so that the process
// knows every deletion under way before it serves), takes over those
// whose owner is gone, and then keeps the view fresh every Rmax/2 until
// ctx is done, taking over abandoned deletions as it finds them. errf, if
// not nil, is told of failures after the first read.
func (r *Registry) StartRepositoryDeletes(ctx context.Context, errf func(error)) error {
	if err := r.refreshTombstones(ctx, true); err != nil {
		return err
	}
	r.tombs.running.Store(true)
	r.resumeAbandoned(ctx, errf)
	go func() {
		tick := time.NewTicker(r.tombs.rmax / 2)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				r.tombs.running.Store(false)
				return
			case <-tick.C:
			}
			if err := r.refreshTombstones(ctx, true); err != nil {
				if errf != nil && ctx.Err() == nil {
					errf(err)
				}
				continue
			}
			r.resumeAbandoned(ctx, errf)
		}
	}()
	return nil
}

// resumeAbandoned takes over the deletions whose owner is gone.
func (r *Registry) resumeAbandoned(ctx context.Context, errf func(error)) {
	t := r.tombs
	t.mu.Lock()
	var todo []tombstone
	now := r.now()
	for name, tb := range t.stored {
		if t.local[name] == nil && abandoned(tb, now) {
			todo = append(todo, tb)
		}
	}
	t.mu.Unlock()
	for _, tb := range todo {
		if _, err := r.startDelete(ctx, tb.Name, &tb); err != nil && errf != nil {
			errf(err)
		}
	}
}

// RepositoriesBeingDeleted lists the names whose deletion is under way, as
// this process knows them.
func (r *Registry) RepositoriesBeingDeleted() []string {
	m := *r.tombs.set.Load()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	return out
}
