package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// ErrNoConditional is returned by NewCollector for a driver without
// driver.ConditionalWriter: no lease, no online collection.
var ErrNoConditional = errors.New("the storage driver cannot write conditionally, which online garbage collection needs")

var errNoConditional = ErrNoConditional

func isNotFoundErr(err error) bool { return errors.Is(err, driver.ErrPathNotFound) }

// OnlineOptions configure the online collector.
type OnlineOptions struct {
	// Delay is the grace period: nothing younger is condemned, and a plan
	// is swept no sooner than Delay after it was published. It must be at
	// least MinDelay(StateMaxAge, ClockSkew).
	Delay time.Duration
	// StateMaxAge is Rmax, the registries' bound on the age of their copy
	// of the state (storage.Options.GCStateMaxAge); 0 selects
	// storage.DefaultGCStateMaxAge. The sweep waits this long after moving
	// its cursor before it lists pins.
	StateMaxAge time.Duration
	// ClockSkew bounds the disagreement of clocks within the store; 0
	// selects DefaultClockSkew.
	ClockSkew time.Duration
	// LeaseHeartbeat is the lease's renewal period; 0 selects
	// DefaultLeaseHeartbeat.
	LeaseHeartbeat time.Duration
	// Mode is written into the lease and the reports: "online" (serve)
	// or "offline" (garbage-collect).
	Mode string
	// DeleteUntagged collects revisions no tag reaches, as Options.
	DeleteUntagged bool
	// DryRun marks and reports what would be condemned and swept, and
	// writes nothing but its report.
	DryRun bool
	// UploadsOlderThan purges uploads started longer ago; 0 leaves them.
	UploadsOlderThan time.Duration
	// Workers bounds concurrent storage operations; 0 selects
	// DefaultWorkers.
	Workers int
	// BatchSize is the first sweep batch's number of digests; later
	// batches adapt so that deleting one takes about StateMaxAge (the wait
	// of the next overlaps it). 0 selects 4096: every pass waits
	// StateMaxAge before its first delete, so a small store's sweep is one
	// batch per pass.
	BatchSize int
	// Window, when set, is consulted between sweep batches: outside it the
	// sweep stops where it is (the state keeps its place for the next run).
	Window *Window
	// History is how many run reports are kept in the store; 0 selects 20.
	History int
	// Instance names the registry running the collector, in reports.
	Instance string
	// Hooks are pause points for tests.
	Hooks *Hooks
	// Observer receives metrics; nil is none.
	Observer Observer
	// Log receives a line per phase; nil is quiet.
	Log func(msg string, fields map[string]any)
	// AfterRun receives each finished run's report (serve sends an event).
	AfterRun func(RunReport)
}

// MinDelay is the least grace period the protocol's proof allows: a writer
// that never saw a plan committed within StateMaxAge of its last state
// read, which must come before the re-check mark starts; twice that plus
// the clock skew leaves room for the state write that publishes a plan.
func MinDelay(stateMaxAge, clockSkew time.Duration) time.Duration {
	if stateMaxAge <= 0 {
		stateMaxAge = storage.DefaultGCStateMaxAge
	}
	if clockSkew <= 0 {
		clockSkew = DefaultClockSkew
	}
	return 2*stateMaxAge + clockSkew
}

// Hooks are the collector's pause points, for deterministic tests of its
// races with writers; nil in production.
type Hooks struct {
	// BeforeMarkRepo runs as the mark starts on a repository.
	BeforeMarkRepo func(ctx context.Context, repo string)
	// AfterMark runs when the mark is complete, before the sweep.
	AfterMark func(ctx context.Context)
	// BeforeSweepBatch runs after the state names the batch's last digest
	// as the cursor, before the wait and the pins.
	BeforeSweepBatch func(ctx context.Context, pass string, cursor digest.Digest)
	// BeforeDelete runs after the pins were listed and the lease checked,
	// right before the batch's items are deleted.
	BeforeDelete func(ctx context.Context, pass string, items []storage.GCItem)
	// AfterPlan runs once a new plan is published.
	AfterPlan func(ctx context.Context, plan string)
}

// Observer receives the collector's metrics (package metrics implements
// it); methods are called from the collector's goroutine.
type Observer interface {
	// RunDone counts a run by result ("ok", "failed", "refused", "busy",
	// "interrupted").
	RunDone(result string)
	// PhaseDone records a phase's duration ("mark", "sweep", "plan",
	// "uploads").
	PhaseDone(phase string, d time.Duration)
	// Marked and Condemned are gauges of the last run.
	Marked(n int)
	Condemned(n int)
	// Deleted counts items deleted by kind ("manifest", "layer-link",
	// "blob", "upload") and bytes freed.
	Deleted(kind string, n int, bytes int64)
	// Resurrected counts condemned items a writer's pin kept.
	Resurrected(n int)
	// LeaseEpoch is the epoch of the lease the collector took.
	LeaseEpoch(epoch uint64)
	// LastSuccess is when a run last ended well.
	LastSuccess(t time.Time)
}

// Results of a run.
const (
	ResultOK          = "ok"
	ResultFailed      = "failed"
	ResultRefused     = "refused"     // the store or a serving registry does not allow it
	ResultBusy        = "busy"        // another collector holds the lease
	ResultInterrupted = "interrupted" // stopped by its window or context; resumes next time
	ResultRunning     = "running"
)

// RunReport is what one run of the online collector did; the last
// History of them are kept in the store (runs/<id>) for the admin API.
type RunReport struct {
	ID             string     `json:"id"`
	Mode           string     `json:"mode"`
	Instance       string     `json:"instance,omitempty"`
	Epoch          uint64     `json:"epoch,omitempty"`
	Started        time.Time  `json:"started"`
	Finished       *time.Time `json:"finished,omitempty"`
	DryRun         bool       `json:"dryRun"`
	DeleteUntagged bool       `json:"deleteUntagged"`
	// Trigger is what started the run: "schedule", "demand" (the admin
	// API, retention; the window does not apply) or "offline"
	// (garbage-collect).
	Trigger      string `json:"trigger,omitempty"`
	Result       string `json:"result"`
	Error        string `json:"error,omitempty"`
	Repositories int    `json:"repositories"`
	Marked       int    `json:"marked"`
	// SweptPlan is the plan this run swept, Plan the one it published.
	SweptPlan string `json:"sweptPlan,omitempty"`
	Plan      string `json:"plan,omitempty"`
	// PlanDue is when Plan may be swept (store time).
	PlanDue   *time.Time `json:"planDue,omitempty"`
	Condemned Counts     `json:"condemned"`
	Deleted   Counts     `json:"deleted"`
	// Resurrected are items of the swept plan a writer's pin kept.
	Resurrected int               `json:"resurrected"`
	Phases      map[string]string `json:"phases,omitempty"` // phase -> duration
	Warnings    []string          `json:"warnings,omitempty"`
}

// Counts are items by kind, and bytes of blobs.
type Counts struct {
	Manifests  int   `json:"manifests"`
	LayerLinks int   `json:"layerLinks"`
	Blobs      int   `json:"blobs"`
	Uploads    int   `json:"uploads,omitempty"`
	Bytes      int64 `json:"bytes"`
}

func (c *Counts) add(it storage.GCItem) {
	switch it.Kind {
	case storage.GCRevision:
		c.Manifests++
	case storage.GCLink:
		c.LayerLinks++
	case storage.GCBlob:
		c.Blobs++
		c.Bytes += it.Size
	}
}

// Total is the number of items.
func (c Counts) Total() int { return c.Manifests + c.LayerLinks + c.Blobs + c.Uploads }

// Collector is the online collector of one store. Run it with RunOnce
// (the scheduler does, every interval); several registries sharing the
// store may each have one, and the lease lets one run at a time.
type Collector struct {
	reg  *storage.Registry
	opts OnlineOptions

	checkMu sync.Mutex
	checked bool
}

// NewCollector returns a collector over d. The collector works through its
// own storage.Registry over d (rate-limited if perSecond > 0), which does
// not follow the writers' protocol: it is the other side of it.
func NewCollector(d driver.StorageDriver, opts OnlineOptions, perSecond float64) (*Collector, error) {
	if opts.StateMaxAge <= 0 {
		opts.StateMaxAge = storage.DefaultGCStateMaxAge
	}
	if opts.ClockSkew <= 0 {
		opts.ClockSkew = DefaultClockSkew
	}
	if m := MinDelay(opts.StateMaxAge, opts.ClockSkew); opts.Delay < m {
		return nil, fmt.Errorf("gc delay %s is below the least the protocol allows, %s (twice the state cache bound plus the clock skew bound)", opts.Delay, m)
	}
	if opts.Mode == "" {
		opts.Mode = "online"
	}
	if opts.History <= 0 {
		opts.History = 20
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 4096
	}
	reg := storage.New(Limit(d, perSecond), storage.Options{
		GCStateMaxAge: -1, NoDirWatch: true, ManifestCacheBytes: 8 << 20,
	})
	if _, ok := driver.As[driver.ConditionalWriter](d); !ok {
		return nil, errNoConditional
	}
	return &Collector{reg: reg, opts: opts}, nil
}

// Registry is the collector's view of the store.
func (c *Collector) Registry() *storage.Registry { return c.reg }

// Options are the collector's options.
func (c *Collector) Options() OnlineOptions { return c.opts }

func (c *Collector) log(msg string, fields map[string]any) {
	if c.opts.Log != nil {
		c.opts.Log(msg, fields)
	}
}

// CheckStore runs the store's consistency check (storage.Registry.
// CheckConsistency) until it passes once: online collection refuses to run
// on a store that answers stale reads or ignores conditional writes. A
// failure is logged and counted each time, and checked again at the next
// run (a store may have been down).
func (c *Collector) CheckStore(ctx context.Context) error {
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	if c.checked {
		return nil
	}
	err := c.reg.CheckConsistency(ctx)
	if m, ok := c.opts.Observer.(interface{ StoreChecked(error) }); ok {
		m.StoreChecked(err)
	}
	if err != nil {
		c.log("gc: online garbage collection refused on this store", map[string]any{"error": err.Error()})
		return err
	}
	c.checked = true
	return nil
}

// ErrProtocolNotSpoken is matched by errors.Is when a registry that does
// not follow the protocol serves the store with writes allowed: an online
// collection could delete what it relies on.
var ErrProtocolNotSpoken = errors.New("a registry that does not follow the online collection protocol accepts writes to this storage")

// Acquire takes the lease for a run (ErrLeaseHeld when another collector
// has it).
func (c *Collector) Acquire(ctx context.Context) (*Lease, error) {
	return AcquireLease(ctx, c.reg, LeaseOptions{Heartbeat: c.opts.LeaseHeartbeat, ClockSkew: c.opts.ClockSkew, Mode: c.opts.Mode})
}

// RunOnce takes the lease and runs the collector once: re-check and sweep
// the current plan if it is due, publish the next plan, purge old uploads.
// The report is also stored. A lease held by another collector is
// ResultBusy with an error matching ErrLeaseHeld.
func (c *Collector) RunOnce(ctx context.Context) (*RunReport, error) {
	rep := c.newReport()
	if err := c.CheckStore(ctx); err != nil {
		return c.finish(ctx, rep, ResultRefused, err), err
	}
	lease, err := c.Acquire(ctx)
	if err != nil {
		result := ResultFailed
		if errors.Is(err, ErrLeaseHeld) {
			result = ResultBusy
			rep.Result = result
			c.observe(rep)
			return rep, err // not stored: the holder reports its own run
		}
		return c.finish(ctx, rep, result, err), err
	}
	return c.RunWithLease(ctx, lease, rep)
}

func (c *Collector) newReport() *RunReport {
	now := time.Now().UTC()
	return &RunReport{
		ID:   fmt.Sprintf("%s-%04x", now.Format("20060102T150405.000Z"), uint16(now.UnixNano()>>10)),
		Mode: c.opts.Mode, Instance: c.opts.Instance, Started: now,
		DryRun: c.opts.DryRun, DeleteUntagged: c.opts.DeleteUntagged, Result: ResultRunning,
		Phases: map[string]string{},
	}
}

// NewReport starts a report for RunWithLease; dryRun makes the run a dry
// one whatever the options say (a dry run option cannot be overridden).
func (c *Collector) NewReport(dryRun bool) *RunReport {
	rep := c.newReport()
	rep.DryRun = rep.DryRun || dryRun
	return rep
}

// RunWithLease is RunOnce with a lease already taken (the admin API takes
// it first, to answer "busy" at once); it releases the lease.
func (c *Collector) RunWithLease(ctx context.Context, lease *Lease, rep *RunReport) (*RunReport, error) {
	defer lease.Release(context.WithoutCancel(ctx))
	rep.Epoch = lease.Epoch()
	if c.opts.Observer != nil {
		c.opts.Observer.LeaseEpoch(lease.Epoch())
	}
	r := &run{c: c, lease: lease, rep: rep, dry: rep.DryRun}
	err := r.run(ctx)
	result := ResultOK
	switch {
	case err == nil:
	case errors.Is(err, errOutsideWindow) || (ctx.Err() != nil && errors.Is(err, ctx.Err())):
		result = ResultInterrupted
	case errors.Is(err, ErrProtocolNotSpoken):
		result = ResultRefused
	default:
		result = ResultFailed
	}
	return c.finish(ctx, rep, result, err), err
}

// finish records the result, stores the report and prunes old ones.
func (c *Collector) finish(ctx context.Context, rep *RunReport, result string, err error) *RunReport {
	now := time.Now().UTC()
	rep.Finished = &now
	rep.Result = result
	if err != nil {
		rep.Error = err.Error()
	}
	c.observe(rep)
	ctx = context.WithoutCancel(ctx)
	if b, merr := json.Marshal(rep); merr == nil {
		if werr := c.reg.WriteGCRun(ctx, rep.ID, b); werr == nil {
			c.pruneRuns(ctx)
		}
	}
	fields := map[string]any{"run": rep.ID, "result": result, "marked": rep.Marked,
		"condemned": rep.Condemned.Total(), "deleted": rep.Deleted.Total(), "bytes_freed": rep.Deleted.Bytes,
		"resurrected": rep.Resurrected, "epoch": rep.Epoch, "dry_run": rep.DryRun,
		"duration": now.Sub(rep.Started).Round(time.Millisecond).String()}
	if err != nil {
		fields["error"] = err.Error()
	}
	c.log("gc: run finished", fields)
	if c.opts.AfterRun != nil {
		c.opts.AfterRun(*rep)
	}
	return rep
}

func (c *Collector) observe(rep *RunReport) {
	o := c.opts.Observer
	if o == nil {
		return
	}
	o.RunDone(rep.Result)
	if rep.Result == ResultOK {
		o.LastSuccess(time.Now())
	}
}

func (c *Collector) pruneRuns(ctx context.Context) {
	ids, err := c.reg.GCRunIDs(ctx)
	if err != nil {
		return
	}
	for len(ids) > c.opts.History {
		_ = c.reg.DeleteGCRun(ctx, ids[0])
		ids = ids[1:]
	}
}

// Runs returns the stored run reports, newest first.
func (c *Collector) Runs(ctx context.Context) ([]RunReport, error) {
	return ReadRuns(ctx, c.reg)
}

// ReadRuns returns the run reports stored in reg, newest first.
func ReadRuns(ctx context.Context, reg *storage.Registry) ([]RunReport, error) {
	ids, err := reg.GCRunIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RunReport, 0, len(ids))
	for i := len(ids) - 1; i >= 0; i-- {
		b, err := reg.ReadGCRun(ctx, ids[i])
		if err != nil {
			continue // pruned meanwhile
		}
		var r RunReport
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

var errOutsideWindow = errors.New("outside the collection window; the sweep resumes in the next one")

// run is one run of the online collector.
type run struct {
	c     *Collector
	lease *Lease
	rep   *RunReport
	dry   bool // a dry run: writes nothing but its report

	st      storage.GCState
	version string
	wait    time.Duration // Rmax in force for this run's sweep

	mark *collector // the mark (shared with the offline collector)
}

func (r *run) opts() OnlineOptions { return r.c.opts }

func (r *run) phase(name string, start time.Time, fields map[string]any) {
	d := time.Since(start)
	r.rep.Phases[name] = d.Round(time.Millisecond).String()
	if o := r.opts().Observer; o != nil {
		o.PhaseDone(name, d)
	}
	if fields == nil {
		fields = map[string]any{}
	}
	fields["run"], fields["phase"], fields["duration"] = r.rep.ID, name, d.Round(time.Millisecond).String()
	r.c.log("gc: "+name+" done", fields)
}

func (r *run) run(ctx context.Context) error {
	reg := r.c.reg
	if err := r.checkWriters(ctx); err != nil {
		return err
	}
	st, version, err := reg.ReadGCState(ctx)
	if err != nil {
		return err
	}
	r.st, r.version = st, version
	r.wait = max(r.opts().StateMaxAge, st.MaxAge)
	now, err := reg.StorageNow(ctx)
	if err != nil {
		return err
	}
	dueAt := st.PlanCreated.Add(r.opts().Delay + r.opts().ClockSkew)
	due := st.Plan != "" && (st.Phase == storage.GCPhaseSweeping || !now.Before(dueAt))
	if st.Plan != "" && !due && !r.dry {
		// The plan waits for its delay; a new one now would restart it.
		r.rep.Plan, r.rep.PlanDue = st.Plan, &dueAt
		r.c.log("gc: plan not due yet", map[string]any{"run": r.rep.ID, "plan": st.Plan, "due": dueAt.UTC().Format(time.RFC3339)})
		return r.uploads(ctx)
	}

	// 1. Mark, from scratch: the re-check of the due plan, and the base of
	// the next one.
	start := time.Now()
	r.mark = &collector{reg: reg, opts: Options{DeleteUntagged: r.opts().DeleteUntagged, Workers: r.opts().Workers}, hooks: r.opts().Hooks}
	if err := r.mark.markAll(ctx); err != nil {
		return err
	}
	r.rep.Repositories = int(r.mark.repos.Load())
	r.rep.Marked = r.mark.markCount()
	r.rep.Warnings = append(r.rep.Warnings, r.mark.warnings...)
	if o := r.opts().Observer; o != nil {
		o.Marked(r.rep.Marked)
	}
	r.phase("mark", start, map[string]any{"repositories": r.rep.Repositories, "marked": r.rep.Marked,
		"manifests": r.mark.manifestsMarked.Load()})
	if h := r.opts().Hooks; h != nil && h.AfterMark != nil {
		h.AfterMark(ctx)
	}
	marks := r.mark.marks.frozen()

	// 2. Sweep the due plan, re-checked against the mark (a dry run
	// reports what a sweep would delete, due or not).
	if due || (r.dry && st.Plan != "") {
		start = time.Now()
		r.rep.SweptPlan = st.Plan
		_, err := r.sweep(ctx, marks)
		if o := r.opts().Observer; o != nil && !r.dry {
			o.Resurrected(r.rep.Resurrected)
		}
		if err != nil {
			return err
		}
		r.phase("sweep", start, map[string]any{"plan": st.Plan, "manifests": r.rep.Deleted.Manifests,
			"layer_links": r.rep.Deleted.LayerLinks, "blobs": r.rep.Deleted.Blobs, "bytes_freed": r.rep.Deleted.Bytes,
			"resurrected": r.rep.Resurrected})
	}

	// 3. The next plan.
	start = time.Now()
	if err := r.plan(ctx, marks); err != nil {
		return err
	}
	r.phase("plan", start, map[string]any{"plan": r.rep.Plan, "manifests": r.rep.Condemned.Manifests,
		"layer_links": r.rep.Condemned.LayerLinks, "blobs": r.rep.Condemned.Blobs, "bytes": r.rep.Condemned.Bytes})

	// 4. Uploads.
	return r.uploads(ctx)
}

// uploads purges upload sessions older than UploadsOlderThan, never
// younger: a live session is a push in progress.
func (r *run) uploads(ctx context.Context) error {
	age := r.opts().UploadsOlderThan
	if age <= 0 {
		return nil
	}
	start := time.Now()
	n, err := r.c.reg.PurgeUploads(ctx, time.Now().Add(-age), r.dry)
	r.rep.Deleted.Uploads = n
	if o := r.opts().Observer; o != nil && !r.dry {
		o.Deleted(string(KindUpload), n, 0)
	}
	r.phase("uploads", start, map[string]any{"uploads": n})
	if err != nil {
		return fmt.Errorf("gc: removing uploads: %w", err)
	}
	return nil
}

// KindUpload counts purged uploads in metrics.
const KindUpload Kind = "upload"

// checkWriters refuses a run while a registry that does not follow the
// protocol accepts writes to the store (an older registryd): its writes
// would race the sweep unprotected.
func (r *run) checkWriters(ctx context.Context) error {
	all, err := r.c.reg.Instances(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var bad []string
	for _, in := range all {
		if !in.IsRole(storage.RoleRegistry) || in.ReadOnly || in.GCProtocol {
			continue
		}
		if in.Live(now, DefaultInstanceTTL) {
			bad = append(bad, DescribeInstance(in, now))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s; upgrade it, make it read-only, or stop it", ErrProtocolNotSpoken, strings.Join(bad, "; "))
	}
	return nil
}

// writeState writes st as the new state, conditionally on the last
// version this run wrote or read: a state moved on by someone else means
// the lease was lost.
func (r *run) writeState(ctx context.Context, st storage.GCState) error {
	st.Epoch = r.lease.Epoch()
	st.MaxAge = r.opts().StateMaxAge
	v, err := r.c.reg.WriteGCState(ctx, st, r.version)
	if errors.Is(err, driver.ErrPreconditionFailed) {
		return fmt.Errorf("%w: the collector state was written by another collector", ErrLeaseLost)
	}
	if err != nil {
		return err
	}
	r.st, r.version = st, v
	return nil
}

// ResetOnlineState drops the online collector's plan, sweep sets and pins
// and leaves a state without a plan (written under lease, whose epoch
// fences it): for the immediate collection of garbage-collect, after which
// whatever a plan condemned was decided on a store that has changed.
func ResetOnlineState(ctx context.Context, reg *storage.Registry, lease *Lease) error {
	_, version, err := reg.ReadGCState(ctx)
	if err != nil {
		return err
	}
	ids, err := reg.GCPlanIDs(ctx)
	if err != nil {
		return err
	}
	if err := lease.Check(ctx); err != nil {
		return err
	}
	if _, err := reg.WriteGCState(ctx, storage.GCState{Epoch: lease.Epoch()}, version); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, reg.DeleteGCPlan(ctx, id))
	}
	return errors.Join(errs...)
}

// Summary formats the report for people (garbage-collect prints it).
func (r *RunReport) Summary() string {
	var b strings.Builder
	if r.DryRun {
		b.WriteString("online garbage collection, dry run: nothing was changed\n")
	} else {
		fmt.Fprintf(&b, "online garbage collection: %s\n", r.Result)
	}
	line := func(label, value string) { fmt.Fprintf(&b, "  %-30s %s\n", label+":", value) }
	line("repositories", fmt.Sprint(r.Repositories))
	line("digests marked", fmt.Sprint(r.Marked))
	if r.SweptPlan != "" {
		line("plan swept", r.SweptPlan)
		line("deleted", fmt.Sprintf("%d manifests, %d layer links, %d blobs (%s)", r.Deleted.Manifests, r.Deleted.LayerLinks,
			r.Deleted.Blobs, FormatBytes(r.Deleted.Bytes)))
		line("kept after all", fmt.Sprint(r.Resurrected))
	}
	if r.Deleted.Uploads > 0 {
		line("uploads removed", fmt.Sprint(r.Deleted.Uploads))
	}
	if r.Plan != "" {
		line("plan", r.Plan)
		if r.PlanDue != nil {
			line("condemned, deleted after", r.PlanDue.UTC().Format(time.RFC3339))
		}
		if r.SweptPlan != "" || r.Condemned.Total() > 0 {
			line("condemned", fmt.Sprintf("%d manifests, %d layer links, %d blobs (%s)", r.Condemned.Manifests,
				r.Condemned.LayerLinks, r.Condemned.Blobs, FormatBytes(r.Condemned.Bytes)))
		}
	}
	if r.Finished != nil {
		line("duration", r.Finished.Sub(r.Started).Round(time.Millisecond).String())
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", r.Error)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	return b.String()
}
