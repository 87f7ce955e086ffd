package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Round trips through registryd with real clients over plain HTTP on
// 127.0.0.1. After every trip the manifest digest must be the one that was
// pushed: registries store manifests byte for byte.

const clientTimeout = 3 * time.Minute

// checkManifest fetches REPO:REF from the server and checks that its bytes
// hash to want, that Docker-Content-Digest says so too, and that the
// Content-Type is mediaType (when not empty). It returns the body.
func checkManifest(t *testing.T, s *Server, repo, ref, want, mediaType string) []byte {
	t.Helper()
	r := getManifest(t, s, repo, ref)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /v2/%s/manifests/%s: expected 200, got %s", repo, ref, r)
	}
	if got := sha256Digest(r.Body); got != want {
		t.Errorf("GET /v2/%s/manifests/%s: body digest %s, expected %s", repo, ref, got, want)
	}
	if got := r.Header.Get("Docker-Content-Digest"); got != want {
		t.Errorf("GET /v2/%s/manifests/%s: Docker-Content-Digest %q, expected %q", repo, ref, got, want)
	}
	if mediaType != "" && r.Header.Get("Content-Type") != mediaType {
		t.Errorf("GET /v2/%s/manifests/%s: Content-Type %q, expected %q", repo, ref, r.Header.Get("Content-Type"), mediaType)
	}
	return r.Body
}

func checkManifestGone(t *testing.T, s *Server, repo, ref string) {
	t.Helper()
	if r := getManifest(t, s, repo, ref); r.Status != http.StatusNotFound {
		t.Errorf("GET /v2/%s/manifests/%s after delete: expected 404, got %s", repo, ref, r)
	}
}

func checkBlob(t *testing.T, s *Server, repo, dgst string, want []byte) {
	t.Helper()
	r := getBlob(t, s, repo, dgst)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		t.Errorf("GET /v2/%s/blobs/%s: expected 200 with the %d pushed bytes, got %s", repo, dgst, len(want), r)
	}
}

func tagsOf(t *testing.T, s *Server, repo string) []string {
	t.Helper()
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	getJSON(t, s, "/v2/"+repo+"/tags/list", &tl)
	if tl.Name != repo {
		t.Errorf("GET /v2/%s/tags/list: name %q", repo, tl.Name)
	}
	return tl.Tags
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestSkopeo(t *testing.T) {
	skopeo := system(t, "skopeo", "/usr/bin/skopeo")
	srv := startRegistryd(t)
	env := clientEnv(t)
	sk := func(args ...string) cmdResult {
		t.Helper()
		return runCmd(t, env, clientTimeout, skopeo, append([]string{"--insecure-policy"}, args...)...)
	}
	img := newTestImage(t, t.TempDir(), "v1", "skopeo")
	ref := "docker://" + srv.Addr + "/e2e/skopeo"

	// OCI layout -> registry, digest preserved.
	sk("copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+img.Layout+":v1", ref+":v1")
	body := checkManifest(t, srv, "e2e/skopeo", "v1", img.Digest, mtOCIManifest)
	if !bytes.Equal(body, img.Manifest) {
		t.Errorf("manifest changed on the way in:\n got %s\nwant %s", body, img.Manifest)
	}
	for d, b := range img.Blobs {
		checkBlob(t, srv, "e2e/skopeo", d, b)
	}
	raw := sk("inspect", "--raw", "--tls-verify=false", ref+":v1").Stdout
	if got := sha256Digest([]byte(raw)); got != img.Digest {
		t.Errorf("skopeo inspect --raw: digest %s, expected %s", got, img.Digest)
	}

	// registry -> OCI layout, same digest.
	out := filepath.Join(t.TempDir(), "oci")
	sk("copy", "--src-tls-verify=false", ref+":v1", "oci:"+out+":v1")
	if got := layoutManifestDigest(t, out, "v1"); got != img.Digest {
		t.Errorf("skopeo copy back to an OCI layout: digest %s, expected %s", got, img.Digest)
	}

	// Conversion to Docker schema 2 on the way in, and back out unchanged.
	sk("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "v2s2", ref+":v1", ref+":v2s2")
	r := getManifest(t, srv, "e2e/skopeo", "v2s2")
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != mtDockerManifest {
		t.Fatalf("GET manifest v2s2: expected 200 %s, got %s", mtDockerManifest, r)
	}
	v2s2 := sha256Digest(r.Body)
	checkManifest(t, srv, "e2e/skopeo", "v2s2", v2s2, mtDockerManifest)
	checkManifest(t, srv, "e2e/skopeo", v2s2, v2s2, mtDockerManifest)
	dir := filepath.Join(t.TempDir(), "dir")
	sk("copy", "--src-tls-verify=false", ref+"@"+v2s2, "dir:"+dir)
	m, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	must(t, err)
	if got := sha256Digest(m); got != v2s2 {
		t.Errorf("skopeo copy of the v2s2 manifest to dir: digest %s, expected %s", got, v2s2)
	}

	// Tags and delete.
	var tags struct{ Tags []string }
	must(t, json.Unmarshal([]byte(sk("list-tags", "--tls-verify=false", ref).Stdout), &tags))
	slices.Sort(tags.Tags)
	if !slices.Equal(tags.Tags, []string{"v1", "v2s2"}) {
		t.Errorf("skopeo list-tags: %v, expected [v1 v2s2]", tags.Tags)
	}
	sk("delete", "--tls-verify=false", ref+":v2s2")
	checkManifestGone(t, srv, "e2e/skopeo", v2s2)
	checkManifestGone(t, srv, "e2e/skopeo", "v2s2")
	checkManifest(t, srv, "e2e/skopeo", "v1", img.Digest, mtOCIManifest)
}

func TestCrane(t *testing.T) {
	crane := tool(t, "crane")
	srv := startRegistryd(t)
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout)
	}
	img := newTestImage(t, t.TempDir(), "v1", "crane")
	repo := srv.Addr + "/e2e/crane"

	// push an OCI layout, pull it back
	cr("push", img.Layout, repo+":v1")
	if got := cr("digest", repo+":v1"); got != img.Digest {
		t.Errorf("crane digest after push: %s, expected %s", got, img.Digest)
	}
	checkManifest(t, srv, "e2e/crane", "v1", img.Digest, mtOCIManifest)
	out := filepath.Join(t.TempDir(), "pulled")
	cr("pull", "--format", "oci", repo+":v1", out)
	if got := layoutManifestDigest(t, out, ""); got != img.Digest {
		t.Errorf("crane pull --format oci: digest %s, expected %s", got, img.Digest)
	}
	for d, b := range img.Blobs {
		if got := runCmd(t, env, clientTimeout, crane, "blob", repo+"@"+d, "--insecure").Stdout; got != string(b) {
			t.Errorf("crane blob %s: %d bytes differ from the %d pushed", d, len(got), len(b))
		}
		checkBlob(t, srv, "e2e/crane", d, b)
	}
	if got := cr("manifest", repo+":v1"); got != string(img.Manifest) {
		t.Errorf("crane manifest: %s\nexpected %s", got, img.Manifest)
	}

	// copy to another repository (cross-repository blob mount)
	cr("copy", repo+":v1", srv.Addr+"/e2e/crane-copy:v1")
	if got := cr("digest", srv.Addr+"/e2e/crane-copy:v1"); got != img.Digest {
		t.Errorf("crane digest after copy: %s, expected %s", got, img.Digest)
	}

	// an image with Docker media types, built on the empty base
	layerTar := filepath.Join(t.TempDir(), "layer.tar")
	writeTar(t, layerTar, map[string]string{"hello.txt": "hello from crane append\n"})
	cr("append", "-f", layerTar, "-t", repo+":docker")
	dockerDigest := cr("digest", repo+":docker")
	checkManifest(t, srv, "e2e/crane", "docker", dockerDigest, mtDockerManifest)

	// an index of both
	cr("index", "append", "-m", repo+":v1", "-m", repo+":docker", "-t", repo+":index")
	indexDigest := cr("digest", repo+":index")
	index := checkManifest(t, srv, "e2e/crane", "index", indexDigest, mtOCIIndex)
	if _, children := manifestRefs(t, index); !slices.Equal(children, []string{img.Digest, dockerDigest}) {
		t.Errorf("index children %v, expected [%s %s]", children, img.Digest, dockerDigest)
	}
	idxOut := filepath.Join(t.TempDir(), "index")
	cr("pull", "--format", "oci", repo+":index", idxOut)

	// tags, catalog
	cr("tag", repo+":v1", "v1-again")
	got := lines(cr("ls", repo))
	slices.Sort(got)
	if want := []string{"docker", "index", "v1", "v1-again"}; !slices.Equal(got, want) {
		t.Errorf("crane ls: %v, expected %v", got, want)
	}
	catalog := lines(cr("catalog", srv.Addr))
	for _, want := range []string{"e2e/crane", "e2e/crane-copy"} {
		if !slices.Contains(catalog, want) {
			t.Errorf("crane catalog: %v lacks %s", catalog, want)
		}
	}

	// delete by digest
	cr("delete", srv.Addr+"/e2e/crane-copy@"+img.Digest)
	checkManifestGone(t, srv, "e2e/crane-copy", img.Digest)
	checkManifestGone(t, srv, "e2e/crane-copy", "v1")
	checkManifest(t, srv, "e2e/crane", "v1", img.Digest, mtOCIManifest)
}

func TestOras(t *testing.T) {
	oras := tool(t, "oras")
	srv := startRegistryd(t)
	env := clientEnv(t)
	work := t.TempDir()
	or := func(args ...string) string {
		t.Helper()
		return runCmd(t, env, clientTimeout, oras, append(args, "--plain-http")...).Stdout
	}
	orIn := func(dir string, args ...string) string {
		t.Helper()
		// oras takes file names relative to the working directory
		return runCmdIn(t, dir, env, clientTimeout, oras, append(args, "--plain-http")...).Stdout
	}
	type desc struct {
		Digest       string `json:"digest"`
		MediaType    string `json:"mediaType"`
		ArtifactType string `json:"artifactType"`
		Referrers    []desc `json:"referrers"`
	}
	parse := func(s string) desc {
		t.Helper()
		var d desc
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			t.Fatalf("oras output: %v in %q", err, s)
		}
		return d
	}
	must(t, os.WriteFile(filepath.Join(work, "a.txt"), []byte("hello from oras\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(work, "b.json"), []byte(`{"e2e":true}`), 0o644))
	must(t, os.WriteFile(filepath.Join(work, "sig.txt"), []byte("signature\n"), 0o644))
	ref := srv.Addr + "/e2e/oras:v1"

	pushed := parse(orIn(work, "push", "--format", "json", "--artifact-type", "application/vnd.e2e.test",
		ref, "a.txt:text/plain", "b.json:application/json"))
	checkManifest(t, srv, "e2e/oras", "v1", pushed.Digest, mtOCIManifest)
	if got := sha256Digest([]byte(or("manifest", "fetch", ref))); got != pushed.Digest {
		t.Errorf("oras manifest fetch: digest %s, expected %s", got, pushed.Digest)
	}

	// attach through the referrers API (no fallback to the tag scheme)
	sig := parse(orIn(work, "attach", "--format", "json", "--distribution-spec", "v1.1-referrers-api",
		"--artifact-type", "application/vnd.e2e.sig", ref, "sig.txt"))
	disc := parse(or("discover", "--format", "json", "--distribution-spec", "v1.1-referrers-api", ref))
	if len(disc.Referrers) != 1 || disc.Referrers[0].Digest != sig.Digest || disc.Referrers[0].ArtifactType != "application/vnd.e2e.sig" {
		t.Errorf("oras discover: %+v, expected the one referrer %s", disc.Referrers, sig.Digest)
	}
	// the same, straight from the API, with and without the artifactType filter
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{sig.Digest}},
		{"?artifactType=application/vnd.e2e.sig", []string{sig.Digest}},
		{"?artifactType=application/vnd.e2e.other", nil},
	} {
		var idx struct {
			MediaType string       `json:"mediaType"`
			Manifests []descriptor `json:"manifests"`
		}
		r := getJSON(t, srv, "/v2/e2e/oras/referrers/"+pushed.Digest+tc.query, &idx)
		var got []string
		for _, m := range idx.Manifests {
			got = append(got, m.Digest)
		}
		if !slices.Equal(got, tc.want) || r.Header.Get("Content-Type") != mtOCIIndex || idx.MediaType != mtOCIIndex {
			t.Errorf("GET referrers%s: Content-Type %q, mediaType %q, manifests %v; expected %s with %v",
				tc.query, r.Header.Get("Content-Type"), idx.MediaType, got, mtOCIIndex, tc.want)
		}
		if tc.query != "" && r.Header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("GET referrers%s: OCI-Filters-Applied %q, expected artifactType", tc.query, r.Header.Get("OCI-Filters-Applied"))
		}
	}

	// pull the files back
	out := t.TempDir()
	or("pull", "-o", out, ref)
	for _, f := range []string{"a.txt", "b.json"} {
		want, _ := os.ReadFile(filepath.Join(work, f))
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("oras pull %s: %q (%v), expected %q", f, got, err, want)
		}
	}

	// copy with referrers, tag, list tags
	runCmd(t, env, clientTimeout, oras, "cp", "-r", "--from-plain-http", "--to-plain-http", ref, srv.Addr+"/e2e/oras-copy:v1")
	checkManifest(t, srv, "e2e/oras-copy", "v1", pushed.Digest, mtOCIManifest)
	checkManifest(t, srv, "e2e/oras-copy", sig.Digest, sig.Digest, mtOCIManifest)
	or("tag", ref, "v2")
	if got := lines(or("repo", "tags", srv.Addr+"/e2e/oras")); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("oras repo tags: %v, expected [v1 v2]", got)
	}

	// deleting the referrer removes it from the referrers list
	or("manifest", "delete", "--force", srv.Addr+"/e2e/oras@"+sig.Digest)
	disc = parse(or("discover", "--format", "json", "--distribution-spec", "v1.1-referrers-api", ref))
	if len(disc.Referrers) != 0 {
		t.Errorf("oras discover after deleting the referrer: %+v, expected none", disc.Referrers)
	}
}

func TestRegctl(t *testing.T) {
	regctl := tool(t, "regctl")
	srv := startRegistryd(t)
	env := clientEnv(t)
	rc := func(args ...string) string {
		t.Helper()
		return runCmd(t, env, clientTimeout, regctl, args...).Stdout
	}
	rc("registry", "set", "--tls", "disabled", srv.Addr)
	img := newTestImage(t, t.TempDir(), "v1", "regctl")
	repo := srv.Addr + "/e2e/regctl"

	rc("image", "copy", "ocidir://"+img.Layout+":v1", repo+":v1")
	if got := strings.TrimSpace(rc("image", "digest", repo+":v1")); got != img.Digest {
		t.Errorf("regctl image digest: %s, expected %s", got, img.Digest)
	}
	if got := rc("manifest", "get", "--format", "raw-body", repo+":v1"); got != string(img.Manifest) {
		t.Errorf("regctl manifest get: %s\nexpected %s", got, img.Manifest)
	}
	checkManifest(t, srv, "e2e/regctl", "v1", img.Digest, mtOCIManifest)
	for d, b := range img.Blobs {
		if got := rc("blob", "get", repo, d); got != string(b) {
			t.Errorf("regctl blob get %s: %d bytes differ from the %d pushed", d, len(got), len(b))
		}
	}

	// registry -> registry, registry -> OCI layout
	rc("image", "copy", repo+":v1", srv.Addr+"/e2e/regctl-copy:v1")
	checkManifest(t, srv, "e2e/regctl-copy", "v1", img.Digest, mtOCIManifest)
	out := filepath.Join(t.TempDir(), "out")
	rc("image", "copy", repo+":v1", "ocidir://"+out+":v1")
	if got := layoutManifestDigest(t, out, "v1"); got != img.Digest {
		t.Errorf("regctl image copy to ocidir: digest %s, expected %s", got, img.Digest)
	}

	// an artifact with a subject, found through the referrers API
	sbom := filepath.Join(t.TempDir(), "sbom.json")
	must(t, os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644))
	rc("artifact", "put", "--subject", repo+":v1", "--artifact-type", "application/spdx+json",
		"--file", sbom, "--file-media-type", "application/spdx+json")
	var refs struct {
		Descriptors []descriptor `json:"descriptors"`
	}
	list := rc("artifact", "list", "--format", "{{json .}}", repo+":v1")
	must(t, json.Unmarshal([]byte(list), &refs))
	if len(refs.Descriptors) != 1 {
		t.Errorf("regctl artifact list: %s, expected one referrer", list)
	} else {
		checkManifest(t, srv, "e2e/regctl", refs.Descriptors[0].Digest, refs.Descriptors[0].Digest, mtOCIManifest)
	}

	// tags: list, delete one tag (the manifest stays)
	if got := lines(rc("tag", "ls", repo)); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("regctl tag ls: %v, expected [v1]", got)
	}
	rc("tag", "delete", srv.Addr+"/e2e/regctl-copy:v1")
	checkManifestGone(t, srv, "e2e/regctl-copy", "v1")
	checkManifest(t, srv, "e2e/regctl-copy", img.Digest, img.Digest, mtOCIManifest)
}
