package storage

import (
	"context"
	"strings"
)

// CatalogPrefix is Catalog restricted to the names that start with prefix
// (as strings: "team/" is a namespace, "te" every name beginning so). In
// the catalog's order those names are contiguous, so the walk starts at
// the first of them (or after last) and stops after the last: a page
// costs what it lists plus what keep refuses, however large the catalog.
func (r *Registry) CatalogPrefix(ctx context.Context, prefix, last string, n int, keep func(name string) bool) ([]string, bool, error) {
	if prefix == "" {
		return r.Catalog(ctx, last, n, keep)
	}
	if n == 0 {
		return []string{}, false, nil
	}
	if ix := r.index; ix != nil && (last == "" || ValidateName(last) == nil) {
		// On an object store, the index's keys of the names with the
		// prefix are contiguous too: a page is a listing from the first.
		ready, err := ix.ready(ctx)
		if err != nil {
			return nil, false, err
		}
		if ready {
			return ix.page(ctx, prefix, last, n, func(name string) bool {
				return !r.deleting(name) && (keep == nil || keep(name))
			})
		}
		ix.startBuild()
	}
	out := []string{}
	start := last
	if !catalogLess(prefix, last) {
		// The walk starts at prefix, which it does not list itself: the
		// one name equal to it is checked here.
		start = prefix
		if last != prefix && ValidateName(prefix) == nil && !r.deleting(prefix) && (keep == nil || keep(prefix)) {
			r.syncWatches(ctx)
			has, err := r.hasRevisions(ctx, repoPath(prefix))
			if err != nil {
				return nil, false, storageErr(err)
			}
			if has {
				out = append(out, prefix)
			}
		}
	}
	more := false
	var lastParts []string
	if start != "" {
		lastParts = strings.Split(start, "/")
	}
	r.syncWatches(ctx)
	since := r.repos.epoch()
	root, err := r.list(ctx, reposRoot())
	if isNotFound(err) {
		return out, false, nil
	}
	if err != nil {
		return nil, false, storageErr(err)
	}
	err = r.walkCatalog(ctx, since, reposRoot(), root, 0, lastParts, func(name string) error {
		if !strings.HasPrefix(name, prefix) {
			if catalogLess(prefix, name) {
				return errStopWalk // past the range: nothing after matches
			}
			return nil
		}
		if r.deleting(name) || (keep != nil && !keep(name)) {
			return nil
		}
		if n >= 0 && len(out) == n {
			more = true
			return errStopWalk
		}
		out = append(out, name)
		return nil
	})
	if err != nil && err != errStopWalk {
		return nil, false, storageErr(err)
	}
	return out, more, nil
}

// catalogLess orders names as the catalog lists them: component by
// component ("a/b" before "a-b").
func catalogLess(a, b string) bool {
	for {
		ai, bi := strings.IndexByte(a, '/'), strings.IndexByte(b, '/')
		ac, bc := a, b
		if ai >= 0 {
			ac = a[:ai]
		}
		if bi >= 0 {
			bc = b[:bi]
		}
		if ac != bc {
			return ac < bc
		}
		if ai < 0 || bi < 0 {
			return ai < 0 && bi >= 0
		}
		a, b = a[ai+1:], b[bi+1:]
	}
}
