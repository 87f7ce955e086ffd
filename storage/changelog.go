package storage

// The change log: how the registryd instances sharing a storage tell each
// other which repositories they changed, so that the in-memory indexes of
// every instance (the repository names, nameindex.go; each repository's
// tags in push order, pushorder.go) show another instance's push at their
// next request, however large the store, without reading it all again.
//
// Directory versions (inotify) and modification times cannot do it alone
// at scale: 100,000 repositories need about 300,000 watched directories,
// more than a machine lets one user have by default (half of
// fs.inotify.max_user_watches is 96,273 on the 24 GiB benchmark machine),
// and a stat of each unwatched one costs 5 to 15 µs there, so checking
// every repository costs most of a second per request. And a push that
// moves an existing tag changes no directory listing at all.
//
// So every change a Registry makes to a repository's tags or revisions (a
// manifest or tag pushed or deleted, revisions removed by retention or a
// collection, a repository deleted) ends, before it is acknowledged, with
// one small file
//
//	_registryd/changes/<time>-<writer>-<seq>
//
// naming the repository and, when only some of its tags changed, those
// tags (JSON, changeEntry). The name sorts by time (16 hex digits of Unix
// nanoseconds); <writer> is the Registry (random), <seq> its counter. It
// is written as scratch (no fsync): a machine crash that loses it restarts
// every instance on that machine, whose indexes start empty; an instance
// on another machine (NFS) sees the change by its background pass
// instead (nameindex.go).
//
// A reader lists the directory at the start of a request that uses an
// index (through the listing cache: a memory read on a watched filesystem
// while nothing changed, else a stat and, when it changed, a listing; a
// LIST on S3), reads the entries it has not seen that are not its own,
// and marks what they name for its indexes to read again. Any instance
// removes entries older than changeLogTTL (RunIndexes). A reader that has
// not listed the log for changeLogGap may have missed entries removed
// meanwhile, so it marks everything its indexes hold for reading again;
// RunIndexes lists the log every changeLogPoll, so a serving registry
// never gets there. Entries carry the writer's clock; clocks may differ
// by up to changeLogTTL - changeLogGap (2 minutes) between instances.
//
// Cost: one small write per change (tens of µs on a local disk without
// its fsync; a PUT on S3); per indexed request, the log's listing check,
// and a read per entry of another instance's. The log holds changeLogTTL
// of changes: 30,000 entries at 100 changes a second, a listing of about
// 10 ms then, read again at each request while changes keep coming. The
// reader keeps the last listing (the listing cache's own slice).
//
// Writers that are not registryd (the reference registry, a restore, hand
// edits) write no entries: the indexes see their changes through
// directory versions and times, at once while that is cheap, or within
// their background pass (nameindex.go, pushorder.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/registryd/registryd/storage/driver"
)

const (
	// changeLogTTL is how long an entry stays in the log.
	changeLogTTL = 5 * time.Minute
	// changeLogGap is how long a reader may go without listing the log
	// before it must assume it missed entries.
	changeLogGap = 3 * time.Minute
	// changeLogPoll is how often RunIndexes lists the log (and so how
	// stale an idle instance's view may be, which the next request's own
	// listing makes good).
	changeLogPoll = 30 * time.Second
)

// changeEntry is the content of a change log entry.
type changeEntry struct {
	Repository string `json:"repository"`
	// Tags are the tags that were pushed or deleted; AllTags says any may
	// have changed (a repository deleted). Either way the repository's
	// place in the catalog is checked again.
	Tags    []string `json:"tags,omitempty"`
	AllTags bool     `json:"allTags,omitempty"`
}

// changeLog is a Registry's side of the log.
type changeLog struct {
	writer string // this Registry's part of entry names
	seq    atomic.Uint64

	mu       sync.Mutex // serialises readers
	seen     []string   // the listing last read, sorted
	syncedAt time.Time  // when it was read; zero before the first read
	now      func() time.Time
}

func newChangeLog(now func() time.Time) *changeLog {
	return &changeLog{writer: strings.ReplaceAll(uuid.NewString(), "-", "")[:12], now: now}
}

// noteChange records that this Registry changed the repository: its
// revisions or its place in the catalog, the tags named, or with allTags
// any tag. Its indexes read them again at their next use, and an entry in
// the change log tells the other instances. Called once the change is
// made, before it is acknowledged. Callers ignore its error: the change
// itself is durable, and an entry that could not be written (a full disk)
// leaves the other instances to their periodic re-reads, whose bounds
// docs/admin-api.md states; failing the request would have the client
// retry a change that is already made.
func (r *Registry) noteChange(ctx context.Context, name string, tags []string, allTags bool) error {
	r.markChanged(name, tags, allTags)
	c := r.changes
	b, err := json.Marshal(changeEntry{Repository: name, Tags: tags, AllTags: allTags})
	if err != nil {
		return err
	}
	entry := fmt.Sprintf("%016x-%s-%x", c.now().UnixNano(), c.writer, c.seq.Add(1))
	// Entries are scratch: see the top of this file. The request's
	// cancellation must not leave a change untold once it is made.
	wctx := driver.WithScratch(context.WithoutCancel(ctx), changesRoot())
	return storageErr(r.driver.PutContent(wctx, path.Join(changesRoot(), entry), b))
}

// markChanged marks the repository for the indexes to read again: its
// place in the catalog, and the tags named (allTags: every tag).
func (r *Registry) markChanged(name string, tags []string, allTags bool) {
	r.names.mark(name)
	if allTags {
		r.pushes.mark(name, nil)
	} else if len(tags) > 0 {
		r.pushes.mark(name, tags)
	}
}

// markAllChanged marks everything the indexes hold.
func (r *Registry) markAllChanged() {
	r.names.markAll()
	r.pushes.markAll()
}

// syncChanges reads the entries of the change log that appeared since the
// last call and marks what they name. The first call only notes the
// entries there are: the indexes are built after it, from the store.
func (r *Registry) syncChanges(ctx context.Context) error {
	c := r.changes
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	ps, err := r.list(ctx, changesRoot())
	if isNotFound(err) {
		ps, err = nil, nil
	}
	if err != nil {
		return storageErr(err)
	}
	switch {
	case len(ps) == len(c.seen) && (len(ps) == 0 || &ps[0] == &c.seen[0]) && now.Sub(c.syncedAt) <= changeLogGap:
		// The listing cache's own slice: nothing new.
	case c.syncedAt.IsZero():
	case now.Sub(c.syncedAt) > changeLogGap:
		// Entries may have come and gone unseen.
		r.markAllChanged()
	default:
		fresh := newEntries(c.seen, ps, "-"+c.writer+"-")
		entries := make([]changeEntry, len(fresh))
		ok := make([]bool, len(fresh))
		err := parallel(ctx, len(fresh), func(i int) error {
			b, err := r.driver.GetContent(ctx, fresh[i])
			if isNotFound(err) {
				return nil // removed meanwhile: older than the TTL
			}
			if err != nil {
				return storageErr(err)
			}
			ok[i] = json.Unmarshal(b, &entries[i]) == nil && ValidateName(entries[i].Repository) == nil
			return nil
		})
		if err != nil {
			return err
		}
		for i, e := range entries {
			if ok[i] {
				r.markChanged(e.Repository, e.Tags, e.AllTags)
				r.invalidateSizes(e.Repository)
			}
		}
	}
	c.seen, c.syncedAt = ps, now
	return nil
}

// newEntries returns the paths in cur (sorted) that are not in prev
// (sorted) and are not this writer's own (containing own).
func newEntries(prev, cur []string, own string) []string {
	var out []string
	i := 0
	for _, p := range cur {
		for i < len(prev) && prev[i] < p {
			i++
		}
		if i < len(prev) && prev[i] == p {
			continue
		}
		if !strings.Contains(path.Base(p), own) {
			out = append(out, p)
		}
	}
	return out
}

// cleanChanges removes the entries older than changeLogTTL, by their
// names' times.
func (r *Registry) cleanChanges(ctx context.Context) error {
	ps, err := r.driver.List(ctx, changesRoot())
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cutoff := r.changes.now().Add(-changeLogTTL).UnixNano()
	var old []string
	for _, p := range ps {
		var t int64
		if _, err := fmt.Sscanf(path.Base(p), "%016x-", &t); err != nil || t < cutoff {
			// A name that does not parse is not an entry of ours: it goes
			// too, or it would stay for good.
			old = append(old, p)
		}
	}
	return parallel(ctx, len(old), func(i int) error {
		if err := r.driver.Delete(ctx, old[i]); err != nil && !isNotFound(err) {
			return err
		}
		return nil
	})
}
