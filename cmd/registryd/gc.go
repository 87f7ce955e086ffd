package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

const gcAbout = `Removes what no live manifest references: blobs, and the repositories'
links to them; with --delete-untagged also manifests that no tag reaches
(not tagged, not in a tagged index, not a referrer of a live manifest).
Uploads older than storage.maintenance.uploadpurging.age are removed too
when upload purging is enabled. The configuration and REGISTRY_* variables
are read as for serve.

It takes the collector lease of the storage, as serve's online collector
(storage.maintenance.gc) does: while another collection holds it, it waits
(--no-wait: it refuses).

With no registry accepting writes to the storage, the collection is
immediate. Registries announce themselves in the storage. Those of this
version follow the online collector's protocol: while one of them accepts
writes, the command runs one online collection instead (it deletes what an
earlier plan condemned at least storage.maintenance.gc.delay ago and still
finds unreferenced, and condemns what is garbage now for the next run).
While a registry that does not follow the protocol (an older version)
accepts writes, it refuses: a push could rely on a blob being deleted. Stop
that registry, or set storage.maintenance.readonly.enabled: true and restart
it (pulls go on).`

// cmdGC is "registryd garbage-collect" (alias "gc") with its flags.
func cmdGC(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return mustCommand("garbage-collect").execute(ctx, args, stdout, stderr)
}

// gcFlags defines garbage-collect's flags and returns what runs it.
func gcFlags(fs *flag.FlagSet) runFunc {
	var dryRun, deleteUntagged, quiet, force bool
	fs.BoolVar(&dryRun, "dry-run", false, "remove nothing; list what would be removed")
	fs.BoolVar(&dryRun, "d", false, shortPrefix+"dry-run")
	fs.BoolVar(&deleteUntagged, "delete-untagged", false, "also remove manifests that no tag reaches")
	fs.BoolVar(&deleteUntagged, "m", false, shortPrefix+"delete-untagged")
	fs.BoolVar(&quiet, "quiet", false, "print no progress and no summary, only errors (and a dry run's list)")
	fs.BoolVar(&quiet, "q", false, shortPrefix+"quiet")
	fs.BoolVar(&force, "force", false, "run even while a registry accepting writes is serving the storage (unsafe)")
	var noWait bool
	fs.BoolVar(&noWait, "no-wait", false, "refuse, rather than wait, while another collection holds the collector lease")
	var workers int
	fs.IntVar(&workers, "workers", gc.DefaultWorkers, "storage operations run at once (the result does not depend on it)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if workers < 1 {
			fmt.Fprintln(stderr, "registryd garbage-collect: --workers must be at least 1")
			return 2
		}
		return runGC(ctx, args, gcFlagValues{dryRun, deleteUntagged, quiet, force, noWait, workers}, stdout, stderr)
	}
}

type gcFlagValues struct {
	dryRun, deleteUntagged, quiet, force, noWait bool
	workers                                      int
}

// runGC collects garbage in the storage of the config named by args.
func runGC(ctx context.Context, args []string, fl gcFlagValues, stdout, stderr io.Writer) int {
	dryRun, deleteUntagged, quiet, force, workers := fl.dryRun, fl.deleteUntagged, fl.quiet, fl.force, fl.workers
	cfg, ok := loadConfig("garbage-collect", args, stderr)
	if !ok {
		return 1
	}
	d, err := newDriver(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: storage: %v\n", err)
		return 1
	}
	if d.Name() == "inmemory" {
		fmt.Fprintln(stderr, "registryd garbage-collect: warning: the inmemory driver starts empty in every process; there is nothing to collect")
	}
	// A collection reads every directory once: watching them would cost
	// system calls for nothing, and watches the serving registry (usually
	// the same user, with one limit for both) may need. It serves no
	// writes: the protocol is for registries.
	reg := storage.New(d, storage.Options{NoDirWatch: true, GCStateMaxAge: -1})
	localStorage := d.Name() == "filesystem"

	now := time.Now()
	writers, err := gc.WritableRegistries(ctx, reg, now, gc.DefaultInstanceTTL, localStorage)
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
	// Registries that follow the protocol do not block: the collection is
	// then an online one. Those that do not, do.
	var blockers []storage.Instance
	for _, in := range writers {
		if !in.GCProtocol {
			blockers = append(blockers, in)
		}
	}
	online := len(writers) > 0 && len(blockers) == 0 && !force
	if len(blockers) > 0 {
		var b strings.Builder
		for _, in := range blockers {
			fmt.Fprintf(&b, "  %s\n", gc.DescribeInstance(in, now))
		}
		switch {
		case force:
			fmt.Fprintf(stderr, "registryd garbage-collect: warning: --force: running while a registry accepting writes serves this storage:\n%sA push during the collection may lose blobs.\n", b.String())
		case dryRun:
			fmt.Fprintf(stderr, "registryd garbage-collect: note: a registry accepting writes serves this storage; the dry run's list may be out of date by the time it prints:\n%s", b.String())
		default:
			fmt.Fprintf(stderr, "registryd garbage-collect: refusing to run: a registry that accepts writes is serving this storage:\n%s"+
				"A push during the collection could lose blobs it relies on. Stop it, or set\n"+
				"storage.maintenance.readonly.enabled: true (REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true)\n"+
				"and restart it, then run again; --force overrides.\n", b.String())
			return 1
		}
	}

	// The collector lease: one collection at a time per storage, this one
	// or a serving registry's (a dry run changes nothing and needs none).
	var lease *gc.Lease
	if !dryRun {
		var ok bool
		if lease, ok = takeGCLease(ctx, reg, cfg, fl, online, stderr); !ok {
			return 1
		}
		defer lease.Release(context.WithoutCancel(ctx))
	}
	if online {
		return runOnlineGC(ctx, d, cfg, fl, lease, writers, stdout, stderr)
	}

	opts := gc.Options{
		DryRun:         dryRun,
		DeleteUntagged: deleteUntagged,
		Workers:        workers,
	}
	if p := cfg.Storage.Maintenance.UploadPurging; p.Enabled {
		opts.UploadsOlderThan = p.Age
	}
	if !quiet {
		opts.Progress = stderr
	}
	if !force {
		opts.Guard = gc.NoWritableRegistry(reg, gc.DefaultInstanceTTL, localStorage)
	}
	if !dryRun {
		// Announce the collection, so that a registry starting meanwhile
		// can tell, and clean up leases of processes that are gone.
		in := storage.LocalInstance()
		in.Role = storage.RoleGC
		release, err := reg.RegisterLease(ctx, in, storage.DefaultInstanceHeartbeat)
		if err != nil {
			fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
			return 1
		}
		defer release()
		removeDeadLeases(ctx, reg, now, localStorage, quiet, stderr)
	}

	if lease != nil {
		// The lease is this collection's fence too: it stops if another
		// collector took it (it cannot while this one renews it).
		guard := opts.Guard
		opts.Guard = func(ctx context.Context) error {
			if err := lease.Check(ctx); err != nil {
				return err
			}
			if guard != nil {
				return guard(ctx)
			}
			return nil
		}
	}
	rep, err := gc.Run(ctx, reg, opts)
	if err == nil && lease != nil {
		// Whatever an online collector had condemned was decided on a
		// store that has changed: its plan goes, the next online run
		// starts afresh.
		if rerr := gc.ResetOnlineState(ctx, reg, lease); rerr != nil {
			fmt.Fprintf(stderr, "registryd garbage-collect: warning: resetting the online collector's plan: %v\n", rerr)
		}
	}
	if dryRun {
		for _, it := range rep.Removed {
			fmt.Fprintln(stdout, it)
		}
	}
	if !quiet {
		fmt.Fprint(stdout, rep.Summary())
	}
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
	return 0
}

// removeDeadLeases deletes the leases of registries that are stale or whose
// process is gone; a holder that is in fact alive writes its lease again.
func removeDeadLeases(ctx context.Context, reg *storage.Registry, now time.Time, localStorage, quiet bool, stderr io.Writer) {
	all, err := reg.Instances(ctx)
	if err != nil {
		return
	}
	self := storage.LocalInstance()
	for _, in := range all {
		if gc.Classify(in, now, gc.DefaultInstanceTTL, localStorage, self) == gc.LeaseLive {
			continue
		}
		if err := reg.RemoveInstance(ctx, in.ID); err == nil && !quiet {
			fmt.Fprintf(stderr, "registryd garbage-collect: removed the lease of %s\n", gc.DescribeInstance(in, now))
		}
	}
}

// takeGCLease takes the collector lease, waiting while another collection
// holds it (with a message), or refusing with --no-wait.
func takeGCLease(ctx context.Context, reg *storage.Registry, cfg *config.Config, fl gcFlagValues, online bool, stderr io.Writer) (*gc.Lease, bool) {
	g := cfg.Storage.Maintenance.GC
	opts := gc.LeaseOptions{Heartbeat: gcLeaseHeartbeat(g.Interval), ClockSkew: g.ClockSkew, Mode: "offline"}
	told := false
	for {
		lease, err := gc.AcquireLease(ctx, reg, opts)
		if err == nil {
			if told && !fl.quiet {
				fmt.Fprintln(stderr, "registryd garbage-collect: lease taken")
			}
			return lease, true
		}
		var held *gc.LeaseHeldError
		if !errors.As(err, &held) {
			fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
			return nil, false
		}
		if fl.noWait {
			fmt.Fprintf(stderr, "registryd garbage-collect: refusing to run (--no-wait): %v\n", err)
			return nil, false
		}
		if !told {
			fmt.Fprintf(stderr, "registryd garbage-collect: waiting: %v\n", err)
			told = true
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", ctx.Err())
			return nil, false
		case <-time.After(opts.Heartbeat):
		}
	}
}

// runOnlineGC is garbage-collect while registries that follow the
// protocol serve the storage: one run of the online collector.
func runOnlineGC(ctx context.Context, d driver.StorageDriver, cfg *config.Config, fl gcFlagValues, lease *gc.Lease,
	writers []storage.Instance, stdout, stderr io.Writer) int {
	g := cfg.Storage.Maintenance.GC
	if !fl.quiet {
		fmt.Fprintf(stderr, "registryd garbage-collect: %d registries accepting writes serve this storage and follow the online\n"+
			"collection protocol: running one online collection (delay %s).\n", len(writers), g.Delay)
	}
	opts := gc.OnlineOptions{
		Delay: g.Delay, StateMaxAge: g.StateMaxAge, ClockSkew: g.ClockSkew, LeaseHeartbeat: gcLeaseHeartbeat(g.Interval),
		Mode: "offline", DeleteUntagged: fl.deleteUntagged || g.DeleteUntagged, Workers: fl.workers,
	}
	if p := cfg.Storage.Maintenance.UploadPurging; p.Enabled {
		opts.UploadsOlderThan = p.Age
	}
	if !fl.quiet {
		opts.Log = func(msg string, fields map[string]any) {
			if phase, ok := fields["phase"]; ok {
				fmt.Fprintf(stderr, "gc: %s done in %v\n", phase, fields["duration"])
			}
		}
	}
	col, err := gc.NewCollector(d, opts, g.RateLimit)
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
	if err := col.CheckStore(ctx); err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
	rep := col.NewReport(false)
	rep.Trigger = gc.TriggerOffline
	rep, err = col.RunWithLease(ctx, lease, rep)
	if !fl.quiet {
		fmt.Fprint(stdout, rep.Summary())
	}
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
	return 0
}
