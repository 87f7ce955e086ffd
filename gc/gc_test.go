package gc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

func TestCollect(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"blob shared with a deleted image survives, its own layer goes", func(t *testing.T, e *env) {
			shared, onlyA, onlyB := []byte("shared layer"), []byte("only in a"), []byte("only in b")
			a, aDescs := e.image("app/a", "v1", shared, onlyA)
			e.image("app/b", "v1", shared, onlyB)
			if err := e.repo("app/a").DeleteManifest(e.ctx, a.Digest); err != nil {
				t.Fatal(err)
			}
			rep := e.gc(Options{})
			if err := e.pullable("app/b", "v1"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				d    digest.Digest
				want bool
			}{
				{"shared layer", digest.FromBytes(shared), true},
				{"layer only the deleted image used", digest.FromBytes(onlyA), false},
				{"deleted manifest", a.Digest, false},
				{"deleted image's config", aDescs[0].Digest, false},
				{"live image's own layer", digest.FromBytes(onlyB), true},
			} {
				if got := e.hasBlob(c.d); got != c.want {
					t.Errorf("%s %s in store: %v, want %v", c.what, c.d, got, c.want)
				}
			}
			if _, err := e.repo("app/a").StatBlob(e.ctx, digest.FromBytes(onlyA)); !storage.ErrNotFound(err) {
				t.Errorf("link to removed layer: %v", err)
			}
			if rep.BlobsRemoved != 3 || rep.LayerLinksRemoved != 2 || rep.ManifestsRemoved != 0 {
				t.Errorf("report %+v", rep)
			}
			if want := int64(len(onlyA) + len(a.Content) + int(aDescs[0].Size)); rep.BytesReclaimed != want {
				t.Errorf("bytes reclaimed %d, want %d", rep.BytesReclaimed, want)
			}
		}},
		{"children of a tagged index survive, nested indexes too", func(t *testing.T, e *env) {
			c1, _ := e.image("multi", "", []byte("amd64 layer"))
			c2, _ := e.image("multi", "", []byte("arm64 layer"))
			ix := e.index("multi", "", c1, c2)
			e.index("multi", "latest", ix)
			rep := e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("removed from a tagged index: %+v", rep)
			}
			for _, ref := range []string{"latest", c1.Digest.String(), c2.Digest.String(), ix.Digest.String()} {
				if err := e.pullable("multi", ref); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.repo("multi").DeleteTag(e.ctx, "latest"); err != nil {
				t.Fatal(err)
			}
			rep = e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 4 {
				t.Fatalf("manifests removed %d, want 4", rep.ManifestsRemoved)
			}
			if left := e.blobs(); len(left) != 0 {
				t.Fatalf("blobs left: %v", left)
			}
			names, _, err := e.reg.Catalog(e.ctx, "", -1, nil)
			if err != nil || len(names) != 0 {
				t.Fatalf("catalog %v %v", names, err)
			}
		}},
		{"untagged revision removed only with DeleteUntagged", func(t *testing.T, e *env) {
			shared := []byte("base layer")
			old, oldDescs := e.image("r", "v1", shared, []byte("old top"))
			e.image("r", "v1", shared, []byte("new top")) // moves the tag
			rep := e.gc(Options{})
			if rep.ManifestsRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("without DeleteUntagged: %+v", rep)
			}
			if err := e.pullable("r", old.Digest.String()); err != nil {
				t.Fatal(err)
			}
			rep = e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 1 || rep.BlobsRemoved != 3 {
				t.Fatalf("with DeleteUntagged: %+v", rep)
			}
			if _, err := e.repo("r").GetManifest(e.ctx, old.Digest.String()); !storage.ErrNotFound(err) {
				t.Fatalf("old revision: %v", err)
			}
			if err := e.pullable("r", "v1"); err != nil {
				t.Fatal(err)
			}
			if e.hasBlob(oldDescs[2].Digest) || !e.hasBlob(digest.FromBytes(shared)) {
				t.Fatal("wrong blobs removed")
			}
			// Nothing names the old revision any more, tag history included.
			if ps := pathsContaining(snapshot(t, e.d), old.Digest.Encoded()); len(ps) != 0 {
				t.Fatalf("paths left: %v", ps)
			}
		}},
		{"referrers of live manifests survive, transitively", func(t *testing.T, e *env) {
			img, _ := e.image("r", "v1", []byte("layer"))
			sig, _ := e.artifact("r", "", descOf(img))
			sigsig, _ := e.artifact("r", "", descOf(sig))
			child, _ := e.image("r", "", []byte("child layer"))
			e.index("r", "multi", child)
			childSig, _ := e.artifact("r", "", descOf(child))
			rep := e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("%+v", rep)
			}
			for _, m := range []*storage.Manifest{sig, sigsig, childSig} {
				if err := e.pullable("r", m.Digest.String()); err != nil {
					t.Fatal(err)
				}
			}
			refs, err := e.repo("r").Referrers(e.ctx, img.Digest, "")
			if err != nil || len(refs) != 1 || refs[0].Digest != sig.Digest {
				t.Fatalf("referrers %v %v", refs, err)
			}
		}},
		{"referrers of a removed manifest are removed", func(t *testing.T, e *env) {
			old, _ := e.image("r", "v1", []byte("old layer"))
			sig, sigBlob := e.artifact("r", "", descOf(old))
			e.image("r", "v1", []byte("new layer"))
			if rep := e.gc(Options{}); rep.ManifestsRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("without DeleteUntagged: %+v", rep)
			}
			rep := e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 2 {
				t.Fatalf("removed %d manifests, want 2", rep.ManifestsRemoved)
			}
			if e.hasBlob(sigBlob.Digest) || e.hasBlob(sig.Digest) {
				t.Fatal("artifact content left")
			}
			refs, err := e.repo("r").Referrers(e.ctx, old.Digest, "")
			if err != nil || len(refs) != 0 {
				t.Fatalf("referrers %v %v", refs, err)
			}
			if ps := pathsContaining(snapshot(t, e.d), sig.Digest.Encoded()); len(ps) != 0 {
				t.Fatalf("paths left: %v", ps)
			}
		}},
		{"a tagged artifact keeps itself, not its untagged subject", func(t *testing.T, e *env) {
			old, _ := e.image("r", "v1", []byte("old layer"))
			sig, _ := e.artifact("r", "sig", descOf(old))
			e.image("r", "v1", []byte("new layer"))
			rep := e.gc(Options{DeleteUntagged: true})
			if rep.ManifestsRemoved != 1 {
				t.Fatalf("%+v", rep)
			}
			if err := e.pullable("r", "sig"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.repo("r").GetManifest(e.ctx, old.Digest.String()); !storage.ErrNotFound(err) {
				t.Fatal(err)
			}
			_ = sig
		}},
		{"a blob linked but never referenced goes, with its link", func(t *testing.T, e *env) {
			stray := e.pushBlob("r", mtLayer, []byte("pushed, manifest never came"))
			e.image("r", "v1", []byte("layer"))
			rep := e.gc(Options{})
			if rep.BlobsRemoved != 1 || rep.LayerLinksRemoved != 1 || e.hasBlob(stray.Digest) {
				t.Fatalf("%+v", rep)
			}
			if err := e.pullable("r", "v1"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a link into another repository's live blob stays", func(t *testing.T, e *env) {
			img, descs := e.image("src", "v1", []byte("layer"))
			if _, err := e.repo("dst").MountBlob(e.ctx, e.repo("src"), descs[1].Digest); err != nil {
				t.Fatal(err)
			}
			rep := e.gc(Options{})
			if rep.LayerLinksRemoved != 0 || rep.BlobsRemoved != 0 {
				t.Fatalf("%+v", rep)
			}
			if _, err := e.repo("dst").StatBlob(e.ctx, descs[1].Digest); err != nil {
				t.Fatal(err)
			}
			_ = img
		}},
		{"foreign layers with urls are not needed in the store", func(t *testing.T, e *env) {
			cfg := e.pushBlob("win", mtConfig, []byte(`{"os":"windows"}`))
			local := e.pushBlob("win", mtLayer, []byte("local layer"))
			foreign := ocispec.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
				Digest: digest.FromString("not here"), Size: 7, URLs: []string{"https://example.com/layer"}}
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{foreign, local}}
			m.SchemaVersion = 2
			e.putManifest("win", "v1", m)
			if rep := e.gc(Options{DeleteUntagged: true}); rep.BlobsRemoved != 0 {
				t.Fatalf("%+v", rep)
			}
			if !e.hasBlob(local.Digest) || !e.hasBlob(cfg.Digest) {
				t.Fatal("local blobs removed")
			}
		}},
		{"a live manifest whose content is missing stops the collection", func(t *testing.T, e *env) {
			img, _ := e.image("r", "v1", []byte("layer"))
			e.pushBlob("r", mtLayer, []byte("garbage"))
			if err := e.d.Delete(e.ctx, findPath(t, e.d, img.Digest.Encoded(), "data")); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, e.d)
			for _, untagged := range []bool{false, true} {
				_, err := Run(e.ctx, storage.New(e.d, storage.Options{}), Options{DeleteUntagged: untagged})
				if err == nil || !strings.Contains(err.Error(), "r@"+img.Digest.String()) || !strings.Contains(err.Error(), "nothing was removed") {
					t.Fatalf("error %v", err)
				}
				if diff := diffSnapshots(before, snapshot(t, e.d)); diff != "" {
					t.Fatalf("store changed:\n%s", diff)
				}
			}
		}},
		{"a missing child of a live index is a warning", func(t *testing.T, e *env) {
			child, descs := e.image("r", "", []byte("child layer"))
			present, _ := e.image("r", "", []byte("present layer"))
			ix := e.index("r", "v1", child, present)
			// A sparse index, as the reference can store: the child was
			// never pushed (here: deleted, then its content lost).
			if err := e.repo("r").DeleteManifest(e.ctx, child.Digest); err != nil {
				t.Fatal(err)
			}
			if err := e.d.Delete(e.ctx, findPath(t, e.d, child.Digest.Encoded(), "data")); err != nil {
				t.Fatal(err)
			}
			rep, err := Run(e.ctx, storage.New(e.d, storage.Options{}), Options{DeleteUntagged: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], child.Digest.String()) {
				t.Fatalf("warnings %q", rep.Warnings)
			}
			if e.hasBlob(descs[1].Digest) {
				t.Fatal("layer of the missing child kept: nothing references it")
			}
			if err := e.pullable("r", present.Digest.String()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.repo("r").GetManifest(e.ctx, ix.Digest.String()); err != nil {
				t.Fatal(err)
			}
		}},
		{"old uploads are purged, only when asked", func(t *testing.T, e *env) {
			up, err := e.repo("r").NewUpload(e.ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(e.ctx, strings.NewReader("partial"), 0); err != nil {
				t.Fatal(err)
			}
			if rep := e.gc(Options{}); rep.UploadsRemoved != 0 {
				t.Fatalf("%+v", rep)
			}
			if rep := e.gc(Options{UploadsOlderThan: time.Hour}); rep.UploadsRemoved != 0 {
				t.Fatalf("fresh upload removed: %+v", rep)
			}
			if rep := e.gc(Options{UploadsOlderThan: time.Nanosecond, DryRun: true}); rep.UploadsRemoved != 1 {
				t.Fatalf("dry run: %+v", rep)
			}
			if _, err := e.repo("r").Upload(e.ctx, up.ID()); err != nil {
				t.Fatalf("dry run removed the upload: %v", err)
			}
			if rep := e.gc(Options{UploadsOlderThan: time.Nanosecond}); rep.UploadsRemoved != 1 {
				t.Fatalf("%+v", rep)
			}
			if _, err := e.repo("r").Upload(e.ctx, up.ID()); !storage.ErrNotFound(err) {
				t.Fatalf("upload still there: %v", err)
			}
		}},
		{"nested repository names are all collected", func(t *testing.T, e *env) {
			for _, name := range []string{"a", "a/b", "a/b/c", "z/y"} {
				e.image(name, "v1", []byte("layer of "+name))
				e.image(name, "v1", []byte("old layer of "+name))
				e.image(name, "v1", []byte("new layer of "+name))
			}
			rep := e.gc(Options{DeleteUntagged: true})
			if rep.Repositories != 4 || rep.ManifestsRemoved != 8 {
				t.Fatalf("%+v", rep)
			}
			for _, name := range []string{"a", "a/b", "a/b/c", "z/y"} {
				if err := e.pullable(name, "v1"); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newEnv(t)) })
	}
}

// mixedStore builds a store with garbage of every kind.
func mixedStore(e *env) {
	shared := []byte("shared")
	old, _ := e.image("one", "v1", shared, []byte("old"))
	e.artifact("one", "", descOf(old))
	e.image("one", "v1", shared, []byte("new"))
	c, _ := e.image("two/multi", "", shared)
	e.index("two/multi", "latest", c)
	gone, _ := e.image("two", "x", []byte("deleted"))
	if err := e.repo("two").DeleteManifest(e.ctx, gone.Digest); err != nil {
		e.t.Fatal(err)
	}
	e.pushBlob("three", mtLayer, []byte("stray"))
	up, err := e.repo("three").NewUpload(e.ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := up.Append(e.ctx, strings.NewReader("abandoned"), 0); err != nil {
		e.t.Fatal(err)
	}
}

func TestDryRunChangesNothingAndListsWhatARunRemoves(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run("DeleteUntagged="+map[bool]string{false: "false", true: "true"}[untagged], func(t *testing.T) {
			e := newEnv(t)
			mixedStore(e)
			before := snapshot(t, e.d)
			dry := e.gc(Options{DryRun: true, DeleteUntagged: untagged, UploadsOlderThan: time.Nanosecond})
			if diff := diffSnapshots(before, snapshot(t, e.d)); diff != "" {
				t.Fatalf("dry run changed the store:\n%s", diff)
			}
			if len(dry.Removed) == 0 || dry.BlobsRemoved == 0 || dry.UploadsRemoved != 1 {
				t.Fatalf("dry run found nothing: %+v", dry)
			}
			real := e.gc(Options{DeleteUntagged: untagged, ListRemoved: true, UploadsOlderThan: time.Nanosecond})
			if !reflect.DeepEqual(dry.Removed, real.Removed) {
				t.Fatalf("dry run listed\n%v\nrun removed\n%v", dry.Removed, real.Removed)
			}
			dry.Duration, real.Duration = 0, 0
			dry.DryRun = false
			if !reflect.DeepEqual(dry, real) {
				t.Fatalf("reports differ:\n%+v\n%+v", dry, real)
			}
			if diff := diffSnapshots(before, snapshot(t, e.d)); diff == "" {
				t.Fatal("run removed nothing")
			}
			// A second run finds nothing more.
			again := e.gc(Options{DeleteUntagged: untagged, UploadsOlderThan: time.Nanosecond})
			if again.BlobsRemoved+again.ManifestsRemoved+again.LayerLinksRemoved+again.UploadsRemoved != 0 {
				t.Fatalf("second run: %+v", again)
			}
		})
	}
}

// failingDriver fails reads or deletes of paths containing a string.
type failingDriver struct {
	driver.StorageDriver
	failRead, failDelete string
}

var errInjected = errors.New("injected I/O error")

func (f failingDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if f.failRead != "" && strings.Contains(p, f.failRead) {
		return nil, errInjected
	}
	return f.StorageDriver.GetContent(ctx, p)
}

func (f failingDriver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if f.failRead != "" && strings.Contains(p, f.failRead) {
		return nil, errInjected
	}
	return f.StorageDriver.Reader(ctx, p, offset)
}

func (f failingDriver) Delete(ctx context.Context, p string) error {
	if f.failDelete != "" && strings.Contains(p, f.failDelete) {
		return errInjected
	}
	return f.StorageDriver.Delete(ctx, p)
}

func TestFailuresKeepTheStoreConsistent(t *testing.T) {
	tests := []struct {
		name string
		// fail picks what to break given the store's two images.
		fail       func(live, dead *storage.Manifest) failingDriver
		wantIntact bool // nothing removed at all
	}{
		{"unreadable live manifest: mark fails, nothing removed", func(live, dead *storage.Manifest) failingDriver {
			return failingDriver{failRead: live.Digest.Encoded() + "/data"}
		}, true},
		{"unreadable tag: mark fails, nothing removed", func(live, dead *storage.Manifest) failingDriver {
			return failingDriver{failRead: "/tags/v1/current"}
		}, true},
		{"revision removal fails: its blobs stay", func(live, dead *storage.Manifest) failingDriver {
			return failingDriver{failDelete: "/revisions/sha256/" + dead.Digest.Encoded()}
		}, false},
		{"blob removal fails: the others go", func(live, dead *storage.Manifest) failingDriver {
			return failingDriver{failDelete: "/blobs/sha256/" + dead.Digest.Encoded()[:2] + "/" + dead.Digest.Encoded()}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			dead, _ := e.image("r", "v1", []byte("shared"), []byte("dead"))
			live, _ := e.image("r", "v1", []byte("shared"), []byte("live"))
			before := snapshot(t, e.d)
			fd := tc.fail(live, dead)
			fd.StorageDriver = e.d
			rep, err := Run(e.ctx, storage.New(fd, storage.Options{}), Options{DeleteUntagged: true})
			if !errors.Is(err, errInjected) {
				t.Fatalf("error %v, want the injected one", err)
			}
			if tc.wantIntact {
				if diff := diffSnapshots(before, snapshot(t, e.d)); diff != "" {
					t.Fatalf("store changed after a failed mark:\n%s", diff)
				}
				return
			}
			if err := e.pullable("r", "v1"); err != nil {
				t.Fatal(err)
			}
			// Whatever revisions are left can be pulled whole.
			if err := e.repo("r").Revisions(e.ctx, func(d digest.Digest) error {
				return e.pullable("r", d.String())
			}); err != nil {
				t.Fatalf("%v (report %+v)", err, rep)
			}
		})
	}
}

func TestGuardStopsBeforeRemoving(t *testing.T) {
	e := newEnv(t)
	mixedStore(e)
	before := snapshot(t, e.d)
	stop := errors.New("a writable registry appeared")
	calls := 0
	_, err := Run(e.ctx, storage.New(e.d, storage.Options{}), Options{
		DeleteUntagged: true,
		Guard: func(context.Context) error {
			calls++
			if calls > 1 { // fine before mark, not before the sweep
				return stop
			}
			return nil
		},
	})
	if !errors.Is(err, stop) {
		t.Fatalf("error %v", err)
	}
	if diff := diffSnapshots(before, snapshot(t, e.d)); diff != "" {
		t.Fatalf("store changed:\n%s", diff)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgress(t *testing.T) {
	e := newEnv(t)
	mixedStore(e)
	var out syncBuffer
	_, err := Run(e.ctx, storage.New(e.d, storage.Options{}), Options{
		Progress:      &out,
		ProgressEvery: time.Millisecond,
		Guard: func(context.Context) error {
			time.Sleep(5 * time.Millisecond)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "gc: ") || !strings.Contains(out.String(), "repositories") {
		t.Fatalf("progress %q", out.String())
	}
}

func TestSummary(t *testing.T) {
	r := Report{DryRun: true, DeleteUntagged: true, Repositories: 2, ManifestsRemoved: 3, BlobsRemoved: 4, BytesReclaimed: 3 << 20}
	s := r.Summary()
	for _, want := range []string{"dry run", "manifests would be removed: 3", "blobs would be removed: 4 (3.0 MiB)"} {
		if !strings.Contains(strings.Join(strings.Fields(s), " "), want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {5 << 30, "5.0 GiB"}} {
		if got := FormatBytes(c.n); got != c.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

// findPath returns the first path under the driver whose components
// include both a and b.
func findPath(t *testing.T, d driver.StorageDriver, a, b string) string {
	t.Helper()
	var found string
	_ = d.Walk(context.Background(), "/", func(fi driver.FileInfo) error {
		if found == "" && strings.Contains(fi.Path(), "/blobs/") && strings.Contains(fi.Path(), a) && strings.HasSuffix(fi.Path(), "/"+b) {
			found = fi.Path()
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no path with %s and %s", a, b)
	}
	return found
}
