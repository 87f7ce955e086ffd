package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
)

// runScrub runs `registryd scrub args...` and returns its exit status and
// what it printed.
func runScrub(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, registrydBin, append([]string{"scrub"}, args...)...)
	cmd.Env = serverEnv(nil)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String() + errOut.String()
	}
	t.Fatalf("registryd scrub: %v\n%s", err, errOut.String())
	return -1, ""
}

// scrubImages pushes two images into the server: app:v1 (config, layer
// a) and app:v2 (config, layer b). It returns the digests.
type scrubImages struct {
	cfg, layerA, layerB, v1, v2 string
	content                     map[string][]byte
}

func pushScrubImages(t *testing.T, s *Server) scrubImages {
	t.Helper()
	im := scrubImages{content: map[string][]byte{}}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	a := bytes.Repeat([]byte("layer a, damaged on the storage "), 40000)
	b := bytes.Repeat([]byte("layer b, intact "), 1000)
	im.cfg, im.layerA, im.layerB = pushBlobHTTP(t, s, "scrub/app", cfg), pushBlobHTTP(t, s, "scrub/app", a), pushBlobHTTP(t, s, "scrub/app", b)
	im.content[im.cfg], im.content[im.layerA], im.content[im.layerB] = cfg, a, b
	for _, x := range []struct {
		tag, layer string
		dst        *string
	}{{"v1", im.layerA, &im.v1}, {"v2", im.layerB, &im.v2}} {
		m := imageManifest(im.cfg, len(cfg), x.layer, len(im.content[x.layer]))
		r := doHTTP(t, http.MethodPut, s.URL("/v2/scrub/app/manifests/"+x.tag), http.Header{"Content-Type": {mtOCIManifest}}, m)
		if r.Status != http.StatusCreated {
			t.Fatalf("push %s: %s", x.tag, r)
		}
		*x.dst = sha256Digest(m)
	}
	return im
}

func blobKey(d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	return "docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/data"
}

// checkScrubFinds runs scrub on a damaged storage (a layer's bytes
// changed, the other layer's link emptied) and then with --repair: the
// damage is named with its repository and tags, the damaged layer is then
// 404 where it was served with the wrong bytes, the emptied link works
// again, and the intact image is untouched.
func checkScrubFinds(t *testing.T, s *Server, im scrubImages) {
	t.Helper()
	// While damaged, the registry serves what the storage holds.
	if r := getBlob(t, s, "scrub/app", im.layerA); r.Status != http.StatusOK || bytes.Equal(r.Body, im.content[im.layerA]) {
		t.Fatalf("before the scrub, the damaged layer: %s", r)
	}
	code, out := runScrub(t, s.Config)
	if code != 1 {
		t.Fatalf("scrub of a damaged storage: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"blob " + im.layerA + ": content does not match its digest",
		"image scrub/app@" + im.v1 + " (tags: v1): layer " + im.layerA + " is damaged",
		"layer link scrub/app " + im.layerB + ": empty link file",
		// Its layer cannot be pulled from the repository while the
		// link is torn.
		"image scrub/app@" + im.v2 + " (tags: v2): layer " + im.layerB + " is linked by a damaged link (empty link file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrub output lacks %q:\n%s", want, out)
		}
	}
	code, out = runScrub(t, "--repair", s.Config)
	if code != 1 || !strings.Contains(out, "[quarantined]") || !strings.Contains(out, "[rewritten]") {
		t.Fatalf("scrub --repair: exit %d\n%s", code, out)
	}
	if r := getBlob(t, s, "scrub/app", im.layerA); r.Status != http.StatusNotFound {
		t.Fatalf("after repair, the damaged layer: %s, want 404", r)
	}
	for _, d := range []string{im.layerB, im.cfg} {
		if r := getBlob(t, s, "scrub/app", d); r.Status != http.StatusOK || !bytes.Equal(r.Body, im.content[d]) {
			t.Fatalf("after repair, blob %s: %s", d, r)
		}
	}
	if r := getManifest(t, s, "scrub/app", "v2"); r.Status != http.StatusOK {
		t.Fatalf("after repair, the intact image: %s", r)
	}
	// Pushing the layer again makes it whole: nothing left to report.
	pushBlobHTTP(t, s, "scrub/app", im.content[im.layerA])
	if code, out := runScrub(t, s.Config); code != 0 || !strings.Contains(out, "nothing damaged") {
		t.Fatalf("after the layer was pushed again: exit %d\n%s", code, out)
	}
}

// TestScrubDisk: damage planted in the files of a filesystem storage.
func TestScrubDisk(t *testing.T) {
	s := startRegistryd(t)
	im := pushScrubImages(t, s)
	if code, out := runScrub(t, s.Config); code != 0 {
		t.Fatalf("scrub of an intact storage: exit %d\n%s", code, out)
	}
	bad := bytes.ToUpper(im.content[im.layerA])
	must(t, os.WriteFile(filepath.Join(s.RootDir, blobKey(im.layerA)), bad, 0o644))
	hex := strings.TrimPrefix(im.layerB, "sha256:")
	must(t, os.WriteFile(filepath.Join(s.RootDir, "docker/registry/v2/repositories/scrub/app/_layers/sha256", hex, "link"), nil, 0o644))
	checkScrubFinds(t, s, im)
	if qs, _ := filepath.Glob(filepath.Join(s.RootDir, "docker/registry/v2/_registryd/quarantine/sha256", strings.TrimPrefix(im.layerA, "sha256:"), "*")); len(qs) != 1 {
		t.Errorf("quarantine holds %v", qs)
	}
}

// TestScrubS3: the same damage planted in MinIO's objects.
func TestScrubS3(t *testing.T) {
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	s := startRegistrydStorage(t, storageYAML)
	im := pushScrubImages(t, s)
	if code, out := runScrub(t, s.Config); code != 0 {
		t.Fatalf("scrub of an intact bucket: exit %d\n%s", code, out)
	}
	ctx := context.Background()
	put := func(key string, b []byte) {
		t.Helper()
		_, err := m.Client.PutObject(ctx, bucket, "registry/"+key, bytes.NewReader(b), int64(len(b)), miniogo.PutObjectOptions{})
		must(t, err)
	}
	put(blobKey(im.layerA), bytes.ToUpper(im.content[im.layerA]))
	put("docker/registry/v2/repositories/scrub/app/_layers/sha256/"+strings.TrimPrefix(im.layerB, "sha256:")+"/link", nil)
	checkScrubFinds(t, s, im)
	if keys := m.keys(t, bucket, "registry/docker/registry/v2/_registryd/quarantine/"); len(keys) != 1 {
		t.Errorf("quarantine holds %v", keys)
	}
}
