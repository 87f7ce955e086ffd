package storage

import (
	"slices"
	"strings"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// CatalogPrefix lists what filtering the whole catalog by the prefix
// lists, page by page, whatever the prefix and page size: from the layout
// (a filesystem's, here in memory) and from an object store's catalog
// index (catalogindex.go).
func TestCatalogPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func() driver.StorageDriver
	}{
		{"layout", func() driver.StorageDriver { return inmemory.New() }},
		{"index", func() driver.StorageDriver { return newObjStore() }},
	} {
		t.Run(tc.name, func(t *testing.T) { testCatalogPrefix(t, tc.store()) })
	}
}

func testCatalogPrefix(t *testing.T, d driver.StorageDriver) {
	f := newDeleteFixture(t, d)
	if f.r.index != nil {
		if _, err := f.r.RebuildCatalogIndex(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"a", "a/b", "a-b", "ab", "te", "te/x", "tea", "team", "team/ap", "team/ap/x", "team/ap-x", "team/apple", "team/aq", "team/b", "team-x", "tf", "z/y"}
	for _, n := range names {
		f.image(n, "v1", "layer of "+n)
	}
	// A namespace directory that is no repository, and a repository whose
	// manifests are gone: neither is listed.
	f.image("ns/only/child", "v1", "x")
	m := f.image("gone", "v1", "y")
	if err := f.repo("gone").DeleteManifest(f.ctx, m.Digest); err != nil {
		t.Fatal(err)
	}
	all := catalogOf(t, f.r)
	if f.r.index != nil {
		if ready, err := f.r.index.ready(f.ctx); !ready || err != nil {
			t.Fatalf("the index is not ready: %v", err)
		}
	}
	if slices.Contains(all, "gone") || slices.Contains(all, "ns") {
		t.Fatalf("catalog %v", all)
	}
	for _, prefix := range []string{"", "a", "a/", "te", "team", "team/", "team/ap", "team/ap/", "team-", "t", "z", "zz", "ns/", "gone", "A", "te%", "a/b/c/d"} {
		var want []string
		for _, n := range all {
			if strings.HasPrefix(n, prefix) {
				want = append(want, n)
			}
		}
		for _, page := range []int{1, 2, 3, 100} {
			var got []string
			last := ""
			for i := 0; ; i++ {
				names, more, err := f.r.CatalogPrefix(f.ctx, prefix, last, page, nil)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, names...)
				if !more {
					break
				}
				if len(names) == 0 || i > 100 {
					t.Fatalf("prefix %q page %d: more without names", prefix, page)
				}
				last = names[len(names)-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("prefix %q page %d: %v, want %v", prefix, page, got, want)
			}
		}
	}
	// keep filters, and the page counts what is shown.
	got, more, err := f.r.CatalogPrefix(f.ctx, "team", "", 2, func(n string) bool { return n != "team/ap" })
	if err != nil || !more || !slices.Equal(got, []string{"team", "team/ap/x"}) {
		t.Fatalf("with keep: %v %v %v", got, more, err)
	}
}

func TestCatalogLess(t *testing.T) {
	sorted := []string{"a", "a/b", "a/b/c", "a/b-c", "a-b", "ab", "b"}
	for i := range sorted {
		for j := range sorted {
			if got := catalogLess(sorted[i], sorted[j]); got != (i < j) {
				t.Errorf("catalogLess(%q, %q) = %v", sorted[i], sorted[j], got)
			}
		}
	}
}
