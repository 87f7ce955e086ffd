package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/storage"
)

const gcAbout = `Removes what no live manifest references: blobs, and the repositories'
links to them; with --delete-untagged also manifests that no tag reaches
(not tagged, not in a tagged index, not a referrer of a live manifest).
Uploads older than storage.maintenance.uploadpurging.age are removed too
when upload purging is enabled. The configuration and REGISTRY_* variables
are read as for serve.

No registry may accept writes to the storage meanwhile: a push could rely
on a blob being deleted. Registries announce themselves in the storage; the
command refuses to run while one that is not read-only is live. Stop it, or
set storage.maintenance.readonly.enabled: true and restart it (pulls go on).`

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
	var workers int
	fs.IntVar(&workers, "workers", gc.DefaultWorkers, "storage operations run at once (the result does not depend on it)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if workers < 1 {
			fmt.Fprintln(stderr, "registryd garbage-collect: --workers must be at least 1")
			return 2
		}
		return runGC(ctx, args, dryRun, deleteUntagged, quiet, force, workers, stdout, stderr)
	}
}

// runGC collects garbage in the storage of the config named by args.
func runGC(ctx context.Context, args []string, dryRun, deleteUntagged, quiet, force bool, workers int, stdout, stderr io.Writer) int {
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
	// the same user, with one limit for both) may need.
	reg := storage.New(d, storage.Options{NoDirWatch: true})
	localStorage := d.Name() == "filesystem"

	now := time.Now()
	blockers, err := gc.WritableRegistries(ctx, reg, now, gc.DefaultInstanceTTL, localStorage)
	if err != nil {
		fmt.Fprintf(stderr, "registryd garbage-collect: %v\n", err)
		return 1
	}
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

	rep, err := gc.Run(ctx, reg, opts)
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
