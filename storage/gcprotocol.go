package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// The writer side of online garbage collection: how a registry serving
// the store keeps a write that relies on existing content from racing the
// collector. Package gc's comment states the protocol and proves it; in
// short:
//
//   - Each registry keeps a copy of the collector's state (_registryd/gc/
//     state) and of the digests of the current plan (or, while sweeping,
//     of the sweep set), refreshed in the background every MaxAge/4. A
//     request uses a copy at most MaxAge/2 old (else it reads the state
//     itself) and must commit within MaxAge of that read.
//   - A digest the request relies on that the plan does not name costs
//     nothing: the common case, a map lookup in memory.
//   - A condemned digest not yet reached by the sweep is pinned
//     (pins/<plan>/<digest>, once per plan per registry) before the write
//     that relies on it; the collector lists pins at least MaxAge after it
//     moved its cursor past a digest and before it deletes it, so it sees
//     every pin written by a writer that saw the cursor before it.
//   - A digest the sweep has reached is not relied on: a blob HEAD/GET is
//     404, a mount is refused (a normal upload follows), a manifest PUT
//     referencing it is MANIFEST_BLOB_UNKNOWN; the client uploads again.
//     A write of the content itself (an upload's commit, a manifest PUT
//     of those bytes) waits until the sweep has deleted it, then writes it
//     anew. If a writer pinned it in time the sweep keeps it: reads serve
//     it, writes wait for the state to say so.
//   - When the state cannot be read, writes that rely on existing content
//     fail closed (503, Retry-After); reads go on.

// DefaultGCStateMaxAge is the default bound on the age of a registry's copy
// of the collector state when it commits a write (Rmax).
const DefaultGCStateMaxAge = 2 * time.Second

// gcOwnWait bounds how long a write of content the sweep is deleting waits
// for the deletion before it answers 503.
const gcOwnWait = 30 * time.Second

// GCHooks are pause points for tests of the protocol; nil in production.
type GCHooks struct {
	// BeforeCommit runs after a write's protocol decision (pins written)
	// and before the write that relies on it: op is "manifest", "upload",
	// "mount" or "read", ds the digests it relies on.
	BeforeCommit func(ctx context.Context, op string, ds []digest.Digest)
}

// GCProtocolStats counts what the protocol did in this registry.
type GCProtocolStats struct {
	Pins      int64 // pins written
	Refused   int64 // requests answered "unknown" because the sweep had reached a digest
	Waits     int64 // writes that waited for the sweep to delete their content
	Failed    int64 // writes refused because the state could not be read, or a wait timed out
	Refreshes int64 // state reads
}

// gcProtocol is a Registry's side of the protocol.
type gcProtocol struct {
	reg    *Registry
	maxAge time.Duration
	hooks  *GCHooks

	refreshMu sync.Mutex // one state read at a time
	view      atomic.Pointer[gcView]

	pinMu  sync.Mutex
	pinFor string // plan the pins below belong to
	pinned map[digest.Digest]bool

	pins, refused, waits, failed, refreshes atomic.Int64
}

// gcView is one reading of the collector state.
type gcView struct {
	st    GCState
	set   *DigestSet // the plan's digests (condemned) or the sweep set's (sweeping)
	setID string
	kept  map[digest.Digest]bool
	read  time.Time // when the read began (monotonic)
	err   error
}

func newGCProtocol(r *Registry, maxAge time.Duration, hooks *GCHooks) *gcProtocol {
	if maxAge < 0 {
		return nil
	}
	if _, ok := driver.As[driver.ConditionalWriter](r.driver); !ok {
		// No collector can hold a lease on such a store: nothing to follow.
		return nil
	}
	if maxAge == 0 {
		maxAge = DefaultGCStateMaxAge
	}
	return &gcProtocol{reg: r, maxAge: maxAge, hooks: hooks}
}

// bound is the MaxAge in force for v: this registry's, or the collector's
// if that is shorter.
func (p *gcProtocol) bound(v *gcView) time.Duration {
	if v != nil && v.st.MaxAge > 0 && v.st.MaxAge < p.maxAge {
		return v.st.MaxAge
	}
	return p.maxAge
}

// refresh reads the state (and, when it names another plan or sweep set,
// that set) and makes it the current view.
func (p *gcProtocol) refresh(ctx context.Context) *gcView {
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	p.refreshes.Add(1)
	start := time.Now()
	prev := p.view.Load()
	v := &gcView{read: start}
	st, _, err := p.reg.ReadGCState(ctx)
	if err != nil {
		v.err = err
		if prev != nil {
			v.st, v.set, v.setID, v.kept = prev.st, prev.set, prev.setID, prev.kept
		}
		p.view.Store(v)
		return v
	}
	v.st = st
	var at func(string) string
	switch st.Phase {
	case GCPhaseCondemned:
		v.setID, at = "plan/"+st.Plan, gcPlanPath
	case GCPhaseSweeping:
		v.setID, at = "sweep/"+st.Sweep, gcSweepPath
	}
	switch {
	case v.setID == "":
	case prev != nil && prev.setID == v.setID && prev.set != nil:
		v.set = prev.set
	default:
		id := st.Plan
		if st.Phase == GCPhaseSweeping {
			id = st.Sweep
		}
		set, err := p.reg.readPlanSet(ctx, at, id)
		if err != nil {
			v.err = err
		}
		v.set = set
	}
	if len(st.Kept) > 0 {
		v.kept = make(map[digest.Digest]bool, len(st.Kept))
		for _, k := range st.Kept {
			v.kept[digest.Digest(k)] = true
		}
	}
	p.view.Store(v)
	return v
}

// current returns a view read at most fresh ago, reading the state if the
// one at hand is older (or failed).
func (p *gcProtocol) current(ctx context.Context, fresh time.Duration) *gcView {
	if v := p.view.Load(); v != nil && v.err == nil && time.Since(v.read) <= fresh {
		return v
	}
	v := p.refresh(ctx)
	return v
}

// run refreshes the view every MaxAge/4 until ctx is done, so that
// requests find it fresh.
func (p *gcProtocol) run(ctx context.Context) {
	for {
		v := p.refresh(ctx)
		every := p.bound(v) / 4
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

type gcStatus int

const (
	gcNone       gcStatus = iota // not condemned (or kept): nothing to do
	gcCondemned                  // condemned, the sweep has not reached it: pin it
	gcInProgress                 // the sweep is deleting it
	gcGone                       // the sweep deleted it: what exists now was written since
	// gcLinksGone: its links and revisions were deleted (what exists now
	// was written since), its blob is condemned and not reached: pin it.
	gcLinksGone
)

// status is what view v says of digest d.
func (v *gcView) status(d digest.Digest) gcStatus {
	if v.set == nil {
		return gcNone
	}
	mask, ok := v.set.Lookup(d)
	if !ok {
		return gcNone
	}
	if v.st.Phase == GCPhaseCondemned {
		return gcCondemned
	}
	if v.kept[d] {
		return gcNone
	}
	ds := string(d)
	reached := func() bool { return v.st.Cursor != "" && ds <= v.st.Cursor }
	finished := func() bool { return v.st.Done != "" && ds <= v.st.Done }
	links, blob := mask&maskLinksPass != 0, mask&maskBlob != 0
	switch v.st.Pass {
	case GCPassLinks:
		switch {
		case !links || !reached():
			return gcCondemned
		case !finished():
			return gcInProgress
		case blob:
			return gcLinksGone
		}
		return gcGone
	case GCPassBlobs:
		switch {
		case !blob:
			return gcGone // its links went in the first pass
		case !reached() && links:
			return gcLinksGone
		case !reached():
			return gcCondemned
		case !finished():
			return gcInProgress
		}
		return gcGone
	}
	return gcInProgress // a pass this version does not know: rely on nothing
}

// errGCSwept is what rely returns for a digest the sweep has reached; the
// caller answers with its own "unknown" error.
type errGCSwept struct{ d digest.Digest }

func (e errGCSwept) Error() string {
	return fmt.Sprintf("%s is being garbage collected", e.d)
}

func gcUnavailable(format string, args ...any) *errcode.Error {
	return errcode.Newf(errcode.Unavailable, format, args...).WithRetryAfter(time.Second).WithStatus(http.StatusServiceUnavailable)
}

// gcTicket is a write's protocol decision, kept until it commits.
type gcTicket struct {
	p         *gcProtocol
	op        string
	refs, own []digest.Digest
	view      *gcView
}

// rely applies the protocol to what a write relies on: refs, existing
// content it references (a swept one is refused with errGCSwept), and own,
// the content it writes itself (a swept one is waited for). Condemned ones
// are pinned. A nil protocol (or nothing to rely on) costs nothing.
func (p *gcProtocol) rely(ctx context.Context, op string, refs, own []digest.Digest) (*gcTicket, error) {
	t := &gcTicket{p: p, op: op, refs: refs, own: own}
	if p == nil || len(refs)+len(own) == 0 {
		return t, nil
	}
	if err := t.decide(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// decide takes a fresh view and applies it to the ticket's digests.
func (t *gcTicket) decide(ctx context.Context) error {
	p := t.p
	v := p.current(ctx, p.maxAge/2)
	v = p.fresh(ctx, v)
	if v.err != nil {
		p.failed.Add(1)
		return gcUnavailable("the garbage collector's state cannot be read; try again").Wrap(v.err)
	}
	deadline := time.Now().Add(gcOwnWait)
	for waited := false; ; {
		// Own content the sweep is deleting is waited for; so is a
		// reference it is deleting that a writer pinned (the sweep keeps
		// it, or that pin came too late for it: either way the state
		// soon says which). Any other reference it is deleting is refused
		// below.
		busy := false
		for _, d := range t.own {
			if v.status(d) == gcInProgress {
				busy = true
				break
			}
		}
		for _, d := range t.refs {
			if !busy && v.status(d) == gcInProgress && p.pinnedNow(ctx, d) {
				busy = true
			}
		}
		if !busy {
			break
		}
		if !waited {
			p.waits.Add(1)
			waited = true
		}
		if time.Now().After(deadline) {
			p.failed.Add(1)
			return gcUnavailable("content being written is being garbage collected; try again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(p.bound(v)/8, 10*time.Millisecond)):
		}
		v = p.refresh(ctx)
		if v.err != nil {
			p.failed.Add(1)
			return gcUnavailable("the garbage collector's state cannot be read; try again").Wrap(v.err)
		}
	}
	var pin []digest.Digest
	for _, d := range t.refs {
		switch v.status(d) {
		case gcInProgress:
			p.refused.Add(1)
			return errGCSwept{d}
		case gcCondemned, gcLinksGone:
			pin = append(pin, d)
		}
	}
	for _, d := range t.own {
		if s := v.status(d); s == gcCondemned || s == gcLinksGone {
			pin = append(pin, d)
		}
	}
	if err := p.pin(ctx, v, pin); err != nil {
		p.failed.Add(1)
		return gcUnavailable("recording a digest for the garbage collector failed; try again").Wrap(err)
	}
	t.view = v
	return nil
}

// fresh makes sure v was read at most MaxAge/2 ago for the MaxAge v
// itself sets (the collector's may be shorter than ours).
func (p *gcProtocol) fresh(ctx context.Context, v *gcView) *gcView {
	if v.err == nil && time.Since(v.read) > p.bound(v)/2 {
		return p.refresh(ctx)
	}
	return v
}

// pin writes the pins of ds in v's plan that this registry has not
// written yet.
func (p *gcProtocol) pin(ctx context.Context, v *gcView, ds []digest.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	plan := v.st.Plan
	var todo []digest.Digest
	p.pinMu.Lock()
	if p.pinFor != plan {
		p.pinFor, p.pinned = plan, map[digest.Digest]bool{}
	}
	for _, d := range ds {
		if !p.pinned[d] {
			todo = append(todo, d)
		}
	}
	p.pinMu.Unlock()
	for _, d := range todo {
		if err := p.reg.WriteGCPin(ctx, plan, d); err != nil {
			return err
		}
		p.pins.Add(1)
		p.pinMu.Lock()
		if p.pinFor == plan {
			p.pinned[d] = true
		}
		p.pinMu.Unlock()
	}
	return nil
}

// beforeCommit runs right before the write that relies on the decision:
// it calls the test hook, then, if the view is older than MaxAge/2 (the
// write took its time), decides again on a fresh one, so that the commit
// has at least MaxAge/2 left.
func (t *gcTicket) beforeCommit(ctx context.Context) error {
	if t == nil || t.p == nil || len(t.refs)+len(t.own) == 0 {
		return nil
	}
	if h := t.p.hooks; h != nil && h.BeforeCommit != nil {
		h.BeforeCommit(ctx, t.op, append(append([]digest.Digest(nil), t.refs...), t.own...))
	}
	if time.Since(t.view.read) <= t.p.bound(t.view)/2 {
		return nil
	}
	return t.decide(ctx)
}

// afterCommit checks that the commit ended within MaxAge of the view it
// relied on. If it did not (a storage write that took seconds), the
// collector may have passed a digest without seeing this write's pin:
// the decision is taken again on a fresh view, and a digest the sweep has
// reached since makes the write fail (503) rather than succeed with
// content that may be gone.
func (t *gcTicket) afterCommit(ctx context.Context) error {
	if t == nil || t.p == nil || t.view == nil {
		return nil
	}
	if time.Since(t.view.read) <= t.p.bound(t.view) {
		return nil
	}
	v := t.p.refresh(ctx)
	if v.err != nil {
		return gcUnavailable("the garbage collector's state cannot be read; try again").Wrap(v.err)
	}
	var pin []digest.Digest
	for _, d := range append(append([]digest.Digest(nil), t.refs...), t.own...) {
		switch v.status(d) {
		case gcInProgress, gcGone, gcLinksGone:
			t.p.failed.Add(1)
			return gcUnavailable("the write took longer than garbage collection allows; try again")
		case gcCondemned:
			pin = append(pin, d)
		}
	}
	return t.p.pin(ctx, v, pin)
}

// swept reports whether err is rely's refusal of a swept digest.
func swept(err error) bool {
	var e errGCSwept
	return errors.As(err, &e)
}

// StartGCProtocol keeps this registry's copy of the collector state fresh
// in the background until ctx is done, so that requests never wait for a
// state read. Without it a request reads the state itself when its copy is
// older than MaxAge/2. A no-op when the protocol is off.
func (r *Registry) StartGCProtocol(ctx context.Context) {
	if r.gcp != nil {
		go r.gcp.run(ctx)
	}
}

// GCProtocolStats returns what the protocol did so far.
func (r *Registry) GCProtocolStats() GCProtocolStats {
	p := r.gcp
	if p == nil {
		return GCProtocolStats{}
	}
	return GCProtocolStats{
		Pins: p.pins.Load(), Refused: p.refused.Load(), Waits: p.waits.Load(),
		Failed: p.failed.Load(), Refreshes: p.refreshes.Load(),
	}
}

// SpeaksGCProtocol reports whether this registry follows the online
// collector's protocol (it does unless Options.GCStateMaxAge < 0, or its
// driver cannot write conditionally). Its instance lease says so.
func (r *Registry) SpeaksGCProtocol() bool { return r.gcp != nil }

// GCStateMaxAge is the protocol's bound (Rmax) in this registry.
func (r *Registry) GCStateMaxAge() time.Duration {
	if r.gcp == nil {
		return 0
	}
	return r.gcp.maxAge
}
