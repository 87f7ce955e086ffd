package retention

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes a report as a person reads it: one line per decision
// (repository, tag, digest, push and pull times, decision, rule, reason),
// then a summary. The server's runs, `registryd retention` and the CLI's
// prune print the same table.
func WriteTable(w io.Writer, rep Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tPUSHED\tLAST PULLED\tDECISION\tRULE\tREASON")
	for _, d := range rep.Decisions {
		tag := d.Tag
		if tag == "" {
			tag = "(untagged)"
		}
		decision := "keep"
		switch {
		case d.Delete && rep.DryRun:
			decision = "would delete"
		case d.Delete:
			decision = "delete"
		case d.Rule == RuleMaxShare:
			decision = "keep (refused)"
		case d.Rule == RuleMaxDeletions:
			decision = "keep (deferred)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Repository, tag, shortDigest(d.Digest.String()),
			stamp(d.Pushed), stamp(d.LastPulled), decision, d.Rule, d.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, Summary(rep))
	return err
}

// Summary is the report's last lines: what was (or would be) deleted, what
// the guards held back, and why a run failed.
func Summary(rep Report) string {
	var b strings.Builder
	verb := "deleted"
	if rep.DryRun {
		verb = "dry run: would delete"
	}
	fmt.Fprintf(&b, "\n%s %d tags and %d untagged manifests; %d of %d repositories have a policy", verb,
		rep.DeletedTags, rep.DeletedManifests, rep.Matched, rep.Repositories)
	if rep.KeptNotListed > 0 {
		fmt.Fprintf(&b, " (%d more kept tags not listed)", rep.KeptNotListed)
	}
	b.WriteString(".\n")
	if rep.Deferred > 0 {
		fmt.Fprintf(&b, "%d deletions deferred to the next run (maxdeletionsperrun).\n", rep.Deferred)
	}
	if len(rep.Refused) > 0 {
		fmt.Fprintf(&b, "refused (maxshare): %s: nothing of them was deleted.\n", strings.Join(rep.Refused, ", "))
	}
	if rep.SizesKnown {
		fmt.Fprintf(&b, "%d bytes freed once the garbage collector runs", rep.BytesFreed)
		if rep.BytesFreed == 0 && rep.DeletedTags > 0 {
			// The usual surprise: tags went, the disk did not shrink.
			b.WriteString(" (a deleted tag's manifest keeps its layers until it is removed as untagged: a policy's deleteuntagged, or the collector's)")
		}
		b.WriteString(".\n")
	} else {
		b.WriteString("bytes freed: not computed (sizes are not known to this run); the garbage collector reclaims the space.\n")
	}
	if rep.Result == ResultFailed {
		fmt.Fprintf(&b, "failed: %s\n", rep.Error)
	}
	return b.String()
}

func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}
