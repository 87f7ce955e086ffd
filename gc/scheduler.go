package gc

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors of Scheduler.Start and Wait.
var (
	// ErrBusy: a run is under way, here or on another instance holding
	// the lease.
	ErrBusy = errors.New("a garbage collection is already under way")
	// ErrReadOnly: the registry is read-only; only dry runs.
	ErrReadOnly = errors.New("the registry is read-only (storage.maintenance.readonly): only a dry run is possible")
	// ErrUnknownRun: no such run (only the last ones are kept).
	ErrUnknownRun = errors.New("no such garbage collection run (only the last runs are kept)")
)

// SchedulerOptions tune a Scheduler.
type SchedulerOptions struct {
	// Scheduled turns runs every Interval on (storage.maintenance.gc.
	// enabled); without it the scheduler runs on demand only.
	Scheduled bool
	// Interval between the starts of scheduled runs. A run also comes
	// when the pending plan falls due, if that is sooner.
	Interval time.Duration
	// FirstDelay is the wait before the first scheduled run (default a
	// minute, or Interval if shorter): not during startup's first requests.
	FirstDelay time.Duration
	// ReadOnly refuses runs that would delete (dry runs go on).
	ReadOnly bool
	// Log receives the scheduler's own lines; nil is quiet.
	Log func(msg string, fields map[string]any)
}

// Scheduler runs a Collector inside serve: every Interval (inside its
// window), when the pending plan falls due, and on demand (the admin API,
// retention after it deleted tags). Several instances sharing a store may
// each have one: the lease decides which one runs; the others find it
// busy and try again at their next turn.
type Scheduler struct {
	c    *Collector
	opts SchedulerOptions
	base context.Context

	mu      sync.Mutex
	running *job
	jobs    []*job // started here, newest first
	next    time.Time
	kick    chan string // the trigger of a run asked for now
	refused error       // the store check's refusal, for Status
}

type job struct {
	id     string
	dryRun bool
	done   chan struct{}
	report *RunReport
	err    error
}

// NewScheduler returns a scheduler of c; runs stop when ctx is done.
func NewScheduler(ctx context.Context, c *Collector, opts SchedulerOptions) *Scheduler {
	if opts.FirstDelay <= 0 {
		opts.FirstDelay = time.Minute
		if opts.Interval > 0 && opts.Interval < opts.FirstDelay {
			opts.FirstDelay = opts.Interval
		}
	}
	return &Scheduler{c: c, opts: opts, base: ctx, kick: make(chan string, 1)}
}

// Collector is the scheduler's collector.
func (s *Scheduler) Collector() *Collector { return s.c }

func (s *Scheduler) log(msg string, fields map[string]any) {
	if s.opts.Log != nil {
		s.opts.Log(msg, fields)
	}
}

// Triggers of runs (RunReport.Trigger).
const (
	TriggerSchedule = "schedule"
	TriggerDemand   = "demand"
	TriggerOffline  = "offline"
	TriggerStartup  = "startup" // the store check at startup (a refused report only)
	// TriggerRetention: retention deleted tags or manifests (serve's
	// retention runs kick the scheduler), so that the collector condemns
	// what they held at once rather than at its next turn.
	TriggerRetention = "retention"
	// TriggerProxyEviction: the pull-through cache evicted images (it
	// removes tags, manifests and links, never blobs), so that their
	// bytes leave the disk soon rather than at the collector's next turn.
	TriggerProxyEviction = "proxy-eviction"
)

// Start begins a run now (ignoring the window: it was asked for) and
// returns its id; ErrBusy when a run is under way here or another
// instance holds the lease.
func (s *Scheduler) Start(ctx context.Context, dryRun bool) (string, error) {
	return s.start(ctx, dryRun, TriggerDemand)
}

func (s *Scheduler) start(ctx context.Context, dryRun bool, trigger string) (string, error) {
	if s.opts.ReadOnly && !dryRun && !s.c.opts.DryRun {
		return "", ErrReadOnly
	}
	s.mu.Lock()
	if s.running != nil {
		s.mu.Unlock()
		return "", ErrBusy
	}
	j := &job{dryRun: dryRun, done: make(chan struct{})}
	s.running = j // holds the place while the lease is taken
	s.mu.Unlock()
	fail := func(err error) (string, error) {
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
		return "", err
	}
	if err := s.c.CheckStore(ctx); err != nil {
		s.mu.Lock()
		s.refused = err
		s.mu.Unlock()
		rep := s.c.NewReport(dryRun)
		s.c.finish(s.base, rep, ResultRefused, err)
		return fail(err)
	}
	lease, err := s.c.Acquire(ctx)
	if errors.Is(err, ErrLeaseHeld) {
		return fail(ErrBusy)
	}
	if err != nil {
		return fail(err)
	}
	rep := s.c.NewReport(dryRun)
	rep.Trigger = trigger
	s.mu.Lock() // Status and Wait read the job's id under it
	j.id, j.dryRun = rep.ID, rep.DryRun
	s.jobs = append([]*job{j}, s.jobs...)
	if len(s.jobs) > s.c.opts.History {
		s.jobs = s.jobs[:s.c.opts.History]
	}
	s.mu.Unlock()
	go func() {
		rep, err := s.c.RunWithLease(s.base, lease, rep)
		s.mu.Lock()
		j.report, j.err = rep, err
		s.running = nil
		close(j.done)
		s.mu.Unlock()
	}()
	return j.id, nil
}

// Wait blocks until run id is over (or ctx is done) and returns its
// report; the error is the run's. A run of another instance is found in
// the store once it is over.
func (s *Scheduler) Wait(ctx context.Context, id string) (*RunReport, error) {
	s.mu.Lock()
	var j *job
	for _, x := range s.jobs {
		if x.id == id {
			j = x
		}
	}
	s.mu.Unlock()
	if j != nil {
		select {
		case <-j.done:
			return j.report, j.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	runs, err := s.c.Runs(ctx)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		if runs[i].ID == id {
			return &runs[i], nil
		}
	}
	return nil, ErrUnknownRun
}

// Status is what Scheduler.Status reports.
type Status struct {
	Enabled bool      // scheduled runs are on
	Running bool      // a run is under way, here or elsewhere
	Holder  string    // the lease holder's description while a run is under way elsewhere
	Next    time.Time // the next scheduled run here (zero: none)
	// Refused is why online collection cannot run on this store (the
	// consistency check failed), nil when it can.
	Refused error
	Runs    []RunReport // newest first, from the store; a run under way here has Result "running"
}

// Status returns the collector's state and the last runs of every
// instance (the reports are in the store).
func (s *Scheduler) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	st := Status{Enabled: s.opts.Scheduled && !s.opts.ReadOnly, Next: s.next, Refused: s.refused}
	var cur *job
	if s.running != nil && s.running.id != "" {
		cur = s.running
	}
	st.Running = s.running != nil
	s.mu.Unlock()
	runs, err := s.c.Runs(ctx)
	if err != nil {
		return st, err
	}
	if cur != nil {
		st.Runs = append(st.Runs, RunReport{ID: cur.id, Mode: s.c.opts.Mode, Instance: s.c.opts.Instance, DryRun: cur.dryRun, Result: ResultRunning})
	}
	st.Runs = append(st.Runs, runs...)
	if !st.Running {
		rec, age, ok, err := ReadLease(ctx, s.c.reg)
		if err == nil && ok && !rec.Released && age <= rec.TTL {
			st.Running = true
			st.Holder = (&LeaseHeldError{Record: rec, Age: age}).Error()
		}
	}
	return st, nil
}

// CheckStore runs the collector's store check now (serve calls it at
// startup, so that a store online collection must refuse says so at once:
// in the log, the metric, and a refused run report the admin API shows).
func (s *Scheduler) CheckStore(ctx context.Context) error {
	err := s.c.CheckStore(ctx)
	if err != nil {
		s.mu.Lock()
		s.refused = err
		s.mu.Unlock()
		rep := s.c.NewReport(false)
		rep.Trigger = TriggerStartup
		s.c.finish(s.base, rep, ResultRefused, err)
	}
	return err
}

// Kick asks for a scheduled run now (inside the window; the schedule
// goes on from it), recorded with trigger; a kick while one is pending
// is dropped. It does nothing unless Schedule runs.
func (s *Scheduler) Kick(trigger string) {
	select {
	case s.kick <- trigger:
	default:
	}
}

// Schedule runs the collector until the scheduler's context is done: at
// FirstDelay, then every Interval, or sooner when the plan it published
// falls due, or when kicked; runs start only inside the window. It returns
// at once when scheduled runs are off or the registry is read-only.
func (s *Scheduler) Schedule() {
	if !s.opts.Scheduled || s.opts.ReadOnly || s.opts.Interval <= 0 {
		return
	}
	wait := s.opts.FirstDelay
	trigger := TriggerSchedule // until kicked
	for {
		next := time.Now().Add(wait)
		if w := s.c.opts.Window; w != nil {
			next = w.Next(next)
		}
		s.mu.Lock()
		s.next = next
		s.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-s.base.Done():
			t.Stop()
			return
		case <-t.C:
		case kicked := <-s.kick:
			t.Stop()
			trigger = kicked
		}
		if w := s.c.opts.Window; w != nil && !w.Contains(time.Now()) {
			wait = 0 // kicked outside the window: wait for it to open
			continue
		}
		started := time.Now()
		wait = s.opts.Interval
		id, err := s.start(s.base, false, trigger)
		trigger = TriggerSchedule
		switch {
		case errors.Is(err, ErrBusy):
			s.log("gc: another collector holds the lease; trying again at the next turn", nil)
			continue
		case err != nil:
			s.log("gc: run not started", map[string]any{"error": err.Error()})
			continue
		}
		rep, _ := s.Wait(s.base, id)
		// The plan it published is due before the next turn: come back
		// then (store time against this host's clock: a little late is
		// fine, early only costs a run that finds it not due yet).
		if rep != nil && rep.PlanDue != nil {
			if until := time.Until(rep.PlanDue.Add(time.Second)); until > 0 && until < wait-time.Since(started) {
				wait = until
				continue
			}
		}
		wait = max(0, wait-time.Since(started))
	}
}
