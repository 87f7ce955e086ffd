package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig      = "application/vnd.oci.image.config.v1+json"
	mtOCILayerGzip   = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestAccept is what clients send: every manifest type registryd stores.
var manifestAccept = []string{mtOCIIndex, mtOCIManifest, mtDockerList, mtDockerManifest}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// testImage is a small single-layer OCI image written as an OCI image layout.
type testImage struct {
	Layout   string            // directory of the OCI layout
	Tag      string            // its ref name in index.json
	Digest   string            // manifest digest
	Manifest []byte            // manifest bytes
	Blobs    map[string][]byte // config and layer, by digest
}

// newTestImage writes an OCI image layout with one image (a config and one
// gzip layer holding a file whose content is seed) tagged tag, into dir.
// The bytes depend only on seed.
func newTestImage(t testing.TB, dir, tag, seed string) testImage {
	t.Helper()
	return newTestImageCreated(t, dir, tag, seed, "2024-01-01T00:00:00Z")
}

// newTestImageCreated is newTestImage with the image's creation time (its
// config's "created", RFC 3339).
func newTestImageCreated(t testing.TB, dir, tag, seed, created string) testImage {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := []byte("registryd e2e " + seed + "\n")
	hdr := &tar.Header{Name: "e2e/" + seed + ".txt", Mode: 0o644, Size: int64(len(content)),
		ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	must(t, tw.WriteHeader(hdr))
	_, err := tw.Write(content)
	must(t, err)
	must(t, tw.Close())
	var gzBuf bytes.Buffer
	gw := gzip.NewWriter(&gzBuf)
	_, err = gw.Write(tarBuf.Bytes())
	must(t, err)
	must(t, gw.Close())
	layer := gzBuf.Bytes()

	config := mustJSON(t, map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      created,
		"config":       map[string]any{"Env": []string{"E2E_SEED=" + seed}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{sha256Digest(tarBuf.Bytes())}},
		"history":      []map[string]any{{"created": "2024-01-01T00:00:00Z", "created_by": "registryd e2e"}},
	})
	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIManifest,
		"config":        descriptor{MediaType: mtOCIConfig, Digest: sha256Digest(config), Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: mtOCILayerGzip, Digest: sha256Digest(layer), Size: int64(len(layer))}},
	})
	img := testImage{
		Layout:   dir,
		Tag:      tag,
		Digest:   sha256Digest(manifest),
		Manifest: manifest,
		Blobs:    map[string][]byte{sha256Digest(config): config, sha256Digest(layer): layer},
	}
	blobDir := filepath.Join(dir, "blobs", "sha256")
	must(t, os.MkdirAll(blobDir, 0o755))
	for _, b := range [][]byte{config, layer, manifest} {
		must(t, os.WriteFile(filepath.Join(blobDir, sha256Digest(b)[len("sha256:"):]), b, 0o644))
	}
	index := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIIndex,
		"manifests": []descriptor{{MediaType: mtOCIManifest, Digest: img.Digest, Size: int64(len(manifest)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag}}},
	})
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return img
}

// layoutManifestDigest returns the digest of the manifest tagged tag (or the
// only one, when tag is "") in an OCI layout's index.json.
func layoutManifestDigest(t testing.TB, dir, tag string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	must(t, err)
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	must(t, json.Unmarshal(b, &idx))
	for _, m := range idx.Manifests {
		if tag == "" && len(idx.Manifests) == 1 || m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest
		}
	}
	t.Fatalf("%s/index.json has no manifest tagged %q:\n%s", dir, tag, b)
	return ""
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

// ---------------------------------------------------------------- HTTP

var httpClient = &http.Client{Timeout: 60 * time.Second}

type httpResult struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r httpResult) String() string {
	return fmt.Sprintf("%d %v %s", r.Status, r.Header, truncate(string(r.Body), 500))
}

func doHTTP(t testing.TB, method, url string, header http.Header, body []byte) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	must(t, err)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// getManifest fetches /v2/REPO/manifests/REF accepting every manifest type.
func getManifest(t testing.TB, s *Server, repo, ref string) httpResult {
	t.Helper()
	return doHTTP(t, http.MethodGet, s.URL("/v2/"+repo+"/manifests/"+ref),
		http.Header{"Accept": manifestAccept}, nil)
}

func getBlob(t testing.TB, s *Server, repo, dgst string) httpResult {
	t.Helper()
	return doHTTP(t, http.MethodGet, s.URL("/v2/"+repo+"/blobs/"+dgst), nil, nil)
}

// getJSON GETs path and decodes a 200 answer into v.
func getJSON(t testing.TB, s *Server, path string, v any) httpResult {
	t.Helper()
	r := doHTTP(t, http.MethodGet, s.URL(path), nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s on %s: expected 200, got %s", path, s.Name, r)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("GET %s on %s: %v in %q", path, s.Name, err, r.Body)
	}
	return r
}

// manifestBlobs returns the digests of the config and layers of an image
// manifest, or of the manifests of an index.
func manifestRefs(t testing.TB, body []byte) (blobs, children []string) {
	t.Helper()
	var m struct {
		Config    *descriptor  `json:"config"`
		Layers    []descriptor `json:"layers"`
		Manifests []descriptor `json:"manifests"`
	}
	must(t, json.Unmarshal(body, &m))
	if m.Config != nil {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	for _, c := range m.Manifests {
		children = append(children, c.Digest)
	}
	return blobs, children
}

// writeTar writes an uncompressed tar of regular files (name -> content),
// sorted by name, with fixed times.
func writeTar(t testing.TB, path string, files map[string]string) {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		must(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])),
			ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(files[n]))
		must(t, err)
	}
	must(t, tw.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}
