package ui

import (
	"context"
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
	Direct int
	Total  int // repositories in NS matching Q
	Next   string
	First  string // URL of the first page, when not on it
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
	if more && len(names) > 0 {
		p.Next = u.catalogURL(p.Q, p.NS, names[len(names)-1], n)
	}
	if last != "" {
		p.First = u.catalogURL(p.Q, p.NS, "", n)
	}
	if err := u.namespaceTree(ctx, p, v.may()); err != nil {
		u.storageError(w, r, v, err)
		return
	}
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

// namespaceTree counts the repositories below p.NS that match q, by the
// next namespace component: the admin service's count over the name
// index (in memory, complete however large the catalog).
func (u *UI) namespaceTree(ctx context.Context, p *catalogPage, may admin.May) error {
	prefix := ""
	if p.NS != "" {
		prefix = p.NS + "/"
	}
	c, err := u.svc.Namespaces(ctx, prefix, p.Q, may)
	if err != nil {
		return err
	}
	p.Total, p.Direct = c.Total, c.Direct
	for leaf, n := range c.Below {
		p.Namespaces = append(p.Namespaces, nsRow{Name: prefix + leaf, Leaf: leaf, Count: n})
	}
	sort.Slice(p.Namespaces, func(i, j int) bool { return p.Namespaces[i].Leaf < p.Namespaces[j].Leaf })
	return nil
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
