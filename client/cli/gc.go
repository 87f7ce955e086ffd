package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/client"
)

// GCUsage is the usage line of the remote collection, for the help of
// the `gc` command that cmd/registryd shares with garbage-collect.
const GCUsage = "[--dry-run] [flags] HOST[:PORT]"

// GCCommand is `registryd gc HOST`: garbage collection on a running
// registryd, through its admin API. (cmd/registryd decides between it and
// the offline garbage-collect, whose alias gc also is, by the argument.)
func GCCommand() Command { return gcCmd() }

func gcCmd() Command {
	return command("gc", GCUsage,
		"collect garbage on a running registryd (admin API), or report what it would free",
		`Runs a garbage collection on a running registryd through its admin API
and waits for the report: what was marked, what was deleted (blobs,
manifests, layer links, uploads) and the bytes freed. --dry-run reports what
a collection would delete and changes nothing. The caller needs the admin
right (registry:catalog:admin in a token; actions: [admin] on "*" in the
access rules).

Other registries have no such API: distribution's is the offline
"registry garbage-collect config.yml", and registryd has one too
(registryd garbage-collect, which "registryd gc config.yml" still runs).

Examples:
  registryd gc --dry-run localhost:5000
  registryd gc localhost:5000
  registryd gc --format '{{.BytesFreed}}' localhost:5000`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var dryRun bool
			var format formatFlag
			fs.BoolVar(&dryRun, "dry-run", false, "report what would be deleted; delete nothing")
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "registry (HOST[:PORT])", needRegistry, &format)
				if err != nil {
					return err
				}
				if err := needGC(ctx, cl, ref.Host); err != nil {
					return err
				}
				if s.ErrTerminal {
					fmt.Fprintf(s.Err, "collecting on %s (waiting for the report)...\n", ref.Host)
				}
				run, err := cl.AdminRun(ctx, ref.Host, "gc", dryRun)
				if err != nil {
					return err
				}
				if err := out.one(s.Out, run, func(w io.Writer) error { return writeRun(w, run) }); err != nil {
					return err
				}
				if run.Result == "failed" || run.Result == "refused" {
					return fmt.Errorf("the collection %s: %s", run.Result, run.Error)
				}
				return nil
			}
		})
}

// needGC fails, saying why and what to do instead, unless host can run
// a collection for this caller.
func needGC(ctx context.Context, cl *client.Client, host string) error {
	info, err := cl.Admin(ctx, host)
	if err != nil {
		return err
	}
	offline := "collect on the registry's host instead: registryd garbage-collect config.yml (distribution: registry garbage-collect config.yml)"
	switch {
	case info == nil:
		return fmt.Errorf("%s has no registryd admin API (GET %s answered 404), so a collection cannot be started from here; %s", host, admin.Prefix, offline)
	case !info.Features.GC:
		return fmt.Errorf("%s: garbage collection is not available on this server: its admin API reports no online collector (features.gc is false).\n"+
			"A registryd collects while it serves with storage.maintenance.gc.enabled: true (REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED=true),\n"+
			"unless it is read-only or its storage cannot write conditionally. Or %s", host, offline)
	case !info.Caller.Admin:
		who := "you are not logged in as an admin"
		if info.Caller.Name != "" {
			who = info.Caller.Name + " is not an admin"
		}
		return fmt.Errorf("%s: garbage collection needs the admin right, and %s (access rules: actions: [admin] over repositories [\"**\"]; token: registry:catalog:admin)", host, who)
	}
	return nil
}

func writeRun(w io.Writer, run *admin.Run) error {
	kind := "collection"
	if run.Kind == "retention" {
		kind = "retention run"
	}
	dry := ""
	if run.DryRun {
		dry = " (dry run: nothing was deleted)"
	}
	fmt.Fprintf(w, "%s %s: %s%s\n", kind, run.ID, run.Result, dry)
	if run.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", run.Error)
	}
	if run.Marked > 0 {
		fmt.Fprintf(w, "  marked: %d\n", run.Marked)
	}
	if len(run.Deleted) > 0 {
		var parts []string
		keys := make([]string, 0, len(run.Deleted))
		for k := range run.Deleted {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%d %s", run.Deleted[k], k))
		}
		verb := "deleted"
		if run.DryRun {
			verb = "would delete"
		}
		fmt.Fprintf(w, "  %s: %s\n", verb, strings.Join(parts, ", "))
	}
	verb := "freed"
	if run.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(w, "  %s: %s (%d bytes)\n", verb, humanSize(run.BytesFreed), run.BytesFreed)
	return nil
}
