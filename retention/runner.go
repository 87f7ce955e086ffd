package retention

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/storage"
)

// TagSource returns a repository's tags with their push and pull times.
type TagSource func(ctx context.Context, repo *storage.Repository) ([]Tag, error)

// Options tune a Runner.
type Options struct {
	// Tags reads a repository's tags and times; nil reads what the
	// registry records (StorageTags).
	Tags TagSource
	// Now is the run's clock; nil is time.Now.
	Now func() time.Time
	// Log receives a line per deletion, refusal and run; nil logs nothing.
	Log logrus.FieldLogger
	// Metrics, when set, counts deletions, refusals and runs.
	Metrics *Metrics
	// Workers is how many manifests are read at once (default 8).
	Workers int
	// MaxKeptInReport bounds the kept tags listed in a report (every
	// deletion, refusal and deferral is always listed); the rest are
	// counted in Report.KeptNotListed. 0 selects 10000; negative lists all.
	MaxKeptInReport int
}

// Runner applies an Engine's policies to a registry's storage.
type Runner struct {
	reg    *storage.Registry
	engine *Engine
	opts   Options
}

// NewRunner returns a runner of e over reg.
func NewRunner(reg *storage.Registry, e *Engine, opts Options) *Runner {
	if opts.Tags == nil {
		opts.Tags = StorageTags
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		opts.Log = l
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.MaxKeptInReport == 0 {
		opts.MaxKeptInReport = 10000
	}
	return &Runner{reg: reg, engine: e, opts: opts}
}

// Engine is the runner's engine.
func (r *Runner) Engine() *Engine { return r.engine }

// Results of a run.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultRefused = "refused" // a repository was refused by maxshare; the others were processed
)

// Report is one run's report.
type Report struct {
	ID       string
	Started  time.Time
	Finished time.Time
	DryRun   bool
	Result   string // ResultOK, ResultFailed, ResultRefused
	Error    string
	// Repositories is how many were looked at, Matched how many a policy
	// applied to.
	Repositories, Matched int
	// DeletedTags and DeletedManifests count what was deleted (in a dry
	// run, what would be).
	DeletedTags, DeletedManifests int
	// Refused names the repositories maxshare refused.
	Refused []string
	// Deferred counts deletions left for the next run by
	// maxdeletionsperrun.
	Deferred int
	// BytesFreed sums the decisions' BytesFreed; SizesKnown tells whether
	// they were computed (else they are 0, not a guess).
	BytesFreed int64
	SizesKnown bool
	// Decisions are per tag (and per untagged manifest deleted), by
	// repository then tag.
	Decisions []Decision
	// KeptNotListed counts kept tags left out of Decisions.
	KeptNotListed int
}

// Run applies the policies once: every repository a policy matches is
// decided and, unless dryRun (or the settings' DryRun), its deletions are
// carried out, tag by tag. A repository that cannot be read is reported
// and skipped; the others go on.
func (r *Runner) Run(ctx context.Context, dryRun bool) (Report, error) {
	return r.run(ctx, newRunID(r.opts.Now()), dryRun)
}

func (r *Runner) run(ctx context.Context, id string, dryRun bool) (Report, error) {
	dryRun = dryRun || r.engine.settings.DryRun
	now := r.opts.Now()
	rep := Report{ID: id, Started: now, DryRun: dryRun}
	log := r.opts.Log.WithFields(logrus.Fields{"component": "retention", "run": rep.ID, "dry_run": dryRun})
	budget := NewBudget(r.engine.settings.MaxDeletionsPerRun)
	var failures []string
	kept := 0
	rep.SizesKnown = true
	err := r.reg.WalkRepositories(ctx, func(repo *storage.Repository) error {
		rep.Repositories++
		if _, _, ok := r.engine.Policy(repo.Name()); !ok {
			return nil
		}
		rep.Matched++
		plan, err := r.repository(ctx, repo, now, budget, dryRun, log)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.WithError(err).WithField("repository", repo.Name()).Error("retention: repository skipped")
			failures = append(failures, fmt.Sprintf("%s: %v", repo.Name(), err))
		}
		if plan.Refused != "" {
			rep.Refused = append(rep.Refused, repo.Name())
		}
		rep.BytesFreed += plan.BytesFreed
		rep.SizesKnown = rep.SizesKnown && plan.SizesKnown
		for _, d := range append(plan.Tags, plan.Untagged...) {
			switch {
			case d.Delete && d.Tag != "":
				rep.DeletedTags++
			case d.Delete:
				rep.DeletedManifests++
			case d.Rule == RuleMaxDeletions:
				rep.Deferred++
			}
			if !d.Delete && d.Rule != RuleMaxShare && d.Rule != RuleMaxDeletions && r.opts.MaxKeptInReport >= 0 {
				if kept >= r.opts.MaxKeptInReport {
					rep.KeptNotListed++
					continue
				}
				kept++
			}
			rep.Decisions = append(rep.Decisions, d)
		}
		return nil
	})
	rep.Finished = r.opts.Now()
	switch {
	case err != nil:
		rep.Result, rep.Error = ResultFailed, err.Error()
	case len(failures) > 0:
		rep.Result, rep.Error = ResultFailed, strings.Join(failures, "; ")
		err = errors.New(rep.Error)
	case len(rep.Refused) > 0:
		rep.Result = ResultRefused
		rep.Error = fmt.Sprintf("maxshare %g refused %d repositories (%s); nothing of them was deleted, the others were processed",
			r.engine.settings.MaxShare, len(rep.Refused), strings.Join(rep.Refused, ", "))
	default:
		rep.Result = ResultOK
	}
	r.opts.Metrics.run(rep)
	log.WithFields(logrus.Fields{
		"result": rep.Result, "repositories": rep.Matched, "deleted_tags": rep.DeletedTags,
		"deleted_manifests": rep.DeletedManifests, "deferred": rep.Deferred, "refused": len(rep.Refused),
		"duration": rep.Finished.Sub(rep.Started).Round(time.Millisecond).String(),
	}).Info("retention run")
	return rep, err
}

// repository decides and, unless dryRun, deletes, for one repository.
func (r *Runner) repository(ctx context.Context, repo *storage.Repository, now time.Time, budget *Budget, dryRun bool, log logrus.FieldLogger) (Plan, error) {
	name := repo.Name()
	policyName, deleteUntagged, _ := r.engine.Policy(name)
	tags, err := r.opts.Tags(ctx, repo)
	if err != nil {
		if storage.ErrNotFound(err) {
			return Plan{}, nil // gone since the walk found it
		}
		return Plan{}, fmt.Errorf("reading tags: %w", err)
	}
	in := Repository{Name: name, Tags: tags}
	// The graph of manifests is read when something needs it: untagged
	// manifests to judge, or a tag that may be a referrer's (one read per
	// distinct tag target finds out).
	needGraph := deleteUntagged
	if !needGraph {
		targets := map[digest.Digest]bool{}
		for _, t := range tags {
			targets[t.Digest] = true
			if legacyReferrerTag.MatchString(t.Name) {
				needGraph = true
			}
		}
		if !needGraph {
			refs, err := r.references(ctx, keys(targets))
			if err != nil {
				return Plan{}, err
			}
			for _, ref := range refs {
				if ref.Subject != "" {
					needGraph = true
				}
			}
		}
	}
	if needGraph {
		if in.Manifests, err = r.manifests(ctx, repo, tags, deleteUntagged); err != nil {
			return Plan{}, err
		}
	}
	plan := r.engine.Decide(in, now)
	budget.Apply(&plan)
	l := log.WithFields(logrus.Fields{"repository": name, "policy": policyName})
	if plan.Refused != "" {
		l.WithField("reason", plan.Refused).Warn("retention: repository refused by maxshare; nothing of it is deleted")
		if !dryRun {
			r.opts.Metrics.refused(policyName)
		}
	}
	r.impact(ctx, repo, &plan, l)
	if dryRun {
		for _, d := range append(plan.Tags, plan.Untagged...) {
			if d.Delete {
				l.WithFields(logrus.Fields{"tag": d.Tag, "digest": d.Digest, "rule": d.Rule, "reason": d.Reason}).Info("retention: would delete")
			}
		}
		return plan, nil
	}
	// Tags, one by one: never by digest, so a sibling tag on the same
	// manifest stays. The tags are read again first: one pushed since the
	// decision (to another manifest, or to the same one: a push is a push)
	// stays; DeleteTagIf then checks the digest right before the delete.
	if doomed, _ := plan.Deletions(); len(doomed) > 0 {
		fresh, err := r.opts.Tags(ctx, repo)
		if err != nil && !storage.ErrNotFound(err) {
			return plan, fmt.Errorf("reading tags again: %w", err)
		}
		now := map[string]Tag{}
		for _, t := range fresh {
			now[t.Name] = t
		}
		for i := range plan.Tags {
			d := &plan.Tags[i]
			if t, ok := now[d.Tag]; d.Delete && ok && (t.Digest != d.Digest || !t.Pushed.Equal(d.Pushed)) {
				d.Delete, d.Rule, d.Reason = false, RuleMoved, "kept: pushed again while the run decided ("+d.Rule+": "+d.Reason+")"
			}
		}
	}
	for i := range plan.Tags {
		d := &plan.Tags[i]
		if !d.Delete {
			continue
		}
		err := repo.DeleteTagIf(ctx, d.Tag, d.Digest)
		switch {
		case err == nil:
			r.opts.Metrics.deletedTag(policyName)
			l.WithFields(logrus.Fields{"tag": d.Tag, "digest": d.Digest, "rule": d.Rule, "reason": d.Reason}).Info("retention: deleted tag")
		case errors.Is(err, storage.ErrTagMoved):
			d.Delete, d.Rule, d.Reason = false, RuleMoved, "kept: pushed again while the run decided ("+d.Rule+": "+d.Reason+")"
		case storage.ErrNotFound(err):
			// Deleted meanwhile by someone else: the outcome is the same.
		default:
			return plan, fmt.Errorf("deleting tag %s: %w", d.Tag, err)
		}
	}
	return plan, r.deleteUntagged(ctx, repo, &plan, l)
}

// impact sets the plan's BytesFreed from the store's size index, before
// anything is deleted (the index then still has what the deletions take
// away). A failure costs the figure, never the run.
func (r *Runner) impact(ctx context.Context, repo *storage.Repository, plan *Plan, log logrus.FieldLogger) {
	tags, manifests := plan.Deletions()
	if len(tags)+len(manifests) == 0 {
		plan.BytesFreed, plan.SizesKnown = 0, true
		return
	}
	names := make([]string, 0, len(tags))
	for _, d := range tags {
		names = append(names, d.Tag)
	}
	revs := make([]digest.Digest, 0, len(manifests))
	for _, d := range manifests {
		revs = append(revs, d.Digest)
	}
	n, err := repo.DeletionImpact(ctx, names, revs)
	if err != nil {
		log.WithError(err).Warn("retention: the bytes the run frees are unknown")
		return
	}
	plan.BytesFreed, plan.SizesKnown = n, true
}

// deleteUntagged removes the plan's untagged manifests that are still
// untagged: the tags and revisions are read again first, so that a
// manifest tagged (or referenced by a new index) since the plan was made
// stays.
func (r *Runner) deleteUntagged(ctx context.Context, repo *storage.Repository, plan *Plan, log logrus.FieldLogger) error {
	var cands []digest.Digest
	for _, d := range plan.Untagged {
		if d.Delete {
			cands = append(cands, d.Digest)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	targets, err := repo.TagsAndTargets(ctx)
	if err != nil {
		return err
	}
	var tags []Tag
	for name, d := range targets {
		tags = append(tags, Tag{Name: name, Digest: d})
	}
	ms, err := r.manifests(ctx, repo, tags, false)
	if err != nil {
		return err
	}
	g := newGraph(Repository{Tags: tags, Manifests: ms})
	live := g.closure(nil, tagTargets(tags, nil))
	var gone []digest.Digest
	for i := range plan.Untagged {
		d := &plan.Untagged[i]
		if !d.Delete {
			continue
		}
		if live[d.Digest] {
			d.Delete, d.Rule, d.Reason = false, RuleMoved, "kept: tagged (or referenced) again while the run decided"
			continue
		}
		gone = append(gone, d.Digest)
	}
	if err := repo.RemoveRevisions(ctx, gone); err != nil {
		return fmt.Errorf("deleting untagged manifests: %w", err)
	}
	for _, d := range gone {
		r.opts.Metrics.deletedManifest(plan.Policy)
		log.WithFields(logrus.Fields{"digest": d}).Info("retention: deleted untagged manifest")
	}
	return nil
}

// manifests reads every revision of the repository with its references;
// with since, also when each was last pushed or tagged (the revision
// link's time, or later the push of a tag whose history names it).
func (r *Runner) manifests(ctx context.Context, repo *storage.Repository, tags []Tag, since bool) ([]Manifest, error) {
	times, err := repo.RevisionTimes(ctx)
	if err != nil {
		return nil, err
	}
	ds := keys(times)
	refs, err := r.references(ctx, ds)
	if err != nil {
		return nil, err
	}
	lastTagged := map[digest.Digest]time.Time{}
	unknown := map[digest.Digest]bool{}
	if since {
		for _, t := range tags {
			hist, err := repo.TagHistory(ctx, t.Name)
			if err != nil {
				return nil, err
			}
			for _, d := range hist {
				// A tag left d no later than its last push; without a push
				// time, d's age is unknown (and it is kept).
				if t.Pushed.IsZero() {
					unknown[d] = true
				} else if t.Pushed.After(lastTagged[d]) {
					lastTagged[d] = t.Pushed
				}
			}
		}
	}
	out := make([]Manifest, 0, len(ds))
	for _, d := range ds {
		ref, ok := refs[d]
		if !ok {
			continue // content gone: nothing to keep alive through it
		}
		m := Manifest{Digest: d, Subject: ref.Subject, Children: ref.Manifests}
		if since && !unknown[d] {
			m.Since = times[d]
			if lastTagged[d].After(m.Since) {
				m.Since = lastTagged[d]
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// references reads the manifests ds concurrently. A manifest whose content
// is gone is left out; content that is not a manifest is an error (what it
// keeps alive cannot be known).
func (r *Runner) references(ctx context.Context, ds []digest.Digest) (map[digest.Digest]storage.References, error) {
	out := make(map[digest.Digest]storage.References, len(ds))
	var mu sync.Mutex
	err := parallel(ctx, len(ds), r.opts.Workers, func(i int) error {
		b, err := r.reg.ManifestContent(ctx, ds[i])
		if storage.ErrNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("manifest %s: %w", ds[i], err)
		}
		ref, err := storage.ParseReferences(b)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", ds[i], err)
		}
		mu.Lock()
		out[ds[i]] = ref
		mu.Unlock()
		return nil
	})
	return out, err
}

// StorageTags reads a repository's tags with the push and pull times the
// registry records (storage.TagInfos): the push time of each tag's current
// digest (or, for a tag the reference registry wrote, its link's time),
// and the last pull of its manifest, including pulls this process holds in
// memory and has not written yet.
func StorageTags(ctx context.Context, repo *storage.Repository) ([]Tag, error) {
	infos, err := repo.TagInfos(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Tag, len(infos))
	for i, in := range infos {
		out[i] = Tag{Name: in.Name, Digest: in.Digest, Pushed: in.Pushed, LastPulled: in.LastPulled}
	}
	return out, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines; the first error
// stops the rest from starting and is returned.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func keys[V any](m map[digest.Digest]V) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func newRunID(t time.Time) string {
	return t.UTC().Format("20060102T150405Z") + "-" + uuid.NewString()[:8]
}
