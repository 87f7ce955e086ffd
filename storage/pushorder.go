package storage

// The push-order index: per repository, its tags with their digests and
// push times, sorted newest push first, so that a page of tags in push
// order (the admin API's and the web UI's sort=pushed), a repository's
// tag count and its last push cost the page, not a read of every tag.
// Reading one tag's push time costs two small reads (its current link and
// its push record, times.go): 10,000 tags took 0.2 to 0.9 s per page.
//
// A repository's entry is built on first use from every tag, then kept
// current at each use:
//
//   - tags created or deleted by anyone: the tags directory's listing,
//     through the listing cache (a version compared on a watched
//     filesystem, a stat elsewhere), is compared with the one the entry
//     was built from, and the difference read;
//   - tags this process pushed or deleted, and, through the change log
//     (changelog.go), those of every other registryd instance: marked by
//     name and read again at the next use;
//   - in a repository of at most pushStatTags tags, every tag is also
//     checked by a stat of its current link (its time and size), so that
//     any writer's change shows at once there, as it did when every tag
//     was read each time;
//   - in a larger one, a tag moved by a writer that is not registryd (the
//     reference registry rewrites the link in place, which changes no
//     listing and writes no log entry) shows after the entry's next full
//     read, which a use starts in the background once it is pushMaxAge
//     old.
//
// Memory: about 130 bytes per tag (the entry, its map entry and its place
// in the order; digests shared between a repository's tags are held once),
// bounded by maxPushTags (about 35 MB) over all repositories: past it the
// least recently used repositories are dropped and built again when next
// used.

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
)

const (
	// pushMaxAge is how old a larger repository's full read may get
	// before a use starts another in the background.
	pushMaxAge = time.Minute
	// maxPushTags bounds the tags held over all repositories.
	maxPushTags = 1 << 18
)

// pushStatTags: repositories with at most this many tags are checked tag
// by tag at every use (a stat each). A variable for the tests, which set
// it to 0 to check the change log alone.
var pushStatTags = 256

type pushIndexes struct {
	// pmu guards the marks, which writers and the change log set.
	pmu    sync.Mutex
	marked map[string]*pushMark
	gen    uint64 // moved by markAll: entries built before are dropped

	mu    sync.Mutex // guards repos and tags
	repos map[string]*pushOrder
	tags  int // tags held over all entries
	seq   atomic.Uint64
}

type pushMark struct {
	all  bool
	tags map[string]bool
}

// pushOrder is one repository's entry.
type pushOrder struct {
	mu     sync.Mutex               // serialises its refreshes
	snap   atomic.Pointer[pushSnap] // nil until built; stored under mu
	gen    uint64                   // pushIndexes.gen when built
	usedAt atomic.Int64
	// fullAt is when every tag was last read (its seq: fullSeq);
	// refreshing is set while a background full read runs.
	fullAt     time.Time
	refreshing bool
}

// pushSnap is an entry's content at one time; never changed once made.
type pushSnap struct {
	listing []string            // the tags directory's listing it reflects
	byName  map[string]*pushTag // every tag
	order   []*pushTag          // newest push first, unknown times last, ties by name
}

type pushTag struct {
	name   string
	digest digest.Digest
	pushed int64  // UnixNano; 0 unknown
	pos    int32  // index in order
	seq    uint64 // pushIndexes.seq when it was read
	// linkMod and linkSize are the current link's when read (kept for
	// repositories checked tag by tag).
	linkMod, linkSize int64
}

func newPushIndexes() *pushIndexes {
	return &pushIndexes{repos: map[string]*pushOrder{}}
}

// mark notes that tags of the repository changed (none: any of them).
func (px *pushIndexes) mark(name string, tags []string) {
	px.pmu.Lock()
	defer px.pmu.Unlock()
	if px.marked == nil {
		px.marked = map[string]*pushMark{}
	}
	m := px.marked[name]
	if m == nil {
		m = &pushMark{}
		px.marked[name] = m
	}
	if len(tags) == 0 {
		m.all, m.tags = true, nil
		return
	}
	if m.all {
		return
	}
	if m.tags == nil {
		m.tags = map[string]bool{}
	}
	for _, t := range tags {
		m.tags[t] = true
	}
}

// markAll notes that anything may have changed.
func (px *pushIndexes) markAll() {
	px.pmu.Lock()
	px.gen++
	px.marked = nil
	px.pmu.Unlock()
}

// take returns and clears the repository's mark, and the generation.
func (px *pushIndexes) take(name string) (*pushMark, uint64) {
	px.pmu.Lock()
	defer px.pmu.Unlock()
	m := px.marked[name]
	delete(px.marked, name)
	return m, px.gen
}

// entry returns the repository's entry, made if needed.
func (px *pushIndexes) entry(name string) *pushOrder {
	px.mu.Lock()
	defer px.mu.Unlock()
	po := px.repos[name]
	if po == nil {
		po = &pushOrder{}
		px.repos[name] = po
	}
	po.usedAt.Store(time.Now().UnixNano())
	return po
}

// account notes that an entry went from old to now tags, and drops the
// least recently used entries (not keep) once more than maxPushTags are
// held.
func (px *pushIndexes) account(keep *pushOrder, old, now int) {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.tags += now - old
	if px.tags <= maxPushTags {
		return
	}
	type aged struct {
		name string
		at   int64
	}
	var all []aged
	for name, po := range px.repos {
		if po != keep {
			all = append(all, aged{name, po.usedAt.Load()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at < all[j].at })
	for _, a := range all {
		if px.tags <= maxPushTags*3/4 {
			break
		}
		po := px.repos[a.name]
		delete(px.repos, a.name)
		// Its size is read without its lock: a refresh under way adds
		// its own difference, and the total is an estimate for the bound.
		if s := po.snap.Load(); s != nil {
			px.tags -= len(s.order)
		}
	}
}

// pushOrder returns the repository's tags in push order, brought up to
// date (see the top of the file). A repository that does not exist is
// NAME_UNKNOWN.
func (repo *Repository) pushOrder(ctx context.Context) (*pushSnap, error) {
	if err := repo.reg.syncIndexes(ctx); err != nil {
		return nil, err
	}
	return repo.pushOrderSynced(ctx)
}

// pushOrderSynced is pushOrder once the caller has called syncIndexes
// (a page of summaries does it once for all its repositories).
func (repo *Repository) pushOrderSynced(ctx context.Context) (*pushSnap, error) {
	r := repo.reg
	listing, err := r.list(ctx, tagsRoot(repo.name))
	if err != nil && !isNotFound(err) {
		return nil, storageErr(err)
	}
	if len(listing) == 0 {
		ok, err := repo.Exists(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": repo.name})
		}
	}
	px := r.pushes
	po := px.entry(repo.name)
	po.mu.Lock()
	defer po.mu.Unlock()
	mark, gen := px.take(repo.name)
	old := po.snap.Load()
	if old != nil && (po.gen != gen || (mark != nil && mark.all)) {
		old = nil
	}
	var snap *pushSnap
	if old == nil {
		snap, err = repo.readPushSnap(ctx, listing)
		if err != nil {
			return nil, err
		}
		po.fullAt, po.gen = time.Now(), gen
	} else {
		var marked map[string]bool
		if mark != nil {
			marked = mark.tags
		}
		snap, err = repo.updatePushSnap(ctx, old, listing, marked)
		if err != nil {
			// The marks are not lost: what they named is read again.
			px.mark(repo.name, nil)
			return nil, err
		}
	}
	if prevSnap := po.snap.Load(); snap != prevSnap {
		prev := 0
		if prevSnap != nil {
			prev = len(prevSnap.order)
		}
		po.snap.Store(snap)
		px.account(po, prev, len(snap.order))
	}
	if len(snap.order) > pushStatTags && time.Since(po.fullAt) > pushMaxAge && !po.refreshing {
		po.refreshing = true
		go repo.refreshPushOrder(context.WithoutCancel(ctx), po)
	}
	return snap, nil
}

// tagsOf returns the valid tag names of a tags directory listing.
func tagsOf(listing []string) []string {
	tags := make([]string, 0, len(listing))
	for _, p := range listing {
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			if t := p[i+1:]; ValidTag(t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// readPushSnap reads every tag of listing.
func (repo *Repository) readPushSnap(ctx context.Context, listing []string) (*pushSnap, error) {
	tags := tagsOf(listing)
	read, err := repo.readPushTags(ctx, tags, len(tags) <= pushStatTags)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*pushTag, len(read))
	for _, t := range read {
		byName[t.name] = t
	}
	return newPushSnap(listing, byName), nil
}

// readPushTags reads the named tags (leaving out those that have no
// current link), with their links' times and sizes when stat is set.
func (repo *Repository) readPushTags(ctx context.Context, tags []string, stat bool) ([]*pushTag, error) {
	r := repo.reg
	seq := r.pushes.seq.Add(1)
	out := make([]*pushTag, len(tags))
	digests := map[digest.Digest]digest.Digest{}
	var mu sync.Mutex
	err := parallel(ctx, len(tags), func(i int) error {
		t := &pushTag{name: tags[i], seq: seq}
		if stat {
			// Before the read: a change after it moves the time past the
			// one kept.
			fi, err := r.driver.Stat(ctx, tagCurrentPath(repo.name, tags[i]))
			if isNotFound(err) {
				return nil
			}
			if err != nil {
				return storageErr(err)
			}
			t.linkMod, t.linkSize = fi.ModTime().UnixNano(), fi.Size()
		}
		info, found, err := repo.readTagPush(ctx, tags[i])
		if err != nil || !found {
			return err
		}
		mu.Lock()
		if d, ok := digests[info.Digest]; ok {
			info.Digest = d // one string per digest
		} else {
			digests[info.Digest] = info.Digest
		}
		mu.Unlock()
		t.digest = info.Digest
		if !info.Pushed.IsZero() {
			t.pushed = info.Pushed.UnixNano()
		}
		out[i] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(t *pushTag) bool { return t == nil }), nil
}

// newPushSnap orders byName's tags.
func newPushSnap(listing []string, byName map[string]*pushTag) *pushSnap {
	order := make([]*pushTag, 0, len(byName))
	for _, t := range byName {
		order = append(order, t)
	}
	sort.Slice(order, func(i, j int) bool { return pushedBefore(order[i], order[j]) })
	for i, t := range order {
		t.pos = int32(i)
	}
	return &pushSnap{listing: listing, byName: byName, order: order}
}

// pushedBefore: a was pushed after b (it comes first), unknown times
// last, ties by name.
func pushedBefore(a, b *pushTag) bool {
	if a.pushed != b.pushed {
		if a.pushed == 0 || b.pushed == 0 {
			return b.pushed == 0
		}
		return a.pushed > b.pushed
	}
	return a.name < b.name
}

// updatePushSnap brings old up to date with listing and the marked tags,
// returning old itself when nothing changed.
func (repo *Repository) updatePushSnap(ctx context.Context, old *pushSnap, listing []string, marked map[string]bool) (*pushSnap, error) {
	sameListing := len(listing) == len(old.listing) && (len(listing) == 0 || &listing[0] == &old.listing[0] || slices.Equal(listing, old.listing))
	var removed []string
	reread := map[string]bool{}
	for t := range marked {
		reread[t] = true
	}
	tags := tagsOf(listing)
	if !sameListing {
		present := make(map[string]bool, len(tags))
		for _, t := range tags {
			present[t] = true
			if old.byName[t] == nil {
				reread[t] = true
			}
		}
		for t := range old.byName {
			if !present[t] {
				removed = append(removed, t)
				delete(reread, t)
			}
		}
	}
	stat := len(tags) <= pushStatTags
	if stat {
		// Tag by tag: a stat of each current link, compared with the one
		// read; one changed less than racyWindow ago is read again, as
		// its time may not have moved on a second change.
		changed := make([]bool, len(tags))
		now := time.Now()
		err := parallel(ctx, len(tags), func(i int) error {
			t := old.byName[tags[i]]
			if t == nil {
				return nil
			}
			fi, err := repo.reg.driver.Stat(ctx, tagCurrentPath(repo.name, tags[i]))
			if isNotFound(err) {
				changed[i] = true
				return nil
			}
			if err != nil {
				return storageErr(err)
			}
			mod := fi.ModTime()
			changed[i] = mod.UnixNano() != t.linkMod || fi.Size() != t.linkSize || mod.IsZero() || now.Sub(mod) < racyWindow
			return nil
		})
		if err != nil {
			return nil, err
		}
		for i, c := range changed {
			if c {
				reread[tags[i]] = true
			}
		}
	}
	if len(reread) == 0 && len(removed) == 0 {
		if sameListing {
			return old, nil
		}
		return &pushSnap{listing: listing, byName: old.byName, order: old.order}, nil
	}
	names := make([]string, 0, len(reread))
	for t := range reread {
		names = append(names, t)
	}
	read, err := repo.readPushTags(ctx, names, stat)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*pushTag, len(old.byName)+len(read))
	for t, e := range old.byName {
		byName[t] = e
	}
	for _, t := range removed {
		delete(byName, t)
	}
	for _, t := range names {
		delete(byName, t) // re-added below if it still has a current link
	}
	for _, t := range read {
		byName[t.name] = t
	}
	// Reading kept no position: the order is made again (10,000 tags:
	// about a millisecond).
	fresh := make(map[string]*pushTag, len(byName))
	for name, t := range byName {
		c := *t
		fresh[name] = &c
	}
	return newPushSnap(listing, fresh), nil
}

// refreshPushOrder reads every tag of the repository again, in the
// background, and applies what it read to the entry unless the entry read
// that tag again meanwhile.
func (repo *Repository) refreshPushOrder(ctx context.Context, po *pushOrder) {
	defer func() {
		po.mu.Lock()
		po.refreshing = false
		po.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	started := time.Now()
	listing, err := repo.reg.list(ctx, tagsRoot(repo.name))
	if err != nil {
		return
	}
	seq := repo.reg.pushes.seq.Load()
	read, err := repo.readPushTags(ctx, tagsOf(listing), false)
	if err != nil {
		return
	}
	po.mu.Lock()
	defer po.mu.Unlock()
	old := po.snap.Load()
	if old == nil {
		return
	}
	byName := make(map[string]*pushTag, len(old.byName))
	changed := false
	for name, t := range old.byName {
		c := *t
		byName[name] = &c
	}
	for _, t := range read {
		cur := byName[t.name]
		if cur == nil || cur.seq > seq {
			continue // gone since, or read again since: the entry knows better
		}
		if cur.digest != t.digest || cur.pushed != t.pushed {
			cur.digest, cur.pushed, cur.seq = t.digest, t.pushed, t.seq
			changed = true
		}
	}
	po.fullAt = started
	if changed {
		po.snap.Store(newPushSnap(old.listing, byName))
	}
}

// TagInfosByPush is a page of the repository's tags in push order, newest
// first (unknown times last, ties by name): up to n tags after last (a tag
// name; an unknown one has nothing after it), with their digests and
// times, and whether more follow. From the push-order index: a page
// costs its pull times, not a read of every tag.
func (repo *Repository) TagInfosByPush(ctx context.Context, last string, n int) ([]TagInfo, bool, error) {
	snap, err := repo.pushOrder(ctx)
	if err != nil {
		return nil, false, err
	}
	start := 0
	if last != "" {
		start = len(snap.order)
		if t := snap.byName[last]; t != nil {
			start = int(t.pos) + 1
		}
	}
	end := len(snap.order)
	if n >= 0 {
		end = min(end, start+n)
	}
	infos := make([]TagInfo, 0, end-start)
	for _, t := range snap.order[start:end] {
		infos = append(infos, t.info())
	}
	infos, err = repo.withPullTimes(ctx, infos)
	return infos, end < len(snap.order), err
}

func (t *pushTag) info() TagInfo {
	in := TagInfo{Name: t.name, Digest: t.digest}
	if t.pushed != 0 {
		in.Pushed = time.Unix(0, t.pushed).UTC()
	}
	return in
}

// pushSummarySynced is the repository's tag count and last push, from
// the push-order index; the caller has called syncIndexes.
func (repo *Repository) pushSummarySynced(ctx context.Context) (int, time.Time, error) {
	snap, err := repo.pushOrderSynced(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(snap.order) == 0 || snap.order[0].pushed == 0 {
		return len(snap.order), time.Time{}, nil
	}
	return len(snap.order), time.Unix(0, snap.order[0].pushed).UTC(), nil
}
