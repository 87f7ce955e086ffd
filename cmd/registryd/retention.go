package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/retention"
	"github.com/registryd/registryd/storage"
)

const retentionAbout = `Applies the retention policies of storage.maintenance.retention once, as
the server's schedule does, and prints the report: per tag the decision,
the rule that decided it and why; then what was deleted. With --dry-run (or
dryrun: true in the file) nothing is deleted and nothing is written.

Tags are deleted one by one, never by digest: another tag on the same
manifest stays. The guards apply as in the server: a repository whose run
would delete more than maxshare of its tags is left untouched (exit status
3), and at most maxdeletionsperrun deletions happen per run. Space comes
back when the garbage collector runs.

It may run while registries serve the storage. Exit status: 0 done, 1 an
error (a repository that could not be read is reported, the others are
processed), 2 bad usage, 3 a repository was refused by maxshare.`

// retentionFlags defines retention's flags and returns what runs it.
func retentionFlags(fs *flag.FlagSet) runFunc {
	var dryRun bool
	var format string
	fs.BoolVar(&dryRun, "dry-run", false, "delete nothing; print what would be deleted")
	fs.BoolVar(&dryRun, "d", false, shortPrefix+"dry-run")
	fs.StringVar(&format, "format", "table", "report format: table or json (the admin API's run report)")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		if format != "table" && format != "json" {
			fmt.Fprintf(stderr, "registryd retention: --format must be table or json, got %q\n", format)
			return 2
		}
		return runRetention(ctx, args, dryRun, format, stdout, stderr)
	}
}

func runRetention(ctx context.Context, args []string, dryRun bool, format string, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig("retention", args, stderr)
	if !ok {
		return 1
	}
	rc := cfg.Storage.Maintenance.Retention
	if len(rc.Policies) == 0 {
		fmt.Fprintln(stderr, "registryd retention: no policies in storage.maintenance.retention.policies: nothing to do")
		return 0
	}
	engine, err := retention.Compile(retention.FromConfig(rc))
	if err != nil {
		fmt.Fprintf(stderr, "registryd retention: storage.maintenance.retention.%v\n", err)
		return 1
	}
	d, err := newDriver(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "registryd retention: storage: %v\n", err)
		return 1
	}
	if d.Name() == "inmemory" {
		fmt.Fprintln(stderr, "registryd retention: warning: the inmemory driver starts empty in every process; there is nothing to apply policies to")
	}
	reg := storage.New(d, storage.Options{NoDirWatch: true})
	_, log := newLogger(&config.Config{Log: config.Log{Level: "warn", Formatter: cfg.Log.Formatter}}, stderr)
	runner := retention.NewRunner(reg, engine, retention.Options{Log: log})
	rep, err := runner.Run(ctx, dryRun)
	switch format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(retention.AdminRun(rep)); werr != nil {
			fmt.Fprintf(stderr, "registryd retention: %v\n", werr)
			return 1
		}
	default:
		if werr := retention.WriteTable(stdout, rep); werr != nil {
			fmt.Fprintf(stderr, "registryd retention: %v\n", werr)
			return 1
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "registryd retention: %v\n", err)
		return 1
	case rep.Result == retention.ResultRefused:
		fmt.Fprintf(stderr, "registryd retention: %s\n", rep.Error)
		return 3
	}
	return 0
}

// newRetention builds the server's retention service from the
// configuration; nil without policies. Its runs use the server's Registry,
// so that pulls not yet written count.
func newRetention(ctx context.Context, cfg *config.Config, reg *storage.Registry, m *retention.Metrics, log logrus.FieldLogger) (*retention.Service, error) {
	rc := cfg.Storage.Maintenance.Retention
	if len(rc.Policies) == 0 {
		return nil, nil
	}
	engine, err := retention.Compile(retention.FromConfig(rc))
	if err != nil {
		return nil, fmt.Errorf("storage.maintenance.retention.%w", err)
	}
	runner := retention.NewRunner(reg, engine, retention.Options{Log: log, Metrics: m})
	return retention.NewService(ctx, runner, retention.ServiceOptions{
		Interval: rc.Interval,
		ReadOnly: cfg.Storage.Maintenance.ReadOnly.Enabled,
	}), nil
}

// retentionMaintainer is retention's side of the admin API
// (admin.Maintainer): GET and POST /v2/_registryd/v1/retention.
type retentionMaintainer struct {
	svc *retention.Service // nil: no policies configured
}

var _ admin.Maintainer = retentionMaintainer{}

func (m retentionMaintainer) Status(ctx context.Context) (admin.Maintenance, error) {
	out := admin.Maintenance{Runs: []admin.Run{}}
	if m.svc == nil {
		return out, nil
	}
	st := m.svc.Status()
	out.Enabled, out.Running = st.Enabled, st.Running
	if !st.Next.IsZero() {
		next := st.Next.UTC()
		out.Next = &next
	}
	for _, r := range st.Runs {
		out.Runs = append(out.Runs, retention.AdminRun(r))
	}
	return out, nil
}

func (m retentionMaintainer) Start(ctx context.Context, dryRun bool) (string, error) {
	if m.svc == nil {
		return "", errcode.Newf(errcode.Unsupported, "no retention policies are configured (storage.maintenance.retention.policies)")
	}
	id, err := m.svc.Start(dryRun)
	switch {
	case errors.Is(err, retention.ErrBusy):
		return "", admin.ErrBusy
	case errors.Is(err, retention.ErrReadOnly):
		return "", errcode.Newf(errcode.Unsupported, "%v", err)
	}
	return id, err
}

func (m retentionMaintainer) Wait(ctx context.Context, id string) (admin.Run, error) {
	if m.svc == nil {
		return admin.Run{}, errcode.Newf(errcode.NameUnknown, "no retention run %q", id)
	}
	rep, err := m.svc.Wait(ctx, id)
	if errors.Is(err, retention.ErrUnknownRun) {
		return admin.Run{}, errcode.Newf(errcode.NameUnknown, "%v", err)
	}
	if ctx.Err() != nil {
		return admin.Run{}, ctx.Err()
	}
	// A run that failed still has its report; the error is in it.
	return retention.AdminRun(rep), nil
}
