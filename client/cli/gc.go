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
				if err := needAdmin(ctx, cl, ref.Host, "garbage collection", func(f admin.Features) bool { return f.GC }); err != nil {
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

// needAdmin fails unless host has the admin API with feature on.
func needAdmin(ctx context.Context, cl *client.Client, host, what string, feature func(admin.Features) bool) error {
	info, err := cl.Admin(ctx, host)
	if err != nil {
		return err
	}
	if info == nil {
		return fmt.Errorf("%s has no registryd admin API (GET %s answered 404), so %s cannot be started from here: run the registry's own collector on its host (registryd garbage-collect config.yml; distribution: registry garbage-collect config.yml)", host, admin.Prefix, what)
	}
	if !feature(info.Features) {
		return fmt.Errorf("%s: %s is turned off on this registryd", host, what)
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
