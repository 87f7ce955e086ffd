package gc

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage/driver"
)

// TestOnlineCollects: garbage is condemned by one run, swept by the next
// after the delay; live images stay whole; garbage younger than the delay
// is not condemned.
func TestOnlineCollects(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o := newOnlineEnv(t, open, nil)
		keep, _ := o.image("app", "v1", []byte("shared layer"), []byte("keep layer"))
		gone, goneBlobs := o.image("app", "v2", []byte("shared layer"), []byte("gone layer"))
		o.age()
		if err := o.repo("app").DeleteManifest(o.ctx, gone.Digest); err != nil {
			t.Fatal(err)
		}
		young, youngBlobs := o.image("app", "", []byte("young layer"))
		if err := o.repo("app").DeleteManifest(o.ctx, young.Digest); err != nil {
			t.Fatal(err)
		}
		plan := o.runGC()
		if plan.Plan == "" || plan.SweptPlan != "" {
			t.Fatalf("first run: plan %q, swept %q", plan.Plan, plan.SweptPlan)
		}
		// The gone image's config, unique layer and manifest blob, and its
		// links; not the shared layer, not the young image.
		if plan.Condemned.Blobs != 3 || plan.Condemned.LayerLinks != 2 {
			t.Fatalf("condemned %+v, want 3 blobs and 2 links", plan.Condemned)
		}
		if !o.hasBlob(gone.Digest) {
			t.Fatal("the first run deleted something")
		}
		// Not due: a run before the delay changes nothing.
		again := o.runGC()
		if again.Plan != plan.Plan || again.Deleted.Total() != 0 {
			t.Fatalf("run before the delay: %+v", again)
		}
		o.age()
		sweep := o.runGC()
		if sweep.SweptPlan != plan.Plan || sweep.Deleted.Blobs != 3 || sweep.Deleted.LayerLinks != 2 {
			t.Fatalf("sweep: swept %q, deleted %+v", sweep.SweptPlan, sweep.Deleted)
		}
		for _, b := range []string{gone.Digest.String(), goneBlobs[0].Digest.String(), goneBlobs[2].Digest.String()} {
			for d := range o.blobs() {
				if d.String() == b {
					t.Fatalf("%s survived the sweep", b)
				}
			}
		}
		if err := o.pullable("app", "v1"); err != nil {
			t.Fatalf("live image broken: %v", err)
		}
		_ = keep
		// The young garbage was condemned by the sweeping run (it is old
		// now), and goes with the next.
		if !o.hasBlob(youngBlobs[1].Digest) {
			t.Fatal("young garbage deleted without a plan")
		}
		o.age()
		last := o.runGC()
		if last.Deleted.Blobs != 3 {
			t.Fatalf("third run deleted %+v, want the young image's 3 blobs", last.Deleted)
		}
		if err := o.pullable("app", "v1"); err != nil {
			t.Fatalf("live image broken: %v", err)
		}
		runs, err := o.col.Runs(o.ctx)
		if err != nil || len(runs) != 4 || runs[0].ID != last.ID || runs[0].Result != ResultOK {
			t.Fatalf("stored runs: %d, %v (newest %+v)", len(runs), err, runs)
		}
	})
}

// TestOnlineYoungLinkKeepsOldBlob: a push that finds its layer already in
// the store (the garbage of an image deleted earlier) keeps the old file
// and writes only a link; while its manifest has not come, the young link
// keeps the blob from being condemned, so the push completes even when
// its manifest comes after a sweep.
func TestOnlineYoungLinkKeepsOldBlob(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		o := newOnlineEnv(t, open, nil)
		layer := []byte("a layer pushed again after its image was deleted")
		gone, goneBlobs := o.image("app", "", layer)
		if err := o.repo("app").DeleteManifest(o.ctx, gone.Digest); err != nil {
			t.Fatal(err)
		}
		o.age()
		// The push of an image with that layer into another repository:
		// its blobs, not yet its manifest.
		cfg := o.pushBlob("other", mtConfig, []byte(`{"config":"other"}`))
		l := o.pushBlob("other", mtLayer, layer)
		plan := o.runGC()
		// The deleted image's config and manifest and app's two links;
		// not the layer, which other's young link holds.
		if plan.Condemned.Blobs != 2 || plan.Condemned.LayerLinks != 2 {
			t.Fatalf("condemned %+v, want 2 blobs and 2 links", plan.Condemned)
		}
		o.age()
		if sweep := o.runGC(); sweep.SweptPlan != plan.Plan || sweep.Deleted.Blobs != 2 {
			t.Fatalf("sweep: swept %q, deleted %+v", sweep.SweptPlan, sweep.Deleted)
		}
		if !o.hasBlob(goneBlobs[1].Digest) {
			t.Fatal("the layer a push in progress relies on was deleted")
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}}
		m.SchemaVersion = 2
		o.putManifest("other", "v1", m)
		if err := o.pullable("other", "v1"); err != nil {
			t.Fatalf("the image pushed after the sweep: %v", err)
		}
	})
}
