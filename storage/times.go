package storage

// Push and pull times, recorded by the registry itself.
//
// Push: every manifest PUT that names a tag writes the tag's _pushed
// record, {digest, pushed}, in the tag's directory (paths.go), before it
// writes the tag's current link. Written in that order, a tag delete
// racing the push either removes both or leaves a whole tag: the record is
// never left alone in a directory the tag list would show. A record is
// trusted only while the tag still points at the digest it names; a tag
// moved by the reference registry (which writes no record), or a store it
// wrote, falls back to the modification time of the tag's current link,
// which is when the reference last wrote it.
//
// Pull: a GET or HEAD of a manifest (by tag or by digest; HEAD counts,
// since a client that has the image asks only that before using it) is
// noted in memory: a lock-free map lookup and, at most once a second per
// manifest, an atomic store. Nothing is written on the request path. A
// flusher (RunPullFlusher) writes each manifest pulled since its last run
// to _registryd/pulled/<alg>/<hex> of the repository, at most once per
// interval, keeping the later of its own time and the one stored (several
// instances may flush the same manifest). A tag's last pull is its
// manifest's: pulled by tag or by digest, the content is in use. A crash
// loses at most the pulls of one interval.

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// TagInfo is a tag with what the registry knows of its life. A zero time
// is unknown.
type TagInfo struct {
	Name   string
	Digest digest.Digest
	// Pushed is when the tag was last pushed (registryd's record), or,
	// without a record for its current digest, when its current link was
	// last written.
	Pushed time.Time
	// LastPulled is the last GET or HEAD of the tag's manifest, by tag or
	// by digest, that registryd recorded (or still holds in memory).
	LastPulled time.Time
}

// pushRecord is the content of a tag's _pushed file.
type pushRecord struct {
	Digest digest.Digest `json:"digest"`
	Pushed time.Time     `json:"pushed"`
}

// pullRecord is the content of a manifest's pulled file.
type pullRecord struct {
	Pulled time.Time `json:"pulled"`
}

// pushedRecord is the push record of a tag pushed now pointing at d
// (tagOps writes it).
func (repo *Repository) pushedRecord(d digest.Digest) ([]byte, error) {
	return json.Marshal(pushRecord{Digest: d, Pushed: repo.reg.now().UTC()})
}

// TagInfos returns every tag of the repository, sorted by name, with its
// digest and times. A repository that does not exist is NAME_UNKNOWN.
// Tags whose current link is missing (a push cut short) are left out.
//
// Cost: a listing of the tags, then per tag two small reads (the current
// link and the push record; a stat instead for a tag without a record)
// and one per distinct digest (its pull record), run concurrently.
func (repo *Repository) TagInfos(ctx context.Context) ([]TagInfo, error) {
	tags, _, err := repo.Tags(ctx, "", -1)
	if err != nil {
		return nil, err
	}
	return repo.tagInfos(ctx, tags)
}

// TagInfosPage is TagInfos for one page of the tag list: up to n tags
// after last, in name order, and whether more follow (as Tags). It costs
// the listing and the page.
func (repo *Repository) TagInfosPage(ctx context.Context, last string, n int) ([]TagInfo, bool, error) {
	tags, more, err := repo.Tags(ctx, last, n)
	if err != nil {
		return nil, false, err
	}
	infos, err := repo.tagInfos(ctx, tags)
	return infos, more, err
}

// TagInfosOf is TagInfos for the named tags only (in name order); tags
// that do not exist are left out.
func (repo *Repository) TagInfosOf(ctx context.Context, tags []string) ([]TagInfo, error) {
	valid := make([]string, 0, len(tags))
	for _, t := range tags {
		if ValidTag(t) {
			valid = append(valid, t)
		}
	}
	sort.Strings(valid)
	return repo.tagInfos(ctx, valid)
}

// tagInfos reads the infos of tags (sorted), leaving out those without a
// current link.
func (repo *Repository) tagInfos(ctx context.Context, tags []string) ([]TagInfo, error) {
	infos := make([]TagInfo, len(tags))
	found := make([]bool, len(tags))
	err := parallel(ctx, len(tags), func(i int) error {
		var err error
		infos[i], found[i], err = repo.readTagPush(ctx, tags[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	out := infos[:0]
	for i := range infos {
		if found[i] {
			out = append(out, infos[i])
		}
	}
	return repo.withPullTimes(ctx, out)
}

// readTagPush reads a tag's digest and push time (not its pull time);
// found is false when the tag has no current link.
func (repo *Repository) readTagPush(ctx context.Context, t string) (info TagInfo, found bool, err error) {
	reg := repo.reg
	d, err := reg.readLink(ctx, tagCurrentPath(repo.name, t))
	if isNotFound(err) {
		return TagInfo{}, false, nil
	}
	if err != nil {
		return TagInfo{}, false, storageErr(err)
	}
	info = TagInfo{Name: t, Digest: d}
	var rec pushRecord
	b, err := reg.driver.GetContent(ctx, tagPushedPath(repo.name, t))
	switch {
	case err == nil && json.Unmarshal(b, &rec) == nil && rec.Digest == d && !rec.Pushed.IsZero():
		info.Pushed = rec.Pushed.UTC()
	case err != nil && !isNotFound(err):
		return TagInfo{}, false, storageErr(err)
	default:
		// No record for this digest: the reference (or a registryd
		// before records) wrote the tag; its link's time is when.
		fi, err := reg.driver.Stat(ctx, tagCurrentPath(repo.name, t))
		if isNotFound(err) {
			return TagInfo{}, false, nil
		}
		if err != nil {
			return TagInfo{}, false, storageErr(err)
		}
		info.Pushed = fi.ModTime().UTC()
	}
	return info, true, nil
}

// withPullTimes fills in the last pull times of infos, one read per
// distinct digest.
func (repo *Repository) withPullTimes(ctx context.Context, out []TagInfo) ([]TagInfo, error) {
	// Pull times per distinct digest: tags often share one.
	var digests []digest.Digest
	seen := map[digest.Digest]int{}
	for _, in := range out {
		if _, ok := seen[in.Digest]; !ok {
			seen[in.Digest] = len(digests)
			digests = append(digests, in.Digest)
		}
	}
	pulled := make([]time.Time, len(digests))
	err := parallel(ctx, len(digests), func(i int) error {
		t, err := repo.LastPulled(ctx, digests[i])
		pulled[i] = t
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].LastPulled = pulled[seen[out[i].Digest]]
	}
	return out, nil
}

// LastPulled is when manifest d was last pulled from the repository, as
// far as registryd knows: the stored record or a later pull this process
// has not written yet. Zero when unknown.
func (repo *Repository) LastPulled(ctx context.Context, d digest.Digest) (time.Time, error) {
	if d.Validate() != nil {
		return time.Time{}, nil
	}
	stored, err := repo.reg.readPulled(ctx, repo.name, d)
	if err != nil {
		return time.Time{}, err
	}
	if t := repo.reg.pulls.pending(repo.name, d); t.After(stored) {
		return t, nil
	}
	return stored, nil
}

func (r *Registry) readPulled(ctx context.Context, name string, d digest.Digest) (time.Time, error) {
	b, err := r.driver.GetContent(ctx, pulledPath(name, d))
	if isNotFound(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, storageErr(err)
	}
	var rec pullRecord
	if json.Unmarshal(b, &rec) != nil {
		return time.Time{}, nil // torn or foreign: as if unknown
	}
	return rec.Pulled.UTC(), nil
}

// RecordPull notes that manifest d was pulled from the repository now. It
// never touches storage and never blocks: the flusher writes it later.
// It does nothing when pull times are off.
func (repo *Repository) RecordPull(d digest.Digest) {
	if t := repo.reg.pulls; t != nil && d != "" {
		now := t.clock.Load()
		if now == 0 {
			now = repo.reg.now().UnixNano()
		}
		t.record(repo.name, d, now)
	}
}

// pullTracker holds the pulls not yet written: one entry per manifest
// pulled in the last two flush intervals.
type pullTracker struct {
	m sync.Map // pullKey -> *pullEntry
	// flushing serialises flushes (the periodic one and the last one at
	// shutdown may meet); it guards every entry's flushed.
	flushing sync.Mutex
	// clock is a coarse clock (UnixNano) kept by RunPullFlusher every
	// clockTick, so that a pull does not pay for reading the time (a
	// third of its cost where the VM's clock is slow); 0 when no flusher
	// runs.
	clock atomic.Int64
}

// clockTick is the resolution of the pull clock, well below that of the
// records (pullResolution).
const clockTick = 250 * time.Millisecond

type pullKey struct {
	repo string
	d    digest.Digest
}

type pullEntry struct {
	// last is the time of the last pull (UnixNano), or retired once the
	// flusher has dropped the entry from the map: a pull that finds it so
	// makes a new one.
	last atomic.Int64
	// flushed is the last time written, under pullTracker.flushing.
	flushed int64
}

const retired = -1

// pullResolution is how much later a pull must be than the one held to
// be stored: pulls of one manifest by many clients then mostly only read
// the shared entry.
const pullResolution = int64(time.Second)

func (t *pullTracker) record(repo string, d digest.Digest, now int64) {
	k := pullKey{repo, d}
	for {
		v, ok := t.m.Load(k)
		if !ok {
			e := &pullEntry{}
			e.last.Store(now)
			if v, ok = t.m.LoadOrStore(k, e); !ok {
				return
			}
		}
		e := v.(*pullEntry)
		old := e.last.Load()
		if old == retired {
			t.m.CompareAndDelete(k, e)
			continue
		}
		if now < old+pullResolution || e.last.CompareAndSwap(old, now) {
			return
		}
	}
}

// pending is the time of a pull held in memory, zero without one.
func (t *pullTracker) pending(repo string, d digest.Digest) time.Time {
	if t == nil {
		return time.Time{}
	}
	v, ok := t.m.Load(pullKey{repo, d})
	if !ok {
		return time.Time{}
	}
	if last := v.(*pullEntry).last.Load(); last > 0 {
		return time.Unix(0, last).UTC()
	}
	return time.Time{}
}

// forget drops what is held for the repository (it is being deleted), or
// for manifest d of it when d is not empty.
func (t *pullTracker) forget(repo string, d digest.Digest) {
	if t == nil {
		return
	}
	t.m.Range(func(k, v any) bool {
		pk := k.(pullKey)
		if pk.repo == repo && (d == "" || pk.d == d) {
			v.(*pullEntry).last.Store(retired)
			t.m.CompareAndDelete(k, v)
		}
		return true
	})
}

// PullTimesEnabled reports whether pulls are being recorded.
func (r *Registry) PullTimesEnabled() bool { return r.pulls != nil }

// FlushPulls writes the pulls noted since the last flush, one write per
// manifest at most, and returns how many it wrote. A pull of a manifest
// that is no longer in its repository is dropped. A write that fails is
// tried again at the next flush; the first error is returned.
func (r *Registry) FlushPulls(ctx context.Context) (int, error) {
	t := r.pulls
	if t == nil {
		return 0, nil
	}
	t.flushing.Lock()
	defer t.flushing.Unlock()
	type item struct {
		k    pullKey
		e    *pullEntry
		last int64
	}
	var items []item
	t.m.Range(func(k, v any) bool {
		e := v.(*pullEntry)
		last := e.last.Load()
		switch {
		case last == retired:
		case last == e.flushed:
			// Not pulled since it was written: forget it, unless a
			// pull comes in between (then the next flush writes it).
			if e.last.CompareAndSwap(last, retired) {
				t.m.CompareAndDelete(k, e)
			}
		default:
			items = append(items, item{k.(pullKey), e, last})
		}
		return true
	})
	var written atomic.Int64
	var mu sync.Mutex
	var first error
	_ = parallel(ctx, len(items), func(i int) error {
		it := items[i]
		wrote, err := r.writePulled(ctx, it.k.repo, it.k.d, time.Unix(0, it.last).UTC())
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			return nil
		}
		it.e.flushed = it.last
		if wrote {
			written.Add(1)
		}
		return nil
	})
	return int(written.Load()), first
}

// writePulled stores pulled as manifest d's last pull unless the stored
// one is later. A manifest no longer in the repository is skipped: its
// record would outlive it (and, in a repository being deleted, come back
// after it).
func (r *Registry) writePulled(ctx context.Context, name string, d digest.Digest, pulled time.Time) (bool, error) {
	if d.Validate() != nil || ValidateName(name) != nil || r.deleting(name) {
		return false, nil
	}
	if _, err := r.driver.Stat(ctx, revisionLinkPath(name, d)); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	stored, err := r.readPulled(ctx, name, d)
	if err != nil {
		return false, err
	}
	if !pulled.After(stored) {
		return false, nil
	}
	b, err := json.Marshal(pullRecord{Pulled: pulled})
	if err != nil {
		return false, err
	}
	return true, r.driver.PutContent(ctx, pulledPath(name, d), b)
}

// RunPullFlusher flushes pulls every interval until ctx is done. The
// caller flushes once more when it stops serving (FlushPulls), so that a
// clean shutdown loses nothing. errf, if not nil, is told of failures.
func (r *Registry) RunPullFlusher(ctx context.Context, interval time.Duration, errf func(error)) {
	if r.pulls == nil {
		return
	}
	if interval <= 0 {
		interval = DefaultPullFlushInterval
	}
	t := r.pulls
	t.clock.Store(r.now().UnixNano())
	defer t.clock.Store(0)
	flush := time.NewTicker(interval)
	defer flush.Stop()
	clock := time.NewTicker(clockTick)
	defer clock.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.C:
			t.clock.Store(r.now().UnixNano())
			continue
		case <-flush.C:
		}
		if _, err := r.FlushPulls(ctx); err != nil && errf != nil && ctx.Err() == nil {
			errf(err)
		}
	}
}

// DefaultPullFlushInterval is how often pulls are written by default
// (storage.maintenance.pulltimes.interval).
const DefaultPullFlushInterval = time.Minute

// forgetPulls drops the pull records of manifest d of the repository:
// the one stored and the one held in memory.
func (repo *Repository) forgetPulls(ctx context.Context, d digest.Digest) error {
	repo.reg.pulls.forget(repo.name, d)
	err := repo.reg.driver.Delete(ctx, pulledPath(repo.name, d))
	if err != nil && !isNotFound(err) {
		return storageErr(err)
	}
	return nil
}

// parallel runs fn(0..n-1) on up to parallelism goroutines (inline for
// small n) and returns the first error; after one, the rest are skipped.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	const parallelism = 16
	if n <= 4 {
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var failed atomic.Bool
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(parallelism, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = fn(i)
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return first
}
