package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/metrics"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// Online garbage collection inside serve (storage.maintenance.gc): the
// collector and its scheduler, its metrics, logs and events, and its side
// of the admin API (gcMaintainer).

// actionGC is the action of the event sent at the end of each collection
// (registryd's own; receivers that want none list it in ignore.actions).
const actionGC = "gc"

// gcReportMediaType is the target media type of a collection's event.
const gcReportMediaType = "application/vnd.registryd.gc.report.v1+json"

// gcLeaseHeartbeat is the collector lease's renewal period: a sixth of the
// interval, between one and ten seconds, so that a short interval (tests,
// stress runs) has a lease that expires quickly when its holder dies.
func gcLeaseHeartbeat(interval time.Duration) time.Duration {
	return min(max(interval/6, time.Second), 10*time.Second)
}

// newGCScheduler builds the collector of this instance and its scheduler
// (runs on schedule, when a plan falls due, after retention, on demand
// through the admin API) with storage.maintenance.gc.enabled; nil without
// it, in read-only mode, where nothing may be deleted, and on a store that
// cannot write conditionally, with off saying which (the admin API answers
// with it). Every instance follows the collector's protocol either way
// (gcProtocolOptions).
func newGCScheduler(ctx context.Context, cfg *config.Config, d driver.StorageDriver, instanceID string,
	m *metrics.Metrics, notifier *notifications.Notifier, log logrus.FieldLogger) (sched *gc.Scheduler, gm *gc.Metrics, off string, err error) {
	gcfg := cfg.Storage.Maintenance.GC
	switch {
	case cfg.Storage.Maintenance.ReadOnly.Enabled:
		return nil, nil, "the registry is read-only (storage.maintenance.readonly.enabled); registryd garbage-collect collects offline", nil
	case !gcfg.Enabled:
		return nil, nil, "storage.maintenance.gc.enabled: true (REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED=true) turns it on; registryd garbage-collect collects offline", nil
	}
	window, err := gc.ParseWindow(gcfg.Window)
	if err != nil {
		return nil, nil, "", err
	}
	logf := func(msg string, fields map[string]any) {
		log.WithFields(logrus.Fields(fields)).Info(msg)
	}
	opts := gc.OnlineOptions{
		Delay: gcfg.Delay, StateMaxAge: gcfg.StateMaxAge, ClockSkew: gcfg.ClockSkew,
		LeaseHeartbeat: gcLeaseHeartbeat(gcfg.Interval), Mode: "online",
		DeleteUntagged: gcfg.DeleteUntagged, DryRun: gcfg.DryRun, Window: window,
		Instance: instanceID, Log: logf,
		AfterRun: func(r gc.RunReport) { notifyGC(notifier, instanceID, r) },
	}
	if m != nil {
		gm = gc.NewMetrics()
		opts.Observer = gm
	}
	col, err := gc.NewCollector(d, opts, gcfg.RateLimit)
	if err != nil {
		if errors.Is(err, gc.ErrNoConditional) {
			log.WithError(err).Warn("online garbage collection is not available on this storage")
			return nil, nil, fmt.Sprintf("the %s storage cannot write conditionally, which electing one collector needs; registryd garbage-collect collects offline", d.Name()), nil
		}
		return nil, nil, "", err
	}
	sched = gc.NewScheduler(ctx, col, gc.SchedulerOptions{
		Scheduled: gcfg.Enabled, Interval: gcfg.Interval, Log: logf,
	})
	// The store's consistency, checked at once rather than at the first
	// run: a store online collection must refuse says so at startup.
	go func() { _ = sched.CheckStore(ctx) }()
	return sched, gm, "", nil
}

// notifyGC sends the event of a finished collection.
func notifyGC(n *notifications.Notifier, instanceID string, r gc.RunReport) {
	if !n.Enabled() || r.Result == gc.ResultBusy {
		return
	}
	n.Notify(notifications.Event{
		Action: actionGC,
		Target: notifications.Target{MediaType: gcReportMediaType, Size: r.Deleted.Bytes, Length: r.Deleted.Bytes,
			URL: admin.Prefix + "/gc"},
		Request: notifications.Request{ID: r.ID, Method: "GC"},
		Actor:   notifications.Actor{Name: "registryd-gc"},
	})
}

// gcMaintainer is the collector's side of the admin API (admin.Maintainer):
// GET and POST /v2/_registryd/v1/gc.
type gcMaintainer struct {
	sched *gc.Scheduler // nil: read-only, or a store without conditional writes
}

var _ admin.Maintainer = gcMaintainer{}

func (m gcMaintainer) Status(ctx context.Context) (admin.Maintenance, error) {
	out := admin.Maintenance{Runs: []admin.Run{}}
	if m.sched == nil {
		return out, nil
	}
	st, err := m.sched.Status(ctx)
	if err != nil {
		return out, err
	}
	out.Enabled, out.Running = st.Enabled, st.Running
	if !st.Next.IsZero() {
		next := st.Next.UTC()
		out.Next = &next
	}
	for _, r := range st.Runs {
		out.Runs = append(out.Runs, adminGCRun(r))
	}
	return out, nil
}

func (m gcMaintainer) Start(ctx context.Context, dryRun bool) (string, error) {
	if m.sched == nil {
		return "", errcode.Newf(errcode.Unsupported, "online garbage collection is not enabled on this registry (storage.maintenance.gc.enabled), or it is read-only, or its storage cannot write conditionally")
	}
	id, err := m.sched.Start(ctx, dryRun)
	switch {
	case errors.Is(err, gc.ErrBusy):
		return "", admin.ErrBusy
	case errors.Is(err, gc.ErrReadOnly):
		return "", errcode.Newf(errcode.Unsupported, "%v", err)
	case err != nil:
		return "", errcode.Newf(errcode.Unavailable, "garbage collection cannot run: %v", err).WithStatus(503)
	}
	return id, nil
}

func (m gcMaintainer) Wait(ctx context.Context, id string) (admin.Run, error) {
	if m.sched == nil {
		return admin.Run{}, errcode.Newf(errcode.NameUnknown, "no garbage collection run %q", id)
	}
	rep, err := m.sched.Wait(ctx, id)
	if errors.Is(err, gc.ErrUnknownRun) {
		return admin.Run{}, errcode.Newf(errcode.NameUnknown, "%v", err)
	}
	if ctx.Err() != nil {
		return admin.Run{}, ctx.Err()
	}
	if rep == nil {
		return admin.Run{}, err
	}
	// A run that failed still has its report; the error is in it.
	return adminGCRun(*rep), nil
}

// adminGCRun is a collection's report in the admin API's words.
func adminGCRun(r gc.RunReport) admin.Run {
	out := admin.Run{
		ID: r.ID, Kind: "gc", Started: r.Started.UTC(), DryRun: r.DryRun, Result: r.Result, Error: r.Error,
		Marked: r.Marked, BytesFreed: r.Deleted.Bytes, Resurrected: r.Resurrected, Plan: r.Plan, Trigger: r.Trigger,
		Deleted: map[string]int{"blobs": r.Deleted.Blobs, "manifests": r.Deleted.Manifests,
			"layerLinks": r.Deleted.LayerLinks, "uploads": r.Deleted.Uploads},
		Condemned: map[string]int{"blobs": r.Condemned.Blobs, "manifests": r.Condemned.Manifests,
			"layerLinks": r.Condemned.LayerLinks},
		CondemnedBytes: r.Condemned.Bytes,
	}
	if r.Finished != nil {
		f := r.Finished.UTC()
		out.Finished = &f
	}
	if r.PlanDue != nil {
		due := r.PlanDue.UTC()
		out.PlanDue = &due
	}
	if r.Result == gc.ResultRunning {
		out.Deleted, out.Condemned = nil, nil
	}
	return out
}

// gcKick is what retention calls after deleting tags: a collection soon
// (nil without a collector).
func gcKick(s *gc.Scheduler) func() {
	if s == nil {
		return nil
	}
	return func() { s.Kick(gc.TriggerRetention) }
}

// gcLater kicks the collector on behalf of what serve builds before it
// (the pull-through cache): a kick before the scheduler exists, or
// without one, does nothing.
type gcLater struct{ s atomic.Pointer[gc.Scheduler] }

func (l *gcLater) set(s *gc.Scheduler) {
	if s != nil {
		l.s.Store(s)
	}
}

func (l *gcLater) kick(trigger string) func() {
	return func() {
		if s := l.s.Load(); s != nil {
			s.Kick(trigger)
		}
	}
}

// gcProtocolOptions are the storage options every serving instance needs
// to follow the collector's protocol, collector or not, and to count
// sizes as the collector (online or garbage-collect with this file)
// collects: with deleteuntagged only tagged manifests hold content alive.
func gcProtocolOptions(cfg *config.Config, opts *storage.Options) {
	opts.GCStateMaxAge = cfg.Storage.Maintenance.GC.StateMaxAge
	opts.SizesDeleteUntagged = cfg.Storage.Maintenance.GC.DeleteUntagged
}
