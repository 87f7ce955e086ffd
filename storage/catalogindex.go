package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// The catalog index: on an object store, one marker object per repository
// name, so that a page of _catalog costs a listing of a page of markers
// instead of a walk of the store.
//
// Why. On S3 a directory is a key prefix: the layout walk the filesystem
// catalog does (list repositories/, list each repository's revisions)
// costs a listing request per repository, and a listing of 100,000
// repositories costs a hundred requests before the first page, which is
// why the reference collapses there (distribution#947). The markers live
// at _registryd/catalog/markers/<key>, where key is the name encoded so that
// S3's byte order of keys is the catalog's order of names (component by
// component, "a/b" before "a-b"), and cut into a path of two-character
// directories: a page is one ListObjectsV2 from the last name's key
// (driver.TreeLister), and MinIO, which reads a whole directory per
// listing request, reads small ones whatever the number of repositories.
//
// What a marker says. A marker's content is its state:
//   - empty: "listed". The repository had a manifest revision when the
//     marker was last written, and every removal of revisions since would
//     have rewritten it (below). Trusted as it is: no request.
//   - a random nonce: "unsure". Something that may have emptied the
//     repository happened, or a push has not confirmed yet. A reader asks
//     the layout (one listing of the repository's revisions) and keeps the
//     answer under the marker's version (its ETag, unique thanks to the
//     nonce), at most unsureTTL: a later write of the marker changes the
//     version and so voids the answer.
//
// The protocol. Nothing is ever listed that has no revision after a crash
// or in any interleaving of instances, and a push is listed by every
// instance from the moment it completes, because:
//   - A push that writes a revision first reads its repository's marker.
//     "Listed": it writes the revision and reads the marker again; still
//     "listed", nothing else is needed (two GETs, the whole cost on the
//     hot path); otherwise a removal began meanwhile and the push writes
//     "unsure" (see below). Otherwise (no marker, or "unsure") it writes
//     "unsure" with a nonce of its own (on the condition that the marker
//     is still as it read it, so that the version it later confirms is its
//     own write's; read again otherwise), writes the revision, then writes
//     "listed" on the condition that the marker still has the version it
//     wrote (If-Match), or, when that fails, "unsure" again. Either way
//     the last write comes after the revision and voids what readers
//     concluded while it was not there. A crash in between leaves
//     "unsure": readers check, and what they concluded before the
//     revision was there expires after unsureTTL.
//   - Every removal of revisions (a manifest delete, the collector, a
//     repository delete) writes "unsure" after it has decided what to
//     remove and before removing it, and again after. The first write
//     makes a racing push's confirmation fail (its If-Match no longer
//     holds), so a push never confirms a revision that a removal took
//     away. The second voids what readers concluded while the removal
//     was under way, so the next request sees it; if the deleter dies
//     between removing and the second write, readers' "has revisions"
//     answers expire after unsureTTL.
//   - "listed" is only ever written by such a confirmation, by a rebuild
//     that creates a missing marker (If-None-Match: a marker any other
//     instance wrote meanwhile wins), or by the offline collector while
//     nothing else writes. "unsure" can be written at any time by anyone:
//     it only costs readers a listing.
//   - Markers are removed only by the offline collector (nothing else
//     writes then) or by an operator. An index that is not complete is
//     never trusted: the marker _registryd/catalog/built says a full build
//     happened; without it the catalog walks the layout, as before, while
//     a build runs in the background.
//
// Stores that ignore S3's conditional writes (checked once, by a write
// that must fail) never get "listed" markers from pushes or rebuilds:
// every marker stays "unsure" and the index is still right, a listing per
// repository slower the first time each instance sees it.
//
// Writes by other software (the reference registry on the same bucket, a
// repository removed by hand) do not update the index: a rebuild
// (RebuildCatalogIndex, which garbage-collect runs) takes them in.

// unsureTTL bounds how long an answer about an unsure marker is trusted
// while the marker does not change: the window that a push or a removal
// that died between writing or removing a revision and writing the marker
// again leaves (a push that died is listed that much later; a removal, its
// repository unlisted).
const unsureTTL = time.Minute

// catalogIndex is the index of a Registry whose driver lists trees a page
// at a time (an object store).
type catalogIndex struct {
	r    *Registry
	tree driver.TreeLister
	cond driver.ConditionalWriter // nil: none

	// condOK: 0 not known yet, 1 conditional writes work, -1 they do not.
	condOK atomic.Int32

	mu       sync.Mutex
	verdicts map[string]verdict // by name: what the layout said of an unsure marker
	// built is the content of the built marker the verdicts were taken
	// under: a build (which takes in changes made behind the index's
	// back) voids them all.
	built string

	building atomic.Bool // a background build is under way in this process
	now      func() time.Time

	// For tests: noAutoBuild keeps the catalog from starting builds, and
	// buildHook, when set, is called by a build before it writes the
	// marker of name (a pause point).
	noAutoBuild bool
	buildHook   func(name string)
}

type verdict struct {
	version string // the marker's version it was read under
	has     bool
	at      time.Time
}

const maxVerdicts = 1 << 17

func newCatalogIndex(r *Registry, tree driver.TreeLister) *catalogIndex {
	ix := &catalogIndex{r: r, tree: tree, verdicts: map[string]verdict{}, now: r.now}
	if c, ok := driver.As[driver.ConditionalWriter](r.driver); ok {
		ix.cond = c
	}
	return ix
}

// The encoding of names into marker keys. A name's bytes map, in order,
// to codes that keep their order, with "/" lowest (the catalog compares
// component by component, so "a/b" comes before "a-b"), and that use
// only characters above "/" (so that the directory separators put in
// every two characters never reorder two keys):
//
//	"/" -> "0"   "-" -> "1"   "." -> "2"   digit d -> "3d"   "_", a-z -> themselves
//
// The codes are prefix-free, so the encoding is order-preserving and can
// be read back. The key is the code cut into two-character directories,
// ending with the component "-" (below every code character, so a name
// comes before the names it is a prefix of): "library/nginx" is
// li/br/ar/y0/ng/in/x/-.
func encodeName(name string) (string, bool) {
	var b strings.Builder
	b.Grow(len(name) + len(name)/2 + 2)
	n := 0
	emit := func(c byte) {
		if n > 0 && n%2 == 0 {
			b.WriteByte('/')
		}
		b.WriteByte(c)
		n++
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/':
			emit('0')
		case c == '-':
			emit('1')
		case c == '.':
			emit('2')
		case '0' <= c && c <= '9':
			emit('3')
			emit(c)
		case c == '_', 'a' <= c && c <= 'z':
			emit(c)
		default:
			return "", false
		}
	}
	if n == 0 {
		return "", false
	}
	b.WriteString("/-")
	return b.String(), true
}

// decodeName reads a key back; ok is false for keys encodeName never
// makes (debris, or an object an operator put there).
func decodeName(key string) (string, bool) {
	k, ok := strings.CutSuffix(key, "/-")
	if !ok {
		return "", false
	}
	code := strings.ReplaceAll(k, "/", "")
	var b strings.Builder
	for i := 0; i < len(code); i++ {
		switch c := code[i]; {
		case c == '0':
			b.WriteByte('/')
		case c == '1':
			b.WriteByte('-')
		case c == '2':
			b.WriteByte('.')
		case c == '3':
			if i+1 >= len(code) || code[i+1] < '0' || code[i+1] > '9' {
				return "", false
			}
			i++
			b.WriteByte(code[i])
		case c == '_', 'a' <= c && c <= 'z':
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	name := b.String()
	if again, _ := encodeName(name); again != key || ValidateName(name) != nil {
		return "", false // separators elsewhere, or not a repository name
	}
	return name, true
}

func nonce() []byte {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// conditional reports whether the store honours conditional writes,
// checking once with writes that must fail.
func (ix *catalogIndex) conditional(ctx context.Context) bool {
	switch ix.condOK.Load() {
	case 1:
		return true
	case -1:
		return false
	}
	if ix.cond == nil {
		ix.condOK.Store(-1)
		return false
	}
	p := catalogProbePath()
	if err := ix.r.driver.PutContent(ctx, p, nonce()); err != nil {
		return false // not known; ask again next time
	}
	_, v, err := ix.cond.GetContentVersion(ctx, p)
	if err != nil {
		return false
	}
	ok := true
	if _, err := ix.cond.PutContentIf(ctx, p, nonce(), ""); !errors.Is(err, driver.ErrPreconditionFailed) {
		ok = false
	}
	if _, err := ix.cond.PutContentIf(ctx, p, nonce(), v+"0"); !errors.Is(err, driver.ErrPreconditionFailed) {
		ok = false
	}
	if ok {
		ix.condOK.Store(1)
	} else {
		ix.condOK.Store(-1)
	}
	return ok
}

// readMarker reads a marker and, where the driver has conditional writes,
// its version ("" for a missing marker).
func (ix *catalogIndex) readMarker(ctx context.Context, p string) (content []byte, version string, err error) {
	if ix.cond != nil {
		return ix.cond.GetContentVersion(ctx, p)
	}
	b, err := ix.r.driver.GetContent(ctx, p)
	return b, "", err
}

// setUnsure writes a new nonce into a marker, whatever it held.
func (ix *catalogIndex) setUnsure(ctx context.Context, p string) error {
	return ix.r.driver.PutContent(ctx, p, nonce())
}

// casTries bounds how often a push retries writing its own "unsure"
// nonce when other writers keep changing the marker; then it writes it
// unconditionally and gives up confirming (the marker stays unsure).
const casTries = 8

// beforeRevision is called before a revision is written into repository
// name: it makes sure the marker lists it, and returns what to call once
// the revision is written (nil when nothing is to be done).
func (ix *catalogIndex) beforeRevision(ctx context.Context, name string) (func(context.Context), error) {
	p, ok := catalogMarkerPath(name)
	if !ok {
		return nil, nil
	}
	for try := 0; ; try++ {
		b, cur, err := ix.readMarker(ctx, p)
		if err == nil && len(b) == 0 {
			// Listed. Still listed once the revision is written means no
			// removal began meanwhile; otherwise one did, and readers may
			// have concluded, between its removing a revision and this
			// push writing one, that the repository was empty: unsure
			// again voids that.
			return func(ctx context.Context) {
				ctx = context.WithoutCancel(ctx)
				if b, err := ix.r.driver.GetContent(ctx, p); err == nil && len(b) == 0 {
					return
				}
				_ = ix.setUnsure(ctx, p)
			}, nil
		}
		if err != nil && !isNotFound(err) {
			return nil, storageErr(err)
		}
		// Unsure with a nonce of this push's, whose version the
		// confirmation below needs: written over the marker as it was
		// just read (or where there was none), so that the version is
		// this write's and not a concurrent writer's.
		var v string
		if ix.cond != nil && try < casTries {
			v, err = ix.cond.PutContentIf(ctx, p, nonce(), cur)
			if errors.Is(err, driver.ErrPreconditionFailed) {
				continue // written meanwhile: read it again
			}
		} else {
			err = ix.setUnsure(ctx, p)
		}
		if err != nil {
			return nil, storageErr(err)
		}
		return func(ctx context.Context) {
			ctx = context.WithoutCancel(ctx)
			if v != "" && ix.conditional(ctx) {
				// Fails if a removal wrote the marker meanwhile.
				if _, err := ix.cond.PutContentIf(ctx, p, nil, v); err == nil {
					return
				}
			}
			// Unsure again, now that the revision is there: what readers
			// concluded while it was not is void.
			_ = ix.setUnsure(ctx, p)
		}, nil
	}
}

// unsure marks repository name's marker unsure: before revisions are
// removed from it, and after.
func (ix *catalogIndex) unsure(ctx context.Context, name string) error {
	p, ok := catalogMarkerPath(name)
	if !ok {
		return nil
	}
	return storageErr(ix.setUnsure(ctx, p))
}

// ready reports whether the index is complete (a build finished and
// nobody removed it since). The answers kept about unsure markers are
// forgotten when another build has finished since they were taken.
func (ix *catalogIndex) ready(ctx context.Context) (bool, error) {
	b, err := ix.r.driver.GetContent(ctx, catalogBuiltPath())
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, storageErr(err)
	}
	ix.mu.Lock()
	if string(b) != ix.built {
		ix.built = string(b)
		clear(ix.verdicts)
	}
	ix.mu.Unlock()
	return true, nil
}

// has is whether the repository of an unsure marker has revisions, from
// the answers kept or from the layout.
func (ix *catalogIndex) has(ctx context.Context, name, version string) (bool, error) {
	now := ix.now()
	ix.mu.Lock()
	v, ok := ix.verdicts[name]
	ix.mu.Unlock()
	if ok && version != "" && v.version == version && now.Sub(v.at) < unsureTTL {
		return v.has, nil
	}
	has, err := ix.r.hasRevisions(ctx, repoPath(name))
	if err != nil {
		return false, storageErr(err)
	}
	ix.mu.Lock()
	if len(ix.verdicts) >= maxVerdicts {
		ix.verdicts = map[string]verdict{}
	}
	ix.verdicts[name] = verdict{version: version, has: has, at: now}
	ix.mu.Unlock()
	return has, nil
}

// page is Catalog from the index: up to n names after last (a valid name,
// or ""), whether more follow.
//
// With a prefix, only names that start with it (as strings) are listed:
// their keys are exactly those that start with the prefix's code (the
// code of a name is the codes of its bytes, each standing alone), so the
// listing starts there and stops at the first key past them.
func (ix *catalogIndex) page(ctx context.Context, prefix, last string, n int, keep func(string) bool) ([]string, bool, error) {
	root := catalogMarkersRoot()
	after, within := "", root+"/"
	if prefix != "" {
		code, ok := encodeName(prefix)
		if !ok {
			return []string{}, false, nil // a byte no name has
		}
		within += strings.TrimSuffix(code, "/-")
		after = within // below every key that starts with it
	}
	if last != "" {
		p, ok := catalogMarkerPath(last)
		if !ok {
			return nil, false, errors.New("catalog index: last is not a name")
		}
		after = max(after, p)
	}
	out := []string{}
	for {
		want := listBatch
		if n >= 0 {
			want = min(n+1-len(out)+4, listBatch)
		}
		es, more, err := ix.tree.ListTree(ctx, root, after, want)
		if err != nil {
			if isNotFound(err) {
				return out, false, nil
			}
			return nil, false, storageErr(err)
		}
		names := make([]string, len(es))
		listed := make([]bool, len(es))
		var checks []int
		past := len(es) // es[past:] are after the prefix's names
		for i, e := range es {
			if !strings.HasPrefix(e.Path, within) {
				past = i
				break
			}
			name, ok := decodeName(strings.TrimPrefix(e.Path, root+"/"))
			if !ok || (keep != nil && !keep(name)) {
				continue
			}
			names[i] = name
			if e.Size == 0 {
				listed[i] = true
			} else {
				checks = append(checks, i)
			}
		}
		if err := ix.check(ctx, es, names, listed, checks); err != nil {
			return nil, false, err
		}
		for i := range es {
			if !listed[i] {
				continue
			}
			if n >= 0 && len(out) == n {
				return out, true, nil
			}
			out = append(out, names[i])
		}
		if !more || len(es) == 0 || past < len(es) {
			return out, false, nil
		}
		after = es[len(es)-1].Path
	}
}

// listBatch is the most markers asked for per listing request (S3's page).
const listBatch = 1000

// check asks the layout about the unsure markers es[i], i in which,
// several at a time, and sets listed[i].
func (ix *catalogIndex) check(ctx context.Context, es []driver.Entry, names []string, listed []bool, which []int) error {
	return parallel(ctx, len(which), func(k int) error {
		i := which[k]
		has, err := ix.has(ctx, names[i], es[i].Version)
		listed[i] = has
		return err
	})
}

// builtRecord is the content of the built marker; the nonce makes every
// build's different.
type builtRecord struct {
	Built        time.Time `json:"built"`
	Repositories int       `json:"repositories"`
	Nonce        string    `json:"nonce"`
}

// startBuild starts a build in the background unless one is under way in
// this process.
func (ix *catalogIndex) startBuild() {
	if ix.noAutoBuild || !ix.building.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer ix.building.Store(false)
		_, _ = ix.build(context.Background())
	}()
}

// build makes the index agree with the layout: a marker for every
// repository with revisions (created "listed" where missing, if the store
// honours conditional writes, else "unsure"), every "listed" marker of a
// repository without revisions made "unsure", then the built marker. It
// can run while registries serve: see the protocol above.
//
// The layout is read with one listing of every key below repositories/
// (a request per thousand keys), not a listing per repository: the
// repositories with revisions are those with a key below
// <name>/_manifests/revisions/. Memory is a set of names.
func (ix *catalogIndex) build(ctx context.Context) (int, error) {
	cond := ix.conditional(ctx)
	has := map[string]bool{}
	if err := ix.eachKey(ctx, reposRoot(), func(e driver.Entry) {
		rel := strings.TrimPrefix(e.Path, reposRootPath+"/")
		if i := strings.Index(rel, "/_manifests/revisions/"); i > 0 {
			if name := rel[:i]; !has[name] && ValidateName(name) == nil {
				has[name] = true
			}
		}
	}); err != nil {
		return 0, err
	}
	root := catalogMarkersRoot()
	listed := map[string]bool{} // markers there now: name -> "listed"
	if err := ix.eachKey(ctx, root, func(e driver.Entry) {
		if name, ok := decodeName(strings.TrimPrefix(e.Path, root+"/")); ok {
			listed[name] = e.Size == 0
		}
	}); err != nil {
		return 0, err
	}
	var missing, ghosts []string
	for name := range has {
		if _, ok := listed[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name, l := range listed {
		if l && !has[name] {
			ghosts = append(ghosts, name)
		}
	}
	err := parallel(ctx, len(missing), func(i int) error {
		name := missing[i]
		p, _ := catalogMarkerPath(name)
		if ix.buildHook != nil {
			ix.buildHook(name)
		}
		if !cond {
			return storageErr(ix.setUnsure(ctx, p))
		}
		_, err := ix.cond.PutContentIf(ctx, p, nil, "") // only where none is
		if errors.Is(err, driver.ErrPreconditionFailed) {
			err = nil // written meanwhile: whatever it says holds
		}
		return storageErr(err)
	})
	if err != nil {
		return 0, err
	}
	// "listed" markers of repositories that lost their revisions behind
	// the index's back; checked again, one by one (a push may have come
	// since the listing), and made unsure.
	err = parallel(ctx, len(ghosts), func(i int) error {
		name := ghosts[i]
		ok, err := ix.r.hasRevisions(ctx, repoPath(name))
		if err != nil || ok {
			return storageErr(err)
		}
		return ix.unsure(ctx, name)
	})
	if err != nil {
		return 0, err
	}
	b, _ := json.Marshal(builtRecord{Built: ix.now().UTC(), Repositories: len(has), Nonce: string(nonce())})
	return len(has), storageErr(ix.r.driver.PutContent(ctx, catalogBuiltPath(), b))
}

// eachKey calls fn for every object below p, in order, a listing page at
// a time.
func (ix *catalogIndex) eachKey(ctx context.Context, p string, fn func(driver.Entry)) error {
	after := ""
	for {
		es, more, err := ix.tree.ListTree(ctx, p, after, listBatch)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return storageErr(err)
		}
		for _, e := range es {
			fn(e)
		}
		if !more || len(es) == 0 {
			return nil
		}
		after = es[len(es)-1].Path
	}
}

// beforeRevision is catalogIndex.beforeRevision where there is an index.
func (r *Registry) beforeRevision(ctx context.Context, name string) (func(context.Context), error) {
	if r.index == nil {
		return nil, nil
	}
	return r.index.beforeRevision(ctx, name)
}

// unsure is catalogIndex.unsure where there is an index: called before
// and after revisions are removed from repository name.
func (r *Registry) unsure(ctx context.Context, name string) error {
	if r.index == nil {
		return nil
	}
	return r.index.unsure(ctx, name)
}

// pager is the driver's PageLister where listings are not cached (object
// stores): tags/list then lists a page, not the whole directory.
func (r *Registry) pager() (driver.PageLister, bool) {
	if r.index == nil {
		return nil, false
	}
	return driver.As[driver.PageLister](r.driver)
}

// tagsPaged is Tags with a listing of the page only: one request per page
// on an object store, however many tags the repository has.
func (repo *Repository) tagsPaged(ctx context.Context, pl driver.PageLister, last string, n int) ([]string, bool, error) {
	root := tagsRoot(repo.name)
	tags := []string{}
	after := last
	for {
		want := listBatch
		if n >= 0 {
			want = min(n+1-len(tags), listBatch)
		}
		es, more, err := pl.ListPage(ctx, root, after, want)
		if err != nil {
			return nil, false, storageErr(err)
		}
		for _, e := range es {
			t := path.Base(e.Path)
			if !ValidTag(t) {
				continue
			}
			if n >= 0 && len(tags) == n {
				return tags, true, nil
			}
			tags = append(tags, t)
		}
		if !more || len(es) == 0 {
			break
		}
		after = path.Base(es[len(es)-1].Path)
	}
	if len(tags) == 0 {
		ok, err := repo.Exists(ctx)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": repo.name})
		}
	}
	return tags, false, nil
}

// RebuildCatalogIndex makes the catalog index agree with the layout, on
// stores that have one (it does nothing elsewhere): repositories written
// or removed by other software (the reference registry sharing the
// bucket, a repository removed by hand) are taken in. It can run while
// registries serve. garbage-collect runs it; so does the first catalog
// request when the index is missing.
//
// It returns how many repositories the index lists, or -1 where there is
// no index.
func (r *Registry) RebuildCatalogIndex(ctx context.Context) (int, error) {
	if r.index == nil {
		return -1, nil
	}
	return r.index.build(ctx)
}
