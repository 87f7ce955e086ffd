package retention

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/internal/repoglob"
)

// The retention property, on random stores and random policies:
//   - a dry run changes nothing: zero storage writes, the store byte for
//     byte as it was;
//   - a real run deletes exactly the dry run's list: those tags and those
//     untagged manifests, nothing else (never a sibling tag, never a tag
//     moved to another manifest);
//   - it never deletes a tag any keep rule keeps (checked by a brute-force
//     oracle written from the rules' definitions, not by the engine), nor
//     latest, nor a tag without a push time; a referrer's tag only when its
//     subject lost its last tag; an untagged manifest only when no tag
//     reached it before or after the run;
//   - never more than the guards allow: maxdeletionsperrun per run,
//     maxshare of any repository's tags;
//   - a second run deletes no further tag unless the first deferred some
//     (nothing erodes run after run).
//
// 150 seeds by default; RETENTION_SEEDS=n runs n. Over 3000 seeds the runs
// deleted 1824 tags and 433 untagged manifests, deferred 770 deletions and
// refused 699 repositories, every rule deciding some tag: the property is
// not checked on runs that do nothing. It found that a tag on a referrer
// whose subject no tag reached was kept "while the subject stays" while
// deleteuntagged removed the subject, so that the next run deleted the tag.
func TestProperty(t *testing.T) {
	seeds := 150
	if n, err := strconv.Atoi(os.Getenv("RETENTION_SEEDS")); err == nil {
		seeds = n
	}
	if testing.Short() {
		seeds = 30
	}
	for seed := int64(0); seed < int64(seeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { property(t, seed) })
	}
}

var statTags, statMans, statDeferred, statRefused int
var statRules = map[string]int{}

func TestZZStats(t *testing.T) {
	t.Logf("tags %d mans %d deferred %d refused %d rules %v", statTags, statMans, statDeferred, statRefused, statRules)
}

var (
	repoPool  = []string{"team-a/app", "team-a/x/y", "ci/build", "other", "web/app"}
	globPool  = []string{"**", "team-a/**", "ci/*", "*/app", "other", "team-a/x/*"}
	tagPool   = []string{"latest", "v1", "v1.2", "v2", "main", "dev", "pr-1", "pr-2", "pr-3", "env18-a", "env19-b", "rc1", "nightly-7", "x"}
	regexPool = []string{"^v[0-9]", "^main$", "rc", "^env18-", "^pr-", "-"}
)

func property(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	s := newStore(t)
	ctx := context.Background()
	// The run's clock is up to two days after the store was written: some
	// untagged manifests are past their delay, some are not.
	at := time.Now().Add(time.Duration(rng.Intn(3)) * 24 * time.Hour)
	pushedTimes := []time.Time{{}, at.Add(-time.Hour), at.Add(-30 * time.Hour), at.Add(-10 * 24 * time.Hour), at.Add(-40 * 24 * time.Hour)}
	randomTime := func(zeroOdds int, spread time.Duration) time.Time {
		switch n := rng.Intn(zeroOdds); {
		case n == 0:
			return time.Time{}
		case n < zeroOdds/2:
			return pushedTimes[1+rng.Intn(len(pushedTimes)-1)] // ties
		}
		return at.Add(-time.Duration(rng.Int63n(int64(spread))))
	}

	layers := []string{"L1", "L2", "L3", "L4"}
	for _, repo := range pick(rng, repoPool, 1+rng.Intn(3)) {
		var mans []ocispec.Descriptor
		for i := 0; i < 1+rng.Intn(5); i++ {
			mans = append(mans, s.image(repo, "", pick(rng, layers, rng.Intn(3))...))
		}
		if len(mans) >= 2 && rng.Intn(2) == 0 {
			mans = append(mans, s.index(repo, "", pickDescs(rng, mans, 1+rng.Intn(2))...))
		}
		for i := 0; i < rng.Intn(3); i++ {
			subj := mans[rng.Intn(len(mans))]
			if rng.Intn(5) == 0 {
				subj = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(fmt.Sprint("gone", rng.Int())), Size: 2}
			}
			mans = append(mans, s.artifact(repo, "", &subj))
		}
		for i := 0; i < 1+rng.Intn(10); i++ {
			s.tag(repo, tagPool[rng.Intn(len(tagPool))], mans[rng.Intn(len(mans))].Digest, randomTime(12, 50*24*time.Hour), randomTime(3, 30*24*time.Hour))
		}
		if rng.Intn(3) == 0 { // a signature tagged the way cosign does
			subj := mans[rng.Intn(len(mans))].Digest
			sig := s.artifact(repo, "", nil)
			s.tag(repo, subj.Algorithm().String()+"-"+subj.Encoded()+".sig", sig.Digest, randomTime(12, 50*24*time.Hour), time.Time{})
		}
	}
	settings := randomSettings(rng)
	e, err := Compile(settings)
	if err != nil {
		t.Fatalf("%v: %+v", err, settings)
	}

	before := s.state()
	bytesBefore := dump(t, s.base)
	w0 := s.count.writes.Load()
	// A dry run asked for, or set in the configuration.
	dryEngine := e
	if rng.Intn(2) == 0 {
		ds := settings
		ds.DryRun = true
		dryEngine, _ = Compile(ds)
	}
	dry, err := s.runner(dryEngine, at).Run(ctx, dryEngine == e)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.count.writes.Load() - w0; w != 0 {
		t.Fatalf("the dry run wrote to the storage %d times (last: %v)", w, s.count.last.Load())
	}
	if !reflect.DeepEqual(dump(t, s.base), bytesBefore) {
		t.Fatal("the dry run changed the store")
	}
	if !dry.DryRun {
		t.Fatal("the report does not say dry run")
	}

	real, err := s.runner(e, at).Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	after := s.state()
	if real.DryRun || real.Result != dry.Result || real.DeletedTags != dry.DeletedTags || real.DeletedManifests != dry.DeletedManifests ||
		real.Deferred != dry.Deferred || !reflect.DeepEqual(real.Refused, dry.Refused) {
		t.Fatalf("the run differs from its dry run:\nreal %+v\ndry  %+v", summary(real), summary(dry))
	}
	if !reflect.DeepEqual(decisionSet(real), decisionSet(dry)) {
		t.Fatalf("decisions differ:\nreal %v\ndry  %v", decisionSet(real), decisionSet(dry))
	}

	// Exactly the dry run's list is gone.
	wantTags, wantMans := map[string]bool{}, map[string]bool{}
	for _, d := range dry.Decisions {
		if d.Delete && d.Tag != "" {
			wantTags[d.Repository+":"+d.Tag] = true
		} else if d.Delete {
			wantMans[d.Repository+"@"+d.Digest.String()] = true
		}
	}
	gotTags, gotMans := map[string]bool{}, map[string]bool{}
	for name, b := range before {
		a := after[name]
		for tag, d := range b.tags {
			switch cur, ok := a.tags[tag]; {
			case !ok:
				gotTags[name+":"+tag] = true
			case cur != d:
				t.Errorf("%s:%s moved from %s to %s", name, tag, d, cur)
			}
		}
		for d := range b.revs {
			if !a.revs[d] {
				gotMans[name+"@"+d.String()] = true
			}
		}
	}
	if !reflect.DeepEqual(gotTags, wantTags) {
		t.Errorf("deleted tags %v, the dry run listed %v", sortedKeys(gotTags), sortedKeys(wantTags))
	}
	if !reflect.DeepEqual(gotMans, wantMans) {
		t.Errorf("deleted manifests %v, the dry run listed %v", sortedKeys(gotMans), sortedKeys(wantMans))
	}

	// The guards.
	if n := len(gotTags) + len(gotMans); n > settings.MaxDeletionsPerRun {
		t.Errorf("%d deletions, maxdeletionsperrun %d", n, settings.MaxDeletionsPerRun)
	}
	for name, b := range before {
		n := 0
		for tag := range b.tags {
			if gotTags[name+":"+tag] {
				n++
			}
		}
		if n > 0 && float64(n)/float64(len(b.tags)) > settings.MaxShare+1e-9 {
			t.Errorf("%s: deleted %d of %d tags, maxshare %g", name, n, len(b.tags), settings.MaxShare)
		}
	}

	// No keep rule keeps what went.
	for name, b := range before {
		o := newOracle(s, settings, name, b, after[name], at)
		for tag := range b.tags {
			if gotTags[name+":"+tag] {
				if why := o.keeps(tag); why != "" {
					t.Errorf("%s:%s was deleted, but %s", name, tag, why)
				}
			}
		}
		for d := range b.revs {
			if gotMans[name+"@"+d.String()] {
				if o.before[d] || o.after[d] {
					t.Errorf("%s@%s was deleted while a tag reaches it", name, d)
				}
				for tag, s := range o.subjectOf {
					if s == d && after[name].tags[tag] != "" {
						t.Errorf("%s@%s was deleted while %s, a tag of a referrer of it, stays", name, d, tag)
					}
				}
			}
		}
	}
	if t.Failed() {
		for _, d := range dry.Decisions {
			t.Logf("%s:%s %s delete=%v %s: %s", d.Repository, d.Tag, d.Digest.Encoded()[:8], d.Delete, d.Rule, d.Reason)
		}
		t.Logf("settings %+v", settings)
		return
	}

	// Nothing erodes: a second run deletes no tag, unless the cap left some
	// for it.
	if real.Deferred == 0 {
		again, err := s.runner(e, at).Run(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if again.DeletedTags != 0 {
			for _, d := range real.Decisions {
				t.Logf("first: %s:%s %s delete=%v %s: %s pushed=%s pulled=%s", d.Repository, d.Tag, d.Digest.Encoded()[:8], d.Delete, d.Rule, d.Reason, d.Pushed.Format(time.Stamp), d.LastPulled.Format(time.Stamp))
			}
			for _, d := range again.Decisions {
				t.Logf("again: %s:%s %s delete=%v %s: %s", d.Repository, d.Tag, d.Digest.Encoded()[:8], d.Delete, d.Rule, d.Reason)
			}
			t.Errorf("a second run deleted %d more tags: %v", again.DeletedTags, decisionSet(again))
		}
	}
}

func randomSettings(rng *rand.Rand) Settings {
	s := Settings{
		MaxShare:           []float64{0.3, 0.5, 0.8, 1}[rng.Intn(4)],
		MaxDeletionsPerRun: []int{1, 2, 5, 1000}[rng.Intn(4)],
		Delay:              []time.Duration{time.Hour, 24 * time.Hour, 72 * time.Hour}[rng.Intn(3)],
	}
	for i := 0; i < 1+rng.Intn(3); i++ {
		p := Policy{Repositories: pick(rng, globPool, 1+rng.Intn(2)), DeleteUntagged: rng.Intn(2) == 0}
		for j := 0; j < rng.Intn(4); j++ {
			var k KeepRule
			switch rng.Intn(5) {
			case 0:
				k.Patterns = pick(rng, regexPool, 1+rng.Intn(2))
			case 1:
				k.MostRecentlyPushedCount = 1 + rng.Intn(3)
			case 2:
				k.MostRecentlyPulledCount = 1 + rng.Intn(3)
			case 3:
				k.PushedWithin = time.Duration(1+rng.Intn(30*24)) * time.Hour
			case 4:
				k.PulledWithin = time.Duration(1+rng.Intn(30*24)) * time.Hour
			}
			if len(k.Patterns) == 0 && rng.Intn(3) == 0 {
				k.Patterns = pick(rng, regexPool, 1) // a count or window narrowed by patterns
			}
			p.KeepTags = append(p.KeepTags, k)
		}
		s.Policies = append(s.Policies, p)
	}
	return s
}

// oracle judges one repository's tags by the rules' definitions, by brute
// force, from what the test wrote.
type oracle struct {
	s             *store
	settings      Settings
	pol           *Policy
	tags          []Tag // with the model's times
	at            time.Time
	subjectOf     map[string]digest.Digest // referrers' tags
	before, after map[digest.Digest]bool   // what tags reach, before and after the run
}

func newOracle(s *store, settings Settings, repo string, before, after repoState, at time.Time) *oracle {
	o := &oracle{s: s, settings: settings, at: at, subjectOf: map[string]digest.Digest{}}
	for i, p := range settings.Policies {
		for _, g := range p.Repositories {
			if pg, _ := repoglob.Compile(g); pg.Match(repo) && o.pol == nil {
				o.pol = &settings.Policies[i]
			}
		}
	}
	type refs struct {
		Subject   *ocispec.Descriptor  `json:"subject"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	children, referrers := map[digest.Digest][]digest.Digest{}, map[digest.Digest][]digest.Digest{}
	subject := map[digest.Digest]digest.Digest{}
	for d := range before.revs {
		var r refs
		_ = json.Unmarshal(s.content[d].b, &r)
		for _, c := range r.Manifests {
			children[d] = append(children[d], c.Digest)
		}
		if r.Subject != nil {
			subject[d] = r.Subject.Digest
			referrers[r.Subject.Digest] = append(referrers[r.Subject.Digest], d)
		}
	}
	reach := func(tags map[string]digest.Digest) map[digest.Digest]bool {
		set := map[digest.Digest]bool{}
		var visit func(d digest.Digest)
		visit = func(d digest.Digest) {
			if set[d] {
				return
			}
			set[d] = true
			for _, c := range children[d] {
				visit(c)
			}
			for _, r := range referrers[d] {
				visit(r)
			}
		}
		for _, d := range tags {
			visit(d)
		}
		return set
	}
	o.before, o.after = reach(before.tags), reach(after.tags)
	legacy := regexp.MustCompile(`^sha256-([a-f0-9]{64})\.sig$`)
	for name, d := range before.tags {
		tm := s.times[repo][name]
		if tm.Digest != d {
			tm = Tag{Name: name, Digest: d}
		}
		o.tags = append(o.tags, tm)
		if sd, ok := subject[d]; ok && before.revs[sd] {
			o.subjectOf[name] = sd
		} else if m := legacy.FindStringSubmatch(name); m != nil && before.revs[digest.Digest("sha256:"+m[1])] {
			o.subjectOf[name] = digest.Digest("sha256:" + m[1])
		}
	}
	return o
}

// keeps says which rule should have kept tag, "" if none.
func (o *oracle) keeps(name string) string {
	if o.pol == nil {
		return "no policy applies to the repository"
	}
	var t Tag
	for _, x := range o.tags {
		if x.Name == name {
			t = x
		}
	}
	switch {
	case name == "latest":
		return "it is latest"
	case len(o.pol.KeepTags) == 0:
		return "the policy has no keep rules"
	}
	for i, k := range o.pol.KeepTags {
		only := k.MostRecentlyPushedCount == 0 && k.MostRecentlyPulledCount == 0 && k.PushedWithin == 0 && k.PulledWithin == 0
		if only && matchAny(k.Patterns, name) {
			return fmt.Sprintf("keeptags[%d] patterns %v match it", i, k.Patterns)
		}
	}
	if t.Pushed.IsZero() {
		return "it has no push time"
	}
	if s, ok := o.subjectOf[name]; ok {
		if o.after[s] || !o.before[s] {
			return fmt.Sprintf("its subject %s stays", s)
		}
		return ""
	}
	for i, k := range o.pol.KeepTags {
		if len(k.Patterns) > 0 && !matchAny(k.Patterns, name) {
			continue
		}
		newerPushed, newerPulled := 0, 0
		for _, x := range o.tags {
			if _, ref := o.subjectOf[x.Name]; ref || x.Pushed.IsZero() || len(k.Patterns) > 0 && !matchAny(k.Patterns, x.Name) {
				continue
			}
			if x.Pushed.After(t.Pushed) {
				newerPushed++
			}
			if !x.LastPulled.IsZero() && x.LastPulled.After(t.LastPulled) {
				newerPulled++
			}
		}
		lastUse := t.Pushed
		if t.LastPulled.After(lastUse) {
			lastUse = t.LastPulled
		}
		switch {
		case k.MostRecentlyPushedCount > 0 && newerPushed < k.MostRecentlyPushedCount:
			return fmt.Sprintf("keeptags[%d]: only %d tags were pushed after it", i, newerPushed)
		case k.MostRecentlyPulledCount > 0 && !t.LastPulled.IsZero() && newerPulled < k.MostRecentlyPulledCount:
			return fmt.Sprintf("keeptags[%d]: only %d tags were pulled after it", i, newerPulled)
		case k.PushedWithin > 0 && o.at.Sub(t.Pushed) <= k.PushedWithin:
			return fmt.Sprintf("keeptags[%d]: pushed within %s", i, k.PushedWithin)
		case k.PulledWithin > 0 && o.at.Sub(lastUse) <= k.PulledWithin:
			return fmt.Sprintf("keeptags[%d]: used within %s", i, k.PulledWithin)
		}
	}
	return ""
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if regexp.MustCompile(p).MatchString(s) {
			return true
		}
	}
	return false
}

func pick(rng *rand.Rand, pool []string, n int) []string {
	idx := rng.Perm(len(pool))
	out := []string{}
	for _, i := range idx[:min(n, len(pool))] {
		out = append(out, pool[i])
	}
	return out
}

func pickDescs(rng *rand.Rand, pool []ocispec.Descriptor, n int) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, i := range rng.Perm(len(pool))[:min(n, len(pool))] {
		out = append(out, pool[i])
	}
	return out
}

func decisionSet(r Report) []string {
	var out []string
	for _, d := range r.Decisions {
		out = append(out, fmt.Sprintf("%s:%s@%s delete=%v rule=%s", d.Repository, d.Tag, d.Digest.Encoded()[:12], d.Delete, d.Rule))
	}
	return out
}

func summary(r Report) string {
	return fmt.Sprintf("result=%s tags=%d manifests=%d deferred=%d refused=%v err=%q", r.Result, r.DeletedTags, r.DeletedManifests, r.Deferred, r.Refused, r.Error)
}
