package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// The races of issue 14, each forced at the exact interleaving with pause
// points (gc.Hooks in the collector, storage.GCHooks in the writer), on
// every store. Each asserts what the client sees: its request succeeds and
// the content stays, or it gets the documented 4xx and its retry
// succeeds; never a 201 followed by a broken image.

// gate pauses the first goroutine that reaches it until the test opens it.
type gate struct {
	hit, release chan struct{}
	fired        atomic.Bool
}

func newGate() *gate { return &gate{hit: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) pause() {
	if g.fired.CompareAndSwap(false, true) {
		close(g.hit)
		<-g.release
	}
}

func (g *gate) reached(t *testing.T) {
	t.Helper()
	select {
	case <-g.hit:
	case <-time.After(2 * time.Minute):
		t.Fatal("the paused side never reached its pause point")
	}
}

func (g *gate) open() { close(g.release) }

// hooked is an onlineEnv whose collector has test hooks.
func hooked(t *testing.T, open func() driver.StorageDriver, deleteUntagged bool) (*onlineEnv, *Hooks) {
	h := &Hooks{}
	o := newOnlineEnv(t, open, func(opts *OnlineOptions) {
		opts.Hooks = h
		opts.DeleteUntagged = deleteUntagged
		opts.Workers = 1 // repositories marked in walk order
	})
	return o, h
}

// runGCAsync runs the collector in the background.
func (o *onlineEnv) runGCAsync() <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := o.col.RunOnce(o.ctx)
		done <- err
	}()
	return done
}

func waitRun(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gc run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("gc run did not end")
	}
}

// pauseDelete pauses the collector before it deletes, in pass, a batch
// holding digest d.
func pauseDelete(h *Hooks, pass string, d digest.Digest) *gate {
	g := newGate()
	h.BeforeDelete = func(ctx context.Context, p string, items []storage.GCItem) {
		if p != pass {
			return
		}
		for _, it := range items {
			if it.Digest == d {
				g.pause()
				return
			}
		}
	}
	return g
}

func manifestJSON(t *testing.T, cfg ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (o *onlineEnv) put(repo, ref string, b []byte) error {
	mt := ocispec.MediaTypeImageManifest
	if bytes.Contains(b, []byte(`"manifests"`)) {
		mt = ocispec.MediaTypeImageIndex
	}
	if ref == "" {
		ref = digest.FromBytes(b).String()
	}
	_, err := o.repo(repo).PutManifest(o.ctx, ref, mt, b, nil)
	return err
}

// pushAgain is a client's retry of a push: blobs the registry says it
// lacks (HEAD) are uploaded, then the manifest is put.
func (o *onlineEnv) pushAgain(repo, ref string, m []byte, blobs map[digest.Digest][]byte) error {
	for d, b := range blobs {
		if _, err := o.repo(repo).StatBlob(o.ctx, d); err == nil {
			continue
		}
		up, err := o.repo(repo).NewUpload(o.ctx, "")
		if err != nil {
			return err
		}
		if _, err := up.Commit(o.ctx, bytes.NewReader(b), 0, d); err != nil {
			return err
		}
	}
	return o.put(repo, ref, m)
}

func wantCode(t *testing.T, err error, code errcode.Code, what string) {
	t.Helper()
	if !errcode.Is(err, code) {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

func (o *onlineEnv) mustPull(repo, ref string) {
	o.t.Helper()
	if err := o.pullable(repo, ref); err != nil {
		o.t.Fatalf("%s:%s is broken: %v", repo, ref, err)
	}
}

// TestRaceHeadSweepPut: a client HEADs a blob (200), the collector deletes
// it, the client PUTs a manifest referencing it. The PUT must not succeed
// with the blob gone: MANIFEST_BLOB_UNKNOWN, whichever pass is deleting
// it; the client's retry (HEAD says 404 now, so it uploads) succeeds. And
// a HEAD while the blob is condemned pins it: the sweep keeps it.
func TestRaceHeadSweepPut(t *testing.T) {
	eachStoreFresh(t, func(t *testing.T, fresh func(t *testing.T) func() driver.StorageDriver) {
		for _, pass := range []string{storage.GCPassLinks, storage.GCPassBlobs} {
			t.Run(pass, func(t *testing.T) {
				o, h := hooked(t, fresh(t), false)
				layer := []byte("layer-" + pass)
				cfgB := []byte(`{"cfg":"` + pass + `"}`)
				l := o.pushBlob("app", mtLayer, layer)
				cfg := o.pushBlob("app", mtConfig, cfgB)
				m := manifestJSON(t, cfg, l)
				// HEAD before any plan: 200, nothing to pin.
				if _, err := o.repo("app").StatBlob(o.ctx, l.Digest); err != nil {
					t.Fatal(err)
				}
				o.age()
				if rep := o.runGC(); rep.Condemned.Blobs != 2 {
					t.Fatalf("plan condemned %+v", rep.Condemned)
				}
				o.age()
				g := pauseDelete(h, pass, l.Digest)
				done := o.runGCAsync()
				g.reached(t)
				err := o.put("app", "v1", m)
				wantCode(t, err, errcode.ManifestBlobUnknown, "PUT of a manifest whose layer is being swept")
				if _, err := o.repo("app").StatBlob(o.ctx, l.Digest); !errcode.Is(err, errcode.BlobUnknown) {
					t.Fatalf("HEAD of a blob being swept: %v, want BLOB_UNKNOWN", err)
				}
				g.open()
				waitRun(t, done)
				if err := o.pushAgain("app", "v1", m, map[digest.Digest][]byte{l.Digest: layer, cfg.Digest: cfgB}); err != nil {
					t.Fatalf("retried push: %v", err)
				}
				o.mustPull("app", "v1")
				o.collect()
				o.mustPull("app", "v1")
			})
		}
		t.Run("pinned", func(t *testing.T) {
			o, _ := hooked(t, fresh(t), false)
			layer, cfgB := []byte("pinned layer"), []byte(`{"cfg":"pinned"}`)
			l := o.pushBlob("app", mtLayer, layer)
			cfg := o.pushBlob("app", mtConfig, cfgB)
			o.age()
			o.runGC()
			// HEAD while condemned: 200, and the blob is pinned.
			for _, d := range []digest.Digest{l.Digest, cfg.Digest} {
				if _, err := o.repo("app").StatBlob(o.ctx, d); err != nil {
					t.Fatalf("HEAD of a condemned blob: %v", err)
				}
			}
			o.age()
			rep := o.runGC()
			if rep.Deleted.Blobs != 0 || rep.Resurrected < 2 {
				t.Fatalf("sweep after HEADs: deleted %+v, resurrected %d", rep.Deleted, rep.Resurrected)
			}
			if err := o.put("app", "v1", manifestJSON(t, cfg, l)); err != nil {
				t.Fatalf("PUT after the HEADs: %v", err)
			}
			o.mustPull("app", "v1")
			o.collect()
			o.mustPull("app", "v1")
		})
	})
}

// TestRaceStaleWriter: a writer decides on a state read before the sweep
// moved its cursor (it pins, then pauses before committing); the sweep
// finds the pin at its next listing and keeps the blob; the writer's
// commit, checked again on a fresh state, goes through, and the image is
// whole.
func TestRaceStaleWriter(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o, h := hooked(t, open, false)
		l := o.pushBlob("app", mtLayer, []byte("stale layer"))
		cfg := o.pushBlob("app", mtConfig, []byte(`{"cfg":"stale"}`))
		o.age()
		o.runGC()
		o.age()
		// The writer pins under the condemned state and waits.
		wg := newGate()
		o.hooks.BeforeCommit = func(ctx context.Context, op string, ds []digest.Digest) {
			if op == "manifest" {
				wg.pause()
			}
		}
		put := make(chan error, 1)
		go func() { put <- o.put("app", "v1", manifestJSON(t, cfg, l)) }()
		wg.reached(t)
		// The sweep moves past the layer, lists the pins: kept.
		deleted := false
		h.BeforeDelete = func(ctx context.Context, pass string, items []storage.GCItem) {
			for _, it := range items {
				if it.Digest == l.Digest || it.Digest == cfg.Digest {
					deleted = true
				}
			}
		}
		done := o.runGCAsync()
		waitRun(t, done)
		if deleted {
			t.Fatal("the sweep deleted a pinned blob")
		}
		wg.open()
		if err := <-put; err != nil {
			t.Fatalf("the paused PUT: %v", err)
		}
		o.mustPull("app", "v1")
		o.collect()
		o.mustPull("app", "v1")
	})
}

// TestRaceMountWhileSwept: a cross-repository mount of a blob being swept
// is refused (the client gets an upload session and uploads), the upload
// waits for the deletion and writes the blob anew; a mount of a condemned
// blob pins it.
func TestRaceMountWhileSwept(t *testing.T) {
	eachStoreFresh(t, func(t *testing.T, fresh func(t *testing.T) func() driver.StorageDriver) {
		t.Run("swept", func(t *testing.T) {
			o, h := hooked(t, fresh(t), false)
			layer := []byte("mounted layer")
			l := o.pushBlob("src", mtLayer, layer)
			o.age()
			o.runGC()
			o.age()
			g := pauseDelete(h, storage.GCPassBlobs, l.Digest)
			done := o.runGCAsync()
			g.reached(t)
			src := o.repo("src")
			if _, err := o.repo("dst").MountBlob(o.ctx, src, l.Digest); !errcode.Is(err, errcode.BlobUnknown) {
				t.Fatalf("mount of a blob being swept: %v, want BLOB_UNKNOWN (then an upload)", err)
			}
			// The upload of the same bytes finishes while the blob is being
			// deleted: it waits, then stores it anew.
			waits := o.reg.GCProtocolStats().Waits
			up, err := o.repo("dst").NewUpload(o.ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			committed := make(chan error, 1)
			go func() {
				_, err := up.Commit(o.ctx, bytes.NewReader(layer), 0, l.Digest)
				committed <- err
			}()
			for o.reg.GCProtocolStats().Waits == waits {
				time.Sleep(5 * time.Millisecond)
			}
			g.open()
			waitRun(t, done)
			if err := <-committed; err != nil {
				t.Fatalf("upload during the sweep: %v", err)
			}
			cfg := o.pushBlob("dst", mtConfig, []byte(`{"cfg":"dst"}`))
			if err := o.put("dst", "v1", manifestJSON(t, cfg, l)); err != nil {
				t.Fatal(err)
			}
			o.mustPull("dst", "v1")
			o.collect()
			o.mustPull("dst", "v1")
		})
		t.Run("condemned", func(t *testing.T) {
			o, _ := hooked(t, fresh(t), false)
			l := o.pushBlob("src", mtLayer, []byte("mounted while condemned"))
			o.age()
			o.runGC()
			if _, err := o.repo("dst").MountBlob(o.ctx, o.repo("src"), l.Digest); err != nil {
				t.Fatalf("mount of a condemned blob: %v", err)
			}
			cfg := o.pushBlob("dst", mtConfig, []byte(`{"cfg":"mounted"}`))
			if err := o.put("dst", "v1", manifestJSON(t, cfg, l)); err != nil {
				t.Fatal(err)
			}
			o.age()
			o.runGC()
			o.mustPull("dst", "v1")
			o.collect()
			o.mustPull("dst", "v1")
		})
	})
}

// TestRaceUploadDuringLinksPass: an upload finishes while the sweep is
// deleting the repository's link to its blob (the first pass): it waits
// for the link's deletion, pins the blob (whose turn is to come) and links
// it again; the blob stays.
func TestRaceUploadDuringLinksPass(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o, h := hooked(t, open, false)
		layer := []byte("uploaded during the links pass")
		l := o.pushBlob("app", mtLayer, layer)
		up, err := o.repo("app").NewUpload(o.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Append(o.ctx, bytes.NewReader(layer[:10]), 0); err != nil {
			t.Fatal(err)
		}
		o.age()
		o.runGC()
		o.age()
		g := pauseDelete(h, storage.GCPassLinks, l.Digest)
		done := o.runGCAsync()
		g.reached(t)
		waits := o.reg.GCProtocolStats().Waits
		committed := make(chan error, 1)
		go func() {
			_, err := up.Commit(o.ctx, bytes.NewReader(layer[10:]), 10, l.Digest)
			committed <- err
		}()
		for o.reg.GCProtocolStats().Waits == waits {
			time.Sleep(5 * time.Millisecond)
		}
		g.open()
		waitRun(t, done)
		if err := <-committed; err != nil {
			t.Fatalf("upload during the sweep: %v", err)
		}
		cfg := o.pushBlob("app", mtConfig, []byte(`{"cfg":"links pass"}`))
		if err := o.put("app", "v1", manifestJSON(t, cfg, l)); err != nil {
			t.Fatal(err)
		}
		o.mustPull("app", "v1")
		o.collect()
		o.mustPull("app", "v1")
	})
}

// TestRaceReferenceMovesDuringMark: during the re-check mark, after one
// repository was marked and before another, an image's last reference
// moves from the second to the first (a mount and a push there, the tag
// and manifest deleted here). The mark misses the layer; the writer's pins
// keep it.
func TestRaceReferenceMovesDuringMark(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o, h := hooked(t, open, false)
		x, xBlobs := o.image("b-old", "x", []byte("moving layer"))
		layer := xBlobs[1]
		o.age()
		o.runGC() // the layer is live: not condemned
		if err := o.repo("b-old").DeleteManifest(o.ctx, x.Digest); err != nil {
			t.Fatal(err)
		}
		o.age()
		if rep := o.runGC(); rep.Condemned.Blobs != 3 {
			t.Fatalf("plan: %+v", rep.Condemned)
		}
		o.age()
		g := newGate()
		h.BeforeMarkRepo = func(ctx context.Context, repo string) {
			if repo == "b-old" {
				g.pause()
			}
		}
		done := o.runGCAsync()
		g.reached(t) // "a-new" is marked already
		if _, err := o.repo("a-new").MountBlob(o.ctx, o.repo("b-old"), layer.Digest); err != nil {
			t.Fatalf("mount of the condemned layer: %v", err)
		}
		cfg := o.pushBlob("a-new", mtConfig, []byte(`{"cfg":"moved"}`))
		if err := o.put("a-new", "y", manifestJSON(t, cfg, layer)); err != nil {
			t.Fatalf("push during the mark: %v", err)
		}
		g.open()
		waitRun(t, done)
		o.mustPull("a-new", "y")
		o.collect()
		o.mustPull("a-new", "y")
	})
}

// TestRaceIndexOfCondemnedChild (untagged collection): an index is pushed
// whose child is an old untagged manifest the plan condemned. Pushed after
// the re-check mark, it pins the child, and the sweep keeps the child with
// everything it references. Pushed while the sweep deletes the child, it
// is MANIFEST_BLOB_UNKNOWN, and the client's retry (child again, then the
// index) succeeds.
func TestRaceIndexOfCondemnedChild(t *testing.T) {
	eachStoreFresh(t, func(t *testing.T, fresh func(t *testing.T) func() driver.StorageDriver) {
		t.Run("after-mark", func(t *testing.T) {
			o, h := hooked(t, fresh(t), true)
			child, _ := o.image("app", "", []byte("child layer"))
			o.age()
			if rep := o.runGC(); rep.Condemned.Manifests != 1 {
				t.Fatalf("plan: %+v", rep.Condemned)
			}
			o.age()
			g := newGate()
			h.AfterMark = func(ctx context.Context) { g.pause() }
			done := o.runGCAsync()
			g.reached(t)
			ix := o.index("app", "multi", child)
			g.open()
			waitRun(t, done)
			o.mustPull("app", "multi")
			o.collect()
			o.mustPull("app", "multi")
			_ = ix
		})
		t.Run("while-swept", func(t *testing.T) {
			o, h := hooked(t, fresh(t), true)
			layer := []byte("swept child layer")
			cfgB := []byte(`{"cfg":"swept child"}`)
			l := o.pushBlob("app", mtLayer, layer)
			cfg := o.pushBlob("app", mtConfig, cfgB)
			childB := manifestJSON(t, cfg, l)
			if err := o.put("app", "", childB); err != nil {
				t.Fatal(err)
			}
			child := digest.FromBytes(childB)
			o.age()
			o.runGC()
			o.age()
			g := pauseDelete(h, storage.GCPassLinks, child)
			done := o.runGCAsync()
			g.reached(t)
			ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
				{MediaType: ocispec.MediaTypeImageManifest, Digest: child, Size: int64(len(childB))}}}
			ix.SchemaVersion = 2
			ixB, _ := json.Marshal(ix)
			wantCode(t, o.put("app", "multi", ixB), errcode.ManifestBlobUnknown, "index of a child being swept")
			if _, err := o.repo("app").GetManifest(o.ctx, child.String()); !errcode.Is(err, errcode.ManifestUnknown) {
				t.Fatalf("GET of a manifest being swept: %v, want MANIFEST_UNKNOWN", err)
			}
			g.open()
			waitRun(t, done)
			blobs := map[digest.Digest][]byte{l.Digest: layer, cfg.Digest: cfgB}
			if err := o.pushAgain("app", "", childB, blobs); err != nil {
				t.Fatalf("child pushed again: %v", err)
			}
			if err := o.put("app", "multi", ixB); err != nil {
				t.Fatalf("index pushed again: %v", err)
			}
			o.mustPull("app", "multi")
			o.collect()
			o.mustPull("app", "multi")
		})
	})
}

// TestRaceReferrerOfSweptSubject (untagged collection): a referrer is
// pushed for a subject the sweep is deleting. The subject need not exist;
// the referrer is accepted and stays whole.
func TestRaceReferrerOfSweptSubject(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o, h := hooked(t, open, true)
		subject, _ := o.image("app", "", []byte("subject layer"))
		o.age()
		o.runGC()
		o.age()
		g := pauseDelete(h, storage.GCPassLinks, subject.Digest)
		done := o.runGCAsync()
		g.reached(t)
		ref, _ := o.artifact("app", "sig", descOf(subject))
		g.open()
		waitRun(t, done)
		o.mustPull("app", "sig")
		o.mustPull("app", ref.Digest.String())
		o.collect()
		o.mustPull("app", "sig")
	})
}
