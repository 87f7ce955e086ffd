package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

func TestCatalogCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"a", "a", 0},
		{"a", "b", -1},
		{"a", "a/b", -1},
		{"a/b", "a-b", -1}, // "/" sorts below every component byte
		{"a/b", "a.b", -1},
		{"a/b", "a_b", -1},
		{"a/z", "a0", -1},
		{"a-b", "a/b", 1},
		{"ab", "a/b", 1},
		{"a/b/c", "a/b", 1},
	} {
		if got := catalogCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("catalogCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	// The catalog walk's own order is the index's.
	f := newEnumFixture(t)
	names := []string{"a", "a-b", "a/b", "a/b/c", "a.b", "a0", "a_b", "ab", "b"}
	for _, n := range names {
		f.image(n, "latest", "layer")
	}
	walked := catalogOf(t, f.r)
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, catalogCompare)
	if !slices.Equal(walked, sorted) {
		t.Fatalf("catalog %v, index order %v", walked, sorted)
	}
}

func TestNewEntries(t *testing.T) {
	for _, tc := range []struct {
		prev, cur []string
		want      []string
	}{
		{nil, nil, nil},
		{nil, []string{"c/1-w1-1", "c/2-w2-1"}, []string{"c/2-w2-1"}},
		{[]string{"c/1-w2-1"}, []string{"c/1-w2-1", "c/2-w2-2"}, []string{"c/2-w2-2"}},
		{[]string{"c/1-w2-1", "c/2-w2-2"}, []string{"c/2-w2-2", "c/3-w3-1"}, []string{"c/3-w3-1"}},
		{[]string{"c/1-w2-1"}, []string{"c/0-w2-9", "c/1-w2-1"}, []string{"c/0-w2-9"}},
		{[]string{"c/1-w2-1"}, nil, nil},
	} {
		if got := newEntries(tc.prev, tc.cur, "-w1-"); !slices.Equal(got, tc.want) {
			t.Errorf("newEntries(%v, %v) = %v, want %v", tc.prev, tc.cur, got, tc.want)
		}
	}
}

// indexStore is a fixture for the index tests: images pushed under a
// settable clock, each one distinct (a counter in an annotation).
type indexStore struct {
	*enumFixture
	clock *fakeClock
	n     int
}

func newIndexStore(t *testing.T, d driver.StorageDriver) *indexStore {
	clock := newFakeClock()
	f := &enumFixture{t: t, ctx: context.Background(), d: d, r: New(d, Options{Now: clock.Now, TombstoneRefresh: testRmax})}
	return &indexStore{enumFixture: f, clock: clock}
}

// instance is another Registry over the same storage (another registryd
// instance on a shared bucket).
func (s *indexStore) instance() *Registry {
	return New(s.d, Options{Now: s.clock.Now, TombstoneRefresh: testRmax})
}

// push pushes a new image into name, tagged with tags (none: by digest).
func (s *indexStore) push(name string, tags ...string) digest.Digest {
	s.t.Helper()
	s.n++
	m := ocispec.Manifest{MediaType: MediaTypeOCIManifest, Config: s.blob(name, "config"),
		Layers: []ocispec.Descriptor{s.blob(name, "layer")}, Annotations: map[string]string{"n": fmt.Sprint(s.n)}}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	if _, err := s.repo(name).PutManifest(s.ctx, d.String(), "", b, tags); err != nil {
		s.t.Fatalf("push %s %v: %v", name, tags, err)
	}
	return d
}

func TestSearchCatalog(t *testing.T) {
	s := newIndexStore(t, inmemory.New())
	for _, n := range []string{"alpha", "team-a/api", "team-a/web", "team-a/tools/lint", "team-b/api", "zeta/api-gw", "a-b/x"} {
		s.push(n, "latest")
	}
	s.push("untagged/only") // a revision and no tag: in the catalog
	ctx := context.Background()
	for _, tc := range []struct {
		prefix, q, last string
		n               int
		keep            func(string) bool
		want            []string
		more            bool
	}{
		{q: "api", n: -1, want: []string{"team-a/api", "team-b/api", "zeta/api-gw"}},
		{q: "api", n: 2, want: []string{"team-a/api", "team-b/api"}, more: true},
		{q: "api", last: "team-b/api", n: 2, want: []string{"zeta/api-gw"}},
		{q: "api", last: "team-a/b", n: 5, want: []string{"team-b/api", "zeta/api-gw"}}, // an unknown last: what sorts after it
		{prefix: "team-a/", q: "ap", n: -1, want: []string{"team-a/api"}},               // q matches the whole name
		{prefix: "team-a/", q: "lint", n: -1, want: []string{"team-a/tools/lint"}},
		{q: "-", n: -1, want: []string{"a-b/x", "team-a/api", "team-a/tools/lint", "team-a/web", "team-b/api", "zeta/api-gw"}},
		{q: "only", n: -1, want: []string{"untagged/only"}},
		{q: "nothing", n: -1, want: []string{}},
		{q: "api", n: 0, want: []string{}},
		{q: "api", n: -1, keep: func(n string) bool { return !strings.HasPrefix(n, "team-a/") }, want: []string{"team-b/api", "zeta/api-gw"}},
		{q: "api", n: 1, keep: func(n string) bool { return n != "team-a/api" }, want: []string{"team-b/api"}, more: true},
	} {
		got, more, err := s.r.SearchCatalog(ctx, tc.prefix, tc.q, tc.last, tc.n, tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("SearchCatalog(%q, %q, %q, %d) = %v %v, want %v %v", tc.prefix, tc.q, tc.last, tc.n, got, more, tc.want, tc.more)
		}
	}

	for _, tc := range []struct {
		prefix, q     string
		total, direct int
		below         map[string]int
	}{
		{"", "", 8, 1, map[string]int{"team-a": 3, "team-b": 1, "zeta": 1, "a-b": 1, "untagged": 1}},
		{"team-a/", "", 3, 2, map[string]int{"tools": 1}},
		{"team-a/", "api", 1, 1, map[string]int{}},
		{"", "api", 3, 0, map[string]int{"team-a": 1, "team-b": 1, "zeta": 1}},
		{"team-a/tools/", "", 1, 1, map[string]int{}},
		{"nowhere/", "", 0, 0, map[string]int{}},
	} {
		total, direct, below, err := s.r.NamespaceCounts(ctx, tc.prefix, tc.q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if total != tc.total || direct != tc.direct || !maps.Equal(below, tc.below) {
			t.Errorf("NamespaceCounts(%q, %q) = %d %d %v, want %d %d %v", tc.prefix, tc.q, total, direct, below, tc.total, tc.direct, tc.below)
		}
	}
}

// TestSearchCatalogAfterChanges: deletes and pushes show in the next
// search, on the instance that made them and on another one.
func TestSearchCatalogAfterChanges(t *testing.T) {
	s := newIndexStore(t, inmemory.New())
	other := s.instance()
	ctx := context.Background()
	d := s.push("ns/one", "v1")
	s.push("ns/two", "v1")
	search := func(r *Registry) []string {
		t.Helper()
		got, _, err := r.SearchCatalog(ctx, "", "ns", "", -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, step := range []struct {
		what string
		do   func()
		want []string
	}{
		{"start", func() {}, []string{"ns/one", "ns/two"}},
		{"a new namespace", func() { s.push("ns/deep/er/three", "v1") }, []string{"ns/deep/er/three", "ns/one", "ns/two"}},
		{"last manifest deleted", func() {
			if err := s.repo("ns/one").DeleteManifest(ctx, d); err != nil {
				t.Fatal(err)
			}
		}, []string{"ns/deep/er/three", "ns/two"}},
		{"repository deleted", func() {
			if _, err := s.r.DeleteRepository(ctx, "ns/deep/er/three"); err != nil {
				t.Fatal(err)
			}
		}, []string{"ns/two"}},
		{"pushed again", func() { s.push("ns/deep/er/three", "v2") }, []string{"ns/deep/er/three", "ns/two"}},
	} {
		step.do()
		if got := search(s.r); !slices.Equal(got, step.want) {
			t.Errorf("%s: this instance: %v, want %v", step.what, got, step.want)
		}
		if got := search(other); !slices.Equal(got, step.want) {
			t.Errorf("%s: the other instance: %v, want %v", step.what, got, step.want)
		}
	}
}

func TestTagInfosByPush(t *testing.T) {
	s := newIndexStore(t, inmemory.New())
	ctx := context.Background()
	t0 := s.clock.Now()
	s.push("r", "old")
	s.clock.Add(time.Second)
	s.push("r", "b-tie", "a-tie") // one push time: by name
	s.clock.Add(time.Second)
	s.push("r", "new")
	repo := s.repo("r")
	for _, tc := range []struct {
		last string
		n    int
		want []string
		more bool
	}{
		{"", -1, []string{"new", "a-tie", "b-tie", "old"}, false},
		{"", 2, []string{"new", "a-tie"}, true},
		{"a-tie", 2, []string{"b-tie", "old"}, false},
		{"old", 5, []string{}, false},
		{"unknown", 5, []string{}, false},
		{"", 0, []string{}, true},
	} {
		infos, more, err := repo.TagInfosByPush(ctx, tc.last, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, in := range infos {
			got = append(got, in.Name)
		}
		if !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("TagInfosByPush(%q, %d) = %v %v, want %v %v", tc.last, tc.n, got, more, tc.want, tc.more)
		}
	}
	infos, _, err := repo.TagInfosByPush(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(2 * time.Second); !infos[0].Pushed.Equal(want) {
		t.Errorf("pushed %v, want %v", infos[0].Pushed, want)
	}
	// Moving a tag moves it to the front; deleting one takes it out.
	s.clock.Add(time.Second)
	s.push("r", "old")
	if err := repo.DeleteTag(ctx, "a-tie"); err != nil {
		t.Fatal(err)
	}
	infos, _, err = repo.TagInfosByPush(ctx, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, in.Name)
	}
	if want := []string{"old", "new", "b-tie"}; !slices.Equal(got, want) {
		t.Errorf("after a move and a delete: %v, want %v", got, want)
	}
	if _, _, err := s.repo("nothing/here").TagInfosByPush(ctx, "", -1); !errcode.Is(err, errcode.NameUnknown) {
		t.Errorf("a repository that does not exist: %v", err)
	}
}

// TestChangeLogGap: an instance that has not read the log for longer
// than changeLogGap may have missed entries removed meanwhile, and reads
// everything again; one that reads it in time sees each change.
func TestChangeLogGap(t *testing.T) {
	s := newIndexStore(t, inmemory.New())
	other := s.instance()
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	s.r.changes.now, other.changes.now = clock, clock
	s.push("a", "v1")
	search := func() []string {
		t.Helper()
		got, _, err := other.SearchCatalog(ctx, "", "", "", -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := search(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("start: %v", got)
	}
	// A push, then the log's entries expire and are removed before the
	// other instance reads it.
	s.push("b", "v1")
	now = now.Add(changeLogTTL + time.Second)
	if err := s.r.cleanChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.d.List(ctx, changesRoot()); err == nil && len(ps) > 0 {
		t.Fatalf("entries left after the TTL: %v", ps)
	}
	if got := search(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after a gap: %v", got)
	}
	// Entries within the TTL stay.
	s.push("c", "v1")
	if err := s.r.cleanChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.d.List(ctx, changesRoot()); err != nil || len(ps) != 1 {
		t.Fatalf("entries after a clean within the TTL: %v %v", ps, err)
	}
	if got := search(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after a push: %v", got)
	}
}

// modelTag is what the model knows of a tag.
type modelTag struct {
	digest digest.Digest
	pushed time.Time
}

// TestIndexesModel is a model-based random test: random pushes (new tags,
// moved tags, untagged manifests), tag deletes, manifest deletes and
// repository deletes by one instance, and after each step, from that
// instance and from another over the same storage, the name index
// (SearchCatalog, NamespaceCounts), the push-order index (TagInfosByPush,
// paged) and the summaries (tag count, last push) compared with a model
// of the store and with a naive recomputation from the store (the catalog
// walk, every tag's infos sorted).
func TestIndexesModel(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	steps := 150
	if testing.Short() {
		seeds, steps = seeds[:1], 60
	}
	for _, logOnly := range []bool{false, true} {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("seed=%d,logonly=%v", seed, logOnly), func(t *testing.T) {
				if logOnly {
					// As on a large store: no stats of directories and
					// tags at each request; what another instance
					// changed comes through the change log only.
					defer func(n, p int) { nameStatBudget, pushStatTags = n, p }(nameStatBudget, pushStatTags)
					nameStatBudget, pushStatTags = 0, 0
				}
				indexesModel(t, seed, steps)
			})
		}
	}
}

func indexesModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0))
	s := newIndexStore(t, inmemory.New())
	other := s.instance()
	ctx := context.Background()
	names := []string{"a", "a/b", "a/b/c", "a-b", "lib/api", "lib/web", "x/y/z"}
	tagNames := []string{"latest", "v1", "v2", "v3", "dev", "b", "a"}
	// The model: per repository, its revisions and its tags.
	revs := map[string]map[digest.Digest]bool{}
	tags := map[string]map[string]modelTag{}
	randTags := func() []string {
		var out []string
		for _, tg := range tagNames {
			if rng.IntN(4) == 0 {
				out = append(out, tg)
			}
		}
		return out
	}
	for step := 0; step < steps; step++ {
		name := names[rng.IntN(len(names))]
		if rng.IntN(3) == 0 {
			s.clock.Add(time.Duration(rng.IntN(3)) * time.Second) // equal times too
		}
		var what string
		switch op := rng.IntN(10); {
		case op < 5 || len(revs[name]) == 0:
			tt := randTags()
			what = fmt.Sprintf("push %s %v", name, tt)
			d := s.push(name, tt...)
			if revs[name] == nil {
				revs[name], tags[name] = map[digest.Digest]bool{}, map[string]modelTag{}
			}
			revs[name][d] = true
			for _, tg := range tt {
				tags[name][tg] = modelTag{d, s.clock.Now()}
			}
		case op < 7 && len(tags[name]) > 0:
			tg := slices.Sorted(maps.Keys(tags[name]))[rng.IntN(len(tags[name]))]
			what = fmt.Sprintf("delete tag %s:%s", name, tg)
			if err := s.repo(name).DeleteTag(ctx, tg); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			delete(tags[name], tg)
		case op < 9:
			ds := slices.Sorted(maps.Keys(revs[name]))
			d := ds[rng.IntN(len(ds))]
			what = fmt.Sprintf("delete manifest %s@%s", name, d)
			if err := s.repo(name).DeleteManifest(ctx, d); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			delete(revs[name], d)
			for tg, mt := range tags[name] {
				if mt.digest == d {
					delete(tags[name], tg)
				}
			}
		default:
			what = "delete repository " + name
			if _, err := s.r.DeleteRepository(ctx, name); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			delete(revs, name)
			delete(tags, name)
		}
		for _, r := range []*Registry{s.r, other} {
			who := "this instance"
			if r == other {
				who = "the other instance"
			}
			checkIndexes(t, fmt.Sprintf("step %d (%s), %s", step, what, who), r, rng, revs, tags)
		}
	}
}

// checkIndexes compares the indexes of r with the model and with a naive
// recomputation from the store.
func checkIndexes(t *testing.T, at string, r *Registry, rng *rand.Rand, revs map[string]map[digest.Digest]bool, tags map[string]map[string]modelTag) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for name, rs := range revs {
		if len(rs) > 0 {
			want = append(want, name)
		}
	}
	slices.SortFunc(want, catalogCompare)
	walked, _, err := r.Catalog(ctx, "", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(walked, want) {
		t.Fatalf("%s: the catalog walk %v, the model %v", at, walked, want)
	}
	// Search: every name, and a random substring and prefix.
	q := []string{"", "a", "b", "/", "-", "lib", "z"}[rng.IntN(7)]
	prefix := []string{"", "", "a/", "lib/", "x/"}[rng.IntN(5)]
	wantQ := []string{}
	for _, n := range want {
		if strings.HasPrefix(n, prefix) && strings.Contains(n, q) {
			wantQ = append(wantQ, n)
		}
	}
	got, more, err := r.SearchCatalog(ctx, prefix, q, "", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, wantQ) || more {
		t.Fatalf("%s: SearchCatalog(%q, %q) = %v, want %v", at, prefix, q, got, wantQ)
	}
	// The same, a page of two at a time.
	var paged []string
	for last := ""; ; {
		page, more, err := r.SearchCatalog(ctx, prefix, q, last, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if !more {
			break
		}
		last = page[len(page)-1]
	}
	if !slices.Equal(paged, got) && (len(paged) > 0 || len(got) > 0) {
		t.Fatalf("%s: SearchCatalog by pages of 2: %v, at once %v", at, paged, got)
	}
	total, direct, below, err := r.NamespaceCounts(ctx, prefix, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantDirect, wantBelow := 0, map[string]int{}
	for _, n := range wantQ {
		rest := n[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			wantBelow[rest[:i]]++
		} else {
			wantDirect++
		}
	}
	if total != len(wantQ) || direct != wantDirect || !maps.Equal(below, wantBelow) {
		t.Fatalf("%s: NamespaceCounts(%q, %q) = %d %d %v, want %d %d %v", at, prefix, q, total, direct, below, len(wantQ), wantDirect, wantBelow)
	}

	// Tags in push order, against the model and against every tag's
	// infos read from the store and sorted.
	for _, name := range want {
		repo, err := r.Repository(name)
		if err != nil {
			t.Fatal(err)
		}
		naive, err := repo.TagInfos(ctx)
		if errcode.Is(err, errcode.NameUnknown) {
			naive, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		sort.SliceStable(naive, func(i, j int) bool {
			a, b := naive[i], naive[j]
			if !a.Pushed.Equal(b.Pushed) {
				return a.Pushed.After(b.Pushed)
			}
			return a.Name < b.Name
		})
		if len(naive) != len(tags[name]) {
			t.Fatalf("%s: %s has %d tags in the store, %d in the model", at, name, len(naive), len(tags[name]))
		}
		for _, in := range naive {
			mt := tags[name][in.Name]
			if in.Digest != mt.digest || !in.Pushed.Equal(mt.pushed) {
				t.Fatalf("%s: %s:%s is %s pushed %v in the store, %s pushed %v in the model", at, name, in.Name, in.Digest, in.Pushed, mt.digest, mt.pushed)
			}
		}
		n := 1 + rng.IntN(3)
		var byPush []TagInfo
		for last := ""; ; {
			page, more, err := repo.TagInfosByPush(ctx, last, n)
			if err != nil {
				t.Fatalf("%s: TagInfosByPush(%s): %v", at, name, err)
			}
			byPush = append(byPush, page...)
			if !more {
				break
			}
			last = page[len(page)-1].Name
		}
		if len(byPush) != len(naive) {
			t.Fatalf("%s: %s by push: %v, naive %v", at, name, byPush, naive)
		}
		for i := range naive {
			a, b := byPush[i], naive[i]
			if a.Name != b.Name || a.Digest != b.Digest || !a.Pushed.Equal(b.Pushed) {
				t.Fatalf("%s: %s by push: %v, naive %v", at, name, byPush, naive)
			}
		}
	}
	sums, err := r.RepositorySummaries(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != len(want) {
		t.Fatalf("%s: %d summaries for %v", at, len(sums), want)
	}
	for _, sum := range sums {
		var last time.Time
		for _, mt := range tags[sum.Name] {
			if mt.pushed.After(last) {
				last = mt.pushed
			}
		}
		if sum.TagCount != len(tags[sum.Name]) || !sum.LastPushed.Equal(last) || sum.Manifests != len(revs[sum.Name]) {
			t.Fatalf("%s: summary of %s: %d tags, %d manifests, last push %v; model %d, %d, %v", at, sum.Name,
				sum.TagCount, sum.Manifests, sum.LastPushed, len(tags[sum.Name]), len(revs[sum.Name]), last)
		}
	}
}

// TestSearchCatalogSeesOtherWriters: on a watched filesystem, a change no
// registryd made (no change log entry: rm -r of a repository directory, a
// copy of one) shows in the next search, also when no directory is
// checked by its time (nameStatBudget 0), through the directories'
// versions and the watcher's change counter.
func TestSearchCatalogSeesOtherWriters(t *testing.T) {
	defer func(n int) { nameStatBudget = n }(nameStatBudget)
	nameStatBudget = 0
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	s := newIndexStore(t, d)
	if s.r.watcher == nil || s.r.dirChanges == nil {
		t.Skip("no directory watcher here")
	}
	ctx := context.Background()
	s.push("ns/a", "v1")
	s.push("ns/b", "v1")
	search := func() []string {
		t.Helper()
		got, _, err := s.r.SearchCatalog(ctx, "", "ns", "", -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	repos := filepath.Join(root, "docker/registry/v2/repositories")
	for _, step := range []struct {
		what string
		do   func() error
		want []string
	}{
		{"start", func() error { return nil }, []string{"ns/a", "ns/b"}},
		{"unchanged", func() error { return nil }, []string{"ns/a", "ns/b"}},
		{"rm -r", func() error { return os.RemoveAll(filepath.Join(repos, "ns/b")) }, []string{"ns/a"}},
		{"cp -r", func() error {
			return exec.Command("cp", "-r", filepath.Join(repos, "ns/a"), filepath.Join(repos, "ns/c")).Run()
		}, []string{"ns/a", "ns/c"}},
		{"a revision removed by hand", func() error {
			return os.RemoveAll(filepath.Join(repos, "ns/c/_manifests/revisions/sha256"))
		}, []string{"ns/a"}},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		if got := search(); !slices.Equal(got, step.want) {
			t.Errorf("%s: %v, want %v", step.what, got, step.want)
		}
	}
}
