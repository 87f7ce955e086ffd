package ui

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/registryd/registryd/storage"
)

// maxStorageRepos bounds the repositories listed one by one on the storage
// page (those directly in the namespace shown; namespaces below it are
// one row each, however many they hold).
const maxStorageRepos = 500

type storagePage struct {
	NS     string
	Crumbs []crumb
	Scope  storage.Usage
	Rows   []*storageRow
	// More is how many repositories directly in NS are not listed.
	More int
	Root bool
	// Unreferenced is, at the root, what no manifest refers to: what the
	// next garbage collection frees.
	Unreferenced int64
}

func (p *storagePage) title() string { return "Storage" }
func (p *storagePage) nav() string   { return "storage" }

type storageRow struct {
	Name      string
	Leaf      string
	IsNS      bool
	Repos     int
	Size      storage.Size
	URL       string
	UniquePct float64 // bar lengths, of the largest row's unique bytes
	ExclPct   float64
}

// storagePage shows what the registry, or a namespace, stores: logical,
// unique and exclusive bytes of the scope, then per namespace below it and
// per repository in it, largest own bytes first, as bars and a table. The
// numbers come from the registry's size index (storage.Usage and
// RepositorySummaries), the same the admin API serves.
func (u *UI) storagePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	if !v.can(adminAccess) {
		u.errorPage(w, r, v, http.StatusForbidden, "The storage page is for users with the admin right (access rules: actions [admin] on \"**\").")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	ns := strings.Trim(r.URL.Query().Get("ns"), "/")
	if ns != "" && storage.ValidateName(ns) != nil {
		u.errorPage(w, r, v, http.StatusBadRequest, "That is not a namespace.")
		return
	}
	prefix := ""
	if ns != "" {
		prefix = ns + "/"
	}
	p := &storagePage{NS: ns, Crumbs: crumbsOf(ns), Root: ns == ""}
	var err error
	if p.Scope, err = u.reg.Usage(ctx, prefix); err != nil {
		u.storageError(w, r, v, err)
		return
	}
	if p.Root && p.Scope.Total > p.Scope.Unique {
		p.Unreferenced = p.Scope.Total - p.Scope.Unique
	}
	// The namespaces and repositories directly below ns.
	children := map[string]bool{}
	var direct []string
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	_, _, err = u.reg.Catalog(wctx, ns, -1, func(name string) bool {
		if !strings.HasPrefix(name, prefix) {
			stop(errStopWalk)
			return false
		}
		rest := name[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			children[rest[:i]] = true
		} else if len(direct) < maxStorageRepos {
			direct = append(direct, name)
		} else {
			p.More++
		}
		return false
	})
	if err != nil && !(errors.Is(context.Cause(wctx), errStopWalk) && ctx.Err() == nil) {
		u.storageError(w, r, v, err)
		return
	}
	for leaf := range children {
		us, err := u.reg.Usage(ctx, prefix+leaf+"/")
		if err != nil {
			u.storageError(w, r, v, err)
			return
		}
		p.Rows = append(p.Rows, &storageRow{Name: prefix + leaf, Leaf: leaf + "/", IsNS: true, Repos: us.Repositories, Size: us.Size,
			URL: u.base + "storage?ns=" + prefix + leaf})
	}
	sums, err := u.reg.RepositorySummaries(ctx, direct)
	if err != nil {
		u.storageError(w, r, v, err)
		return
	}
	for _, s := range sums {
		p.Rows = append(p.Rows, &storageRow{Name: s.Name, Leaf: s.Name[len(prefix):], Repos: 1, Size: s.Size, URL: u.base + "r/" + s.Name})
	}
	sort.Slice(p.Rows, func(i, j int) bool {
		a, b := p.Rows[i].Size, p.Rows[j].Size
		if a.Exclusive != b.Exclusive {
			return a.Exclusive > b.Exclusive
		}
		if a.Unique != b.Unique {
			return a.Unique > b.Unique
		}
		return p.Rows[i].Name < p.Rows[j].Name
	})
	var top int64 = 1
	for _, row := range p.Rows {
		top = max(top, row.Size.Unique)
	}
	for _, row := range p.Rows {
		row.UniquePct = 100 * float64(row.Size.Unique) / float64(top)
		row.ExclPct = 100 * float64(row.Size.Exclusive) / float64(top)
	}
	u.render(w, r, v, http.StatusOK, "storage", p)
}
