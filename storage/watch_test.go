package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver/filesystem"
)

// Whatever changes the store behind the registry's back (another process:
// raw file system calls here, or another Registry over its own driver),
// the very next catalog and tags/list show it, with no wait, however the
// caches validate: by watches, by watches that lost their events
// (overflow), partly by watches and partly by times (the watch limit
// reached), or by times alone.
func TestCachesSeeOtherWritersAtOnce(t *testing.T) {
	configs := []struct {
		name     string
		setup    func(d *filesystem.Driver)
		overflow bool // lose the events of every change
	}{
		{"watched", func(d *filesystem.Driver) {}, false},
		{"overflow", func(d *filesystem.Driver) {}, true},
		{"watch limit", func(d *filesystem.Driver) { d.SetMaxWatches(9) }, false},
		{"times", func(d *filesystem.Driver) { d.Close() }, false},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			full := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
			d, err := filesystem.New(root)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			cfg.setup(d)
			r := New(d, Options{})
			other, _ := newFSRegistry(t, root, false)
			for _, n := range []string{"a", "c/d", "e", "f"} {
				writeRepo(t, root, n, n[0])
			}
			makeTags(t, root, "e", 3)
			mv := func(from, to string) {
				t.Helper()
				if err := os.Rename(full(from), full(to)); err != nil {
					t.Fatal(err)
				}
			}
			rm := func(p string) {
				t.Helper()
				if err := os.RemoveAll(full(p)); err != nil {
					t.Fatal(err)
				}
			}
			steps := []struct {
				name    string
				change  func()
				catalog string
				tags    string // of e
			}{
				{"start", func() {}, "a,c/d,e,f", "t000000,t000001,t000002"},
				{"repository added", func() { writeRepo(t, root, "b", 'b') }, "a,b,c/d,e,f", ""},
				{"last revision deleted by another registry", func() {
					if err := mustRepo(t, other, "a").DeleteManifest(ctx, digest.Digest("sha256:"+digestHex('a'))); err != nil {
						t.Fatal(err)
					}
				}, "b,c/d,e,f", ""},
				{"revision back", func() { writeRepo(t, root, "a", 'a') }, "a,b,c/d,e,f", ""},
				{"nested repository below a repository", func() { writeRepo(t, root, "a/b", 'x') }, "a,a/b,b,c/d,e,f", ""},
				{"repository directory removed", func() { rm(repoPath("c/d")) }, "a,a/b,b,e,f", ""},
				{"repository renamed", func() { mv(repoPath("b"), repoPath("b2")) }, "a,a/b,b2,e,f", ""},
				{"revisions renamed away and re-created empty", func() {
					mv(revisionsRoot("f"), repoPath("f")+"/_manifests/old")
					if err := os.MkdirAll(full(revisionsRoot("f")+"/sha256"), 0o755); err != nil {
						t.Fatal(err)
					}
				}, "a,a/b,b2,e", ""},
				{"tag added", func() {
					p := full(tagDir("e", "new") + "/current")
					os.MkdirAll(p, 0o755)
					os.WriteFile(p+"/link", []byte("sha256:"+digestHex('a')), 0o644)
				}, "", "new,t000000,t000001,t000002"},
				{"tag removed", func() { rm(tagDir("e", "t000001")) }, "", "new,t000000,t000002"},
				{"tags directory replaced", func() {
					mv(tagsRoot("e"), repoPath("e")+"/_manifests/oldtags")
					p := full(tagDir("e", "only") + "/current") // a tag has its current link
					os.MkdirAll(p, 0o755)
					os.WriteFile(p+"/link", []byte("sha256:"+digestHex('a')), 0o644)
				}, "", "only"},
				{"store replaced under the registry", func() {
					mv(rootPath, "/docker/registry/old")
					writeRepo(t, root, "z", 'z')
				}, "z", ""},
			}
			for i, s := range steps {
				s.change()
				if cfg.overflow {
					d.SimulateOverflow()
				}
				if s.catalog != "" {
					if got := catalogString(t, r); got != s.catalog {
						t.Fatalf("%s: catalog %q, want %q", s.name, got, s.catalog)
					}
					// and page by page
					var pages []string
					for last := ""; ; {
						got, more, err := r.Catalog(ctx, last, 1, nil)
						if err != nil {
							t.Fatal(err)
						}
						pages = append(pages, got...)
						if !more {
							break
						}
						last = got[0]
					}
					if got := strings.Join(pages, ","); got != s.catalog {
						t.Fatalf("%s: pages %q, want %q", s.name, got, s.catalog)
					}
					if e := r.repos.get(repoPath("e")); i == 0 && cfg.name == "watched" && (e.dirVer == 0 || e.revVer == 0) {
						t.Fatalf("not cached under versions: %+v", e)
					}
				}
				if s.tags != "" {
					tags, _, err := mustRepo(t, r, "e").Tags(ctx, "", -1)
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.Join(tags, ","); got != s.tags {
						t.Fatalf("%s: tags %q, want %q", s.name, got, s.tags)
					}
				}
			}
		})
	}
}

// Catalogs running while another process adds and removes repositories
// (and the watcher drains events in the background) end up, once the
// changes stop, with exactly what is on disk: no event applied out of
// order leaves a stale entry behind.
func TestCatalogWatchedUnderChurn(t *testing.T) {
	root := t.TempDir()
	r, _ := newFSRegistry(t, root, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			n := fmt.Sprintf("ns%d/r%d", i%3, i%17)
			if i%4 == 3 {
				os.RemoveAll(filepath.Join(root, filepath.FromSlash(repoPath(n))))
			} else {
				writeRepo(t, root, n, 'a')
			}
		}
	}()
	for {
		select {
		case <-done:
		default:
			catalogString(t, r)
			continue
		}
		break
	}
	// what is on disk, through a registry that has never cached anything
	fresh, _ := newFSRegistry(t, root, false)
	if got, want := catalogString(t, r), catalogString(t, fresh); got != want {
		t.Fatalf("after churn: %q, want %q", got, want)
	}
}
