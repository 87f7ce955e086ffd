package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/internal/minio"
)

// S3 tests run registryd over a real MinIO that they start. Without a minio
// binary (scripts/install-deps.sh installs it into .cache/bin) they fail,
// unless REGISTRYD_S3_SKIP=1 says to skip them.

const (
	e2eMinioUser     = "registryd-e2e"
	e2eMinioPassword = "registryd-e2e-secret"
)

type minioE2E struct {
	*minio.Server
	endpoint string // http://127.0.0.1:PORT
}

// startMinio starts a MinIO server for the test, stopped when it ends.
func startMinio(t *testing.T) *minioE2E {
	t.Helper()
	bin := minio.Find(toolsBin)
	if bin == "" {
		if os.Getenv("REGISTRYD_S3_SKIP") == "1" {
			t.Skip("!!! SKIPPING S3 TEST (REGISTRYD_S3_SKIP=1): no minio binary")
		}
		t.Fatalf("minio not found in %s, $(go env GOPATH)/bin or $PATH: %s (REGISTRYD_S3_SKIP=1 skips)", toolsBin, installHint)
	}
	srv, err := minio.Start(minio.Options{Bin: bin, Dir: t.TempDir(), User: e2eMinioUser, Password: e2eMinioPassword, Env: serverEnv(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return &minioE2E{Server: srv, endpoint: srv.Endpoint}
}

// bucket creates a bucket and returns the storage section for registryd.
func (m *minioE2E) bucket(t *testing.T) (string, string) {
	t.Helper()
	name, err := m.NewBucket("e2e")
	must(t, err)
	yml := fmt.Sprintf(`  s3:
    bucket: %s
    regionendpoint: %s
    forcepathstyle: true
    accesskey: %s
    secretkey: %s
    rootdirectory: /registry
    chunksize: 5242880
`, name, m.endpoint, e2eMinioUser, e2eMinioPassword)
	return name, yml
}

// keys lists the bucket's keys below prefix.
func (m *minioE2E) keys(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	var out []string
	for oi := range m.Client.ListObjects(context.Background(), bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		must(t, oi.Err)
		out = append(out, oi.Key)
	}
	return out
}

// relative is the path and query of an upload Location, to be sent to
// any instance.
func relative(t *testing.T, loc string) string {
	u, err := url.Parse(loc)
	must(t, err)
	return u.RequestURI()
}

// Two registryd instances over one bucket: an upload started on A takes
// chunks alternately on A and B and finishes on B; what B stored A serves;
// deletes on A are seen by B; garbage collection over the bucket removes
// exactly the unreferenced blob, and runs online (removing nothing younger
// than its delay) while the instances serve it.
func TestS3ScaleOut(t *testing.T) {
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	a := startRegistrydStorage(t, storageYAML)
	b := startRegistrydStorage(t, storageYAML)
	servers := []*Server{a, b}
	const repo = "scale/app"

	// A 19 MiB layer in chunks of uneven sizes, below and above S3's
	// 5 MiB part minimum, alternating between the instances.
	layer := make([]byte, 19<<20+333)
	rand.New(rand.NewSource(42)).Read(layer)
	layerDigest := sha256Digest(layer)
	r := doHTTP(t, http.MethodPost, a.URL("/v2/"+repo+"/blobs/uploads/"), nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("start upload on A: %s", r)
	}
	loc := relative(t, r.Header.Get("Location"))
	chunks := []int{1 << 20, 6 << 20, 3 << 20, 7<<20 + 1, 100}
	off := 0
	for i, n := range chunks {
		s := servers[i%2]
		chunk := layer[off : off+n]
		r := doHTTP(t, http.MethodPatch, s.URL(loc), http.Header{
			"Content-Type":  {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, off+n-1)},
		}, chunk)
		if r.Status != http.StatusAccepted {
			t.Fatalf("PATCH chunk %d (%d bytes at %d) to %s: %s", i, n, off, s.Addr, r)
		}
		off += n
		if want := fmt.Sprintf("0-%d", off-1); r.Header.Get("Range") != want {
			t.Fatalf("after chunk %d on %s: Range %q, want %q", i, s.Addr, r.Header.Get("Range"), want)
		}
		loc = relative(t, r.Header.Get("Location"))
		// the other instance sees the same progress
		other := servers[(i+1)%2]
		st := doHTTP(t, http.MethodGet, other.URL(loc), nil, nil)
		if st.Status != http.StatusNoContent || st.Header.Get("Range") != fmt.Sprintf("0-%d", off-1) {
			t.Fatalf("upload status on the other instance after chunk %d: %s", i, st)
		}
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r = doHTTP(t, http.MethodPut, b.URL(loc+sep+"digest="+layerDigest), http.Header{"Content-Type": {"application/octet-stream"}}, layer[off:])
	if r.Status != http.StatusCreated {
		t.Fatalf("finish upload on B: %s", r)
	}

	// manifest pushed on B
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := pushBlobHTTP(t, b, repo, cfg)
	man := imageManifest(cfgDigest, len(cfg), layerDigest, len(layer))
	mt := http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}
	if r := doHTTP(t, http.MethodPut, b.URL("/v2/"+repo+"/manifests/v1"), mt, man); r.Status != http.StatusCreated {
		t.Fatalf("manifest on B: %s", r)
	}
	// pulled from A, byte for byte
	checkManifest(t, a, repo, "v1", sha256Digest(man), "application/vnd.oci.image.manifest.v1+json")
	if got := getManifest(t, a, repo, "v1"); !bytes.Equal(got.Body, man) {
		t.Fatalf("manifest from A differs")
	}
	checkBlob(t, a, repo, layerDigest, layer)
	checkBlob(t, a, repo, cfgDigest, cfg)
	if tags := tagsOf(t, a, repo); fmt.Sprint(tags) != "[v1]" {
		t.Fatalf("tags on A: %v", tags)
	}

	// A second image whose layer only it uses, pushed on A, deleted on A.
	doomed := []byte("a layer only the deleted manifest uses " + time.Now().String())
	doomedDigest := pushBlobHTTP(t, a, repo, doomed)
	man2 := imageManifest(cfgDigest, len(cfg), doomedDigest, len(doomed))
	if r := doHTTP(t, http.MethodPut, a.URL("/v2/"+repo+"/manifests/v2"), mt, man2); r.Status != http.StatusCreated {
		t.Fatalf("manifest 2 on A: %s", r)
	}
	checkManifest(t, b, repo, "v2", sha256Digest(man2), "application/vnd.oci.image.manifest.v1+json")
	if r := doHTTP(t, http.MethodDelete, a.URL("/v2/"+repo+"/manifests/"+sha256Digest(man2)), nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("delete manifest 2 on A: %s", r)
	}
	checkManifestGone(t, b, repo, sha256Digest(man2))
	if tags := tagsOf(t, b, repo); fmt.Sprint(tags) != "[v1]" {
		t.Fatalf("tags on B after the delete on A: %v", tags)
	}

	// Garbage collection over the bucket: refused while the instances
	// accept writes (their leases are in the bucket), done once they stop.
	blobKey := func(d string) string {
		hex := strings.TrimPrefix(d, "sha256:")
		return "registry/docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/data"
	}
	if ks := m.keys(t, bucket, blobKey(doomedDigest)); len(ks) != 1 {
		t.Fatalf("doomed blob not in the bucket before GC: %v", ks)
	}
	// While instances of this version serve the bucket with writes, it
	// runs one online collection (they follow its protocol): the blob is
	// younger than the delay, so it is not even condemned, let alone gone.
	res, err := tryCmd(serverEnv(nil), 2*time.Minute, registrydBin, "garbage-collect", a.Config)
	if err != nil || !strings.Contains(res.Stderr, "running one online collection") {
		t.Fatalf("garbage-collect while two instances serve the bucket: %v\n%s%s", err, res.Stdout, res.Stderr)
	}
	if ks := m.keys(t, bucket, blobKey(doomedDigest)); len(ks) != 1 {
		t.Fatalf("an online collection removed a blob younger than its delay: %v", ks)
	}
	for _, s := range servers {
		if err := s.Stop(); err != nil {
			t.Fatalf("stop %s: %v", s.Addr, err)
		}
	}
	gcOut := runCmd(t, serverEnv(nil), 5*time.Minute, registrydBin, "garbage-collect", a.Config)
	t.Logf("garbage-collect:\n%s%s", gcOut.Stdout, gcOut.Stderr)
	if ks := m.keys(t, bucket, blobKey(doomedDigest)); len(ks) != 0 {
		t.Fatalf("GC left the deleted-only blob: %v", ks)
	}
	for _, d := range []string{layerDigest, cfgDigest} {
		if ks := m.keys(t, bucket, blobKey(d)); len(ks) != 1 {
			t.Fatalf("GC removed a live blob %s: %v", d, ks)
		}
	}
	if ks := m.keys(t, bucket, "registry/docker/registry/v2/repositories/"+repo+"/_uploads/"); len(ks) != 0 {
		t.Fatalf("upload leftovers: %v", ks)
	}
	a.Restart()
	if r := getBlob(t, a, repo, doomedDigest); r.Status != http.StatusNotFound {
		t.Fatalf("deleted-only blob after GC: %s", r)
	}
	checkManifest(t, a, repo, "v1", sha256Digest(man), "application/vnd.oci.image.manifest.v1+json")
	checkBlob(t, a, repo, layerDigest, layer)
	checkBlob(t, a, repo, cfgDigest, cfg)
}

// TestS3Conformance runs the OCI conformance suite against registryd over
// MinIO.
func TestS3Conformance(t *testing.T) {
	bin := tool(t, "conformance")
	m := startMinio(t)
	for _, version := range []string{"1.1", "dev"} {
		t.Run("OCI_VERSION="+version, func(t *testing.T) {
			_, storageYAML := m.bucket(t)
			srv := startRegistrydStorage(t, storageYAML)
			results := t.TempDir()
			if d := os.Getenv("REGISTRYD_E2E_RESULTS_DIR"); d != "" {
				results = filepath.Join(fromRoot(d), "s3-oci-"+version)
				must(t, os.RemoveAll(results))
				must(t, os.MkdirAll(results, 0o755))
			}
			runConformance(t, bin, srv.Addr, version, results)
		})
	}
}

// With storage.redirect.enable, blob GETs answer 307 to a presigned URL of
// the bucket, which serves the bytes (and ranges); HEAD and manifests are
// served by registryd. Off by default.
func TestS3Redirect(t *testing.T) {
	m := startMinio(t)
	_, storageYAML := m.bucket(t)
	plain := startRegistrydStorage(t, storageYAML)
	redir := startRegistrydStorage(t, storageYAML, "REGISTRY_STORAGE_REDIRECT_ENABLE=true")
	const repo = "redirect/app"
	content := bytes.Repeat([]byte("redirected blob "), 1000)
	d := pushBlobHTTP(t, plain, repo, content)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(s *Server, rng string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, s.URL("/v2/"+repo+"/blobs/"+d), nil)
		must(t, err)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := noFollow.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	if resp := get(plain, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("without redirect: %s", resp.Status)
	}
	resp := get(redir, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, m.endpoint+"/") {
		t.Fatalf("with redirect: %s, Location %q", resp.Status, loc)
	}
	checkBlob(t, redir, repo, d, content) // the default client follows
	r := doHTTP(t, http.MethodGet, redir.URL("/v2/"+repo+"/blobs/"+d), http.Header{"Range": {"bytes=16-31"}}, nil)
	if r.Status != http.StatusPartialContent || string(r.Body) != "redirected blob " {
		t.Fatalf("ranged GET through the redirect: %s", r)
	}
	if r := doHTTP(t, http.MethodHead, redir.URL("/v2/"+repo+"/blobs/"+d), nil, nil); r.Status != http.StatusOK || r.Header.Get("Content-Length") != fmt.Sprint(len(content)) {
		t.Fatalf("HEAD: %s", r)
	}
	// unknown blobs are still 404, not a redirect
	if resp := getBlob(t, redir, repo, sha256Digest([]byte("never pushed"))); resp.Status != http.StatusNotFound {
		t.Fatalf("unknown blob: %s", resp)
	}
}
