package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
)

// plan condemns what the mark did not reach and is older than the delay
// (by the store's clock: blob data, layer link and revision link times; a
// blob only when its data and every layer link to it are),
// writes it as the next plan and publishes it in the state. Nothing is
// deleted: the next due run re-checks it.
func (r *run) plan(ctx context.Context, marks *storage.DigestSet) error {
	reg := r.c.reg
	now, err := reg.StorageNow(ctx)
	if err != nil {
		return err
	}
	// An item written at store time t is older than the delay when
	// t < now - delay; the skew bound covers stores whose nodes' clocks
	// disagree (the probe and the item stamped by different nodes).
	cutoff := now.Add(-(r.opts().Delay + r.opts().ClockSkew))
	old := func(t time.Time) bool { return !t.IsZero() && t.Before(cutoff) }

	var (
		mu    sync.Mutex
		items []storage.GCItem
		errs  []error
		// Digests with a layer link younger than the delay: their blob is
		// not condemned either, however old its data. A push that finds
		// its layer already in the store (garbage of an image deleted
		// earlier, pushed again) keeps the old file and writes only the
		// link; until its manifest comes, that link is all that says the
		// blob is in use.
		youngLinks = map[digest.Digest]bool{}
	)
	keep := func(it storage.GCItem) {
		mu.Lock()
		items = append(items, it)
		mu.Unlock()
	}
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	p := newPool(r.mark.workers())
	// Revisions no tag reaches (DeleteUntagged): the mark found them.
	for _, pr := range r.mark.pending {
		for _, d := range pr.digests {
			_ = p.submit(func() {
				mod, ok, err := pr.repo.RevisionModTime(ctx, d)
				switch {
				case err != nil:
					fail(err)
				case ok && old(mod):
					keep(storage.GCItem{Digest: d, Kind: storage.GCRevision, Repository: pr.repo.Name()})
				}
			}, nil)
		}
	}
	// Layer links to blobs nothing live references.
	werr := reg.WalkRepositories(ctx, func(repo *storage.Repository) error {
		return repo.LayerLinks(ctx, func(d digest.Digest) error {
			if marks.Contains(d) {
				return nil
			}
			return p.submit(func() {
				mod, ok, err := repo.LayerLinkModTime(ctx, d)
				switch {
				case err != nil:
					fail(err)
				case ok && old(mod):
					keep(storage.GCItem{Digest: d, Kind: storage.GCLink, Repository: repo.Name()})
				case ok:
					mu.Lock()
					youngLinks[d] = true
					mu.Unlock()
				}
			}, nil)
		})
	})
	// Blobs nothing live references: the walk lists names only, a blob is
	// looked at when it is garbage.
	if werr == nil {
		werr = reg.WalkBlobDigests(ctx, func(d digest.Digest) error {
			if marks.Contains(d) {
				return nil
			}
			return p.submit(func() {
				size, mod, ok, err := reg.BlobDataInfo(ctx, d)
				switch {
				case err != nil:
					fail(err)
				case ok && old(mod):
					keep(storage.GCItem{Digest: d, Kind: storage.GCBlob, Size: size})
				}
			}, nil)
		})
	}
	_ = p.wait()
	if err := errors.Join(append(errs, werr)...); err != nil {
		return fmt.Errorf("gc: making the plan: %w", err)
	}
	if len(youngLinks) > 0 {
		items = slices.DeleteFunc(items, func(it storage.GCItem) bool { return it.Kind == storage.GCBlob && youngLinks[it.Digest] })
	}
	storage.SortGCItems(items)
	for _, it := range items {
		r.rep.Condemned.add(it)
	}
	if o := r.opts().Observer; o != nil {
		o.Condemned(len(items))
	}
	if r.dry {
		return nil
	}

	oldIDs, err := reg.GCPlanIDs(ctx)
	if err != nil {
		return err
	}
	var st storage.GCState
	var id string
	if len(items) > 0 {
		id = fmt.Sprintf("p%d-%s", r.lease.Epoch(), now.UTC().Format("20060102T150405Z"))
		plan := &storage.GCPlan{ID: id, Epoch: r.lease.Epoch(), Created: now, Items: items}
		// Durable before the state names it.
		if err := reg.WriteGCPlan(ctx, plan); err != nil {
			return err
		}
		if err := r.lease.Check(ctx); err != nil {
			return err
		}
		// Published now: the store's time right before the state write,
		// from which the delay runs.
		created, err := reg.StorageNow(ctx)
		if err != nil {
			return err
		}
		st = storage.GCState{Plan: id, PlanCreated: created, Phase: storage.GCPhaseCondemned}
		due := created.Add(r.opts().Delay + r.opts().ClockSkew)
		r.rep.Plan, r.rep.PlanDue = id, &due
	}
	if err := r.writeState(ctx, st); err != nil {
		return err
	}
	if h := r.opts().Hooks; h != nil && h.AfterPlan != nil && id != "" {
		h.AfterPlan(ctx, id)
	}
	// The swept plan, its sweep sets and pins, and whatever a crash left
	// between writing a plan and publishing it.
	for _, old := range oldIDs {
		if old != id {
			if err := reg.DeleteGCPlan(ctx, old); err != nil {
				r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("removing plan %s: %v", old, err))
			}
		}
	}
	return nil
}
