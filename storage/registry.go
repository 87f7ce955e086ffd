// Package storage is the registry's logic over a storage driver: blobs,
// resumable uploads, manifests, tags, referrers and the catalog, laid out as
// distribution lays them out so that data directories are interchangeable
// with the reference registry. It knows nothing of HTTP; its errors carry the
// OCI error code the client should see.
//
// It also keeps what the reference does not: push and pull times
// (times.go), repository deletes (repodelete.go), and an index of sizes
// that know about deduplication (sizes.go: logical, unique and exclusive
// bytes of a repository, a prefix, the registry). The index reads each
// manifest once and keeps per repository its live set; a request costs a
// revisions listing per repository in scope (a memory read on a watched
// filesystem, a LIST on S3) and arithmetic, about 100 bytes of memory per
// distinct digest plus 4 per digest per repository holding it. Its
// figures include this process's changes at once and other instances'
// within 30 seconds.
package storage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// Options tune a Registry.
type Options struct {
	// ManifestCacheBytes bounds the in-memory cache of manifest bodies by
	// digest. Content under a digest never changes, so the cache needs no
	// invalidation while the links that make it visible are checked on
	// every request. 0 selects 32 MiB; negative disables the cache.
	ManifestCacheBytes int64
	// MaxManifestBytes bounds a manifest body; 0 selects 4 MiB, the least
	// the specification asks registries to accept.
	MaxManifestBytes int64
	// BlobURL, when set, gives a URL where a client can download the
	// content at a driver path directly from the backend (a presigned S3
	// URL); Repository.BlobURL uses it for redirects.
	BlobURL func(ctx context.Context, path string) (string, error)
	// NoDirWatch keeps the listing caches from watching directories
	// (driver.DirWatcher): for one-shot commands (garbage-collect), which
	// read each directory once and should leave the per-user watch limit
	// to the serving registry. The caches then validate by directory times.
	NoDirWatch bool
	// GCStateMaxAge bounds how old this registry's copy of the online
	// collector's state may be when a write relies on it (Rmax, see
	// gcprotocol.go): 0 selects DefaultGCStateMaxAge; negative turns the
	// protocol off, for one-shot commands that serve no writes.
	GCStateMaxAge time.Duration
	// GCHooks are pause points for tests of the protocol; nil otherwise.
	GCHooks *GCHooks
	// ReadOnly says the server accepts no writes: the registry then starts
	// none of its own either (a build of the catalog index).
	ReadOnly bool
	// NoCatalogIndex keeps the catalog from using (and pushes from
	// maintaining) the index of repository names kept on drivers that
	// list trees a page at a time (catalogindex.go); for tests.
	NoCatalogIndex bool
	// NoStaged writes every blob through an upload and its commit's
	// move, also where the driver could stage it at its final path
	// (direct.go); for tests that compare the two ways.
	NoStaged bool
	// TrackPulls records the last pull of every manifest (times.go);
	// RunPullFlusher writes what it notes.
	TrackPulls bool
	// Now is the clock of push and pull times; nil is time.Now.
	Now func() time.Time
	// TombstoneRefresh is Rmax of repository deletes (repodelete.go):
	// how old this registry's view of the repositories being deleted may
	// be when it serves a write. 0 selects DefaultTombstoneRefresh.
	TombstoneRefresh time.Duration
	// SizesDeleteUntagged counts sizes as a collection with
	// DeleteUntagged would (sizes.go): only tagged manifests and what
	// they reach are alive. Without it every revision is.
	SizesDeleteUntagged bool
}

// DefaultMaxManifestBytes is the spec's minimum manifest size a registry must accept.
const DefaultMaxManifestBytes = 4 << 20

// Registry is the storage logic of one registry over one driver. It holds no
// state that other instances over the same storage would need: everything
// that must survive a restart or be seen by another instance lives in the
// driver.
type Registry struct {
	driver      driver.StorageDriver
	manifests   *contentCache
	maxManifest int64

	// uploadLocks serialise requests on one upload within this process; two
	// PATCHes racing on one upload would otherwise interleave their bytes.
	uploadLocks keyedMutex

	// lists caches the listings of large directories (see listcache.go).
	lists *listCache
	// repos caches what the catalog knows of each repository directory
	// (see repocache.go).
	repos *repoCache
	// noDirTimes is set once the driver shows a directory without a
	// modification time (S3): no listing can then be cached or validated,
	// and the caches skip their stats.
	noDirTimes atomic.Bool
	// watcher tells when directories change (driver.DirWatcher), so that
	// the caches validate listings without a stat; nil when the driver
	// cannot, or once a Sync failed (then directory times serve, as
	// without it).
	watcher    driver.DirWatcher
	dirChanges driver.DirChanges // the watcher's, when it has them
	watchBroke atomic.Bool

	blobURL func(ctx context.Context, path string) (string, error)

	// gcp is this registry's side of online garbage collection's
	// protocol (gcprotocol.go); nil when off.
	gcp *gcProtocol

	noStaged bool // Options.NoStaged

	// index is the catalog's index of repository names on object stores
	// (catalogindex.go); nil elsewhere.
	index *catalogIndex

	// pulls holds the pulls not yet written; nil when they are not
	// recorded.
	pulls *pullTracker
	now   func() time.Time

	// tombs is the view of the repositories being deleted.
	tombs *tombstones
	// sizes is the index of sizes (sizes.go).
	sizes *sizeIndex
	// names and pushes are the indexes of repository names and of tags
	// in push order (nameindex.go, pushorder.go); changes is this
	// process's side of the change log that keeps them current across
	// instances (changelog.go).
	names   *nameIndex
	pushes  *pushIndexes
	changes *changeLog
	// deleteHook, in tests, is called at each step of a repository
	// delete; nil in production.
	deleteHook func(step, arg string)
}

// New returns a Registry over d.
func New(d driver.StorageDriver, opts Options) *Registry {
	cacheBytes := opts.ManifestCacheBytes
	if cacheBytes == 0 {
		cacheBytes = 32 << 20
	}
	maxManifest := opts.MaxManifestBytes
	if maxManifest <= 0 {
		maxManifest = DefaultMaxManifestBytes
	}
	r := &Registry{
		driver:      d,
		manifests:   newContentCache(cacheBytes),
		maxManifest: maxManifest,
		lists:       newListCache(2 << 20),
		repos:       newRepoCache(1 << 20),
		blobURL:     opts.BlobURL,
		noStaged:    opts.NoStaged,
		now:         opts.Now,
		tombs:       newTombstones(opts.TombstoneRefresh),
		sizes:       newSizeIndex(opts.SizesDeleteUntagged),
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.names, r.pushes, r.changes = newNameIndex(), newPushIndexes(), newChangeLog(time.Now)
	if opts.TrackPulls {
		r.pulls = &pullTracker{}
	}
	// Through wrappers (metrics): watching costs no storage request, so
	// there is nothing for them to time.
	if w, ok := driver.As[driver.DirWatcher](d); ok && !opts.NoDirWatch {
		r.watcher = w
		r.dirChanges, _ = driver.As[driver.DirChanges](d)
	}
	r.gcp = newGCProtocol(r, opts.GCStateMaxAge, opts.GCHooks)
	// Drivers that list trees a page at a time and cannot watch
	// directories (object stores) get the catalog index.
	if t, ok := driver.As[driver.TreeLister](d); ok && r.watcher == nil && !opts.NoCatalogIndex {
		r.index = newCatalogIndex(r, t)
		r.index.noAutoBuild = opts.ReadOnly
	}
	return r
}

// syncWatches is the consistency barrier of the watched caches: called
// once at the start of a request that reads through them, it makes every
// change completed before the request show in the directories' versions
// (see driver.DirWatcher). Should it fail, the caches stop trusting
// versions for good and validate by directory times, as they do for
// directories that are not watched.
func (r *Registry) syncWatches(ctx context.Context) {
	if r.watcher == nil || r.watchBroke.Load() {
		return
	}
	if err := r.watcher.Sync(ctx); err != nil {
		r.watchBroke.Store(true)
	}
}

// watch starts watching the directory at p, before it is read, and returns
// the version the read is kept under; ok is false when p is not watched
// (validate by its time then).
func (r *Registry) watch(ctx context.Context, p string) (uint64, bool) {
	if r.watcher == nil || r.watchBroke.Load() {
		return 0, false
	}
	return r.watcher.Watch(ctx, p)
}

// unchanged reports whether the watched directory at p still has version
// v (0: none kept).
// watchChanges is the watcher's change counter (driver.DirChanges), zero
// when unknown (no counter, nothing watched, watching broken).
func (r *Registry) watchChanges() uint64 {
	if r.dirChanges == nil || r.watchBroke.Load() {
		return 0
	}
	return r.dirChanges.Changes()
}

func (r *Registry) unchanged(p string, v uint64) bool {
	if v == 0 || r.watcher == nil || r.watchBroke.Load() {
		return false
	}
	cur, ok := r.watcher.DirVersion(p)
	return ok && cur == v
}

// Driver returns the underlying storage driver (for garbage collection and
// health checks, which work below the registry logic).
func (r *Registry) Driver() driver.StorageDriver { return r.driver }

// MaxManifestBytes is the largest manifest body accepted.
func (r *Registry) MaxManifestBytes() int64 { return r.maxManifest }

// Repository is one repository of a Registry. Obtaining one validates the
// name; it does not require the repository to exist.
type Repository struct {
	reg  *Registry
	name string
}

// Repository returns the repository called name, after validating the
// name; a repository being deleted is NAME_UNKNOWN.
func (r *Registry) Repository(name string) (*Repository, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	// A repository being deleted is unknown to every request (a map
	// lookup, repodelete.go).
	if r.deleting(name) {
		return nil, errRepoDeleting(name)
	}
	return &Repository{reg: r, name: name}, nil
}

// Name is the repository's name.
func (repo *Repository) Name() string { return repo.name }

// Exists reports whether anything of the repository's own is stored
// (tags, revisions, layer links, uploads): a directory that only holds
// nested repositories ("team" of "team/app"), or what a repository delete
// left, is not a repository.
func (repo *Repository) Exists(ctx context.Context) (bool, error) {
	ok, err := repo.reg.hasOwnState(ctx, repo.name)
	return ok, storageErr(err)
}

// readLink reads a link file: a digest, as distribution writes it.
func (r *Registry) readLink(ctx context.Context, p string) (digest.Digest, error) {
	b, err := r.driver.GetContent(ctx, p)
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", errcode.Newf(errcode.Unknown, "corrupt link file").Wrap(err)
	}
	return d, nil
}

func (r *Registry) writeLink(ctx context.Context, p string, d digest.Digest) error {
	return r.driver.PutContent(ctx, p, []byte(d.String()))
}

// storageErr turns a driver failure that has no OCI code into an UNKNOWN
// error that keeps the cause for the log, or a fault of the storage (full,
// throttled, unreachable) into 503 UNAVAILABLE (faults.go). nil stays nil.
func storageErr(err error) error {
	if e := unavailable(err); e != nil {
		return e
	}
	if err == nil || errcode.From(err) != nil {
		return err
	}
	return errcode.New(errcode.Unknown).Wrap(err)
}

func isNotFound(err error) bool { return errors.Is(err, driver.ErrPathNotFound) }

// keyedMutex hands out one mutex per key and forgets it when unused.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
