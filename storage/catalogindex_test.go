package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/miniotest"
	"github.com/registryd/registryd/storage/driver"
)

// Marker keys sort, byte by byte, as the names they encode sort in the
// catalog, and read back; anything else is not read as a name.
func TestEncodeName(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	comp := func() string {
		alnum := "ab09z"
		var b strings.Builder
		for {
			b.WriteByte(alnum[r.IntN(len(alnum))])
			if r.IntN(3) == 0 {
				break
			}
			if r.IntN(3) == 0 {
				b.WriteString([]string{".", "_", "__", "-", "--"}[r.IntN(5)])
			}
		}
		return b.String()
	}
	var names []string
	seen := map[string]bool{}
	for len(names) < 3000 {
		parts := []string{comp()}
		for r.IntN(3) == 0 {
			parts = append(parts, comp())
		}
		n := strings.Join(parts, "/")
		if ValidateName(n) != nil || seen[n] {
			continue
		}
		seen[n] = true
		names = append(names, n)
	}
	names = append(names, "a", "a/b", "a-b", "a.b", "a_b", "a0", "a/b/c", "a--b", "a__b", "library/nginx", strings.Repeat("9", 255))
	byName := slices.Clone(names)
	sort.Slice(byName, func(i, j int) bool { return catalogLess(byName[i], byName[j]) })
	byKey := slices.Clone(names)
	keys := map[string]string{}
	for _, n := range names {
		k, ok := encodeName(n)
		if !ok {
			t.Fatalf("encodeName(%q) failed", n)
		}
		if !driver.ValidPath("/" + k) {
			t.Fatalf("key %q of %q is no driver path", k, n)
		}
		back, ok := decodeName(k)
		if !ok || back != n {
			t.Fatalf("decodeName(encodeName(%q) = %q) = %q, %v", n, k, back, ok)
		}
		keys[n] = k
	}
	sort.Slice(byKey, func(i, j int) bool { return keys[byKey[i]] < keys[byKey[j]] })
	if !slices.Equal(byName, byKey) {
		for i := range byName {
			if byName[i] != byKey[i] {
				t.Fatalf("order differs at %d: catalog %q, keys %q (%q)", i, byName[i], byKey[i], keys[byKey[i]])
			}
		}
	}
	if k, _ := encodeName("library/nginx"); k != "li/br/ar/y0/ng/in/x/-" {
		t.Fatalf("library/nginx -> %q", k)
	}
	for _, junk := range []string{"", "-", "a", "ab/-/-", "a/b/-", "li/br/ar/y0/ng/in/x/-/-", "A/-", "3/-", "ab/c0/-", "3a/-", "1a/-"} {
		if n, ok := decodeName(junk); ok {
			t.Errorf("decodeName(%q) = %q, want not a name", junk, n)
		}
	}
}

// indexed opens n registries over one store, with the index, no builds
// of their own, on clock.
func indexed(t testing.TB, d driver.StorageDriver, n int, clock *fakeClock) []*Registry {
	t.Helper()
	var rs []*Registry
	for range n {
		r := New(d, Options{Now: clock.Now})
		if r.index == nil {
			t.Fatal("no catalog index on an object store")
		}
		r.index.noAutoBuild = true
		rs = append(rs, r)
	}
	return rs
}

func allCatalog(t testing.TB, r *Registry, pageSize int) []string {
	t.Helper()
	ctx := context.Background()
	if pageSize < 0 {
		names, more, err := r.Catalog(ctx, "", -1, nil)
		if err != nil || more {
			t.Fatalf("catalog: %v, more %v", err, more)
		}
		return names
	}
	var out []string
	last := ""
	for {
		names, more, err := r.Catalog(ctx, last, pageSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) > pageSize || (more && len(names) == 0) {
			t.Fatalf("page of %d after %q: %d names, more %v", pageSize, last, len(names), more)
		}
		out = append(out, names...)
		if !more {
			return out
		}
		last = names[len(names)-1]
	}
}

// The model test of the index protocol: instances over one store push
// revisions, remove them (the API's way, and by hand behind the index's
// back), crash at every step, lose the index and rebuild it, in random
// interleavings; after every step every instance's catalog is checked
// against the layout:
//   - a repository with revisions is listed, unless a push of one is under
//     way (not yet acknowledged), one died between writing it and marking
//     less than unsureTTL ago, or it got them by hand (written by software
//     that does not keep the index) and no build has run since;
//   - a repository without revisions is not listed, unless a removal of
//     its revisions is under way, one died between removing and marking
//     less than unsureTTL ago, or it lost them by hand since the last
//     build.
func TestCatalogIndexModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			store := newObjStore()
			store.noConditions = seed == 5 // a store that ignores conditions: still right
			runIndexModel(t, store, seed, 1500)
		})
	}
}

func TestCatalogIndexModelOnS3(t *testing.T) {
	d := miniotest.Driver(t, miniotest.Params(t, "indexmodel"))
	runIndexModel(t, d, 42, 250)
}

type modelProc struct {
	kind  string // push, remove
	repo  string
	d     digest.Digest
	step  int
	reg   *Registry
	done  func(context.Context)
	start time.Time
}

func runIndexModel(t *testing.T, store driver.StorageDriver, seed uint64, steps int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 99))
	clock := newFakeClock()
	regs := indexed(t, store, 3, clock)
	repos := []string{"a", "a/b", "a-b", "a.b", "a/b/c", "lib/x1", "z"}
	truth := map[string]map[digest.Digest]bool{}
	for _, n := range repos {
		truth[n] = map[digest.Digest]bool{}
	}
	handEdited := map[string]bool{} // since the last build
	crashedRemoval := map[string]time.Time{}
	crashedPush := map[string]time.Time{}
	var procs []*modelProc
	digestN := 0
	newDigest := func() digest.Digest { digestN++; return digest.FromString(fmt.Sprint("m", seed, digestN)) }
	built := false
	build := func(reg *Registry) {
		if _, err := reg.index.build(ctx); err != nil {
			t.Fatal(err)
		}
		built = true
		clear(handEdited)
	}
	build(regs[0])

	var trace []string
	advance := func(p *modelProc) bool { // one step; true when finished
		reg := p.reg
		trace = append(trace, fmt.Sprintf("%s %s %s step %d (reg %p)", p.kind, p.repo, p.d.Encoded()[:6], p.step, reg))
		switch p.kind {
		case "push":
			switch p.step {
			case 0:
				done, err := reg.beforeRevision(ctx, p.repo)
				if err != nil {
					t.Fatal(err)
				}
				p.done = done
			case 1:
				if err := reg.writeLink(ctx, revisionLinkPath(p.repo, p.d), p.d); err != nil {
					t.Fatal(err)
				}
				truth[p.repo][p.d] = true
			case 2:
				if p.done != nil {
					p.done(ctx)
				}
				return true
			}
		case "remove":
			switch p.step {
			case 0:
				if err := reg.unsure(ctx, p.repo); err != nil {
					t.Fatal(err)
				}
			case 1:
				if err := store.Delete(ctx, revisionDir(p.repo, p.d)); err != nil && !isNotFound(err) {
					t.Fatal(err)
				}
				delete(truth[p.repo], p.d)
			case 2:
				if err := reg.unsure(ctx, p.repo); err != nil {
					t.Fatal(err)
				}
				return true
			}
		}
		p.step++
		return false
	}

	check := func(reg *Registry, pageSize int) {
		got := allCatalog(t, reg, pageSize)
		if !sort.SliceIsSorted(got, func(i, j int) bool { return catalogLess(got[i], got[j]) }) {
			t.Fatalf("catalog out of order: %v", got)
		}
		listed := map[string]bool{}
		for _, n := range got {
			if listed[n] {
				t.Fatalf("%s listed twice: %v", n, got)
			}
			listed[n] = true
		}
		removing, pushing := map[string]bool{}, map[string]bool{}
		for _, p := range procs {
			if p.kind == "remove" && p.step >= 1 {
				removing[p.repo] = true
			}
			if p.kind == "push" && p.step >= 2 {
				pushing[p.repo] = true
			}
		}
		for _, n := range repos {
			has := len(truth[n]) > 0
			switch {
			case listed[n] == has:
			case handEdited[n]:
			case listed[n] && removing[n]:
			case listed[n] && clock.Now().Sub(crashedRemoval[n]) < unsureTTL:
			case !listed[n] && pushing[n]:
			case !listed[n] && clock.Now().Sub(crashedPush[n]) < unsureTTL:
			case !built:
				t.Fatalf("%s: listed %v, has revisions %v, with the index lost (the layout should answer)", n, listed[n], has)
			default:
				var state []string
				for _, p := range procs {
					state = append(state, fmt.Sprintf("%s %s step %d", p.kind, p.repo, p.step))
				}
				mp, _ := catalogMarkerPath(n)
				mc, merr := store.GetContent(ctx, mp)
				es, _, _ := reg.index.tree.ListTree(ctx, mp[:strings.LastIndexByte(mp, '/')], "", 10)
				reg.index.mu.Lock()
				v := reg.index.verdicts[n]
				reg.index.mu.Unlock()
				layout, _ := reg.hasRevisions(ctx, repoPath(n))
				t.Fatalf("%s: listed %v, has revisions %v (%d, layout says %v); under way: %v; marker %q %v, listing %+v, verdict %+v (now %v)\n%s",
					n, listed[n], has, len(truth[n]), layout, state, mc, merr, es, v, clock.Now(), strings.Join(trace, "\n"))
			}
		}
	}

	for step := 0; step < steps; step++ {
		reg := regs[r.IntN(len(regs))]
		repo := repos[r.IntN(len(repos))]
		switch x := r.IntN(100); {
		case x < 30 && len(procs) < 6: // a push starts
			procs = append(procs, &modelProc{kind: "push", repo: repo, d: newDigest(), reg: reg})
		case x < 45 && len(procs) < 6: // a removal starts (of a revision it knows of)
			var ds []digest.Digest
			for d := range truth[repo] {
				ds = append(ds, d)
			}
			if len(ds) == 0 {
				continue
			}
			slices.Sort(ds)
			procs = append(procs, &modelProc{kind: "remove", repo: repo, d: ds[r.IntN(len(ds))], reg: reg})
		case x < 80 && len(procs) > 0: // a step of something under way
			i := r.IntN(len(procs))
			if advance(procs[i]) {
				procs = slices.Delete(procs, i, i+1)
			}
		case x < 85 && len(procs) > 0: // a crash of something under way
			i := r.IntN(len(procs))
			if p := procs[i]; p.kind == "remove" && p.step == 2 {
				crashedRemoval[p.repo] = clock.Now()
			} else if p.kind == "push" && p.step == 2 {
				crashedPush[p.repo] = clock.Now()
			}
			trace = append(trace, fmt.Sprintf("crash %s %s step %d", procs[i].kind, procs[i].repo, procs[i].step))
			procs = slices.Delete(procs, i, i+1)
		case x < 87: // by hand: a revision appears or goes without the index
			trace = append(trace, "by hand "+repo)
			if r.IntN(2) == 0 {
				d := newDigest()
				if err := store.PutContent(ctx, revisionLinkPath(repo, d), []byte(d)); err != nil {
					t.Fatal(err)
				}
				truth[repo][d] = true
			} else {
				if err := store.Delete(ctx, revisionsRoot(repo)); err != nil && !isNotFound(err) {
					t.Fatal(err)
				}
				clear(truth[repo])
			}
			handEdited[repo] = true
		case x < 88: // the index is lost
			trace = append(trace, "index lost")
			if err := store.Delete(ctx, catalogIndexDir()); err != nil && !isNotFound(err) {
				t.Fatal(err)
			}
			built = false
		case x < 91: // a build, when nothing is under way
			if len(procs) == 0 {
				trace = append(trace, "build")
				build(reg)
			}
		case x < 96:
			clock.Add(unsureTTL / 3)
		}
		for _, reg := range regs {
			check(reg, []int{-1, 1, 2, 3}[r.IntN(4)])
		}
	}
	// Everything finishes, time passes, a build: exact.
	for _, p := range procs {
		for !advance(p) {
		}
	}
	procs = nil
	clock.Add(2 * unsureTTL)
	build(regs[0])
	for _, reg := range regs {
		check(reg, 2)
	}
}

// A push racing a build of the index: the build found the repository
// without revisions, or with them, before the push wrote its marker; the
// build's marker never hides a repository or lists an empty one.
func TestCatalogIndexBuildRaces(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []string{"push during build", "remove during build"} {
		t.Run(tc, func(t *testing.T) {
			store := newObjStore()
			clock := newFakeClock()
			regs := indexed(t, store, 2, clock)
			d1 := digest.FromString("one")
			if tc == "remove during build" {
				mustWriteRevision(t, regs[0], "app", d1)
				// the index lost: the build has the marker to write
				if err := store.Delete(ctx, catalogIndexDir()); err != nil {
					t.Fatal(err)
				}
			}
			hooked := false
			regs[1].index.buildHook = func(name string) {
				switch tc {
				case "push during build":
				case "remove during build":
					hooked = true
					// between the build's look at the repository and its marker
					if err := regs[0].unsure(ctx, name); err != nil {
						t.Fatal(err)
					}
					if err := store.Delete(ctx, revisionDir(name, d1)); err != nil {
						t.Fatal(err)
					}
					if err := regs[0].unsure(ctx, name); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc == "push during build" {
				// the build sees nothing; the push lands after its walk
				if _, err := regs[1].index.build(ctx); err != nil {
					t.Fatal(err)
				}
				mustWriteRevision(t, regs[0], "app", d1)
				for _, r := range regs {
					if got := allCatalog(t, r, -1); !slices.Equal(got, []string{"app"}) {
						t.Fatalf("catalog %v, want [app]", got)
					}
				}
				return
			}
			if _, err := regs[1].index.build(ctx); err != nil {
				t.Fatal(err)
			}
			if !hooked {
				t.Fatal("the build wrote no marker")
			}
			for _, r := range regs {
				if got := allCatalog(t, r, -1); len(got) != 0 {
					t.Fatalf("catalog %v after the only revision was removed during a build", got)
				}
			}
		})
	}
}

// mustWriteRevision writes a revision the way PutManifest does (marker
// first, then the link, then the confirmation).
func mustWriteRevision(t *testing.T, r *Registry, name string, d digest.Digest) {
	t.Helper()
	ctx := context.Background()
	done, err := r.beforeRevision(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.writeLink(ctx, revisionLinkPath(name, d), d); err != nil {
		t.Fatal(err)
	}
	if done != nil {
		done(ctx)
	}
}

var emptyConfig = []byte("{}")

// pushTestImage pushes a config and a manifest tagged latest into name
// through the storage API, as the server does.
func pushTestImage(t testing.TB, r *Registry, name string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	repo := mustRepo(t.(*testing.T), r, name)
	if _, err := repo.PutBlob(ctx, bytes.NewReader(emptyConfig), digest.FromBytes(emptyConfig)); err != nil {
		t.Fatal(err)
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"annotations":{"n":%q}}`, digest.FromBytes(emptyConfig), name)
	if _, err := repo.PutManifest(ctx, "latest", "", m, nil); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(m)
}

// indexStores are the object stores the index is tested on: the
// emulation and MinIO.
func indexStores(t *testing.T) map[string]func() driver.StorageDriver {
	return map[string]func() driver.StorageDriver{
		"objstore": func() driver.StorageDriver { return newObjStore() },
		"minio": func() driver.StorageDriver {
			return miniotest.Driver(t, miniotest.Params(t, "catalog"))
		},
	}
}

// The catalog's contract through the index, as on the filesystem: order,
// last (a repository or not), pages, filters, deleted manifests, sha512
// revisions; and another instance sees every push and delete at its next
// request.
func TestCatalogIndexSemantics(t *testing.T) {
	ctx := context.Background()
	for sname, open := range indexStores(t) {
		t.Run(sname, func(t *testing.T) {
			d := open()
			// Repository deletes wait Rmax twice: short here.
			opts := Options{TombstoneRefresh: 20 * time.Millisecond}
			a, b := New(d, opts), New(d, opts)
			if _, err := a.RebuildCatalogIndex(ctx); err != nil {
				t.Fatal(err)
			}
			names := []string{"a", "a/b", "a/b/c", "a-b", "b", "b/a", "c"}
			for i, n := range names {
				pushTestImage(t, []*Registry{a, b}[i%2], n)
				// the other instance's very next answer has it
				got, _, err := []*Registry{b, a}[i%2].Catalog(ctx, "", -1, nil)
				if err != nil || !slices.Contains(got, n) {
					t.Fatalf("after pushing %s through one instance, the other lists %v (%v)", n, got, err)
				}
			}
			for i := -1; i < len(names); i++ {
				last := ""
				if i >= 0 {
					last = names[i]
				}
				got, more, err := b.Catalog(ctx, last, -1, nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.Join(names[i+1:], ","); strings.Join(got, ",") != want || more {
					t.Errorf("after %q: %v, want %s", last, got, want)
				}
			}
			for _, tc := range []struct{ last, want string }{
				{"a/a", "a/b,a/b/c,a-b,b,b/a,c"}, // not a repository
				{"a/b/c/d", "a-b,b,b/a,c"},
				{"NOT-A-NAME", ""}, // the layout's answer, as before
			} {
				got, _, err := b.Catalog(ctx, tc.last, -1, nil)
				if tc.last == "NOT-A-NAME" {
					continue // whatever the layout says; no error
				}
				if err != nil || strings.Join(got, ",") != tc.want {
					t.Errorf("after %q: %v %v, want %s", tc.last, got, err, tc.want)
				}
			}
			if got := allCatalog(t, a, 2); strings.Join(got, ",") != strings.Join(names, ",") {
				t.Errorf("pages of 2: %v", got)
			}
			hideB := func(n string) bool { return n != "b" }
			got, more, err := a.Catalog(ctx, "", 2, hideB)
			if err != nil || strings.Join(got, ",") != "a,a/b" || !more {
				t.Fatalf("filtered page 1: %v %v %v", got, more, err)
			}
			got, more, _ = a.Catalog(ctx, "a-b", 2, hideB)
			if strings.Join(got, ",") != "b/a,c" || more {
				t.Fatalf("filtered page after a-b: %v %v", got, more)
			}
			// a manifest deleted through one instance: gone from the other's next answer
			md := pushTestImage(t, a, "gone")
			if got, _, _ := b.Catalog(ctx, "c", -1, nil); strings.Join(got, ",") != "gone" {
				t.Fatalf("after pushing gone: %v", got)
			}
			if err := mustRepo(t, a, "gone").DeleteManifest(ctx, md); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := b.Catalog(ctx, "c", -1, nil); len(got) != 0 {
				t.Fatalf("after deleting gone's manifest: %v", got)
			}
			// pushed again: back
			pushTestImage(t, b, "gone")
			if got, _, _ := a.Catalog(ctx, "c", -1, nil); strings.Join(got, ",") != "gone" {
				t.Fatalf("after pushing gone again: %v", got)
			}
			// the repository deleted through one instance: not listed by
			// it while it is being deleted (paused before its first
			// removal: its revisions are all there), not in the other's
			// next answer once gone; pushed again: back
			paused, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			a.deleteHook = func(step, arg string) {
				if step == "remove" {
					once.Do(func() { close(paused); <-resume })
				}
			}
			deleted := make(chan error, 1)
			go func() {
				_, err := a.DeleteRepository(ctx, "gone")
				deleted <- err
			}()
			<-paused
			got, _, err = a.Catalog(ctx, "c", -1, nil)
			close(resume)
			if err != nil || len(got) != 0 {
				t.Fatalf("while repository gone is being deleted: %v %v", got, err)
			}
			if err := <-deleted; err != nil {
				t.Fatal(err)
			}
			a.deleteHook = nil
			if got, _, _ := b.Catalog(ctx, "c", -1, nil); len(got) != 0 {
				t.Fatalf("after deleting repository gone: %v", got)
			}
			pushTestImage(t, b, "gone")
			if got, _, _ := a.Catalog(ctx, "c", -1, nil); strings.Join(got, ",") != "gone" {
				t.Fatalf("after pushing gone once more: %v", got)
			}
			// a sha512 revision
			m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes(emptyConfig))
			repo := mustRepo(t, a, "s512")
			if _, err := repo.PutBlob(ctx, bytes.NewReader(emptyConfig), digest.FromBytes(emptyConfig)); err != nil {
				t.Fatal(err)
			}
			if _, err := repo.PutManifest(ctx, digest.SHA512.FromBytes(m).String(), "", m, nil); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := b.Catalog(ctx, "gone", -1, nil); strings.Join(got, ",") != "s512" {
				t.Fatalf("sha512-only repository: %v", got)
			}
		})
	}
}

// The index lost (its objects removed): the catalog answers from the
// layout at once, rebuilds the index in the background, and then answers
// from it. Stale (repositories written and removed behind its back): a
// rebuild takes the changes in.
func TestCatalogIndexLostAndStale(t *testing.T) {
	ctx := context.Background()
	for sname, open := range indexStores(t) {
		t.Run(sname, func(t *testing.T) {
			d := open()
			r := New(d, Options{})
			var names []string
			for i := range 30 {
				n := fmt.Sprintf("team%d/app-%02d", i%3, i)
				names = append(names, n)
				pushTestImage(t, r, n)
			}
			sort.Slice(names, func(i, j int) bool { return catalogLess(names[i], names[j]) })
			// never built: the layout answers, a build starts
			if got := allCatalog(t, r, 7); !slices.Equal(got, names) {
				t.Fatalf("before the first build: %v", got)
			}
			waitBuilt(t, r)
			if got := allCatalog(t, r, 7); !slices.Equal(got, names) {
				t.Fatalf("from the index: %v", got)
			}
			// lost
			if err := d.Delete(ctx, catalogIndexDir()); err != nil {
				t.Fatal(err)
			}
			if got := allCatalog(t, r, 7); !slices.Equal(got, names) {
				t.Fatalf("with the index lost: %v", got)
			}
			waitBuilt(t, r)
			if got := allCatalog(t, r, 7); !slices.Equal(got, names) {
				t.Fatalf("rebuilt: %v", got)
			}
			// stale: one repository removed by hand, one written by hand
			// (as the reference registry sharing the bucket would)
			if err := d.Delete(ctx, repoPath(names[0])); err != nil {
				t.Fatal(err)
			}
			hand := "zz/by-hand"
			dg := digest.FromString("by hand")
			if err := d.PutContent(ctx, revisionLinkPath(hand, dg), []byte(dg)); err != nil {
				t.Fatal(err)
			}
			want := append(slices.Clone(names[1:]), hand)
			if _, err := r.RebuildCatalogIndex(ctx); err != nil {
				t.Fatal(err)
			}
			other := New(d, Options{})
			for _, reg := range []*Registry{r, other} {
				if got := allCatalog(t, reg, 7); !slices.Equal(got, want) {
					t.Fatalf("after a rebuild: %v, want %v", got, want)
				}
			}
		})
	}
}

// waitBuilt waits for the background build the catalog started.
func waitBuilt(t *testing.T, r *Registry) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := r.index.ready(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok && !r.index.building.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the index was not built within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A page costs what it lists, not what the store holds: the same number
// of requests at 300 and at 1,200 repositories.
func TestCatalogIndexPageCost(t *testing.T) {
	ctx := context.Background()
	cost := func(repos int) (first, later int64) {
		store := newObjStore()
		r := New(store, Options{})
		for i := range repos {
			d := digest.FromString(fmt.Sprint(i))
			mustWriteRevision(t, r, fmt.Sprintf("repo/r%05d", i), d)
		}
		if _, err := r.RebuildCatalogIndex(ctx); err != nil {
			t.Fatal(err)
		}
		before := store.requests()
		names, _, err := r.Catalog(ctx, "", 100, nil)
		if err != nil || len(names) != 100 {
			t.Fatal(len(names), err)
		}
		first = store.requests() - before
		before = store.requests()
		names, _, err = r.Catalog(ctx, fmt.Sprintf("repo/r%05d", repos/2), 100, nil)
		if err != nil || len(names) != 100 {
			t.Fatal(len(names), err)
		}
		return first, store.requests() - before
	}
	f1, l1 := cost(300)
	f2, l2 := cost(1200)
	if f1 != f2 || l1 != l2 || f1 > 2 || l1 > 2 {
		t.Fatalf("requests per page of 100: %d and %d at 300 repositories, %d and %d at 1,200; want 2 (the built marker, one listing)", f1, l1, f2, l2)
	}
}

// tags/list on an object store lists the page only: pages in order
// whatever the names (S3's order of "v1/" and "v1-rc/" differs from the
// tags'), the same requests per page at any number of tags.
func TestTagsPaged(t *testing.T) {
	ctx := context.Background()
	for sname, open := range indexStores(t) {
		t.Run(sname, func(t *testing.T) {
			d := open()
			r := New(d, Options{})
			repo := mustRepo(t, r, "many")
			md := pushTestImage(t, r, "many")
			var want []string
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for i := range 260 {
				tag := fmt.Sprintf("v%d", i%40)
				switch i / 40 {
				case 1:
					tag += "-rc"
				case 2:
					tag += ".0"
				case 3:
					tag += "-rc.1"
				case 4:
					tag += "_x"
				case 5:
					tag = "V" + tag
				case 6:
					tag += "-" + fmt.Sprint(i)
				}
				want = append(want, tag)
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					if err := repo.tag(ctx, tag, md); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			want = append(want, "latest")
			sort.Strings(want)
			all, more, err := repo.Tags(ctx, "", -1)
			if err != nil || more || !slices.Equal(all, want) {
				t.Fatalf("whole list: %v %v, %d tags, want %d", err, more, len(all), len(want))
			}
			for _, n := range []int{1, 7, 100} {
				var got []string
				last := ""
				for {
					page, more, err := repo.Tags(ctx, last, n)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, page...)
					if !more {
						break
					}
					last = page[len(page)-1]
				}
				if !slices.Equal(got, want) {
					t.Fatalf("pages of %d: %v", n, got)
				}
			}
			if tags, more, err := repo.Tags(ctx, "zzz", 10); err != nil || len(tags) != 0 || more {
				t.Fatalf("after the last tag: %v %v %v", tags, more, err)
			}
			if _, _, err := mustRepo(t, r, "nothing").Tags(ctx, "", 10); !errcode.Is(err, errcode.NameUnknown) {
				t.Fatalf("tags of a repository that does not exist: %v", err)
			}
			if store, ok := d.(*objStore); ok {
				before := store.pages.Load()
				if _, _, err := repo.Tags(ctx, "v2", 50); err != nil {
					t.Fatal(err)
				}
				if n := store.pages.Load() - before; n != 1 {
					t.Fatalf("a page of 50 tags cost %d listings, want 1", n)
				}
			}
		})
	}
}
