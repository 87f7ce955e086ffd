// The offline collector (Run): it removes, from a storage that no
// writable registry is serving, what nothing live references. See doc.go
// for the mark it shares with the online collector.
//
// # Safe by construction
//
// A collection has two phases. Mark reads every repository and builds the
// set of digests that must stay: the roots (every revision, or only the
// tagged manifests with DeleteUntagged), the children of live indexes, the
// config and layers of live manifests, and, to a fixpoint, the referrers of
// live manifests. Nothing is removed until the mark of every repository
// has completed without error; a failure in mark returns with the storage
// untouched. A live root whose content is missing or corrupt is such a
// failure: what it references cannot be known.
//
// Sweep then removes, in this order: untagged revisions that are not live
// (DeleteUntagged), repository links to blobs that are not marked, blobs
// that are not marked, old uploads. Links go before the content they point
// at, so at every moment each remaining link names existing content, and a
// crash at any point leaves a storage whose live images are whole: sweep
// only ever removes what mark found to be garbage, in any order. When a
// removal fails, what it was to remove is marked live instead (a revision
// that could not be removed keeps its blobs), so the rest of the sweep stays
// consistent with what is still linked.
//
// Removals are not synced one by one. The phases are barriers: every
// revision and link removal has returned, and the directories they were
// removed from have been synced (driver.Flusher), before the first blob is
// removed. So a crash, whatever it undoes of the unsynced removals, leaves
// every surviving link naming content that survives too: revisions and
// links that come back are garbage the next run removes, and a blob that
// is gone had no link left. Within a phase the order does not matter, since
// everything a phase removes is garbage.
//
// # Concurrency
//
// Storage calls run on Options.Workers workers: the mark of each
// repository, the removal of each repository's revisions and links, each
// blob's removal. Their results are finished one at a time in the order of
// a sequential walk, so the report, the dry run's list and the error that
// stops a phase are the same whatever the number of workers (only after a
// failed removal may a concurrent run keep a little more than a sequential
// one). Enumeration reads names only; a blob is looked at only when it is
// garbage.
//
// Memory is proportional to the number of live digests (the global mark
// set) plus, for a bounded number of repositories at a time, their
// revisions; blobs are streamed.

package gc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
)

// Options tune a collection.
type Options struct {
	// DryRun removes nothing; the report lists exactly what a real run
	// would remove.
	DryRun bool
	// DeleteUntagged removes manifest revisions that no tag reaches (not
	// tagged, not a child of a live index, not a referrer of a live
	// manifest), and then the blobs only they referenced. Without it every
	// revision is live.
	DeleteUntagged bool
	// UploadsOlderThan removes uploads started longer ago than this; 0
	// leaves uploads alone.
	UploadsOlderThan time.Duration
	// Progress receives a progress line every ProgressEvery; nil is quiet.
	Progress io.Writer
	// ProgressEvery is the progress period; 0 selects 5s.
	ProgressEvery time.Duration
	// ListRemoved fills Report.Removed on a real run too (a dry run always
	// fills it).
	ListRemoved bool
	// Guard, when set, is called before mark, before the sweep starts,
	// before each kind of removal and every few seconds while removing;
	// an error stops the collection there. The command uses it to stop as
	// soon as a writable registry starts serving the storage.
	Guard func(ctx context.Context) error
	// Workers is how many storage operations run at once (per-repository
	// mark, removals); 0 selects DefaultWorkers. Whatever the number, the
	// collection removes, records and reports exactly what a run with one
	// worker does, in the same order.
	Workers int
}

// DefaultWorkers is the default Options.Workers. A collection spends its
// time in file system calls (kernel time, the disk queue) or requests to
// an object store, which overlap well beyond the number of cores.
const DefaultWorkers = 16

// Kind is the kind of a removed item.
type Kind string

// Kinds of removed items.
const (
	KindManifest  Kind = "manifest"   // a revision of a repository
	KindLayerLink Kind = "layer-link" // a repository's link to a blob
	KindBlob      Kind = "blob"       // content in the store
)

// Item is one thing removed (or that a dry run would remove).
type Item struct {
	Kind       Kind
	Repository string // "" for blobs
	Digest     digest.Digest
	Size       int64 // bytes, for blobs
}

func (it Item) String() string {
	switch it.Kind {
	case KindManifest:
		return fmt.Sprintf("manifest   %s@%s", it.Repository, it.Digest)
	case KindLayerLink:
		return fmt.Sprintf("layer link %s -> %s", it.Repository, it.Digest)
	default:
		return fmt.Sprintf("blob       %s (%s)", it.Digest, FormatBytes(it.Size))
	}
}

// Report is what a collection did (or, dry, would do).
type Report struct {
	DryRun            bool
	DeleteUntagged    bool
	Repositories      int // repositories found
	ManifestsMarked   int // live manifests, counted per repository
	BlobsMarked       int // distinct live digests: manifests, configs, layers
	ManifestsRemoved  int // revisions removed (DeleteUntagged)
	LayerLinksRemoved int
	BlobsRemoved      int
	BytesReclaimed    int64 // size of the removed blobs
	UploadsRemoved    int
	Duration          time.Duration
	// Removed lists every removed item in the order of removal (dry run,
	// or ListRemoved). Uploads are only counted.
	Removed []Item
	// Warnings are problems that did not stop the collection: children of
	// live indexes that are missing from the store (a sparse index) or
	// corrupt. A root (a tagged manifest, or any revision without
	// DeleteUntagged) that cannot be read stops the collection instead,
	// since what it references cannot be known.
	Warnings []string
}

// Summary formats the report's counters for people.
func (r Report) Summary() string {
	var b strings.Builder
	verb := "removed"
	if r.DryRun {
		verb = "would be removed"
		b.WriteString("garbage collection, dry run: nothing was removed\n")
	} else {
		b.WriteString("garbage collection complete\n")
	}
	line := func(label, value string) { fmt.Fprintf(&b, "  %-30s %s\n", label+":", value) }
	line("repositories", fmt.Sprint(r.Repositories))
	line("manifests marked", fmt.Sprint(r.ManifestsMarked))
	line("blobs marked", fmt.Sprint(r.BlobsMarked))
	if r.DeleteUntagged {
		line("manifests "+verb, fmt.Sprint(r.ManifestsRemoved))
	}
	line("layer links "+verb, fmt.Sprint(r.LayerLinksRemoved))
	line("blobs "+verb, fmt.Sprintf("%d (%s)", r.BlobsRemoved, FormatBytes(r.BytesReclaimed)))
	line("uploads "+verb, fmt.Sprint(r.UploadsRemoved))
	line("duration", r.Duration.Round(time.Millisecond).String())
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	return b.String()
}

// FormatBytes formats a size with binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// guardEvery is how often Guard is consulted while removing.
const guardEvery = 5 * time.Second

// collector is the state of one Run.
type collector struct {
	reg  *storage.Registry
	opts Options
	// hooks are the online collector's test pause points (nil offline).
	hooks *Hooks

	// marks is the global mark set: every digest something live needs.
	marks markSet
	// broken are live roots whose references cannot be read: the marks
	// are incomplete while there is one.
	broken []error
	// pending are the revisions to remove, by repository, in walk order.
	pending []pendingRevisions
	// flush is what removals changed, by repository, to be made durable
	// before blobs are removed.
	flush map[string]*flushSet

	mu       sync.Mutex // guards removed, warnings and phase
	removed  []Item
	warnings []string
	phase    string

	repos, manifestsMarked, blobsMarked          atomic.Int64
	manifestsRemoved, linksRemoved, blobsRemoved atomic.Int64
	bytesReclaimed, uploadsRemoved               atomic.Int64
	lastGuard                                    time.Time
}

// flushSet is what a repository had removed, as much as FlushRemovals
// needs: one digest per algorithm, since the directories removals leave
// changed are per algorithm.
type flushSet struct {
	repo            *storage.Repository
	links, revision []digest.Digest
}

// touched notes removals from repo, for flushRemovals. It runs in finish
// functions, one at a time.
func (c *collector) touched(repo *storage.Repository, links bool, ds ...digest.Digest) {
	if c.opts.DryRun || len(ds) == 0 {
		return
	}
	if c.flush == nil {
		c.flush = make(map[string]*flushSet)
	}
	fs := c.flush[repo.Name()]
	if fs == nil {
		fs = &flushSet{repo: repo}
		c.flush[repo.Name()] = fs
	}
	list := &fs.revision
	if links {
		list = &fs.links
	}
	for _, d := range ds {
		if !slices.ContainsFunc(*list, func(x digest.Digest) bool { return x.Algorithm() == d.Algorithm() }) {
			*list = append(*list, d)
		}
	}
}

// flushRemovals makes the removals noted by touched durable, repositories
// on the workers.
func (c *collector) flushRemovals(ctx context.Context) error {
	names := make([]string, 0, len(c.flush))
	for n := range c.flush {
		names = append(names, n)
	}
	sort.Strings(names)
	var (
		mu   sync.Mutex
		errs []error
	)
	p := newPool(c.workers())
	for _, n := range names {
		fs := c.flush[n]
		_ = p.submit(func() {
			if err := fs.repo.FlushRemovals(ctx, fs.links, fs.revision); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", fs.repo.Name(), err))
				mu.Unlock()
			}
		}, nil)
	}
	_ = p.wait()
	c.flush = nil
	return errors.Join(errs...)
}

type pendingRevisions struct {
	repo    *storage.Repository
	digests []digest.Digest
}

// Run collects garbage in reg. It returns the report of what was done even
// when it fails; the error joins every failure. See the package comment for
// the guarantees.
func Run(ctx context.Context, reg *storage.Registry, opts Options) (Report, error) {
	start := time.Now()
	c := &collector{reg: reg, opts: opts, phase: "starting"}
	stop := c.startProgress(start)
	err := c.run(ctx)
	stop()
	rep := Report{
		DryRun:            opts.DryRun,
		DeleteUntagged:    opts.DeleteUntagged,
		Repositories:      int(c.repos.Load()),
		ManifestsMarked:   int(c.manifestsMarked.Load()),
		BlobsMarked:       int(c.blobsMarked.Load()),
		ManifestsRemoved:  int(c.manifestsRemoved.Load()),
		LayerLinksRemoved: int(c.linksRemoved.Load()),
		BlobsRemoved:      int(c.blobsRemoved.Load()),
		BytesReclaimed:    c.bytesReclaimed.Load(),
		UploadsRemoved:    int(c.uploadsRemoved.Load()),
		Duration:          time.Since(start),
		Warnings:          c.warnings,
	}
	if opts.DryRun || opts.ListRemoved {
		rep.Removed = c.removed
	}
	return rep, err
}

// markAll is the mark, shared by both collectors: every repository's
// live manifests and what they reference go into the mark set, and (with
// DeleteUntagged) the revisions nothing live reaches into c.pending. The
// set is frozen when it returns without error.
func (c *collector) markAll(ctx context.Context) error {
	c.setPhase("marking")
	// Each repository is marked on a worker; the results are merged in
	// walk order, so that the pending revisions, warnings and the error
	// that stops the mark are those of a sequential walk.
	p := newPool(c.workers())
	werr := c.reg.WalkRepositories(ctx, func(repo *storage.Repository) error {
		var res repoMark
		return p.submit(func() { res = c.markRepo(ctx, repo) }, func() error { return c.merge(repo, &res) })
	})
	if err := errors.Join(p.wait(), werr); err != nil {
		return fmt.Errorf("gc: mark failed, nothing was removed: %w", err)
	}
	if len(c.broken) > 0 {
		return fmt.Errorf("gc: nothing was removed: %d live manifests cannot be read, so what they reference is unknown; "+
			"restore their content, or delete them (or the tags pointing at them), then run again:\n%w",
			len(c.broken), errors.Join(c.broken...))
	}
	c.marks.freeze()
	c.blobsMarked.Store(int64(c.markCount()))
	return nil
}

func (c *collector) run(ctx context.Context) error {
	if err := c.guard(ctx, true); err != nil {
		return err
	}
	if err := c.markAll(ctx); err != nil {
		return err
	}
	if err := c.guard(ctx, true); err != nil {
		return fmt.Errorf("gc: nothing was removed: %w", err)
	}

	var errs []error
	// 1. Revisions. A batch that fails is marked live again before any
	// blob goes, so that whatever is left of it keeps its content.
	c.setPhase("removing manifests")
	// errRemark stops the removals: the mark set is no longer known to be
	// complete.
	errRemark := errors.New("remark failed")
	pool := newPool(c.workers())
	var stopErr error
	for _, pr := range c.pending {
		if err := c.guard(ctx, false); err != nil {
			stopErr = err
			break
		}
		var rerr error
		run := func() {
			// After a failed remark nothing more is removed (a task
			// already running finishes, unrecorded).
			if !c.opts.DryRun && pool.failed() == nil {
				rerr = pr.repo.RemoveRevisions(ctx, pr.digests)
			}
		}
		finish := func() error {
			if rerr != nil {
				errs = append(errs, fmt.Errorf("gc: removing manifests of %s: %w", pr.repo.Name(), rerr))
				if err := c.remark(ctx, pr); err != nil {
					errs = append(errs, fmt.Errorf("gc: no blob was removed: %w", err))
					return errRemark
				}
				return nil
			}
			c.manifestsRemoved.Add(int64(len(pr.digests)))
			c.record(manifestItems(pr)...)
			c.touched(pr.repo, false, pr.digests...)
			return nil
		}
		if pool.submit(run, finish) != nil {
			break
		}
	}
	if err := pool.wait(); err != nil {
		return errors.Join(errs...)
	}
	if stopErr != nil {
		return errors.Join(append(errs, stopErr)...)
	}
	c.pending = nil
	c.blobsMarked.Store(int64(c.markCount()))

	// 2. Layer links to blobs that are about to go. A link that cannot be
	// removed keeps its blob.
	c.setPhase("removing layer links")
	if err := c.guard(ctx, true); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// One task per repository: it lists the repository's links and
	// removes those to unmarked blobs; what it removed is recorded in walk
	// order.
	pool = newPool(c.workers())
	err := c.reg.WalkRepositories(ctx, func(repo *storage.Repository) error {
		if err := c.guard(ctx, false); err != nil {
			return err
		}
		var (
			gone   []digest.Digest
			failed []digest.Digest
			ferrs  []error
			lerr   error
		)
		run := func() {
			lerr = repo.LayerLinks(ctx, func(d digest.Digest) error {
				if c.marked(d) {
					return nil
				}
				if !c.opts.DryRun {
					if err := repo.UnlinkLayer(ctx, d); err != nil {
						ferrs = append(ferrs, fmt.Errorf("gc: unlinking %s from %s: %w", d, repo.Name(), err))
						failed = append(failed, d)
						// Keep its blob. Marked at once: another
						// repository's link to d, if not yet reached,
						// stays too (it would be harmless either way,
						// as d's content stays).
						c.markLive(d)
						return nil
					}
				}
				gone = append(gone, d)
				return nil
			})
		}
		finish := func() error {
			errs = append(errs, ferrs...)
			for _, d := range gone {
				c.linksRemoved.Add(1)
				c.record(Item{Kind: KindLayerLink, Repository: repo.Name(), Digest: d})
			}
			c.touched(repo, true, gone...)
			return lerr
		}
		return pool.submit(run, finish)
	})
	err = errors.Join(pool.wait(), err)
	if err != nil {
		// Links that were not reached still point at their blobs: no blob
		// may go.
		errs = append(errs, fmt.Errorf("gc: removing layer links, no blob was removed: %w", err))
		return errors.Join(errs...)
	}

	// Removals are not synced one by one (a sync per removal would cost
	// more than the removal). Before the first blob goes, the removals of
	// revisions, tags and links are made durable, one sync per directory
	// they were removed from, so that whatever a crash from here on undoes,
	// no link that survives it names a blob that does not: the worst a
	// crash leaves is garbage for the next run.
	if !c.opts.DryRun {
		if err := c.flushRemovals(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gc: making the removal of links durable, no blob was removed: %w", err))
			return errors.Join(errs...)
		}
	}

	// 3. Blobs.
	c.setPhase("removing blobs")
	if err := c.guard(ctx, true); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// The walk lists the content store's directories only; each unmarked
	// blob is sized (the report counts its bytes) and removed on a worker.
	pool = newPool(c.workers())
	err = c.reg.WalkBlobDigests(ctx, func(d digest.Digest) error {
		if c.marked(d) {
			return nil
		}
		if err := c.guard(ctx, false); err != nil {
			return err
		}
		var (
			size int64
			ok   bool
			berr error
		)
		run := func() {
			size, ok, berr = c.reg.BlobDataSize(ctx, d)
			if berr != nil || !ok || c.opts.DryRun {
				return
			}
			if err := c.reg.DeleteBlobContent(ctx, d); err != nil {
				berr = fmt.Errorf("gc: removing blob %s: %w", d, err)
			}
		}
		finish := func() error {
			switch {
			case berr != nil:
				errs = append(errs, berr)
			case ok:
				c.blobsRemoved.Add(1)
				c.bytesReclaimed.Add(size)
				c.record(Item{Kind: KindBlob, Digest: d, Size: size})
			}
			return nil
		}
		return pool.submit(run, finish)
	})
	err = errors.Join(pool.wait(), err)
	if err != nil {
		errs = append(errs, fmt.Errorf("gc: removing blobs: %w", err))
	}

	// 4. Uploads.
	if c.opts.UploadsOlderThan > 0 && ctx.Err() == nil {
		c.setPhase("removing uploads")
		n, err := c.reg.PurgeUploads(ctx, time.Now().Add(-c.opts.UploadsOlderThan), c.opts.DryRun)
		c.uploadsRemoved.Store(int64(n))
		if err != nil {
			errs = append(errs, fmt.Errorf("gc: removing uploads: %w", err))
		}
	}
	c.setPhase("done")
	return errors.Join(errs...)
}

func manifestItems(p pendingRevisions) []Item {
	out := make([]Item, len(p.digests))
	for i, d := range p.digests {
		out[i] = Item{Kind: KindManifest, Repository: p.repo.Name(), Digest: d}
	}
	return out
}

// repoMark is what marking one repository found, merged into the
// collector in walk order.
type repoMark struct {
	err       error
	marks     []digest.Digest // live manifests and the blobs they reference
	manifests int             // live manifests
	broken    []error
	warnings  []string
	dead      []digest.Digest // revisions to remove (DeleteUntagged)
}

// merge adds what markRepo found to the collector; its error stops the
// mark.
func (c *collector) merge(repo *storage.Repository, res *repoMark) error {
	if res.err != nil {
		return res.err
	}
	for _, d := range res.marks {
		c.mark(d)
	}
	c.manifestsMarked.Add(int64(res.manifests))
	c.broken = append(c.broken, res.broken...)
	for _, w := range res.warnings {
		c.warn(w)
	}
	if len(res.dead) > 0 {
		c.pending = append(c.pending, pendingRevisions{repo: repo, digests: res.dead})
	}
	return nil
}

// markRepo finds what one repository keeps live, and the revisions it no
// longer needs (DeleteUntagged). It runs on a worker: it reads the storage
// and touches nothing shared but counters.
func (c *collector) markRepo(ctx context.Context, repo *storage.Repository) (res repoMark) {
	c.repos.Add(1)
	if c.hooks != nil && c.hooks.BeforeMarkRepo != nil {
		c.hooks.BeforeMarkRepo(ctx, repo.Name())
	}
	tags, err := repo.TagsAndTargets(ctx)
	if err != nil {
		res.err = err
		return res
	}
	// Roots: the tagged manifests. A tag whose target is not a revision
	// (it cannot be pulled) still protects what the target references:
	// keeping too much is the safe mistake.
	var roots []digest.Digest
	for _, d := range tags {
		roots = append(roots, d)
	}
	sortDigests(roots)

	var revisions []digest.Digest
	// subject -> referrers among the revisions; only needed when some
	// revisions may die.
	referrers := make(map[digest.Digest][]digest.Digest)
	err = repo.Revisions(ctx, func(d digest.Digest) error {
		revisions = append(revisions, d)
		if !c.opts.DeleteUntagged {
			return nil
		}
		refs, problem, err := c.references(ctx, d)
		if err != nil {
			return err
		}
		if problem == nil && refs.Subject != "" {
			referrers[refs.Subject] = append(referrers[refs.Subject], d)
		}
		return nil
	})
	if err != nil {
		res.err = fmt.Errorf("repository %s: %w", repo.Name(), err)
		return res
	}
	if !c.opts.DeleteUntagged {
		roots = append(roots, revisions...)
	}

	// A root must be readable: it can be pulled (or a tag says it should
	// be), and what it references is only known from its content. A child
	// of an index may be absent (a sparse index from the reference
	// registry); a referrer was read above.
	rootSet := make(map[digest.Digest]struct{}, len(roots))
	for _, d := range roots {
		rootSet[d] = struct{}{}
	}
	live := make(map[digest.Digest]struct{}, len(roots))
	work := roots
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		if _, ok := live[d]; ok {
			continue
		}
		live[d] = struct{}{}
		res.manifests++
		res.marks = append(res.marks, d)
		refs, problem, err := c.references(ctx, d)
		if err != nil {
			res.err = fmt.Errorf("repository %s: %w", repo.Name(), err)
			return res
		}
		if problem != nil {
			if _, ok := rootSet[d]; ok {
				res.broken = append(res.broken, fmt.Errorf("%s@%s: %w", repo.Name(), d, problem))
			} else {
				res.warnings = append(res.warnings, fmt.Sprintf("%s@%s (in a live index): %v", repo.Name(), d, problem))
			}
		} else {
			res.marks = append(res.marks, refs.Blobs...)
			work = append(work, refs.Manifests...)
		}
		// Referrers of a live manifest are live, and theirs in turn.
		work = append(work, referrers[d]...)
	}

	if c.opts.DeleteUntagged {
		for _, d := range revisions {
			if _, ok := live[d]; !ok {
				res.dead = append(res.dead, d)
			}
		}
		sortDigests(res.dead)
	}
	return res
}

// remark marks the revisions of a batch whose removal failed, and what
// they reference, so that none of them loses content.
func (c *collector) remark(ctx context.Context, p pendingRevisions) error {
	work := append([]digest.Digest(nil), p.digests...)
	seen := make(map[digest.Digest]struct{})
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		if _, ok := seen[d]; ok {
			continue
		}
		seen[d] = struct{}{}
		c.mark(d)
		refs, problem, err := c.references(ctx, d)
		if err != nil {
			return err
		}
		if problem == nil {
			for _, b := range refs.Blobs {
				c.mark(b)
			}
			work = append(work, refs.Manifests...)
		}
	}
	return nil
}

// references reads what manifest d references. problem is set when its
// content is missing or corrupt: what it references cannot be known (and it
// cannot be pulled). Any other failure is an error, which stops the mark.
func (c *collector) references(ctx context.Context, d digest.Digest) (refs storage.References, problem, err error) {
	b, err := c.reg.ManifestContent(ctx, d)
	if err == nil {
		refs, err = storage.ParseReferences(b)
		if err == nil {
			return refs, nil, nil
		}
	}
	switch {
	case storage.ErrNotFound(err):
		return refs, errors.New("manifest content is missing from the store"), nil
	case errors.Is(err, storage.ErrCorruptContent):
		return refs, err, nil
	default:
		return refs, nil, fmt.Errorf("reading manifest %s: %w", d, err)
	}
}

func (c *collector) mark(d digest.Digest) {
	if c.marks.add(d) {
		c.blobsMarked.Add(1)
	}
}

// markLive marks d without counting it as a marked blob: a removal that
// failed keeps it.
func (c *collector) markLive(d digest.Digest) { c.marks.add(d) }

func (c *collector) marked(d digest.Digest) bool { return c.marks.contains(d) }

func (c *collector) markCount() int { return c.marks.len() }

// markSet is the mark: while marking, a storage.DigestSetBuilder (a
// sorted array, about 33 bytes per live digest however many times each is
// reached: ~32 MiB for a million live blobs and manifests); once frozen,
// the built set plus the few digests marked afterwards (content a failed
// removal keeps), which workers add and read concurrently.
type markSet struct {
	mu    sync.Mutex
	b     storage.DigestSetBuilder
	set   *storage.DigestSet
	extra map[digest.Digest]struct{}
}

// add marks d. Before the freeze it reports true (the builder counts
// duplicates once it is built); after, whether d is new.
func (m *markSet) add(d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		m.b.Add(d, 1)
		return false
	}
	if m.set.Contains(d) {
		return false
	}
	if _, ok := m.extra[d]; ok {
		return false
	}
	if m.extra == nil {
		m.extra = make(map[digest.Digest]struct{})
	}
	m.extra[d] = struct{}{}
	return true
}

func (m *markSet) freeze() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		m.set = m.b.Build()
	}
}

func (m *markSet) contains(d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		m.set = m.b.Build()
	}
	if m.set.Contains(d) {
		return true
	}
	_, ok := m.extra[d]
	return ok
}

// len is the number of marked digests (before the freeze an estimate).
func (m *markSet) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		return m.b.Estimate()
	}
	return m.set.Len() + len(m.extra)
}

// frozen returns the set built at the freeze (without later additions).
func (m *markSet) frozen() *storage.DigestSet {
	m.freeze()
	return m.set
}

func (c *collector) workers() int {
	if c.opts.Workers > 0 {
		return c.opts.Workers
	}
	return DefaultWorkers
}

func (c *collector) record(items ...Item) {
	if !c.opts.DryRun && !c.opts.ListRemoved {
		return
	}
	c.mu.Lock()
	c.removed = append(c.removed, items...)
	c.mu.Unlock()
}

func (c *collector) warn(w string) {
	c.mu.Lock()
	c.warnings = append(c.warnings, w)
	c.mu.Unlock()
}

func (c *collector) setPhase(p string) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

// guard consults Options.Guard: always with force, otherwise at most every
// guardEvery.
func (c *collector) guard(ctx context.Context, force bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.opts.Guard == nil || c.opts.DryRun {
		return nil
	}
	if !force && time.Since(c.lastGuard) < guardEvery {
		return nil
	}
	c.lastGuard = time.Now()
	return c.opts.Guard(ctx)
}

// startProgress prints a line every ProgressEvery until the returned
// function is called; that function returns once printing has stopped.
func (c *collector) startProgress(start time.Time) func() {
	if c.opts.Progress == nil {
		return func() {}
	}
	every := c.opts.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			c.mu.Lock()
			phase := c.phase
			c.mu.Unlock()
			fmt.Fprintf(c.opts.Progress, "gc: %s: %d repositories, %d manifests and %d blobs marked; removed %d manifests, %d layer links, %d blobs (%s) [%s]\n",
				phase, c.repos.Load(), c.manifestsMarked.Load(), c.markCount(),
				c.manifestsRemoved.Load(), c.linksRemoved.Load(), c.blobsRemoved.Load(),
				FormatBytes(c.bytesReclaimed.Load()), time.Since(start).Round(time.Second))
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

func sortDigests(ds []digest.Digest) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
}
