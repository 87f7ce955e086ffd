package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
)

// sweep re-checks the due plan against the mark and deletes what is still
// dead, pass by pass, batch by batch (see the package comment). It returns
// the digests whose items it deleted.
func (r *run) sweep(ctx context.Context, marks *storage.DigestSet) (map[digest.Digest]bool, error) {
	reg := r.c.reg
	st := r.st
	plan, err := reg.ReadGCPlan(ctx, st.Plan)
	if err != nil {
		// A state naming a plan that cannot be read: nothing of it is
		// swept (keeping is the safe mistake); the run makes a new one.
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("plan %s cannot be read, not swept: %v", st.Plan, err))
		return nil, nil
	}
	// Resuming a sweep a crash (or the window) interrupted: only what the
	// interrupted sweep would have deleted may be, and what it kept stays
	// kept. A digest that was not in its sweep set may have been relied
	// on by writers without a pin.
	var prev *storage.DigestSet
	if st.Phase == storage.GCPhaseSweeping && st.Sweep != "" {
		p, err := reg.ReadGCSweep(ctx, st.Sweep)
		if err != nil {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("sweep set %s cannot be read, sweep of plan %s abandoned: %v", st.Sweep, st.Plan, err))
			return nil, nil
		}
		var b storage.DigestSetBuilder
		for _, it := range p.Items {
			b.Add(it.Digest, 1)
		}
		prev = b.Build()
	}
	kept := make(map[digest.Digest]bool, len(st.Kept))
	for _, k := range st.Kept {
		kept[digest.Digest(k)] = true
	}
	var cands []storage.GCItem
	for _, it := range plan.Items {
		if marks.Contains(it.Digest) || kept[it.Digest] || (prev != nil && !prev.Contains(it.Digest)) {
			r.rep.Resurrected++
			continue
		}
		cands = append(cands, it)
	}
	cands, err = r.protectSurvivors(ctx, cands)
	if err != nil {
		return nil, err
	}
	sw := &storage.GCPlan{ID: fmt.Sprintf("%s-s%d", plan.ID, r.lease.Epoch()), Epoch: r.lease.Epoch(), Created: plan.Created, Items: cands}
	if r.dry {
		for _, it := range cands {
			r.rep.Deleted.add(it)
		}
		return nil, nil
	}
	if err := reg.WriteGCSweep(ctx, sw); err != nil {
		return nil, err
	}
	pass, done, cursor := storage.GCPassLinks, "", ""
	if st.Phase == storage.GCPhaseSweeping && st.Pass != "" {
		pass, done, cursor = st.Pass, st.Done, st.Cursor
	}
	next := st
	next.Phase, next.Sweep, next.Pass, next.Cursor, next.Done = storage.GCPhaseSweeping, sw.ID, pass, cursor, done
	if err := r.writeState(ctx, next); err != nil {
		return nil, err
	}
	s := &sweeper{run: r, plan: plan.ID, kept: kept, deleted: map[digest.Digest]bool{}, batch: r.opts().BatchSize}
	for _, p := range []string{storage.GCPassLinks, storage.GCPassBlobs} {
		if p == storage.GCPassLinks && pass == storage.GCPassBlobs {
			continue
		}
		if p != pass {
			// A new pass starts from the beginning.
			next := r.st
			next.Pass, next.Cursor, next.Done = p, "", ""
			if err := r.writeState(ctx, next); err != nil {
				return nil, err
			}
		}
		var items []storage.GCItem
		for _, it := range cands {
			if it.Kind.Pass() == p && (r.st.Done == "" || string(it.Digest) > r.st.Done) {
				items = append(items, it)
			}
		}
		if err := s.pass(ctx, p, items); err != nil {
			return nil, err
		}
		if p == storage.GCPassLinks {
			// The removals of links reach the disk before any blob goes
			// (driver.Flusher), so that no crash leaves a link without
			// its blob.
			if err := s.flushLinks(ctx); err != nil {
				return nil, err
			}
		}
	}
	return s.deleted, nil
}

// protectSurvivors (DeleteUntagged) drops from the candidates what a
// revision that stays references: the mark does not reach revisions no tag
// reaches, and those this sweep does not delete (younger than the delay
// when the plan was made, so not condemned yet) must keep their config,
// layers and children, which an older plan may have condemned. Only
// revisions that existed at the mark need this: one pushed since relied on
// what it references, pinning what the plan condemned.
func (r *run) protectSurvivors(ctx context.Context, cands []storage.GCItem) ([]storage.GCItem, error) {
	if !r.opts().DeleteUntagged {
		return cands, nil // every revision is a root: the mark reached it all
	}
	type rev struct {
		repo string
		d    digest.Digest
	}
	condemned := map[rev]bool{}
	for _, it := range cands {
		if it.Kind == storage.GCRevision {
			condemned[rev{it.Repository, it.Digest}] = true
		}
	}
	// Content (blobs, manifests' own blobs, links to them) is kept by
	// digest; a child manifest's revision in the survivor's repository.
	protect := map[digest.Digest]bool{}
	protectRev := map[rev]bool{}
	var work []rev
	for _, pr := range r.mark.pending {
		for _, d := range pr.digests {
			x := rev{pr.repo.Name(), d}
			if !condemned[x] && !protectRev[x] {
				protectRev[x] = true
				work = append(work, x)
			}
		}
	}
	if len(work) == 0 {
		return cands, nil
	}
	for len(work) > 0 {
		x := work[len(work)-1]
		work = work[:len(work)-1]
		protect[x.d] = true
		refs, problem, err := r.mark.references(ctx, x.d)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			continue // nothing to protect: its content is gone or corrupt
		}
		for _, b := range refs.Blobs {
			protect[b] = true
		}
		for _, c := range refs.Manifests {
			if y := (rev{x.repo, c}); !protectRev[y] {
				protectRev[y] = true
				work = append(work, y)
			}
		}
	}
	out := cands[:0]
	for _, it := range cands {
		keep := protect[it.Digest]
		if it.Kind == storage.GCRevision {
			keep = protectRev[rev{it.Repository, it.Digest}]
		}
		if keep {
			r.rep.Resurrected++
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// sweeper deletes a sweep set's items.
type sweeper struct {
	run     *run
	plan    string
	kept    map[digest.Digest]bool
	pinned  map[digest.Digest]bool
	deleted map[digest.Digest]bool
	batch   int // digests in the next batch
	// links removed, by repository, to be made durable before blobs go.
	touchedLinks map[string][]digest.Digest
	touchedRevs  map[string][]digest.Digest
}

// pass deletes items (of one pass, sorted) in batches of whole digests.
// Each batch: the state names its last digest as the cursor; after the
// wait the pins are listed and what they keep dropped; the lease is
// checked; the items are deleted. The next batch's cursor is written (and
// its wait runs) while this batch is deleted.
func (s *sweeper) pass(ctx context.Context, pass string, items []storage.GCItem) error {
	r := s.run
	// On resume, the first batch reaches exactly the old cursor: a cursor
	// never moves back, since what lies below it may be deleted already.
	resumeTo := r.st.Cursor
	pos := 0
	nextBatch := func() []storage.GCItem {
		if pos >= len(items) {
			return nil
		}
		start, n := pos, 0
		for pos < len(items) {
			d := items[pos].Digest
			if resumeTo != "" {
				if string(d) > resumeTo && pos > start {
					break
				}
			} else if n == s.batch {
				break
			}
			for pos < len(items) && items[pos].Digest == d {
				pos++
			}
			n++
		}
		resumeTo = ""
		return items[start:pos]
	}
	cur := nextBatch()
	if cur == nil {
		return nil
	}
	st := r.st
	st.Cursor = maxCursor(st.Cursor, string(cur[len(cur)-1].Digest))
	if err := r.writeState(ctx, st); err != nil {
		return err
	}
	moved := time.Now()
	for cur != nil {
		last := cur[len(cur)-1].Digest
		if h := r.opts().Hooks; h != nil && h.BeforeSweepBatch != nil {
			h.BeforeSweepBatch(ctx, pass, last)
		}
		if w := r.opts().Window; w != nil && r.rep.Trigger == TriggerSchedule && !w.Contains(time.Now()) {
			return errOutsideWindow
		}
		// Every writer that read the state before the cursor moved past
		// this batch has committed, its pin first, by now.
		if err := sleepCtx(ctx, time.Until(moved.Add(r.wait))); err != nil {
			return err
		}
		keptBefore := len(s.kept)
		if err := s.readPins(ctx); err != nil {
			return err
		}
		del := cur[:0:0]
		for _, it := range cur {
			if s.kept[it.Digest] {
				r.rep.Resurrected++
				continue
			}
			del = append(del, it)
		}
		if err := r.lease.Check(ctx); err != nil {
			return err
		}
		next := nextBatch()
		st := r.st
		if len(s.kept) != keptBefore {
			st.Kept = keptList(s.kept)
		}
		if next != nil {
			st.Cursor = maxCursor(st.Cursor, string(next[len(next)-1].Digest))
		}
		if next != nil || len(s.kept) != keptBefore {
			if err := r.writeState(ctx, st); err != nil {
				return err
			}
		}
		moved = time.Now()
		if h := r.opts().Hooks; h != nil && h.BeforeDelete != nil {
			h.BeforeDelete(ctx, pass, del)
		}
		start := time.Now()
		if err := s.delete(ctx, pass, del); err != nil {
			return err
		}
		// Batches are sized so that deleting one takes about the wait,
		// which overlaps it: the sweep then runs at the store's speed.
		if n := countDigests(del); n > 0 {
			if el := time.Since(start); el > 0 {
				rate := float64(n) / el.Seconds()
				s.batch = min(max(int(rate*r.wait.Seconds()), 256), 50000)
			}
		}
		st = r.st
		st.Done = string(last)
		if next == nil {
			if err := r.writeState(ctx, st); err != nil {
				return err
			}
		} else {
			// Published with the next cursor move; kept in memory now.
			r.st.Done = string(last)
		}
		cur = next
	}
	return nil
}

func maxCursor(a, b string) string {
	if a > b {
		return a
	}
	return b
}

func countDigests(items []storage.GCItem) int {
	n := 0
	for i, it := range items {
		if i == 0 || items[i-1].Digest != it.Digest {
			n++
		}
	}
	return n
}

func keptList(m map[digest.Digest]bool) []string {
	out := make([]string, 0, len(m))
	for d := range m {
		out = append(out, string(d))
	}
	slices.Sort(out)
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readPins lists the plan's pins and keeps what each new one names and
// everything it references, transitively: a writer that pinned an index
// relies on its children, their configs and layers.
func (s *sweeper) readPins(ctx context.Context) error {
	reg := s.run.c.reg
	pins, err := reg.GCPins(ctx, s.plan)
	if err != nil {
		return err
	}
	if s.pinned == nil {
		s.pinned = map[digest.Digest]bool{}
	}
	work := []digest.Digest{}
	for _, d := range pins {
		if !s.pinned[d] {
			s.pinned[d] = true
			work = append(work, d)
		}
	}
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		if s.kept[d] {
			continue
		}
		s.kept[d] = true
		// Only what could be a manifest is read: small content.
		size, _, ok, err := reg.BlobDataInfo(ctx, d)
		if err != nil {
			return err
		}
		if !ok || size > storage.DefaultMaxManifestBytes {
			continue
		}
		b, err := reg.ManifestContent(ctx, d)
		if err != nil {
			continue // not there, or not a manifest
		}
		refs, err := storage.ParseReferences(b)
		if err != nil {
			continue
		}
		for _, x := range append(refs.Blobs, refs.Manifests...) {
			if !s.kept[x] {
				work = append(work, x)
			}
		}
	}
	return nil
}

// delete deletes one batch's items: in the links pass revisions (with the
// tags and referrer links that name them) and layer links, in the blobs
// pass blob content, in batches where the driver can.
func (s *sweeper) delete(ctx context.Context, pass string, items []storage.GCItem) error {
	if len(items) == 0 {
		return nil
	}
	r := s.run
	reg := r.c.reg
	if pass == storage.GCPassBlobs {
		ds := make([]digest.Digest, len(items))
		for i, it := range items {
			ds[i] = it.Digest
		}
		if err := inChunks(len(ds), r.mark.workers(), func(lo, hi int) error {
			return reg.DeleteBlobContents(ctx, ds[lo:hi])
		}); err != nil {
			return fmt.Errorf("gc: deleting blobs: %w", err)
		}
		for _, it := range items {
			r.rep.Deleted.add(it)
			s.deleted[it.Digest] = true
		}
		if o := r.opts().Observer; o != nil {
			var bytes int64
			for _, it := range items {
				bytes += it.Size
			}
			o.Deleted(string(KindBlob), len(items), bytes)
		}
		return nil
	}
	revs := map[string][]digest.Digest{}
	var links []storage.LayerLink
	for _, it := range items {
		switch it.Kind {
		case storage.GCRevision:
			revs[it.Repository] = append(revs[it.Repository], it.Digest)
		case storage.GCLink:
			links = append(links, storage.LayerLink{Repository: it.Repository, Digest: it.Digest})
		}
	}
	names := make([]string, 0, len(revs))
	for n := range revs {
		names = append(names, n)
	}
	sort.Strings(names)
	// Repositories' revisions on the workers.
	var (
		mu   sync.Mutex
		errs []error
	)
	p := newPool(r.mark.workers())
	for _, n := range names {
		_ = p.submit(func() {
			repo, err := reg.Repository(n)
			if err == nil {
				err = repo.RemoveRevisions(ctx, revs[n])
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("gc: removing manifests of %s: %w", n, err))
				mu.Unlock()
			}
		}, nil)
	}
	_ = p.wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := inChunks(len(links), r.mark.workers(), func(lo, hi int) error {
		return reg.UnlinkLayers(ctx, links[lo:hi])
	}); err != nil {
		return fmt.Errorf("gc: removing layer links: %w", err)
	}
	if s.touchedLinks == nil {
		s.touchedLinks, s.touchedRevs = map[string][]digest.Digest{}, map[string][]digest.Digest{}
	}
	for _, it := range items {
		r.rep.Deleted.add(it)
		s.deleted[it.Digest] = true
		switch it.Kind {
		case storage.GCRevision:
			s.touchedRevs[it.Repository] = appendAlg(s.touchedRevs[it.Repository], it.Digest)
		case storage.GCLink:
			s.touchedLinks[it.Repository] = appendAlg(s.touchedLinks[it.Repository], it.Digest)
		}
	}
	if o := r.opts().Observer; o != nil {
		var c Counts
		for _, it := range items {
			c.add(it)
		}
		o.Deleted(string(KindManifest), c.Manifests, 0)
		o.Deleted(string(KindLayerLink), c.LayerLinks, 0)
	}
	return nil
}

// appendAlg keeps one digest per algorithm: FlushRemovals syncs per
// algorithm directory.
func appendAlg(list []digest.Digest, d digest.Digest) []digest.Digest {
	if slices.ContainsFunc(list, func(x digest.Digest) bool { return x.Algorithm() == d.Algorithm() }) {
		return list
	}
	return append(list, d)
}

func (s *sweeper) flushLinks(ctx context.Context) error {
	reg := s.run.c.reg
	names := map[string]bool{}
	for n := range s.touchedLinks {
		names[n] = true
	}
	for n := range s.touchedRevs {
		names[n] = true
	}
	for n := range names {
		repo, err := reg.Repository(n)
		if err != nil {
			continue
		}
		if err := repo.FlushRemovals(ctx, s.touchedLinks[n], s.touchedRevs[n]); err != nil {
			return fmt.Errorf("gc: making the removal of links durable, no blob was removed: %w", err)
		}
	}
	return nil
}

// inChunks calls fn on consecutive chunks of [0, n), up to workers at
// once, and joins their errors. A batch's deletes run as the offline
// collector's do, concurrently: one at a time, a filesystem's unlinks
// (or an object store's round trips) made the sweep several times slower
// than the whole offline collection. Chunks are not smaller than
// minChunk, so that an object store's batch deletes stay batches.
func inChunks(n, workers int, fn func(lo, hi int) error) error {
	const minChunk = 256
	if n == 0 {
		return nil
	}
	size := max((n+workers-1)/workers, minChunk)
	if size >= n {
		return fn(0, n)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(lo, hi); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
