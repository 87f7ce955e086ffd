package ui

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
)

// maxStorageRepos bounds the repositories listed one by one on the storage
// page (those directly in the namespace shown; namespaces below it are
// one row each, however many they hold).
const maxStorageRepos = 500

type storagePage struct {
	NS     string
	Crumbs []crumb
	Scope  admin.Usage
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
	Size      admin.Size
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
	// The admin API's usage: the registry's needs the admin right, a
	// namespace's the admin right or pull on everything in it.
	us, err := u.svc.Usage(ctx, prefix, v.may())
	if err != nil {
		if e := errcode.From(err); e != nil && e.Code == errcode.Denied {
			u.errorPage(w, r, v, http.StatusForbidden, "Sizes of "+map[bool]string{true: "the whole registry need the admin right", false: "a namespace need the admin right or pull on every repository in it"}[ns == ""]+".")
			return
		}
		u.storageError(w, r, v, err)
		return
	}
	p.Scope = us
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
		us, err := u.svc.Usage(ctx, prefix+leaf+"/", v.may())
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
		p.Rows = append(p.Rows, &storageRow{Name: s.Name, Leaf: s.Name[len(prefix):], Repos: 1, URL: u.base + "r/" + s.Name,
			Size: admin.Size{Logical: s.Size.Logical, Unique: s.Size.Unique, Exclusive: s.Size.Exclusive}})
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

// errStopWalk stops a catalog walk that has found what it needs.
var errStopWalk = errors.New("enough")
