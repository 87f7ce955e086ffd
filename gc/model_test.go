package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// The model-based test of the online collector: random interleavings of
// client operations (pushes split between their blobs and their manifest,
// HEADs, mounts, tags, untags, manifest deletes, indexes), the passing of
// time, and collector steps (the collector runs in the background and
// stops at each of its pause points; a step lets it go to the next) and
// collector crashes (its storage goes dead mid-run: no release, the lease
// expires). After every operation the four invariants are checked:
//
//  1. everything an independent model says is live (tagged, every revision
//     unless untagged collection is on, children of live indexes) pulls,
//     byte for byte;
//  2. every manifest PUT that returned 201 and that the client has not
//     deleted since is among those;
//  3. every item the collector deletes was in a plan published at least
//     the delay earlier (checked in its BeforeDelete hook);
//  4. after a crash the next run resumes, and the store stays consistent
//     (1 keeps holding).
//
// At the end the collector runs to completion twice more and the garbage
// must be gone. A failure prints the seed and a shrunk sequence of
// operations that still fails; -gc.model.seed=N replays one seed.

var (
	modelSeed  = flag.Int64("gc.model.seed", 0, "run the online model test for this seed only")
	modelSeeds = flag.Int("gc.model.seeds", 6, "seeds of the online model test per store and mode")
	modelOps   = flag.Int("gc.model.ops", 70, "operations per seed of the online model test")
)

const (
	mdlRmax  = 20 * time.Millisecond
	mdlSkew  = 10 * time.Millisecond
	mdlDelay = 120 * time.Millisecond
)

type opKind int

const (
	opPushStart opKind = iota
	opPushFinish
	opTag
	opUntag
	opDeleteManifest
	opPushIndex
	opAge
	opGCStep
	opGCCrash
	opHead
	opMount
	numOpKinds
)

var opWeights = [numOpKinds]int{
	opPushStart: 10, opPushFinish: 10, opTag: 5, opUntag: 4, opDeleteManifest: 7, opPushIndex: 3,
	opAge: 9, opGCStep: 30, opGCCrash: 2, opHead: 5, opMount: 3,
}

var opNames = [numOpKinds]string{"pushStart", "pushFinish", "tag", "untag", "deleteManifest", "pushIndex", "age", "gcStep", "gcCrash", "head", "mount"}

type op struct {
	kind    opKind
	a, b, c int
}

func (o op) String() string { return fmt.Sprintf("%s(%d,%d,%d)", opNames[o.kind], o.a, o.b, o.c) }

func genOps(seed int64, n int) []op {
	rnd := rand.New(rand.NewSource(seed))
	total := 0
	for _, w := range opWeights {
		total += w
	}
	ops := make([]op, n)
	for i := range ops {
		x := rnd.Intn(total)
		k := opKind(0)
		for ; x >= opWeights[k]; k++ {
			x -= opWeights[k]
		}
		ops[i] = op{kind: k, a: rnd.Intn(1000), b: rnd.Intn(1000), c: rnd.Intn(1000)}
	}
	return ops
}

// killable is the collector's storage: dead, every request fails, as
// those of a process killed -9 would never happen.
type killable struct {
	driver.StorageDriver
	dead atomic.Bool
}

var errDead = errors.New("the collector's process is dead")

func (k *killable) Unwrap() driver.StorageDriver {
	if k.dead.Load() {
		return deadDriver{k.StorageDriver}
	}
	return k.StorageDriver
}

func (k *killable) GetContent(ctx context.Context, p string) ([]byte, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	return k.StorageDriver.GetContent(ctx, p)
}

func (k *killable) PutContent(ctx context.Context, p string, b []byte) error {
	if k.dead.Load() {
		return errDead
	}
	return k.StorageDriver.PutContent(ctx, p, b)
}

func (k *killable) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	return k.StorageDriver.Stat(ctx, p)
}

func (k *killable) List(ctx context.Context, p string) ([]string, error) {
	if k.dead.Load() {
		return nil, errDead
	}
	return k.StorageDriver.List(ctx, p)
}

func (k *killable) Delete(ctx context.Context, p string) error {
	if k.dead.Load() {
		return errDead
	}
	return k.StorageDriver.Delete(ctx, p)
}

func (k *killable) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if k.dead.Load() {
		return errDead
	}
	return k.StorageDriver.Walk(ctx, p, fn)
}

// deadDriver fails the optional abilities too.
type deadDriver struct{ driver.StorageDriver }

func (deadDriver) PutContentIf(context.Context, string, []byte, string) (string, error) {
	return "", errDead
}
func (deadDriver) GetContentVersion(context.Context, string) ([]byte, string, error) {
	return nil, "", errDead
}
func (deadDriver) DeleteFiles(context.Context, []string) error { return errDead }

// onlineModel runs one sequence of operations.
type onlineModel struct {
	t     *testing.T
	ctx   context.Context
	name  string
	ops   []op
	untag bool // DeleteUntagged

	reg   *storage.Registry // the serving registry (protocol on)
	store driver.StorageDriver
	kill  *killable
	col   *Collector
	m     *model
	pool  [][]byte
	repos []string

	// The collector in the background.
	arrive  chan string
	proceed chan struct{}
	done    chan error
	running bool
	plans   map[string]time.Time // plan id -> published (store time), read at each delete
	failure string

	lastErr error // of the last run that ended
	pending map[int]*pendingPush
	dropped []digest.Digest // blobs of manifests the client deleted
	seq     int
	trace   []string
}

type pendingPush struct {
	repo, tag string
	content   []byte
	blobs     []digest.Digest
}

func newOnlineModel(t *testing.T, store func() driver.StorageDriver, ops []op, untag bool) *onlineModel {
	d := store()
	o := &onlineModel{t: t, ctx: context.Background(), ops: ops, untag: untag, store: d,
		reg:     storage.New(d, storage.Options{GCStateMaxAge: mdlRmax}),
		m:       &model{manifests: map[digest.Digest]*mManifest{}, blobs: map[digest.Digest][]byte{}, repos: map[string]*mRepo{}},
		repos:   []string{"r0", "r1", "team/r2"},
		pending: map[int]*pendingPush{},
		plans:   map[string]time.Time{},
	}
	for i := range 6 {
		o.pool = append(o.pool, []byte(fmt.Sprintf("pool layer %d", i)))
	}
	o.kill = &killable{StorageDriver: store()}
	hooks := &Hooks{
		AfterMark:        func(ctx context.Context) { o.pause("after mark") },
		BeforeSweepBatch: func(ctx context.Context, pass string, c digest.Digest) { o.pause("before " + pass + " batch") },
		BeforeDelete: func(ctx context.Context, pass string, items []storage.GCItem) {
			o.checkDeletable(items)
			o.pause("before " + pass + " delete")
		},
		AfterPlan: func(ctx context.Context, plan string) { o.pause("after plan") },
	}
	col, err := NewCollector(o.kill, OnlineOptions{
		Delay: mdlDelay, StateMaxAge: mdlRmax, ClockSkew: mdlSkew, LeaseHeartbeat: 300 * time.Millisecond,
		DeleteUntagged: untag, Workers: 2, BatchSize: 3, Hooks: hooks,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.col = col
	return o
}

// pause is the collector's side of a step: it reports where it is and
// waits for the test.
func (o *onlineModel) pause(where string) {
	o.arrive <- where
	<-o.proceed
}

// checkDeletable is invariant 3: what the collector deletes was in the
// plan the state names, published at least the delay ago (store time).
func (o *onlineModel) checkDeletable(items []storage.GCItem) {
	st, _, err := o.reg.ReadGCState(o.ctx)
	if err != nil || st.Phase != storage.GCPhaseSweeping {
		o.failure = fmt.Sprintf("deleting while the state says %+v (%v)", st, err)
		return
	}
	plan, err := o.reg.ReadGCPlan(o.ctx, st.Plan)
	if err != nil {
		o.failure = fmt.Sprintf("deleting items of plan %s, which cannot be read: %v", st.Plan, err)
		return
	}
	in := map[storage.GCItem]bool{}
	for _, it := range plan.Items {
		in[it] = true
	}
	now, _ := o.reg.StorageNow(o.ctx)
	if age := now.Sub(st.PlanCreated); age < mdlDelay {
		o.failure = fmt.Sprintf("deleting items of plan %s published %s ago, less than the delay", st.Plan, age)
	}
	for _, it := range items {
		if !in[it] {
			o.failure = fmt.Sprintf("deleting %+v, which plan %s does not condemn", it, st.Plan)
		}
	}
}

// gcStep starts a run, or lets the running one go to its next pause
// point (or its end).
func (o *onlineModel) gcStep() {
	if !o.running {
		o.arrive, o.proceed, o.done = make(chan string), make(chan struct{}), make(chan error, 1)
		o.running = true
		go func() {
			_, err := o.col.RunOnce(o.ctx)
			o.done <- err
		}()
	} else {
		o.proceed <- struct{}{}
	}
	select {
	case where := <-o.arrive:
		o.trace = append(o.trace, "  gc: "+where)
	case err := <-o.done:
		o.running = false
		o.lastErr = err
		// A collector that lost its lease (a renewal late on a loaded
		// machine) stops before its next delete: a safe end, and the
		// invariants are checked all the same.
		if err != nil && !errors.Is(err, ErrLeaseHeld) && !errors.Is(err, ErrLeaseLost) && !(o.kill.dead.Load() && errors.Is(err, errDead)) {
			o.t.Fatalf("collector: %v", err)
		}
		o.trace = append(o.trace, fmt.Sprintf("  gc: run over (%v)", err))
	case <-time.After(time.Minute):
		o.t.Fatal("the collector neither paused nor ended within a minute")
	}
}

// gcCrash kills the collector where it stands: its storage goes dead, it
// fails at its next request, its lease is neither renewed nor released.
func (o *onlineModel) gcCrash() {
	if !o.running {
		return
	}
	o.kill.dead.Store(true)
	for o.running {
		o.gcStep()
	}
	o.kill.dead.Store(false) // the next run is another process
	o.trace = append(o.trace, "  gc: crashed")
}

// client runs a client operation; one that waits for the collector (its
// own content being deleted) gets the collector stepped until it is done.
func (o *onlineModel) client(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
			// Waiting for the sweep: let the collector go on (or start
			// one, as a scheduler would, after a crash).
			o.gcStep()
		}
	}
}

func (o *onlineModel) repo(name string) *storage.Repository {
	r, err := o.reg.Repository(name)
	if err != nil {
		o.t.Fatal(err)
	}
	return r
}

// retryable are the answers a client may get and retry: the documented
// ones of the protocol.
func retryable(err error) bool {
	return errcode.Is(err, errcode.ManifestBlobUnknown) || errcode.Is(err, errcode.Unavailable) || errcode.Is(err, errcode.BlobUnknown)
}

// ensureBlob makes blob d present in repo as a client would: HEAD, then a
// mount from a repository that should have it, then an upload.
func (o *onlineModel) ensureBlob(repo string, d digest.Digest, mount bool) error {
	r := o.repo(repo)
	if _, err := r.StatBlob(o.ctx, d); err == nil {
		return nil
	} else if !errcode.Is(err, errcode.BlobUnknown) {
		return err
	}
	if mount {
		for _, from := range o.repos {
			if from == repo {
				continue
			}
			if _, err := r.MountBlob(o.ctx, o.repo(from), d); err == nil {
				return nil
			} else if !errcode.Is(err, errcode.BlobUnknown) {
				return err
			}
		}
	}
	for attempt := 0; ; attempt++ {
		up, err := r.NewUpload(o.ctx, "")
		if err != nil {
			return err
		}
		_, err = up.Commit(o.ctx, bytes.NewReader(o.m.blobs[d]), 0, d)
		if err == nil || attempt > 5 || !errcode.Is(err, errcode.Unavailable) {
			return err
		}
	}
}

// ensureManifest pushes manifest d (and what it needs: children first,
// blobs) into repo, retrying as a client does on the documented answers.
func (o *onlineModel) ensureManifest(repo, ref string, d digest.Digest) error {
	mm := o.m.manifests[d]
	var err error
	for attempt := 0; attempt < 6; attempt++ {
		for _, c := range mm.children {
			if _, err := o.repo(repo).GetManifest(o.ctx, c.String()); err != nil {
				if err := o.ensureManifest(repo, "", c); err != nil {
					return err
				}
			}
		}
		for _, b := range mm.blobs {
			if err := o.ensureBlob(repo, b, attempt%2 == 0); err != nil && !retryable(err) {
				return err
			}
		}
		if ref == "" {
			ref = d.String()
		}
		_, err = o.repo(repo).PutManifest(o.ctx, ref, mm.mediaType, mm.content, nil)
		if err == nil || !retryable(err) {
			return err
		}
		// A client retries after a while: the collector goes on meanwhile
		// (client, which runs this, steps it while it waits).
		time.Sleep(150 * time.Millisecond)
	}
	return fmt.Errorf("push of %s still refused after 6 attempts: %w", d, err)
}

func (o *onlineModel) addManifest(content []byte, mt string, blobs, children []digest.Digest) digest.Digest {
	d := digest.FromBytes(content)
	o.m.manifests[d] = &mManifest{content: content, mediaType: mt, blobs: blobs, children: children}
	return d
}

func (o *onlineModel) pick(n, x int) int { return x % n }

// sortedRevs lists a repository's revisions in the model, sorted.
func (o *onlineModel) sortedRevs(repo string) []digest.Digest {
	return sortedDigests(o.m.repo(repo).revs)
}

func (o *onlineModel) exec(i int, x op) {
	repoName := o.repos[o.pick(len(o.repos), x.a)]
	mr := o.m.repo(repoName)
	switch x.kind {
	case opPushStart:
		o.seq++
		cfg := []byte(fmt.Sprintf(`{"config":%d}`, o.seq))
		cd := digest.FromBytes(cfg)
		o.m.blobs[cd] = cfg
		blobs := []digest.Digest{cd}
		for j := 0; j <= x.c%2; j++ {
			var ld digest.Digest
			switch {
			case x.b%3 == 1 && len(o.dropped) > 0:
				// Layers of an image deleted earlier: most likely
				// condemned, maybe being swept (the race of issue 14).
				ld = o.dropped[(x.c/2+j)%len(o.dropped)]
			case x.b%3 == 2:
				l := []byte(fmt.Sprintf("layer %d of push %d", j, o.seq))
				ld = digest.FromBytes(l)
				o.m.blobs[ld] = l
			default:
				l := o.pool[(x.c/2+j)%len(o.pool)]
				ld = digest.FromBytes(l)
				o.m.blobs[ld] = l
			}
			if !slices.Contains(blobs, ld) {
				blobs = append(blobs, ld)
			}
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))}}
		m.SchemaVersion = 2
		for _, b := range blobs[1:] {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mtLayer, Digest: b, Size: int64(len(o.m.blobs[b]))})
		}
		content, _ := json.Marshal(m)
		tag := ""
		if x.b%3 != 0 {
			tag = fmt.Sprintf("t%d", x.b%5)
		}
		for _, b := range blobs {
			if err := o.client(func() error { return o.ensureBlob(repoName, b, x.b%2 == 0) }); err != nil && !retryable(err) {
				o.t.Fatalf("blob %s: %v", b, err)
			}
		}
		o.addManifest(content, m.MediaType, blobs, nil)
		o.pending[x.c%4] = &pendingPush{repo: repoName, tag: tag, content: content, blobs: blobs}
	case opPushFinish:
		p := o.pending[x.c%4]
		if p == nil {
			return
		}
		delete(o.pending, x.c%4)
		d := digest.FromBytes(p.content)
		ref := p.tag
		if ref == "" {
			ref = d.String()
		}
		// The manifest as the client sends it, relying on what its HEADs
		// said some operations ago; on a documented refusal it retries
		// the whole push.
		_, err := o.repo(p.repo).PutManifest(o.ctx, ref, ocispec.MediaTypeImageManifest, p.content, nil)
		if err != nil {
			if !retryable(err) {
				o.t.Fatalf("PUT %s:%s: %v", p.repo, ref, err)
			}
			o.trace = append(o.trace, fmt.Sprintf("  PUT refused (%v); retrying", errcode.From(err).Code))
			err = o.client(func() error { return o.ensureManifest(p.repo, ref, d) })
			if err != nil {
				o.t.Fatalf("retried push %s:%s: %v", p.repo, ref, err)
			}
		}
		r := o.m.repo(p.repo)
		r.revs[d] = true
		if p.tag != "" {
			r.tags[p.tag] = d
		}
	case opTag:
		revs := o.sortedRevs(repoName)
		if len(revs) == 0 {
			return
		}
		d := revs[o.pick(len(revs), x.b)]
		tag := fmt.Sprintf("t%d", x.c%5)
		if err := o.client(func() error { return o.ensureManifest(repoName, tag, d) }); err != nil {
			o.t.Fatalf("tag %s:%s -> %s: %v", repoName, tag, d, err)
		}
		mr.revs[d] = true
		mr.tags[tag] = d
	case opUntag:
		tags := sortedTags(mr)
		if len(tags) == 0 {
			return
		}
		tag := tags[o.pick(len(tags), x.b)]
		if err := o.repo(repoName).DeleteTag(o.ctx, tag); err != nil {
			o.t.Fatalf("untag %s:%s: %v", repoName, tag, err)
		}
		delete(mr.tags, tag)
	case opDeleteManifest:
		revs := o.sortedRevs(repoName)
		if len(revs) == 0 {
			return
		}
		d := revs[o.pick(len(revs), x.b)]
		// A client deleting a child of an index it keeps breaks its own
		// index; the model's clients do not.
		for rev := range mr.revs {
			for _, c := range o.m.manifests[rev].children {
				if c == d {
					return
				}
			}
		}
		if err := o.repo(repoName).DeleteManifest(o.ctx, d); err != nil && !errcode.Is(err, errcode.ManifestUnknown) {
			o.t.Fatalf("delete %s@%s: %v", repoName, d, err)
		}
		delete(mr.revs, d)
		for _, b := range o.m.manifests[d].blobs {
			if !slices.Contains(o.dropped, b) {
				o.dropped = append(o.dropped, b)
			}
		}
		for t, td := range mr.tags {
			if td == d {
				delete(mr.tags, t)
			}
		}
	case opPushIndex:
		var kids []digest.Digest
		for _, d := range o.sortedRevs(repoName) {
			if len(o.m.manifests[d].children) == 0 && len(kids) < 2 && (x.c>>len(kids))%2 == 0 {
				kids = append(kids, d)
			}
		}
		if len(kids) == 0 {
			return
		}
		ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
		ix.SchemaVersion = 2
		for _, k := range kids {
			ix.Manifests = append(ix.Manifests, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: k,
				Size: int64(len(o.m.manifests[k].content))})
		}
		content, _ := json.Marshal(ix)
		d := o.addManifest(content, ix.MediaType, nil, kids)
		tag := fmt.Sprintf("ix%d", x.b%3)
		if err := o.client(func() error { return o.ensureManifest(repoName, tag, d) }); err != nil {
			o.t.Fatalf("index %s:%s: %v", repoName, tag, err)
		}
		mr.revs[d] = true
		mr.tags[tag] = d
		for _, k := range kids {
			mr.revs[k] = true
		}
	case opAge:
		time.Sleep(mdlDelay / 2)
	case opGCStep:
		o.gcStep()
	case opGCCrash:
		o.gcCrash()
	case opHead:
		d := digest.FromBytes(o.pool[o.pick(len(o.pool), x.b)])
		_, err := o.repo(repoName).StatBlob(o.ctx, d)
		if err != nil && !errcode.Is(err, errcode.BlobUnknown) {
			o.t.Fatalf("HEAD %s@%s: %v", repoName, d, err)
		}
	case opMount:
		l := o.pool[o.pick(len(o.pool), x.b)]
		d := digest.FromBytes(l)
		o.m.blobs[d] = l
		from := o.repos[o.pick(len(o.repos), x.c)]
		if from == repoName {
			return
		}
		if _, err := o.repo(repoName).MountBlob(o.ctx, o.repo(from), d); err != nil && !errcode.Is(err, errcode.BlobUnknown) {
			o.t.Fatalf("mount %s from %s: %v", d, from, err)
		}
	}
}

// check is invariants 1 and 2: everything live pulls whole, every tag
// names what the model says.
func (o *onlineModel) check() error {
	if o.failure != "" {
		return errors.New(o.failure)
	}
	for _, name := range o.repos {
		mr := o.m.repo(name)
		for d := range o.m.live(name, o.untag) {
			if err := o.pullable(name, d.String()); err != nil {
				return fmt.Errorf("live %s@%s: %w", name, d, err)
			}
		}
		for tag, d := range mr.tags {
			m, err := o.repo(name).GetManifest(o.ctx, tag)
			if err != nil || m.Digest != d {
				return fmt.Errorf("tag %s:%s: %v (want %s)", name, tag, err, d)
			}
		}
	}
	return nil
}

func (o *onlineModel) pullable(repo, ref string) error {
	e := &env{t: o.t, ctx: o.ctx, d: o.store, reg: o.reg}
	return e.pullable(repo, ref)
}

// finish stops the operations and lets the collector run to the end,
// then twice more after the delay: the garbage must be gone.
func (o *onlineModel) finish() error {
	for o.running {
		o.gcStep()
	}
	// Three runs that end well (a crashed collector's lease must expire
	// first, a loaded machine may cost a run its lease).
	deadline := time.Now().Add(time.Minute)
	for ok := 0; ok < 3; {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d collector runs ended well in a minute (last: %v)", ok, o.lastErr)
		}
		time.Sleep(mdlDelay + mdlSkew + 50*time.Millisecond)
		o.gcStep()
		for o.running {
			o.gcStep()
		}
		if o.lastErr == nil {
			ok++
		}
		if err := o.check(); err != nil {
			return err
		}
	}
	// Garbage: blobs no live manifest references.
	want := map[digest.Digest]bool{}
	for _, name := range o.repos {
		for d := range o.m.live(name, o.untag) {
			want[d] = true
			for _, b := range o.m.manifests[d].blobs {
				want[b] = true
			}
		}
	}
	var extra []string
	err := o.reg.WalkBlobs(o.ctx, func(d digest.Digest, _ int64) error {
		if !want[d] {
			extra = append(extra, d.String())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		return fmt.Errorf("garbage left after collections: %s", strings.Join(extra, ", "))
	}
	return nil
}

// runModel runs ops; it returns the first invariant that failed (or a
// fatal error's message) and the trace.
func runModel(t *testing.T, store func() driver.StorageDriver, ops []op, untag bool) (failure string, trace []string) {
	var o *onlineModel
	ok := t.Run("run", func(t *testing.T) {
		o = newOnlineModel(t, store, ops, untag)
		defer func() {
			if o.running {
				o.kill.dead.Store(true)
				for o.running {
					o.gcStep()
				}
			}
		}()
		for i, x := range ops {
			o.trace = append(o.trace, fmt.Sprintf("%d %s", i, x))
			o.exec(i, x)
			if err := o.check(); err != nil {
				failure = fmt.Sprintf("after op %d %s: %v", i, x, err)
				return
			}
		}
		if err := o.finish(); err != nil {
			failure = "at the end: " + err.Error()
		}
		runs, _ := o.col.Runs(o.ctx)
		var deleted, resurrected int
		for _, r := range runs {
			deleted += r.Deleted.Total()
			resurrected += r.Resurrected
		}
		st := o.reg.GCProtocolStats()
		t.Logf("%d runs kept, %d items deleted, %d resurrected; writers: %d pins, %d refused, %d waits, %d failed",
			len(runs), deleted, resurrected, st.Pins, st.Refused, st.Waits, st.Failed)
	})
	if !ok && failure == "" {
		failure = "fatal (see above)"
	}
	if o != nil {
		trace = o.trace
	}
	return failure, trace
}

func TestOnlineModel(t *testing.T) {
	stores := []struct {
		name string
		new  func(t *testing.T) func() driver.StorageDriver
	}{
		{"inmemory", func(t *testing.T) func() driver.StorageDriver {
			d := inmemory.New()
			return func() driver.StorageDriver { return d }
		}},
		{"filesystem", func(t *testing.T) func() driver.StorageDriver {
			root := t.TempDir()
			return func() driver.StorageDriver {
				d, err := filesystem.New(root)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
		}},
	}
	for _, s := range stores {
		for _, untag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/deleteuntagged=%v", s.name, untag), func(t *testing.T) {
				seeds := []int64{}
				if *modelSeed != 0 {
					seeds = append(seeds, *modelSeed)
				} else {
					for i := range *modelSeeds {
						seeds = append(seeds, int64(1000*(i+1))+map[bool]int64{false: 1, true: 2}[untag])
					}
					if s.name == "filesystem" {
						seeds = seeds[:max(1, len(seeds)/3)]
					}
				}
				for _, seed := range seeds {
					ops := genOps(seed, *modelOps)
					failure, trace := runModel(t, s.new(t), ops, untag)
					if failure == "" {
						continue
					}
					// Shrink: drop operations while it still fails.
					shrunk := ops
					deadline := time.Now().Add(3 * time.Minute)
					for changed := true; changed && time.Now().Before(deadline); {
						changed = false
						for i := 0; i < len(shrunk) && time.Now().Before(deadline); i++ {
							cand := append(append([]op(nil), shrunk[:i]...), shrunk[i+1:]...)
							if f, _ := runModel(t, s.new(t), cand, untag); f != "" {
								shrunk, changed = cand, true
								i--
							}
						}
					}
					_, strace := runModel(t, s.new(t), shrunk, untag)
					t.Fatalf("seed %d (-gc.model.seed=%d): %s\nfull trace:\n%s\nshrunk to %d operations: %v\n%s",
						seed, seed, failure, strings.Join(trace, "\n"), len(shrunk), shrunk, strings.Join(strace, "\n"))
				}
			})
		}
	}
}
