package retention

import (
	"time"

	"github.com/registryd/registryd/api/admin"
)

// AdminRun is a report in the admin API's words: what GET and POST
// .../retention answer, `registryd retention --format json` and the
// client's prune print.
func AdminRun(r Report) admin.Run {
	out := admin.Run{
		ID: r.ID, Kind: "retention", Started: r.Started.UTC(), DryRun: r.DryRun, Result: r.Result, Error: r.Error,
		BytesFreed: r.BytesFreed, Refused: r.Refused, Deferred: r.Deferred,
		Deleted: map[string]int{"tags": r.DeletedTags, "manifests": r.DeletedManifests},
	}
	if !r.Finished.IsZero() {
		f := r.Finished.UTC()
		out.Finished = &f
	}
	if r.Result == ResultRunning {
		out.Deleted = nil
	}
	for _, d := range r.Decisions {
		out.Decisions = append(out.Decisions, admin.Decision{
			Repository: d.Repository, Tag: d.Tag, Digest: d.Digest.String(), Delete: d.Delete, Rule: d.Rule,
			Reason: d.Reason, Policy: d.Policy, Pushed: timePtr(d.Pushed), LastPulled: timePtr(d.LastPulled),
		})
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
