package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/client"
	"github.com/registryd/registryd/internal/repoglob"
	"github.com/registryd/registryd/retention"
)

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseAge reads a duration with days and weeks: 30d, 2w, 12h, 90m, or
// anything time.ParseDuration reads.
func parseAge(s string) (time.Duration, error) {
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 || f > 1e5 {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return time.Duration(f * float64(d)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: expected 30d, 2w, 12h or 90m", s)
	}
	return d, nil
}

// plausibleCreated is the earliest image creation time taken for an age:
// reproducible builds set "created" to 1970 (SOURCE_DATE_EPOCH=0), and an
// image that says 1970 is not 56 years old. Earlier: unknown, and kept.
var plausibleCreated = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func prune() Command {
	return command("prune", "[flags] HOST[:PORT]/REPO-GLOB",
		"delete the tags that no rule keeps (keep the last N, those newer than an age, those matching a pattern)",
		`Deletes old tags by rules, with retention's engine: the same decisions
the server's retention policies make (docs/retention.md). A tag is kept when
any rule keeps it:
  --keep-last N      the N tags pushed last (ties with the N-th are all kept);
  --older-than AGE   deletes only tags older than AGE: those pushed within AGE
                     are kept (30d, 2w, 12h);
  --keep REGEX       tags matching it (repeatable; unanchored unless anchored).
"latest" is always kept; so is a tag whose age is not known; a referrer's tag
(sha256-<hex>.sig and the like) follows its subject. Each deletion removes
that tag only (as tag rm: other tags of the same manifest stay); the images
left untagged are then the garbage collector's (--delete-untagged).

Ages are push times where the registry records them (registryd with the admin
API); elsewhere the image's creation time (its config's "created"), which
reproducible builds set to 1970: such tags count as of unknown age and stay.
The output says which.

REPO-GLOB is matched against the catalog: * within one path component, ** for
any number of them (team/*, team/**, ci/*/cache). Quote it in the shell.

The plan is printed first; --dry-run stops there, and a real run deletes
exactly that plan (a tag pushed again meanwhile is kept, "moved"). It asks
unless --yes; without a terminal and without --yes it refuses.

Examples:
  registryd prune --dry-run --keep-last 10 'localhost:5000/team/*'
  registryd prune --keep-last 5 --older-than 30d --keep '^v[0-9]' 'localhost:5000/ci/**'
  registryd prune --yes --older-than 2w localhost:5000/team/app
  registryd prune --dry-run --format json --keep-last 3 'localhost:5000/**' | jq '.decisions[] | select(.delete)'`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var d destructive
			var format formatFlag
			var keepLast int
			var olderThan string
			var keep multiFlag
			var maxShare float64
			fs.IntVar(&keepLast, "keep-last", 0, "keep the `N` tags pushed last")
			fs.StringVar(&olderThan, "older-than", "", "delete only tags older than `AGE` (30d, 2w, 12h): newer ones are kept")
			fs.Var(&keep, "keep", "keep tags matching this `regex` (repeatable)")
			fs.Float64Var(&maxShare, "max-share", 1, "refuse a repository where more than this share of the tags would go (0 to 1; 1: no limit)")
			d.define(fs)
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				arg, err := oneArg(args, "repositories (HOST[:PORT]/REPO-GLOB)")
				if err != nil {
					return err
				}
				host, glob, ok := strings.Cut(arg, "/")
				if !ok || glob == "" {
					return usagef("%s: expected HOST[:PORT]/REPO-GLOB, e.g. 'localhost:5000/team/*'", arg)
				}
				if _, err := parseRef(host, needRegistry); err != nil {
					return err
				}
				pattern, err := repoglob.Compile(glob)
				if err != nil {
					return usagef("%s: %v", glob, err)
				}
				if keepLast <= 0 && olderThan == "" {
					return usagef("give --keep-last N or --older-than AGE (with --keep alone, every other tag would go)")
				}
				var rules []retention.KeepRule
				if len(keep) > 0 {
					rules = append(rules, retention.KeepRule{Patterns: keep})
				}
				if keepLast > 0 {
					rules = append(rules, retention.KeepRule{MostRecentlyPushedCount: keepLast})
				} else if keepLast < 0 {
					return usagef("--keep-last must be positive")
				}
				if olderThan != "" {
					age, err := parseAge(olderThan)
					if err != nil || age == 0 {
						return usagef("--older-than: %v", err)
					}
					rules = append(rules, retention.KeepRule{PushedWithin: age})
				}
				engine, err := retention.Compile(retention.Settings{
					Delay: retention.DefaultDelay, MaxDeletionsPerRun: math.MaxInt32, MaxShare: maxShare,
					Policies: []retention.Policy{{Repositories: []string{glob}, KeepTags: rules}},
				})
				if err != nil {
					return usagef("%v", err)
				}
				out, err := format.parse()
				if err != nil {
					return err
				}
				cl, err := c.client()
				if err != nil {
					return err
				}
				p := &pruner{cl: cl, s: s, host: host, engine: engine}
				rep, err := p.plan(ctx, pattern)
				if err != nil {
					return err
				}
				human := !out.json && out.tmpl == nil
				rep.DryRun = d.dryRun
				if d.dryRun || human {
					if err := p.write(out, rep, true); err != nil {
						return err
					}
				}
				if d.dryRun {
					return nil
				}
				if rep.DeletedTags == 0 {
					return p.write(out, rep, false)
				}
				if err := s.confirm(ctx, fmt.Sprintf("Delete %d tag(s)?", rep.DeletedTags), d.yes); err != nil {
					return err
				}
				err = p.apply(ctx, &rep, human)
				if human {
					fmt.Fprint(s.Out, retention.Summary(rep))
				} else if werr := p.write(out, rep, false); werr != nil && err == nil {
					err = werr
				}
				return err
			}
		})
}

// pruner makes and carries out one prune.
type pruner struct {
	cl     *client.Client
	s      *Streams
	host   string
	engine *retention.Engine
	// createdAges is set when ages come from the images' creation time
	// (no push times on this registry).
	createdAges bool
	// seen remembers each decided tag's target and push time, to see at
	// delete time whether it moved; pushedNow is the push times read
	// again at delete time, per repository.
	seen      map[string]tagState
	pushedNow map[string]map[string]time.Time
}

type tagState struct {
	digest digest.Digest
	pushed time.Time
}

// plan decides every repository the glob matches.
func (p *pruner) plan(ctx context.Context, pattern repoglob.Pattern) (retention.Report, error) {
	now := time.Now()
	rep := retention.Report{ID: "prune", Started: now, Result: retention.ResultOK}
	info, err := p.cl.Admin(ctx, p.host)
	if err != nil {
		return rep, err
	}
	withTimes := info != nil && info.Features.PushTimes
	p.createdAges = !withTimes
	var names []string
	if info != nil {
		repos, err := p.cl.AdminRepositories(ctx, p.host, "")
		if err != nil {
			return rep, err
		}
		for _, r := range repos {
			names = append(names, r.Name)
		}
	} else if names, err = p.cl.Repositories(ctx, p.host); err != nil {
		return rep, err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !pattern.Match(n) })
	if len(names) == 0 {
		return rep, &client.NotFoundError{What: "repositories matching " + pattern.String()}
	}
	rep.Repositories, rep.Matched = len(names), len(names)
	p.seen = map[string]tagState{}
	bar := p.s.progress("reading repositories", len(names))
	defer bar.finish()
	for i, name := range names {
		repo := client.Reference{Host: p.host, Repository: name}
		var in retention.Repository
		if withTimes {
			in, err = p.adminTags(ctx, repo)
		} else {
			in, err = p.v2Tags(ctx, repo)
		}
		if err != nil {
			if client.IsNotFound(err) {
				continue // deleted meanwhile
			}
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		for _, t := range in.Tags {
			p.seen[name+":"+t.Name] = tagState{t.Digest, t.Pushed}
		}
		plan := p.engine.Decide(in, now)
		if plan.Refused != "" {
			rep.Refused = append(rep.Refused, name)
			rep.Result = retention.ResultRefused
		}
		for _, dec := range plan.Tags {
			if dec.Rule == retention.RuleNoTimes && p.createdAges {
				dec.Reason = "age unknown: the image has no creation time, or one before 2000 (reproducible builds say 1970)"
			}
			if dec.Delete {
				rep.DeletedTags++
			}
			rep.Decisions = append(rep.Decisions, dec)
		}
		bar.set(i+1, len(names))
	}
	return rep, nil
}

// adminTags reads a repository's tags with their push and pull times.
func (p *pruner) adminTags(ctx context.Context, repo client.Reference) (retention.Repository, error) {
	tags, err := p.cl.AdminTags(ctx, repo, "name")
	if err != nil {
		return retention.Repository{}, err
	}
	in := retention.Repository{Name: repo.Repository}
	for _, t := range tags {
		rt := retention.Tag{Name: t.Name, Digest: digest.Digest(t.Digest)}
		if t.Pushed != nil {
			rt.Pushed = *t.Pushed
		}
		if t.LastPulled != nil {
			rt.LastPulled = *t.LastPulled
		}
		in.Tags = append(in.Tags, rt)
	}
	return in, nil
}

// v2Tags reads a repository's tags through the V2 API: each tag's manifest
// (digest, subject, children) and its image's creation time as its age.
func (p *pruner) v2Tags(ctx context.Context, repo client.Reference) (retention.Repository, error) {
	names, err := p.cl.Tags(ctx, repo)
	if err != nil {
		return retention.Repository{}, err
	}
	in := retention.Repository{Name: repo.Repository, Tags: make([]retention.Tag, len(names))}
	manifests := make([]*client.Manifest, len(names))
	err = forEach(ctx, len(names), func(i int) error {
		m, err := p.cl.Manifest(ctx, repo.WithTag(names[i]))
		if err != nil {
			if client.IsNotFound(err) {
				return nil
			}
			return err
		}
		manifests[i] = m
		in.Tags[i] = retention.Tag{Name: names[i], Digest: m.Descriptor.Digest}
		created, err := p.cl.Created(ctx, repo.WithDigest(m.Descriptor.Digest))
		if err != nil && !client.IsNotFound(err) {
			return err
		}
		if created != nil && created.After(plausibleCreated) {
			in.Tags[i].Pushed = *created
		}
		return nil
	})
	if err != nil {
		return retention.Repository{}, err
	}
	// The tagged manifests, so that a tag on a referrer follows its subject
	// by the manifest's own subject field, not only by its name.
	have := map[digest.Digest]bool{}
	for _, m := range manifests {
		if m == nil || have[m.Descriptor.Digest] {
			continue
		}
		have[m.Descriptor.Digest] = true
		rm := retention.Manifest{Digest: m.Descriptor.Digest}
		if m.Subject != nil {
			rm.Subject = m.Subject.Digest
		}
		for _, c := range m.Manifests {
			rm.Children = append(rm.Children, c.Digest)
		}
		in.Manifests = append(in.Manifests, rm)
	}
	in.Tags = slices.DeleteFunc(in.Tags, func(t retention.Tag) bool { return t.Name == "" })
	return in, nil
}

// apply deletes the plan's tags, each only if it still points where it did
// (and, with push times, was not pushed again); referrers' tags go last, so
// that a signature never goes before its image's tag.
func (p *pruner) apply(ctx context.Context, rep *retention.Report, human bool) error {
	rep.DryRun = false
	p.pushedNow = map[string]map[string]time.Time{}
	var order []int
	for i, dec := range rep.Decisions {
		if dec.Delete && dec.Rule != retention.RuleSubject {
			order = append(order, i)
		}
	}
	for i, dec := range rep.Decisions {
		if dec.Delete && dec.Rule == retention.RuleSubject {
			order = append(order, i)
		}
	}
	bar := p.s.progress("deleting tags", len(order))
	defer bar.finish()
	deleted := 0
	for _, i := range order {
		dec := &rep.Decisions[i]
		ref := client.Reference{Host: p.host, Repository: dec.Repository, Tag: dec.Tag}
		moved, err := p.moved(ctx, ref, p.seen[dec.Repository+":"+dec.Tag])
		if err != nil {
			rep.Result, rep.Error = retention.ResultFailed, err.Error()
			rep.DeletedTags = deleted
			return fmt.Errorf("%s: %w", ref, err)
		}
		if moved != "" {
			dec.Delete, dec.Rule, dec.Reason = false, retention.RuleMoved, moved
			bar.add(1)
			continue
		}
		how, err := p.cl.DeleteTag(ctx, ref)
		if err != nil && !client.IsNotFound(err) {
			rep.Result, rep.Error = retention.ResultFailed, err.Error()
			rep.DeletedTags = deleted
			return fmt.Errorf("%s: %w", ref, deleteHint(err))
		}
		deleted++
		bar.add(1)
		if human {
			fmt.Fprintf(p.s.Out, "deleted tag %s (%s)\n", ref, how)
		}
	}
	rep.DeletedTags = deleted
	rep.Finished = time.Now()
	return nil
}

// moved says why a tag is no longer what the plan decided about, or "".
func (p *pruner) moved(ctx context.Context, ref client.Reference, was tagState) (string, error) {
	desc, err := p.cl.Head(ctx, ref)
	if client.IsNotFound(err) {
		return "", nil // gone already: nothing to do, and not an error
	}
	if err != nil {
		return "", err
	}
	if desc.Digest != was.digest {
		return fmt.Sprintf("tagged again (now %s) since the plan was made", desc.Digest), nil
	}
	if !p.createdAges {
		// Push times read again once per repository, as its deletions
		// start: a push to the same manifest is a push too.
		pushed, ok := p.pushedNow[ref.Repository]
		if !ok {
			tags, err := p.cl.AdminTags(ctx, ref.Repo(), "name")
			if err != nil {
				return "", err
			}
			pushed = map[string]time.Time{}
			for _, t := range tags {
				if t.Pushed != nil {
					pushed[t.Name] = *t.Pushed
				}
			}
			p.pushedNow[ref.Repository] = pushed
		}
		if t, ok := pushed[ref.Tag]; ok && !t.Equal(was.pushed) {
			return "pushed again since the plan was made", nil
		}
	}
	return "", nil
}

// write prints a report: retention's table (the same as the server's and
// `registryd retention`'s), the admin API's JSON, or a template per
// decision.
func (p *pruner) write(out *output, rep retention.Report, plan bool) error {
	w := p.s.Out
	switch {
	case out.json:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(retention.AdminRun(rep))
	case out.tmpl != nil:
		run := retention.AdminRun(rep)
		if run.Decisions == nil {
			run.Decisions = []admin.Decision{}
		}
		return out.list(w, "", run.Decisions)
	}
	if p.createdAges {
		fmt.Fprintf(w, "ages: the images' creation time (config \"created\"); %s records no push times\n", p.host)
	}
	if !plan {
		_, err := io.WriteString(w, retention.Summary(rep))
		return err
	}
	if rep.DryRun {
		return retention.WriteTable(w, rep)
	}
	// The plan of a real run, before its question: the table without the
	// summary, whose "dry run" would be untrue here.
	rep.DryRun = true
	var b strings.Builder
	if err := retention.WriteTable(&b, rep); err != nil {
		return err
	}
	_, err := io.WriteString(w, strings.TrimSuffix(b.String(), retention.Summary(rep)))
	return err
}
