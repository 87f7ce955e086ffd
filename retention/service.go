package retention

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors of Service.Start and Wait.
var (
	ErrBusy       = errors.New("a retention run is already under way")
	ErrReadOnly   = errors.New("the registry is read-only (storage.maintenance.readonly): only a dry run is possible")
	ErrUnknownRun = errors.New("no such retention run (only the last runs are kept)")
)

// ResultRunning is the Result of a run under way in Status.
const ResultRunning = "running"

// ServiceOptions tune a Service.
type ServiceOptions struct {
	// Interval between scheduled runs, measured from the end of one to the
	// start of the next; 0: no schedule (on demand only).
	Interval time.Duration
	// FirstDelay is the wait before the first scheduled run (default one
	// minute, or Interval if shorter): not during startup's first requests,
	// and not never for a server restarted more often than Interval.
	FirstDelay time.Duration
	// ReadOnly refuses runs that would delete (dry runs go on).
	ReadOnly bool
	// KeepReports is how many runs' reports are kept (default 10).
	KeepReports int
	// AfterRun is called at the end of each run that deleted something
	// (not dry), with its report, before the run counts as over: the place
	// to ask the garbage collector to reclaim the space now rather than at
	// its next turn. It must not block.
	AfterRun func(Report)
}

// Service runs retention inside a server: on a schedule and on demand,
// one run at a time, keeping the last runs' reports in memory (a restart
// forgets them; the log has every deletion).
type Service struct {
	runner *Runner
	opts   ServiceOptions
	base   context.Context

	mu      sync.Mutex
	running *job
	jobs    []*job // newest first
	next    time.Time
}

type job struct {
	id      string
	dryRun  bool
	started time.Time
	done    chan struct{}
	report  Report
	err     error
}

// NewService returns a service of runner; runs stop when ctx is done.
func NewService(ctx context.Context, runner *Runner, opts ServiceOptions) *Service {
	if opts.KeepReports <= 0 {
		opts.KeepReports = 10
	}
	if opts.FirstDelay <= 0 {
		opts.FirstDelay = time.Minute
		if opts.Interval > 0 && opts.Interval < opts.FirstDelay {
			opts.FirstDelay = opts.Interval
		}
	}
	return &Service{runner: runner, opts: opts, base: ctx}
}

// Enabled reports whether any policy is configured.
func (s *Service) Enabled() bool { return len(s.runner.engine.policies) > 0 }

// Start begins a run now and returns its id.
func (s *Service) Start(dryRun bool) (string, error) {
	if s.opts.ReadOnly && !dryRun && !s.runner.engine.settings.DryRun {
		return "", ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return "", ErrBusy
	}
	now := s.runner.opts.Now()
	j := &job{id: newRunID(now), dryRun: dryRun || s.runner.engine.settings.DryRun, started: now, done: make(chan struct{})}
	s.running = j
	s.jobs = append([]*job{j}, s.jobs...)
	if len(s.jobs) > s.opts.KeepReports {
		s.jobs = s.jobs[:s.opts.KeepReports]
	}
	go func() {
		rep, err := s.runner.run(s.base, j.id, dryRun)
		if s.opts.AfterRun != nil && !rep.DryRun && rep.DeletedTags+rep.DeletedManifests > 0 {
			s.opts.AfterRun(rep)
		}
		s.mu.Lock()
		j.report, j.err = rep, err
		s.running = nil
		close(j.done)
		s.mu.Unlock()
	}()
	return j.id, nil
}

// Wait blocks until run id is over (or ctx is done) and returns its
// report; the error is the run's, if it failed.
func (s *Service) Wait(ctx context.Context, id string) (Report, error) {
	s.mu.Lock()
	var j *job
	for _, x := range s.jobs {
		if x.id == id {
			j = x
		}
	}
	s.mu.Unlock()
	if j == nil {
		return Report{}, ErrUnknownRun
	}
	select {
	case <-j.done:
		return j.report, j.err
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// Status is what Service.Status reports.
type Status struct {
	Enabled bool
	Running bool
	Next    time.Time // zero: no run scheduled
	Runs    []Report  // newest first; a run under way has Result "running"
}

// Status returns the service's state and its last runs.
func (s *Service) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Enabled: s.Enabled(), Running: s.running != nil, Next: s.next}
	for _, j := range s.jobs {
		select {
		case <-j.done:
			st.Runs = append(st.Runs, j.report)
		default:
			st.Runs = append(st.Runs, Report{ID: j.id, Started: j.started, DryRun: j.dryRun, Result: ResultRunning})
		}
	}
	return st
}

// Schedule runs retention every Interval until the service's context is
// done; it returns at once without an interval, policies, or in read-only
// mode. A run asked for meanwhile (the admin API) takes the turn of a
// scheduled one that meets it.
func (s *Service) Schedule() {
	if s.opts.Interval <= 0 || !s.Enabled() || s.opts.ReadOnly {
		return
	}
	wait := s.opts.FirstDelay
	for {
		s.mu.Lock()
		s.next = time.Now().Add(wait)
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-s.base.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if id, err := s.Start(false); err == nil {
			_, _ = s.Wait(s.base, id)
		}
		wait = s.opts.Interval
	}
}
