package retention

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day = 24 * time.Hour

// dg is a digest named after s, for readable tests.
func dg(s string) digest.Digest { return digest.FromString(s) }

func tag(name, target string, pushedAgo, pulledAgo time.Duration) Tag {
	t := Tag{Name: name, Digest: dg(target)}
	if pushedAgo >= 0 {
		t.Pushed = ago(pushedAgo)
	}
	if pulledAgo >= 0 {
		t.LastPulled = ago(pulledAgo)
	}
	return t
}

const never = -1

func engine(t *testing.T, s Settings) *Engine {
	t.Helper()
	if s.MaxDeletionsPerRun == 0 {
		s.MaxDeletionsPerRun = 1000
	}
	if s.MaxShare == 0 {
		s.MaxShare = 1
	}
	if s.Delay == 0 {
		s.Delay = day
	}
	e, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func policy(repos string, rules ...KeepRule) Settings {
	return Settings{Policies: []Policy{{Repositories: strings.Split(repos, ","), KeepTags: rules}}}
}

// verdicts is "tag:rule" for kept tags and "-tag:rule" for deleted ones.
func verdicts(p Plan) []string {
	var out []string
	for _, d := range p.Tags {
		s := d.Tag + ":" + d.Rule
		if d.Delete {
			s = "-" + s
		}
		out = append(out, s)
	}
	return out
}

func TestRules(t *testing.T) {
	cases := []struct {
		name string
		s    Settings
		tags []Tag
		want []string
	}{
		{"patterns keep what they match, unanchored unless anchored",
			policy("**", KeepRule{Patterns: []string{"^v[0-9]", "rc"}}),
			[]Tag{tag("v1", "a", 100*day, never), tag("x-rc1", "b", 100*day, never), tag("xv1", "c", 100*day, never)},
			[]string{"v1:patterns", "x-rc1:patterns", "-xv1:nokeeprule"}},
		{"mostrecentlypushedcount keeps the N pushed last",
			policy("**", KeepRule{MostRecentlyPushedCount: 2}),
			[]Tag{tag("a", "a", 3*day, never), tag("b", "b", 1*day, never), tag("c", "c", 2*day, never), tag("d", "d", 4*day, never)},
			[]string{"-a:nokeeprule", "b:mostrecentlypushedcount", "c:mostrecentlypushedcount", "-d:nokeeprule"}},
		{"ties with the N-th are all kept",
			policy("**", KeepRule{MostRecentlyPushedCount: 1}),
			[]Tag{tag("a", "a", day, never), tag("b", "a", day, never), tag("c", "c", 2*day, never)},
			[]string{"a:mostrecentlypushedcount", "b:mostrecentlypushedcount", "-c:nokeeprule"}},
		{"mostrecentlypulledcount ranks pulled tags only",
			policy("**", KeepRule{MostRecentlyPulledCount: 2}),
			[]Tag{tag("a", "a", 9*day, 5*day), tag("b", "b", 9*day, never), tag("c", "c", 9*day, 1*day), tag("d", "d", 9*day, 7*day)},
			[]string{"a:mostrecentlypulledcount", "-b:nokeeprule", "c:mostrecentlypulledcount", "-d:nokeeprule"}},
		{"pushedwithin",
			policy("**", KeepRule{PushedWithin: 720 * time.Hour}),
			[]Tag{tag("new", "a", 29*day, never), tag("edge", "b", 30*day, never), tag("old", "c", 31*day, 1*day)},
			[]string{"edge:pushedwithin", "new:pushedwithin", "-old:nokeeprule"}},
		{"pulledwithin; a tag never pulled is judged by its push",
			policy("**", KeepRule{PulledWithin: 7 * day}),
			[]Tag{tag("pulled", "a", 90*day, 2*day), tag("stale", "b", 90*day, 30*day), tag("fresh", "c", time.Hour, never), tag("unused", "d", 10*day, never)},
			[]string{"fresh:pulledwithin", "pulled:pulledwithin", "-stale:nokeeprule", "-unused:nokeeprule"}},
		{"rules are OR-ed, the first that keeps is reported",
			policy("**", KeepRule{PushedWithin: 2 * day}, KeepRule{MostRecentlyPulledCount: 1}, KeepRule{Patterns: []string{"^keep"}}),
			[]Tag{tag("a", "a", day, 3*time.Hour), tag("b", "b", 5*day, 2*time.Hour), tag("keep-me", "c", 50*day, never), tag("z", "z", 50*day, 3*day)},
			[]string{"a:pushedwithin", "b:mostrecentlypulledcount", "keep-me:patterns", "-z:nokeeprule"}},
		{"latest is always kept",
			policy("**", KeepRule{PushedWithin: time.Hour}),
			[]Tag{tag("latest", "a", 100*day, never), tag("old", "b", 100*day, never)},
			[]string{"latest:latest", "-old:nokeeprule"}},
		{"tags with no recorded times are kept",
			policy("**", KeepRule{PushedWithin: time.Hour}),
			[]Tag{tag("unknown", "a", never, never), tag("pulled-only", "b", never, time.Hour), tag("old", "c", 100*day, never)},
			[]string{"-old:nokeeprule", "pulled-only:notimes", "unknown:notimes"}},
		{"a policy without keeptags deletes no tag",
			policy("**"),
			[]Tag{tag("a", "a", 100*day, never)},
			[]string{"a:nokeeptags"}},
		{"patterns with a count narrow the count to the tags they match",
			policy("**", KeepRule{Patterns: []string{"^pr-"}, MostRecentlyPushedCount: 1}, KeepRule{Patterns: []string{"^v"}}),
			[]Tag{tag("pr-1", "a", 3*day, never), tag("pr-2", "b", 2*day, never), tag("main", "c", 1*day, never), tag("v1", "d", 9*day, never)},
			[]string{"-main:nokeeprule", "-pr-1:nokeeprule", "pr-2:mostrecentlypushedcount", "v1:patterns"}},
		{"a repository matching no policy keeps everything",
			policy("team-a/**", KeepRule{PushedWithin: time.Hour}),
			[]Tag{tag("old", "a", 100*day, never)},
			nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := engine(t, tc.s).Decide(Repository{Name: "team-b/app", Tags: tc.tags}, now)
			if tc.s.Policies[0].Repositories[0] == "**" {
				p = engine(t, tc.s).Decide(Repository{Name: "any/repo", Tags: tc.tags}, now)
			}
			if got := verdicts(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
				for _, d := range p.Tags {
					t.Logf("%s: %s", d.Tag, d.Reason)
				}
			}
		})
	}
}

func TestPolicyMatching(t *testing.T) {
	e := engine(t, Settings{Policies: []Policy{
		{Repositories: []string{"team-a/**"}, KeepTags: []KeepRule{{Patterns: []string{"^a"}}}},
		{Repositories: []string{"*/cache", "ci"}, DeleteUntagged: true, KeepTags: []KeepRule{{Patterns: []string{"^b"}}}},
		{Repositories: []string{"**"}, KeepTags: []KeepRule{{Patterns: []string{"^c"}}}},
	}})
	for repo, want := range map[string]string{
		"team-a": "team-a/**", "team-a/app": "team-a/**", "team-a/x/y": "team-a/**",
		"team-ab/app": "**", "x/cache": "*/cache,ci", "ci": "*/cache,ci", "x/y/cache": "**", "ci/x": "**",
	} {
		if name, _, ok := e.Policy(repo); !ok || name != want {
			t.Errorf("%s: policy %q, want %q", repo, name, want)
		}
	}
	// First match wins: team-a/** keeps a*, not c*.
	p := e.Decide(Repository{Name: "team-a/app", Tags: []Tag{tag("a1", "x", day, never), tag("c1", "y", day, never)}}, now)
	if got := verdicts(p); !reflect.DeepEqual(got, []string{"a1:patterns", "-c1:nokeeprule"}) {
		t.Errorf("%v", got)
	}
}

// zot#3804: several rules, each the newest tag of one prefix; a
// repository with exactly one env18- tag, a month old, must keep it.
func TestLessonZot3804CountWithPatterns(t *testing.T) {
	e := engine(t, policy("**",
		KeepRule{Patterns: []string{"env18-.*"}, MostRecentlyPushedCount: 1},
		KeepRule{Patterns: []string{"env19-.*"}, MostRecentlyPushedCount: 1},
		KeepRule{PushedWithin: 7 * day}))
	p := e.Decide(Repository{Name: "svc", Tags: []Tag{
		tag("env18-abc", "a", 32*day, never),
		tag("env19-old", "b", 40*day, never), tag("env19-new", "c", 33*day, never),
		tag("main", "d", 60*day, never),
	}}, now)
	want := []string{"env18-abc:mostrecentlypushedcount", "env19-new:mostrecentlypushedcount", "-env19-old:nokeeprule", "-main:nokeeprule"}
	if got := verdicts(p); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if r := p.Tags[0].Reason; !strings.Contains(r, "1st most recently pushed of 1 tags matching env18-.*") {
		t.Errorf("reason %q", r)
	}
}

// harbor#8717: deleting one tag took its sibling tags (delete by digest).
// The plan names tags, and a sibling on the same digest is decided alone.
func TestLessonHarbor8717SiblingTags(t *testing.T) {
	e := engine(t, policy("**", KeepRule{Patterns: []string{"^stable$"}}))
	p := e.Decide(Repository{Name: "app", Tags: []Tag{
		tag("build-41", "same", 30*day, never), tag("stable", "same", 30*day, never), tag("build-40", "other", 31*day, never),
	}}, now)
	tags, _ := p.Deletions()
	if len(tags) != 2 || tags[0].Tag != "build-40" || tags[1].Tag != "build-41" {
		t.Fatalf("%v", verdicts(p))
	}
	if !reflect.DeepEqual(verdicts(p)[2], "stable:patterns") {
		t.Errorf("%v", verdicts(p))
	}
}

// gitlab#325429: a cleanup policy wiped all images. A run that would delete
// more than maxshare of a repository's tags deletes none of them, and
// says why.
func TestLessonGitlab325429WipeRefused(t *testing.T) {
	s := policy("**", KeepRule{Patterns: []string{"^release-"}}) // a typo'd pattern: no tag is release-*
	s.MaxShare = 0.5
	e := engine(t, s)
	var tags []Tag
	for i := 0; i < 20; i++ {
		tags = append(tags, tag(fmt.Sprintf("v1.%d", i), fmt.Sprint(i), time.Duration(i)*day, never))
	}
	p := e.Decide(Repository{Name: "prod/app", Tags: tags}, now)
	if dt, _ := p.Deletions(); len(dt) != 0 {
		t.Fatalf("deleted %d tags", len(dt))
	}
	if !strings.Contains(p.Refused, "would delete 20 of 20 tags (100%), more than maxshare 0.5") {
		t.Errorf("refused: %q", p.Refused)
	}
	for _, d := range p.Tags {
		if d.Rule != RuleMaxShare || !strings.Contains(d.Reason, "nokeeprule") {
			t.Errorf("%s: %s %s", d.Tag, d.Rule, d.Reason)
		}
	}
	// At the share exactly, the run goes ahead.
	p = e.Decide(Repository{Name: "prod/app", Tags: append(tags[:10:10],
		tag("release-1", "r1", day, never), tag("release-2", "r2", day, never), tag("release-3", "r3", day, never), tag("release-4", "r4", day, never),
		tag("release-5", "r5", day, never), tag("release-6", "r6", day, never), tag("release-7", "r7", day, never), tag("release-8", "r8", day, never),
		tag("release-9", "r9", day, never), tag("release-10", "r10", day, never))}, now)
	if dt, _ := p.Deletions(); len(dt) != 10 || p.Refused != "" {
		t.Errorf("deleted %d, refused %q", len(dt), p.Refused)
	}
}

// harbor#10555: an upgrade gave every tag the same push time, and "the 40
// most recently pushed" then deleted at random. Equal times are ties, and
// ties at the boundary are kept.
func TestLessonHarbor10555EqualPushTimes(t *testing.T) {
	e := engine(t, policy("**", KeepRule{MostRecentlyPushedCount: 3}))
	var tags []Tag
	for i := 0; i < 10; i++ {
		tags = append(tags, tag(fmt.Sprintf("t%d", i), fmt.Sprint(i), 10*day, never))
	}
	p := e.Decide(Repository{Name: "app", Tags: tags}, now)
	if dt, _ := p.Deletions(); len(dt) != 0 {
		t.Errorf("deleted %v", verdicts(p))
	}
}

// gitlab#377417: "kept 5 but deleted newer tags than those kept". A tag
// deleted by a count rule is never newer than one the rule kept.
func TestLessonGitlab377417NeverNewerThanKept(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	e := engine(t, policy("**", KeepRule{MostRecentlyPushedCount: 5}))
	for round := 0; round < 200; round++ {
		var tags []Tag
		for i := 0; i < 3+rng.Intn(20); i++ {
			tags = append(tags, tag(fmt.Sprintf("t%02d", i), fmt.Sprint(rng.Intn(8)), time.Duration(rng.Intn(10))*day, never))
		}
		p := e.Decide(Repository{Name: "app", Tags: tags}, now)
		var oldestKept time.Time
		kept := 0
		for _, d := range p.Tags {
			if !d.Delete {
				kept++
				if oldestKept.IsZero() || d.Pushed.Before(oldestKept) {
					oldestKept = d.Pushed
				}
			}
		}
		if kept < min(5, len(tags)) {
			t.Fatalf("kept %d of %d", kept, len(tags))
		}
		for _, d := range p.Tags {
			if d.Delete && !d.Pushed.Before(oldestKept) {
				t.Fatalf("deleted %s (pushed %s), not older than a kept tag (%s): %v", d.Tag, d.Pushed, oldestKept, verdicts(p))
			}
		}
	}
}

func TestReferrerTagsFollowTheirSubject(t *testing.T) {
	img, old, pinned := dg("img"), dg("old"), dg("pinned")
	sig := func(s digest.Digest) string { return s.Algorithm().String() + "-" + s.Encoded() + ".sig" }
	e := engine(t, policy("**", KeepRule{MostRecentlyPushedCount: 1}))
	repo := Repository{Name: "app",
		Tags: []Tag{
			tag("v2", "img", 2*day, never),
			tag("v1", "old", 9*day, never),
			// cosign's tags, pushed after their images: newer than them.
			{Name: sig(img), Digest: dg("sig-img"), Pushed: ago(time.Hour)},
			{Name: sig(old), Digest: dg("sig-old"), Pushed: ago(time.Hour)},
			// an attestation tagged, with an OCI subject
			{Name: "att-v1", Digest: dg("att-old"), Pushed: ago(time.Hour)},
			{Name: "att-pinned", Digest: dg("att-pinned"), Pushed: ago(time.Hour)},
		},
		Manifests: []Manifest{
			{Digest: img, Since: ago(2 * day)}, {Digest: old, Since: ago(9 * day)}, {Digest: pinned, Since: ago(9 * day)},
			{Digest: dg("sig-img"), Since: ago(time.Hour)}, {Digest: dg("sig-old"), Since: ago(time.Hour)},
			{Digest: dg("att-old"), Subject: old, Since: ago(time.Hour)},
			{Digest: dg("att-pinned"), Subject: pinned, Since: ago(time.Hour)},
		},
	}
	p := e.Decide(repo, now)
	want := map[string]string{
		"v2":  "mostrecentlypushedcount", // the signatures, newer, did not take its place
		"-v1": "nokeeprule", sig(img): "subject", "-" + sig(old): "subject", "-att-v1": "subject",
		"att-pinned": "subject", // its subject is no tag's: deleteuntagged decides about both
	}
	got := map[string]string{}
	for _, d := range p.Tags {
		k := d.Tag
		if d.Delete {
			k = "-" + k
		}
		got[k] = d.Rule
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	// The image's tag goes before its signature's, whatever their ages.
	p.order = append([]int(nil), p.order...)
	b := NewBudget(1)
	b.Apply(&p)
	for _, d := range p.Tags {
		if d.Delete && d.Tag != "v1" {
			t.Errorf("with a budget of 1, %s went first", d.Tag)
		}
	}
}

func TestDeleteUntagged(t *testing.T) {
	s := policy("**", KeepRule{MostRecentlyPushedCount: 1})
	s.Policies[0].DeleteUntagged = true
	s.Delay = 24 * time.Hour
	e := engine(t, s)
	m := func(name string, since time.Duration, subject string, children ...string) Manifest {
		out := Manifest{Digest: dg(name)}
		if since >= 0 {
			out.Since = ago(since)
		}
		if subject != "" {
			out.Subject = dg(subject)
		}
		for _, c := range children {
			out.Children = append(out.Children, dg(c))
		}
		return out
	}
	repo := Repository{Name: "app",
		Tags: []Tag{tag("new", "index", time.Hour, never), tag("old", "oldimg", 30*day, never)},
		Manifests: []Manifest{
			m("index", time.Hour, "", "amd64", "arm64"),
			m("amd64", 30*day, ""), m("arm64", 30*day, ""), // children of a kept index
			m("oldimg", 30*day, ""),         // its tag goes now: its delay starts now
			m("sig-index", 30*day, "index"), // a referrer of a kept manifest
			m("orphan", 3*day, ""),          // untagged for long enough
			m("young", 2*time.Hour, ""),     // within the delay
			m("young-index", time.Hour, "", "old-child"),
			m("old-child", 30*day, ""),           // child of a young untagged index
			m("sig-gone", 3*day, "nonexistent"),  // its subject is gone
			m("sig-orphan", time.Hour, "orphan"), // a young referrer keeps itself, not its subject
			m("unknown-age", never, ""),          // no time: kept
		},
	}
	p := e.Decide(repo, now)
	var gone []string
	for _, d := range p.Untagged {
		if d.Delete {
			for _, n := range []string{"orphan", "sig-gone", "amd64", "arm64", "oldimg", "sig-index", "young", "young-index", "old-child", "sig-orphan", "unknown-age", "index"} {
				if d.Digest == dg(n) {
					gone = append(gone, n)
				}
			}
		}
	}
	sort.Strings(gone)
	if !reflect.DeepEqual(gone, []string{"orphan", "sig-gone"}) {
		t.Errorf("deleted %v", gone)
	}
	if dt, _ := p.Deletions(); len(dt) != 1 || dt[0].Tag != "old" {
		t.Errorf("tags %v", verdicts(p))
	}
	// Without deleteuntagged, or without the graph, no manifest goes.
	s.Policies[0].DeleteUntagged = false
	if p := engine(t, s).Decide(repo, now); len(p.Untagged) != 0 {
		t.Errorf("%v", p.Untagged)
	}
	s.Policies[0].DeleteUntagged = true
	repo.Manifests = nil
	if p := engine(t, s).Decide(repo, now); len(p.Untagged) != 0 {
		t.Errorf("%v", p.Untagged)
	}
}

func TestBudget(t *testing.T) {
	e := engine(t, policy("**", KeepRule{Patterns: []string{"^keep"}}))
	plan := func(repo string, n int) Plan {
		tags := []Tag{tag("keep", "k", day, never)}
		for i := 0; i < n; i++ {
			tags = append(tags, tag(fmt.Sprintf("t%d", i), fmt.Sprint(i), time.Duration(i)*day, never))
		}
		return e.Decide(Repository{Name: repo, Tags: tags}, now)
	}
	b := NewBudget(5)
	p1, p2 := plan("a", 3), plan("b", 4)
	if d := b.Apply(&p1); d != 0 {
		t.Errorf("deferred %d", d)
	}
	if d := b.Apply(&p2); d != 2 || b.Used() != 5 {
		t.Errorf("deferred %d, used %d", d, b.Used())
	}
	// The oldest went first: t3 and t2 of b, pushed 3 and 2 days ago.
	var gone, deferred []string
	for _, d := range p2.Tags {
		switch {
		case d.Delete:
			gone = append(gone, d.Tag)
		case d.Rule == RuleMaxDeletions:
			deferred = append(deferred, d.Tag)
			if !strings.Contains(d.Reason, "maxdeletionsperrun 5 reached (nokeeprule") {
				t.Errorf("reason %q", d.Reason)
			}
		}
	}
	if !reflect.DeepEqual(gone, []string{"t2", "t3"}) || !reflect.DeepEqual(deferred, []string{"t0", "t1"}) {
		t.Errorf("gone %v deferred %v", gone, deferred)
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	e := engine(t, policy("**", KeepRule{MostRecentlyPushedCount: 3}, KeepRule{PulledWithin: 5 * day}))
	var tags []Tag
	for i := 0; i < 30; i++ {
		tags = append(tags, tag(fmt.Sprintf("t%02d", i), fmt.Sprint(i%7), time.Duration(i%9)*day, time.Duration(i%4)*3*day))
	}
	want := e.Decide(Repository{Name: "r", Tags: tags}, now)
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 20; i++ {
		rng.Shuffle(len(tags), func(a, b int) { tags[a], tags[b] = tags[b], tags[a] })
		if got := e.Decide(Repository{Name: "r", Tags: tags}, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("order of input changed the plan")
		}
	}
}

func TestCompileErrors(t *testing.T) {
	ok := Settings{Delay: day, MaxDeletionsPerRun: 1, MaxShare: 0.5}
	cases := []struct {
		name string
		mod  func(s *Settings)
		want string
	}{
		{"maxshare", func(s *Settings) { s.MaxShare = 0 }, "maxshare: must be more than 0"},
		{"maxshare above 1", func(s *Settings) { s.MaxShare = 1.01 }, "at most 1"},
		{"maxdeletions", func(s *Settings) { s.MaxDeletionsPerRun = 0 }, "maxdeletionsperrun: must be at least 1"},
		{"delay", func(s *Settings) { s.Delay = -1 }, "delay: must not be negative"},
		{"no repositories", func(s *Settings) { s.Policies = []Policy{{}} }, "policies[0].repositories: at least one"},
		{"bad glob", func(s *Settings) { s.Policies = []Policy{{Repositories: []string{"a", "B/**"}}} }, "policies[0].repositories[1]: repository pattern"},
		{"bad regex", func(s *Settings) {
			s.Policies = []Policy{{Repositories: []string{"a"}, KeepTags: []KeepRule{{}, {Patterns: []string{"("}}}}}
		}, "policies[0].keeptags[0]: keeps nothing"},
		{"bad regex 2", func(s *Settings) {
			s.Policies = []Policy{{Repositories: []string{"a"}, KeepTags: []KeepRule{{Patterns: []string{"x", "("}}}}}
		}, `policies[0].keeptags[0].patterns[1]: "(" is not a regular expression`},
		{"negative count", func(s *Settings) {
			s.Policies = []Policy{{Repositories: []string{"a"}, KeepTags: []KeepRule{{MostRecentlyPulledCount: -2}}}}
		}, "policies[0].keeptags[0].mostrecentlypulledcount: must not be negative"},
		{"negative within", func(s *Settings) {
			s.Policies = []Policy{{Repositories: []string{"a"}, KeepTags: []KeepRule{{PulledWithin: -time.Hour}}}}
		}, "pulledwithin: must not be negative"},
	}
	for _, tc := range cases {
		s := ok
		tc.mod(&s)
		if _, err := Compile(s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Compile(ok); err != nil {
		t.Error(err)
	}
}
