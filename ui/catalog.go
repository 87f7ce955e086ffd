package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/storage"
)

// Page sizes: the default keeps a page light on a phone; the cap keeps one
// request's work bounded.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// treeBudget bounds the walk that counts the namespaces below the one
// shown. The page itself costs O(page); the counts cost O(subtree), which
// at the scale of hundreds of thousands of repositories on a store without
// cached listings (S3) can take long: the tree is then shown as far as it
// got, marked partial.
const treeBudget = 60 * time.Millisecond

type crumb struct {
	Name string // the last component
	NS   string // the namespace it names ("a/b")
}

// crumbsOf splits "a/b/c" into a, a/b, a/b/c.
func crumbsOf(name string) []crumb {
	if name == "" {
		return nil
	}
	parts := strings.Split(name, "/")
	out := make([]crumb, len(parts))
	for i, p := range parts {
		out[i] = crumb{Name: p, NS: strings.Join(parts[:i+1], "/")}
	}
	return out
}

type catalogPage struct {
	Q, NS      string
	Crumbs     []crumb
	Repos      []repoRow
	Namespaces []nsRow
	// Direct is how many repositories sit directly in NS (not below a
	// further namespace).
	Direct      int
	Total       int  // repositories in NS matching Q
	TreePartial bool // the counting walk ran out of time
	Next        string
	First       string // URL of the first page, when not on it
}

func (p *catalogPage) title() string {
	if p.NS != "" {
		return p.NS + "/"
	}
	return "Repositories"
}
func (p *catalogPage) nav() string { return "catalog" }

type repoRow struct {
	Name   string
	Crumbs []crumb // the namespaces of the name, then the name
	// From the size index, when known.
	TagCount   int
	LastPushed time.Time
	Size       *admin.Size
}

type nsRow struct {
	Name  string // full namespace
	Leaf  string // its last component
	Count int
}

func pageSize(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 {
		return defaultPageSize
	}
	return min(n, maxPageSize)
}

// catalog is the front page: the repositories the viewer may pull, in
// catalog order, filtered by namespace (ns) and substring (q), a page at a
// time, with the namespaces below the current one and their sizes.
func (u *UI) catalog(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	q := r.URL.Query()
	p := &catalogPage{Q: strings.TrimSpace(q.Get("q")), NS: strings.Trim(q.Get("ns"), "/")}
	if len(p.Q) > 256 {
		p.Q = p.Q[:256]
	}
	if p.NS != "" && storage.ValidateName(p.NS) != nil {
		u.errorPage(w, r, v, http.StatusBadRequest, "That is not a namespace: names are lowercase letters, digits and . _ - separated by /.")
		return
	}
	p.Crumbs = crumbsOf(p.NS)
	n := pageSize(r)
	last := q.Get("last")
	if last != "" && storage.ValidateName(last) != nil {
		last = ""
	}
	// The page, searched and with sizes, from the admin API's service:
	// one implementation of listing and search for the UI, the API and
	// the CLI.
	prefix := ""
	if p.NS != "" {
		prefix = p.NS + "/"
	}
	list, more, err := u.svc.Repositories(ctx, admin.RepositoryQuery{N: n, Last: last, Prefix: prefix, Q: p.Q}, v.may())
	if err != nil {
		u.storageError(w, r, v, err)
		return
	}
	var names []string
	for _, rep := range list.Repositories {
		row := repoRow{Name: rep.Name, Crumbs: crumbsOf(rep.Name), TagCount: rep.TagCount, Size: rep.Size}
		if rep.LastPushed != nil {
			row.LastPushed = *rep.LastPushed
		}
		p.Repos = append(p.Repos, row)
		names = append(names, rep.Name)
	}
	needle := strings.ToLower(p.Q)
	match := func(name string) bool {
		return v.canPull(name) && (needle == "" || strings.Contains(name, needle))
	}
	if more && len(names) > 0 {
		p.Next = u.catalogURL(p.Q, p.NS, names[len(names)-1], n)
	}
	if last != "" {
		p.First = u.catalogURL(p.Q, p.NS, "", n)
	}
	u.namespaceTree(ctx, p, match)
	u.render(w, r, v, http.StatusOK, "catalog", p)
}

func (u *UI) catalogURL(q, ns, last string, n int) string {
	vals := url.Values{}
	if q != "" {
		vals.Set("q", q)
	}
	if ns != "" {
		vals.Set("ns", ns)
	}
	if last != "" {
		vals.Set("last", last)
	}
	if n != defaultPageSize {
		vals.Set("n", strconv.Itoa(n))
	}
	if len(vals) == 0 {
		return u.base
	}
	return u.base + "?" + vals.Encode()
}

// errStopWalk stops a catalog walk that has found what it needs.
var errStopWalk = errors.New("enough")

// namespaceTree counts, within the time budget, the repositories below
// p.NS that match, by the next namespace component.
func (u *UI) namespaceTree(ctx context.Context, p *catalogPage, match func(string) bool) {
	prefix := ""
	if p.NS != "" {
		prefix = p.NS + "/"
	}
	counts := map[string]int{}
	tctx, cancel := context.WithTimeout(ctx, treeBudget)
	defer cancel()
	start := p.NS
	_, _, err := u.reg.Catalog(tctx, start, -1, func(name string) bool {
		if !strings.HasPrefix(name, prefix) {
			cancel()
			return false
		}
		if !match(name) {
			return false
		}
		p.Total++
		rest := name[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			counts[rest[:i]]++
		} else {
			p.Direct++
		}
		return false
	})
	if err != nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		p.TreePartial = true
	}
	for leaf, c := range counts {
		p.Namespaces = append(p.Namespaces, nsRow{Name: prefix + leaf, Leaf: leaf, Count: c})
	}
	sort.Slice(p.Namespaces, func(i, j int) bool { return p.Namespaces[i].Leaf < p.Namespaces[j].Leaf })
}

// storageError answers a failure to read the storage.
func (u *UI) storageError(w http.ResponseWriter, r *http.Request, v *viewer, err error) {
	if storage.ErrNotFound(err) {
		u.notFound(w, r, v)
		return
	}
	u.log.WithError(err).WithField("path", r.URL.Path).Error("web UI: reading the storage")
	u.errorPage(w, r, v, http.StatusInternalServerError, "The registry could not read its storage. The log says why.")
}
