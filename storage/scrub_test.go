package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// scrubFixture is a registry on disk with images to damage: repository
// app has image one (tags v1, latest) and two (tag v2), an index over both
// (tag multi), and a referrer of one; repository other shares one's layer.
type scrubFixture struct {
	t    *testing.T
	ctx  context.Context
	root string
	reg  *Registry
	app  *Repository

	cfg, layer1, layer2, shared digest.Digest
	one, two, index, referrer   digest.Digest
	content                     map[digest.Digest][]byte
}

func newScrubFixture(t *testing.T) *scrubFixture {
	t.Helper()
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	f := &scrubFixture{t: t, ctx: context.Background(), root: root, reg: New(d, Options{ManifestCacheBytes: -1}), content: map[digest.Digest][]byte{}}
	f.app = mustRepo(t, f.reg, "app")
	f.cfg = f.blob(f.app, []byte(`{"architecture":"amd64","os":"linux"}`))
	f.layer1 = f.blob(f.app, bytes.Repeat([]byte("layer one "), 50000))
	f.layer2 = f.blob(f.app, bytes.Repeat([]byte("layer two "), 3000))
	f.shared = f.blob(f.app, []byte("shared layer"))
	f.one = f.manifest(f.app, "v1", f.cfg, f.layer1, f.shared)
	f.tag(f.app, "latest", f.one)
	f.two = f.manifest(f.app, "v2", f.cfg, f.layer2)
	idx := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d},{"mediaType":"%s","digest":"%s","size":%d}]}`,
		MediaTypeOCIIndex, MediaTypeOCIManifest, f.one, len(f.content[f.one]), MediaTypeOCIManifest, f.two, len(f.content[f.two]))
	f.index = f.put(f.app, "multi", MediaTypeOCIIndex, idx)
	ref := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","artifactType":"application/x.sbom","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":%d},"layers":[],"subject":{"mediaType":"%s","digest":"%s","size":%d}}`,
		MediaTypeOCIManifest, f.cfg, len(f.content[f.cfg]), MediaTypeOCIManifest, f.one, len(f.content[f.one]))
	f.referrer = f.put(f.app, f.blobDigestRef(ref), MediaTypeOCIManifest, ref)
	other := mustRepo(t, f.reg, "team/other")
	f.blob(other, f.content[f.cfg])
	f.blob(other, f.content[f.shared])
	f.manifest(other, "base", f.cfg, f.shared)
	return f
}

func (f *scrubFixture) blobDigestRef(m string) string { return digest.FromString(m).String() }

func (f *scrubFixture) blob(repo *Repository, b []byte) digest.Digest {
	f.t.Helper()
	d := digest.FromBytes(b)
	up, err := repo.NewUpload(f.ctx, "")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := up.Commit(f.ctx, bytes.NewReader(b), -1, d); err != nil {
		f.t.Fatal(err)
	}
	f.content[d] = b
	return d
}

func (f *scrubFixture) put(repo *Repository, ref, mt, body string) digest.Digest {
	f.t.Helper()
	m, err := repo.PutManifest(f.ctx, ref, mt, []byte(body), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.content[m.Digest] = []byte(body)
	return m.Digest
}

func (f *scrubFixture) manifest(repo *Repository, tag string, cfg digest.Digest, layers ...digest.Digest) digest.Digest {
	f.t.Helper()
	var ls []string
	for _, l := range layers {
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}`, l, len(f.content[l])))
	}
	body := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[%s]}`,
		MediaTypeOCIManifest, cfg, len(f.content[cfg]), strings.Join(ls, ","))
	return f.put(repo, tag, MediaTypeOCIManifest, body)
}

func (f *scrubFixture) tag(repo *Repository, tag string, d digest.Digest) {
	f.t.Helper()
	if err := repo.tag(f.ctx, tag, d); err != nil {
		f.t.Fatal(err)
	}
}

// file is the on-disk path of a driver path.
func (f *scrubFixture) file(p string) string { return filepath.Join(f.root, filepath.FromSlash(p)) }

func (f *scrubFixture) write(p string, b []byte) {
	f.t.Helper()
	if err := os.WriteFile(f.file(p), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// corrupt flips one byte of blob d in the middle.
func (f *scrubFixture) corrupt(d digest.Digest) {
	f.t.Helper()
	b := slices.Clone(f.content[d])
	b[len(b)/2] ^= 0x20
	f.write(blobDataPath(d), b)
}

func (f *scrubFixture) scrub(repair bool) *ScrubReport {
	f.t.Helper()
	rep, err := f.reg.Scrub(f.ctx, ScrubOptions{Repair: repair})
	if err != nil {
		f.t.Fatalf("scrub: %v", err)
	}
	return rep
}

// want checks that rep found exactly the damage lines listed (by prefix,
// in any order).
func want(t *testing.T, rep *ScrubReport, lines ...string) {
	t.Helper()
	var got []string
	for _, d := range rep.Damage {
		got = append(got, d.String())
	}
	if len(got) != len(lines) {
		t.Fatalf("found %d damages, want %d:\n  %s", len(got), len(lines), strings.Join(got, "\n  "))
	}
	for _, w := range lines {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, w) || strings.Contains(g, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no damage like %q in:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
}

func TestScrubClean(t *testing.T) {
	f := newScrubFixture(t)
	rep := f.scrub(false)
	if rep.Damaged() {
		t.Fatalf("damage in a fresh registry: %v", rep.Damage)
	}
	if rep.Blobs != int64(len(f.content)) || rep.Repositories != 2 || rep.Manifests != 5 || rep.Tags != 5 {
		t.Errorf("checked %d blobs (of %d), %d repositories, %d manifests, %d tags", rep.Blobs, len(f.content), rep.Repositories, rep.Manifests, rep.Tags)
	}
	var total int64
	for _, b := range f.content {
		total += int64(len(b))
	}
	if rep.BlobBytes != total {
		t.Errorf("hashed %d bytes, want %d", rep.BlobBytes, total)
	}
}

// A layer whose bytes changed on disk: the blob, each image using it and
// the index over one of them are named, with their tags; --repair
// quarantines it (a pull gets 404, not the wrong bytes) and removes the
// links to it; pushing the layer again makes everything whole.
func TestScrubCorruptLayer(t *testing.T) {
	f := newScrubFixture(t)
	f.corrupt(f.shared)
	rep := f.scrub(false)
	want(t, rep,
		"blob "+f.shared.String()+": content does not match its digest",
		"image app@"+f.one.String()+" (tags: latest, multi, v1): layer "+f.shared.String()+" is damaged (content does not match",
		"image app@"+f.index.String()+" (tags: multi): child manifest "+f.one.String()+" is damaged",
		"image team/other@",
	)
	if rep.Quarantined != 0 {
		t.Fatal("quarantined without --repair")
	}
	rep = f.scrub(true)
	if rep.Quarantined != 1 || rep.Removed != 2 {
		t.Errorf("repair: %d quarantined, %d removed, want 1 and the 2 layer links", rep.Quarantined, rep.Removed)
	}
	if _, err := f.app.StatBlob(f.ctx, f.shared); !errcode.Is(err, errcode.BlobUnknown) {
		t.Fatalf("quarantined blob still served: %v", err)
	}
	qs, _ := filepath.Glob(f.file(quarantineDir(f.shared)) + "/*")
	if len(qs) != 1 {
		t.Fatalf("quarantine holds %v", qs)
	}
	if b, _ := os.ReadFile(qs[0]); len(b) != len(f.content[f.shared]) || bytes.Equal(b, f.content[f.shared]) {
		t.Fatalf("quarantine does not hold the damaged bytes")
	}
	// The images are still damaged, and say why; no link is left to
	// nothing.
	rep = f.scrub(true)
	want(t, rep, "image app@"+f.one.String(), "image app@"+f.index.String(), "image team/other@")
	if !strings.Contains(fmt.Sprint(rep.Damage), "layer "+f.shared.String()+" is missing from the store (quarantined earlier)") || rep.Count(DamageLink) != 0 {
		t.Errorf("after repair: %v", rep.Damage)
	}
	// Pushed again, whole: nothing left to report.
	f.blob(f.app, f.content[f.shared])
	f.blob(mustRepo(t, f.reg, "team/other"), f.content[f.shared])
	if rep := f.scrub(false); rep.Damaged() {
		t.Fatalf("after the layer was pushed again: %v", rep.Damage)
	}
}

// A manifest whose bytes changed: the image and those above it are
// damaged; --repair quarantines it and removes its revision link and
// tags, so a pull by tag or digest is 404.
func TestScrubCorruptManifest(t *testing.T) {
	f := newScrubFixture(t)
	f.corrupt(f.two)
	want(t, f.scrub(false),
		"blob "+f.two.String(),
		"image app@"+f.two.String()+" (tags: multi, v2): manifest is damaged (content does not match",
		"image app@"+f.index.String()+" (tags: multi): child manifest "+f.two.String()+" is damaged",
	)
	rep := f.scrub(true)
	want(t, rep,
		"blob "+f.two.String(),
		"image app@"+f.two.String()+" (tags: multi, v2)",
		"image app@"+f.index.String(),
		"tag app:v2: points at "+f.two.String()+", whose damaged manifest was removed [removed]",
	)
	for _, ref := range []string{"v2", f.two.String()} {
		if _, err := f.app.GetManifest(f.ctx, ref); !errcode.Is(err, errcode.ManifestUnknown) {
			t.Errorf("GET %s after repair: %v", ref, err)
		}
	}
	if tags, _, _ := f.app.Tags(f.ctx, "", -1); slices.Contains(tags, "v2") {
		t.Errorf("tag v2 still listed: %v", tags)
	}
	// One intact, the other images unharmed.
	if m, err := f.app.GetManifest(f.ctx, "v1"); err != nil || m.Digest != f.one {
		t.Fatalf("v1 after repair: %v", err)
	}
}

// Torn links (distribution#4489: empty link files after a crash), links
// that name another digest, and links to nothing: named, and repaired by
// writing them again from their path when the content is whole, by
// removing them when it is not there.
func TestScrubLinks(t *testing.T) {
	f := newScrubFixture(t)
	f.write(layerLinkPath("app", f.layer1), nil)
	f.write(layerLinkPath("app", f.layer2), []byte("sha256:12"))
	f.write(revisionLinkPath("app", f.two), []byte(f.one.String()))
	f.write(tagCurrentPath("app", "latest"), []byte("   "))
	missing := digest.FromString("never pushed")
	if err := f.reg.writeLink(f.ctx, layerLinkPath("app", missing), missing); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.writeLink(f.ctx, tagCurrentPath("app", "ghost"), missing); err != nil {
		t.Fatal(err)
	}
	f.write(tagIndexPath("app", "v1", f.one), nil)
	if err := f.reg.writeLink(f.ctx, referrerLinkPath("app", f.two, missing), missing); err != nil {
		t.Fatal(err)
	}
	rep := f.scrub(true)
	want(t, rep,
		"layer link app "+f.layer1.String()+": empty link file (torn by a crash) [rewritten]",
		"layer link app "+f.layer2.String()+": torn link file (\"sha256:12\" is no digest) [rewritten]",
		"layer link app "+missing.String()+": the blob is missing from the store [removed]",
		"revision link app "+f.two.String()+": names "+f.one.String()+", not the "+f.two.String()+" of its path [rewritten]",
		"tag app:latest: empty link file (torn by a crash) [removed]",
		"tag app:ghost: points at "+missing.String()+", which is no manifest of the repository [removed]",
		"tag history link app "+f.one.String()+" (tag v1): empty link file (torn by a crash) [rewritten]",
		"referrer link app "+missing.String()+": names no manifest of the repository [removed]",
	)
	// Whole again: pulls work, and a second scrub finds nothing.
	for _, d := range []digest.Digest{f.layer1, f.layer2} {
		if _, err := f.app.StatBlob(f.ctx, d); err != nil {
			t.Errorf("layer %s after repair: %v", d, err)
		}
	}
	if m, err := f.app.GetManifest(f.ctx, f.two.String()); err != nil || m.Digest != f.two {
		t.Errorf("manifest two by digest after repair: %v", err)
	}
	if rep := f.scrub(false); rep.Damaged() {
		t.Fatalf("after repair: %v", rep.Damage)
	}
	// A link to nothing left in the listing is gone.
	if tags, _, _ := f.app.Tags(f.ctx, "", -1); slices.Contains(tags, "ghost") || slices.Contains(tags, "latest") {
		t.Errorf("tags after repair: %v", tags)
	}
}

// The rate limit holds the pace of reading (and a cancelled scrub says
// it did not finish).
func TestScrubRateLimitAndCancel(t *testing.T) {
	f := newScrubFixture(t)
	var total int64
	for _, b := range f.content {
		total += int64(len(b))
	}
	ctx, cancel := context.WithCancel(f.ctx)
	var seen int64
	_, err := f.reg.Scrub(ctx, ScrubOptions{BytesPerSecond: 1 << 10, OnBytes: func(n int64) {
		seen += n
		cancel()
	}})
	if err == nil {
		t.Fatalf("a scrub cancelled after %d bytes finished", seen)
	}
	if seen > scrubChunk {
		t.Errorf("read %d bytes at 1 KiB/s before being cancelled", seen)
	}
}

// The rate limit is a floor on the time a scrub takes: past the first
// second's worth (the burst), content is read at the rate given.
func TestScrubPaced(t *testing.T) {
	f := newScrubFixture(t)
	const rate = 300 << 10
	start := time.Now()
	rep, err := f.reg.Scrub(f.ctx, ScrubOptions{BytesPerSecond: rate})
	if err != nil {
		t.Fatal(err)
	}
	floor := time.Duration(float64(rep.BlobBytes-rate) / rate * float64(time.Second))
	if el := time.Since(start); el < floor {
		t.Fatalf("%d bytes at %d B/s in %s, less than %s", rep.BlobBytes, rate, el, floor)
	}
}
