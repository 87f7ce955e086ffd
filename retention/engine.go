package retention

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Tag is what the engine knows of one tag.
type Tag struct {
	Name   string
	Digest digest.Digest
	// Pushed is when the tag was last written (pointed at Digest); zero
	// when unknown, and then the tag is kept.
	Pushed time.Time
	// LastPulled is the last pull by this tag; zero: never pulled (or not
	// recorded).
	LastPulled time.Time
}

// Manifest is one manifest of the repository, with what it points at.
type Manifest struct {
	Digest   digest.Digest
	Subject  digest.Digest   // "" without a subject
	Children []digest.Digest // an index's manifests
	// Since is no earlier than the last time the manifest was pushed or
	// was the target of a tag: an untagged manifest's age is measured from
	// it, so that a manifest a tag left yesterday is not judged by its push
	// a year ago. Zero: unknown, and then it is kept.
	Since time.Time
}

// Repository is the engine's input for one repository.
type Repository struct {
	Name string
	Tags []Tag
	// Manifests are every manifest of the repository with its references.
	// nil when the caller does not know them: then no untagged manifest is
	// deleted, and a tag counts as a referrer only by its name
	// (sha256-<hex>.sig, as cosign tags signatures).
	Manifests []Manifest
}

// The rules a Decision names. The keep rules are the keys of keeptags.
const (
	RuleLatest         = "latest"                  // "latest" is always kept
	RulePatterns       = "patterns"                // a keeptags rule with patterns alone
	RulePushedCount    = "mostrecentlypushedcount" // among the N tags pushed last
	RulePulledCount    = "mostrecentlypulledcount" // among the N tags pulled last
	RulePushedWithin   = "pushedwithin"            // pushed recently enough
	RulePulledWithin   = "pulledwithin"            // pulled (or, never pulled, pushed) recently enough
	RuleNoTimes        = "notimes"                 // no push time recorded: kept
	RuleNoKeepTags     = "nokeeptags"              // the policy has no keeptags: it deletes no tag
	RuleSubject        = "subject"                 // a referrer's tag follows its subject
	RuleNoKeepRule     = "nokeeprule"              // deleted: no keep rule keeps it
	RuleDeleteUntagged = "deleteuntagged"          // deleted: untagged and older than delay
	RuleMaxShare       = "maxshare"                // kept: the repository's run was refused
	RuleMaxDeletions   = "maxdeletionsperrun"      // kept for now: the run's cap was reached
	RuleMoved          = "moved"                   // kept: tagged again between the decision and the delete
)

// Decision is the verdict on one tag, or on one untagged manifest (Tag
// empty).
type Decision struct {
	Repository string
	Tag        string
	Digest     digest.Digest
	Pushed     time.Time // zero: unknown
	LastPulled time.Time // zero: never, or unknown
	// Delete is true when the tag (manifest) goes; in a dry run, would go.
	Delete bool
	// Rule is the rule that decided (Rule* constants), Reason says how, for
	// a person reading the report.
	Rule   string
	Reason string
	Policy string // the policy that applied: its repositories, as written
}

// Plan is the engine's verdict on one repository.
type Plan struct {
	Repository string
	// Policy is the policy that applied; "" when none did, and then the
	// repository keeps everything and Tags is empty.
	Policy string
	// Tags has a decision for every tag, in name order.
	Tags []Decision
	// Untagged are the untagged manifests the policy deletes (or, deferred
	// by the run's cap, would).
	Untagged []Decision
	// Refused says why nothing of the repository is deleted, when the run
	// would delete more than maxshare of its tags.
	Refused string
	// BytesFreed is what the plan's deletions, then a collection, free,
	// all together (shared layers counted once); SizesKnown says the
	// Runner computed it from the store's size index. The engine, which
	// sees no sizes, leaves both zero.
	BytesFreed int64
	SizesKnown bool

	// order lists the indexes in Tags of deletions in the order a run's
	// cap takes them: tags whose rules decided first, oldest push first,
	// then referrers' tags (so that a signature never goes while the tag
	// of its image waits for the next run), then untagged manifests.
	order []int
}

// Deletions returns the tags and the untagged manifests the plan deletes.
func (p *Plan) Deletions() (tags, manifests []Decision) {
	for _, d := range p.Tags {
		if d.Delete {
			tags = append(tags, d)
		}
	}
	for _, d := range p.Untagged {
		if d.Delete {
			manifests = append(manifests, d)
		}
	}
	return tags, manifests
}

// tag states while deciding.
const (
	decided  = iota
	ordinary // subject to the keep rules
	referrer // follows its subject
)

// Decide applies the repository's policy as of now: which tags stay,
// which go, and which untagged manifests go. It is pure and deterministic:
// the same input gives the same plan, so a dry run shows exactly what a
// run does. The run's cap (maxdeletionsperrun) is applied over
// repositories by a Budget.
func (e *Engine) Decide(repo Repository, now time.Time) Plan {
	plan := Plan{Repository: repo.Name}
	pol := e.match(repo.Name)
	if pol == nil {
		return plan
	}
	plan.Policy = pol.name
	tags := append([]Tag(nil), repo.Tags...)
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	g := newGraph(repo)

	ds := make([]Decision, len(tags))
	state := make([]int, len(tags))
	subject := make([]digest.Digest, len(tags))
	for i, t := range tags {
		ds[i] = Decision{Repository: repo.Name, Tag: t.Name, Digest: t.Digest, Pushed: t.Pushed, LastPulled: t.LastPulled, Policy: pol.name}
		subject[i] = g.subjectOfTag(t)
		keep := func(rule, reason string) { ds[i].Rule, ds[i].Reason = rule, reason }
		if t.Name == "latest" {
			keep(RuleLatest, "latest is always kept")
			continue
		}
		if r, pat := pol.protects(t.Name); r != nil {
			keep(RulePatterns, fmt.Sprintf("matches %q (keeptags[%d])", pat, r.index))
			continue
		}
		switch {
		case len(pol.rules) == 0:
			keep(RuleNoKeepTags, "the policy has no keeptags rules: it deletes no tag")
		case t.Pushed.IsZero():
			keep(RuleNoTimes, "no push time recorded")
		case subject[i] != "":
			state[i] = referrer
		default:
			state[i] = ordinary
		}
	}

	// The keep rules, each over its own scope: the tags it may keep that
	// have the time it ranks by. Referrers' tags are not ranked: a
	// signature pushed after each image would otherwise take the place of
	// an image.
	ranks := make([]ruleRanks, len(pol.rules))
	for ri, r := range pol.rules {
		if r.patternsOnly {
			continue
		}
		var pushed, pulled []int
		for i, t := range tags {
			if subject[i] != "" || t.Pushed.IsZero() || !r.scoped(t.Name) {
				continue
			}
			pushed = append(pushed, i)
			if !t.LastPulled.IsZero() {
				pulled = append(pulled, i)
			}
		}
		if r.pushedCount > 0 {
			ranks[ri].pushed = rank(pushed, r.pushedCount, func(i int) time.Time { return tags[i].Pushed })
			ranks[ri].pushedScope = len(pushed)
		}
		if r.pulledCount > 0 {
			ranks[ri].pulled = rank(pulled, r.pulledCount, func(i int) time.Time { return tags[i].LastPulled })
			ranks[ri].pulledScope = len(pulled)
		}
	}
	for i, t := range tags {
		if state[i] != ordinary {
			continue
		}
		rule, reason := pol.keeps(t, i, ranks, now)
		if rule == "" {
			ds[i].Delete = true
			rule, reason = RuleNoKeepRule, fmt.Sprintf("no keep rule of policy %s keeps it", pol.name)
		}
		ds[i].Rule, ds[i].Reason = rule, reason
	}

	// Referrers' tags follow their subject: kept while the subject stays
	// reachable from a kept tag, or while the subject is not a tag's at
	// all (pushed by digest: deleteuntagged decides about it), deleted
	// with the subject's last tag. Kept ones make their own targets live,
	// hence the loop (a signature of an SBOM of an image).
	before := g.closure(nil, tagTargets(tags, nil))
	live := g.closure(nil, tagTargets(tags, func(i int) bool { return state[i] != referrer && !ds[i].Delete }))
	for changed := true; changed; {
		changed = false
		for i := range tags {
			if state[i] != referrer || ds[i].Rule != "" {
				continue
			}
			s := subject[i]
			switch {
			case live[s]:
				ds[i].Rule, ds[i].Reason = RuleSubject, fmt.Sprintf("follows its subject %s, which stays", s)
			case !before[s]:
				ds[i].Rule, ds[i].Reason = RuleSubject, fmt.Sprintf("follows its subject %s, which no tag reaches: the two stay together", s)
			default:
				continue
			}
			g.closure(live, []digest.Digest{tags[i].Digest})
			changed = true
		}
	}
	for i := range tags {
		if state[i] == referrer && ds[i].Rule == "" {
			ds[i].Delete = true
			ds[i].Rule, ds[i].Reason = RuleSubject, fmt.Sprintf("follows its subject %s, which loses its last tag", subject[i])
		}
	}
	plan.Tags = ds

	// The guard against wiping a repository (gitlab#325429): all or
	// nothing, never a part chosen by the guard itself.
	n := 0
	for _, d := range ds {
		if d.Delete {
			n++
		}
	}
	if n > 0 && float64(n)/float64(len(ds)) > e.settings.MaxShare+1e-9 {
		plan.Refused = fmt.Sprintf("would delete %d of %d tags (%.0f%%), more than maxshare %g", n, len(ds), 100*float64(n)/float64(len(ds)), e.settings.MaxShare)
		for i := range ds {
			if ds[i].Delete {
				ds[i].Delete = false
				ds[i].Reason = fmt.Sprintf("refused: the run %s (%s: %s)", plan.Refused, ds[i].Rule, ds[i].Reason)
				ds[i].Rule = RuleMaxShare
			}
		}
		return plan
	}

	// Untagged manifests: whatever no tag reached before this run, nor
	// reaches now, and is older than delay. What this run untags is kept:
	// its delay starts now. A tag that stays on a referrer holds the
	// referrer's subject: a signature someone tagged does not lose its
	// image under it.
	if pol.deleteUntagged && repo.Manifests != nil {
		seeds := tagTargets(tags, nil)
		for i := range tags {
			if subject[i] != "" && !ds[i].Delete {
				seeds = append(seeds, subject[i])
			}
		}
		for _, m := range repo.Manifests {
			if !before[m.Digest] && (m.Since.IsZero() || now.Sub(m.Since) <= e.settings.Delay) {
				seeds = append(seeds, m.Digest)
			}
		}
		stays := g.closure(nil, seeds)
		ms := append([]Manifest(nil), repo.Manifests...)
		sort.Slice(ms, func(i, j int) bool { return ms[i].Digest < ms[j].Digest })
		for _, m := range ms {
			if stays[m.Digest] {
				continue
			}
			reason := fmt.Sprintf("no tag reaches it; last pushed or tagged %s ago, more than delay %s", age(now.Sub(m.Since)), dur(e.settings.Delay))
			if m.Subject != "" && !g.present[m.Subject] {
				reason = fmt.Sprintf("its subject %s is gone; last pushed %s ago, more than delay %s", m.Subject, age(now.Sub(m.Since)), dur(e.settings.Delay))
			}
			plan.Untagged = append(plan.Untagged, Decision{
				Repository: repo.Name, Digest: m.Digest, Delete: true, Rule: RuleDeleteUntagged, Reason: reason, Policy: pol.name,
			})
		}
	}

	// The order a run's cap takes deletions in.
	var own, refs []int
	for i, d := range ds {
		switch {
		case !d.Delete:
		case state[i] == referrer:
			refs = append(refs, i)
		default:
			own = append(own, i)
		}
	}
	oldestFirst := func(s []int) {
		sort.SliceStable(s, func(a, b int) bool { return tags[s[a]].Pushed.Before(tags[s[b]].Pushed) })
	}
	oldestFirst(own)
	oldestFirst(refs)
	plan.order = append(own, refs...)
	return plan
}

// ruleRanks holds, for one keep rule, the rank of each tag it keeps by
// count (1 = newest), by index in the sorted tags.
type ruleRanks struct {
	pushed, pulled           map[int]int
	pushedScope, pulledScope int
}

// rank returns the members of scope among the n newest by at, with their
// rank. Ties with the n-th are all kept: which of two tags pushed at the
// same instant (one manifest pushed under several tags) is "newer" is not
// a thing a policy should decide by name.
func rank(scope []int, n int, at func(int) time.Time) map[int]int {
	s := append([]int(nil), scope...)
	sort.SliceStable(s, func(a, b int) bool { return at(s[a]).After(at(s[b])) })
	out := map[int]int{}
	for k, i := range s {
		if k >= n && !at(i).Equal(at(s[n-1])) {
			break
		}
		r := k + 1
		if k > 0 && at(i).Equal(at(s[k-1])) {
			r = out[s[k-1]]
		}
		out[i] = r
	}
	return out
}

// protects returns the patterns-only rule (and the pattern) that keeps
// tag, or nil.
func (p *compiledPolicy) protects(tag string) (*compiledRule, string) {
	for _, r := range p.rules {
		if r.patternsOnly {
			if pat := r.matchingPattern(tag); pat != "" {
				return r, pat
			}
		}
	}
	return nil, ""
}

// keeps returns the first keep rule, in the policy's order, that keeps
// tag t (index i), and why; "" when none does.
func (p *compiledPolicy) keeps(t Tag, i int, ranks []ruleRanks, now time.Time) (rule, reason string) {
	for ri, r := range p.rules {
		if r.patternsOnly || !r.scoped(t.Name) {
			continue
		}
		scope := ""
		if len(r.patterns) > 0 {
			scope = " matching " + r.matchingPattern(t.Name)
		}
		if k, ok := ranks[ri].pushed[i]; ok {
			return RulePushedCount, fmt.Sprintf("%s most recently pushed of %d tags%s (keeptags[%d] keeps %d)", ordinal(k), ranks[ri].pushedScope, scope, r.index, r.pushedCount)
		}
		if k, ok := ranks[ri].pulled[i]; ok {
			return RulePulledCount, fmt.Sprintf("%s most recently pulled of %d pulled tags%s (keeptags[%d] keeps %d)", ordinal(k), ranks[ri].pulledScope, scope, r.index, r.pulledCount)
		}
		if r.pushedWithin > 0 && now.Sub(t.Pushed) <= r.pushedWithin {
			return RulePushedWithin, fmt.Sprintf("pushed %s ago, within %s (keeptags[%d])", age(now.Sub(t.Pushed)), dur(r.pushedWithin), r.index)
		}
		if r.pulledWithin > 0 {
			// A tag not pulled since it was pushed has been idle since its
			// push: one pushed an hour ago is not "unpulled for a week".
			switch {
			case !t.LastPulled.IsZero() && t.LastPulled.After(t.Pushed) && now.Sub(t.LastPulled) <= r.pulledWithin:
				return RulePulledWithin, fmt.Sprintf("pulled %s ago, within %s (keeptags[%d])", age(now.Sub(t.LastPulled)), dur(r.pulledWithin), r.index)
			case now.Sub(t.Pushed) <= r.pulledWithin:
				return RulePulledWithin, fmt.Sprintf("not pulled since its push %s ago, within %s (keeptags[%d])", age(now.Sub(t.Pushed)), dur(r.pulledWithin), r.index)
			}
		}
	}
	return "", ""
}

// graph is the repository's manifests and how they reference each other.
type graph struct {
	present   map[digest.Digest]bool
	children  map[digest.Digest][]digest.Digest
	subject   map[digest.Digest]digest.Digest
	referrers map[digest.Digest][]digest.Digest
}

func newGraph(repo Repository) *graph {
	g := &graph{
		present:   map[digest.Digest]bool{},
		children:  map[digest.Digest][]digest.Digest{},
		subject:   map[digest.Digest]digest.Digest{},
		referrers: map[digest.Digest][]digest.Digest{},
	}
	for _, t := range repo.Tags {
		g.present[t.Digest] = true
	}
	for _, m := range repo.Manifests {
		g.present[m.Digest] = true
		g.children[m.Digest] = m.Children
		if m.Subject != "" {
			g.subject[m.Digest] = m.Subject
			g.referrers[m.Subject] = append(g.referrers[m.Subject], m.Digest)
		}
	}
	return g
}

// legacyReferrerTag is how tools tag what refers to a manifest when a
// registry has no referrers API: cosign's sha256-<hex>.sig, .att, .sbom,
// and the OCI referrers tag schema's sha256-<hex>.
var legacyReferrerTag = regexp.MustCompile(`^([a-z0-9]+)-([a-f0-9]{32,})(\.[A-Za-z0-9_.-]+)?$`)

// subjectOfTag is the manifest a tag's target refers to, when it is in the
// repository: the target's subject, or the digest the tag is named after.
func (g *graph) subjectOfTag(t Tag) digest.Digest {
	if s := g.subject[t.Digest]; s != "" && g.present[s] {
		return s
	}
	if m := legacyReferrerTag.FindStringSubmatch(t.Name); m != nil {
		d := digest.NewDigestFromEncoded(digest.Algorithm(m[1]), m[2])
		if d.Validate() == nil && d != t.Digest && g.present[d] {
			return d
		}
	}
	return ""
}

// closure adds to set (a new one when nil) the seeds and everything they
// keep alive: an index's children, and the referrers of a live manifest.
func (g *graph) closure(set map[digest.Digest]bool, seeds []digest.Digest) map[digest.Digest]bool {
	if set == nil {
		set = map[digest.Digest]bool{}
	}
	stack := append([]digest.Digest(nil), seeds...)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if set[d] {
			continue
		}
		set[d] = true
		stack = append(stack, g.children[d]...)
		stack = append(stack, g.referrers[d]...)
	}
	return set
}

// tagTargets are the digests of the tags that pass keep (all with nil).
func tagTargets(tags []Tag, keep func(i int) bool) []digest.Digest {
	var out []digest.Digest
	for i, t := range tags {
		if keep == nil || keep(i) {
			out = append(out, t.Digest)
		}
	}
	return out
}

// dur writes a configured duration as an operator does: 720h, 90m, 1h30m.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// age writes a duration as a person reads an age: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// Budget is a run's cap on deletions (maxdeletionsperrun), taken by the
// plans in the order they come.
type Budget struct {
	max, used int
}

// NewBudget returns a budget of max deletions.
func NewBudget(max int) *Budget { return &Budget{max: max} }

// Used is how many deletions were granted.
func (b *Budget) Used() int { return b.used }

// Apply grants the plan's deletions while the budget lasts; the rest are
// kept for now (RuleMaxDeletions) and counted in deferred.
func (b *Budget) Apply(p *Plan) (deferred int) {
	take := func(d *Decision) {
		if !d.Delete {
			return
		}
		if b.used < b.max {
			b.used++
			return
		}
		d.Delete = false
		d.Reason = fmt.Sprintf("deferred to the next run: maxdeletionsperrun %d reached (%s: %s)", b.max, d.Rule, d.Reason)
		d.Rule = RuleMaxDeletions
		deferred++
	}
	for _, i := range p.order {
		take(&p.Tags[i])
	}
	for i := range p.Untagged {
		take(&p.Untagged[i])
	}
	return deferred
}

// String is a one-line summary of the plan, for logs.
func (p *Plan) String() string {
	if p.Policy == "" {
		return p.Repository + ": no policy"
	}
	tags, ms := p.Deletions()
	var b strings.Builder
	fmt.Fprintf(&b, "%s (policy %s): delete %d of %d tags", p.Repository, p.Policy, len(tags), len(p.Tags))
	if len(ms) > 0 {
		fmt.Fprintf(&b, " and %d untagged manifests", len(ms))
	}
	if p.Refused != "" {
		fmt.Fprintf(&b, "; refused: %s", p.Refused)
	}
	return b.String()
}
