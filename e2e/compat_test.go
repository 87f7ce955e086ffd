package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// registryd keeps distribution's on-disk layout: it must serve a data
// directory the reference registry (distribution 2.8) wrote, and the
// reference must serve what registryd wrote, with the same answers.

const kolla = "openstack.kolla/ubuntu-source-mariadb-clustercheck"

// compatContent is what populate pushed: the references to compare, and the
// manifests that were deleted (by digest) and must stay gone.
type compatContent struct {
	Refs    map[string][]string // repo -> tags and digests
	Deleted map[string][]string // repo -> tags and digests that must answer 404
	Layouts map[string]string   // repo:tag -> manifest digest (for crane pull checks)
}

// populate pushes a mix of content with crane: an OCI image under a
// multi-component name with two tags, a Docker schema 2 image, an OCI index
// over both kinds, a cross-repository copy, and a deleted image.
func populate(t *testing.T, s *Server) compatContent {
	t.Helper()
	crane := tool(t, "crane")
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout)
	}
	c := compatContent{Refs: map[string][]string{}, Deleted: map[string][]string{}, Layouts: map[string]string{}}
	add := func(repo string, refs ...string) { c.Refs[repo] = append(c.Refs[repo], refs...) }
	at := s.Addr + "/"

	img := newTestImage(t, t.TempDir(), "v1", "compat-kolla")
	cr("push", img.Layout, at+kolla+":v1")
	cr("tag", at+kolla+":v1", "latest")
	add(kolla, "v1", "latest", img.Digest)
	c.Layouts[kolla+":v1"] = img.Digest

	layer := filepath.Join(t.TempDir(), "layer.tar")
	writeTar(t, layer, map[string]string{"bin/busybox": "not really busybox\n"})
	cr("append", "-f", layer, "-t", at+"library/busybox:1.36")
	docker := cr("digest", at+"library/busybox:1.36")
	other := newTestImage(t, t.TempDir(), "v1", "compat-busybox")
	cr("push", other.Layout, at+"library/busybox:oci")
	cr("index", "append", "-m", at+"library/busybox:1.36", "-m", at+"library/busybox:oci", "-t", at+"library/busybox:latest")
	index := cr("digest", at+"library/busybox:latest")
	add("library/busybox", "1.36", "oci", "latest", docker, other.Digest, index)
	c.Layouts["library/busybox:oci"] = other.Digest

	cr("copy", at+kolla+":v1", at+"e2e/compat-copy:v1")
	add("e2e/compat-copy", "v1", img.Digest)

	gone := newTestImage(t, t.TempDir(), "v1", "compat-deleted")
	cr("push", gone.Layout, at+"e2e/compat-deleted:v1")
	cr("push", img.Layout, at+"e2e/compat-deleted:kept")
	cr("delete", at+"e2e/compat-deleted@"+gone.Digest)
	add("e2e/compat-deleted", "kept", img.Digest)
	c.Deleted["e2e/compat-deleted"] = []string{"v1", gone.Digest}
	return c
}

// answer is the part of a response that must not depend on the server.
type answer struct {
	Status int
	Header map[string]string
	Body   string // the body, or its digest for blobs
}

func (a answer) String() string {
	return fmt.Sprintf("%d %v %s", a.Status, a.Header, truncate(a.Body, 300))
}

func answerOf(r httpResult, headers ...string) answer {
	a := answer{Status: r.Status, Header: map[string]string{}}
	if r.Status < 300 {
		for _, h := range headers {
			a.Header[h] = r.Header.Get(h)
		}
		a.Body = string(r.Body)
	}
	return a
}

// snapshot reads everything a client can see of content c: catalog (whole
// and paginated), tags lists, manifests by tag and digest (GET and HEAD) and
// every blob they reference.
func snapshot(t *testing.T, s *Server, c compatContent) map[string]answer {
	t.Helper()
	snap := map[string]answer{}
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	getJSON(t, s, "/v2/_catalog", &cat)
	snap["catalog"] = answer{Status: 200, Body: strings.Join(cat.Repositories, "\n")}
	snap["catalog?n=2"] = answer{Status: 200, Body: strings.Join(catalogPaged(t, s, 2), "\n")}

	for _, repo := range slices.Sorted(maps.Keys(c.Refs)) {
		r := doHTTP(t, http.MethodGet, s.URL("/v2/"+repo+"/tags/list"), nil, nil)
		snap["tags "+repo] = answerOf(r)
		if r.Status == http.StatusOK {
			// Compare decoded and as a set: the reference (2.8) lists tags
			// in directory order. registryd must list them in lexical order.
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(r.Body, &tl); err == nil {
				if s.Name == "registryd" && !slices.IsSorted(tl.Tags) {
					t.Errorf("GET /v2/%s/tags/list on registryd: tags %v not in lexical order", repo, tl.Tags)
				}
				slices.Sort(tl.Tags)
				b, _ := json.Marshal(tl)
				snap["tags "+repo] = answer{Status: r.Status, Body: string(b)}
			}
		}
		blobs := map[string]bool{}
		for _, ref := range c.Refs[repo] {
			r := getManifest(t, s, repo, ref)
			snap["GET manifest "+repo+":"+ref] = answerOf(r, "Content-Type", "Docker-Content-Digest")
			if r.Status == http.StatusOK {
				bl, _ := manifestRefs(t, r.Body)
				for _, b := range bl {
					blobs[b] = true
				}
			}
			h := doHTTP(t, http.MethodHead, s.URL("/v2/"+repo+"/manifests/"+ref), http.Header{"Accept": manifestAccept}, nil)
			snap["HEAD manifest "+repo+":"+ref] = answerOf(h, "Content-Type", "Content-Length", "Docker-Content-Digest")
		}
		for b := range blobs {
			r := getBlob(t, s, repo, b)
			a := answerOf(r, "Docker-Content-Digest")
			if r.Status == http.StatusOK {
				a.Body = fmt.Sprintf("%d bytes, %s", len(r.Body), sha256Digest(r.Body))
			}
			snap["GET blob "+repo+"@"+b] = a
			h := doHTTP(t, http.MethodHead, s.URL("/v2/"+repo+"/blobs/"+b), nil, nil)
			snap["HEAD blob "+repo+"@"+b] = answerOf(h, "Content-Length", "Docker-Content-Digest")
		}
	}
	for repo, refs := range c.Deleted {
		for _, ref := range refs {
			r := getManifest(t, s, repo, ref)
			snap["GET deleted manifest "+repo+":"+ref] = answer{Status: r.Status}
		}
	}
	return snap
}

// catalogPaged walks /v2/_catalog?n=N through its Link headers.
func catalogPaged(t *testing.T, s *Server, n int) []string {
	t.Helper()
	var all []string
	next := fmt.Sprintf("/v2/_catalog?n=%d", n)
	for i := 0; next != "" && i < 100; i++ {
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		r := getJSON(t, s, next, &cat)
		all = append(all, cat.Repositories...)
		next = ""
		if link := r.Header.Get("Link"); link != "" {
			start, end := strings.Index(link, "<"), strings.Index(link, ">")
			if start < 0 || end < start || !strings.Contains(link, `rel="next"`) {
				t.Fatalf("%s: GET /v2/_catalog: bad Link header %q", s.Name, link)
			}
			u, err := url.Parse(link[start+1 : end])
			must(t, err)
			next = u.RequestURI()
		}
	}
	return all
}

func compareSnapshots(t *testing.T, wrote, read *Server, want, got map[string]answer) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		w, g := want[k], got[k]
		if w.Status != g.Status || w.Body != g.Body || fmt.Sprint(w.Header) != fmt.Sprint(g.Header) {
			t.Errorf("%s: %s over data written by %s answers\n   %s\n%s answered\n   %s",
				k, read.Name, wrote.Name, g, wrote.Name, w)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%d answers identical", len(keys))
}

// pullAll pulls every layout image with crane from s and checks its digest.
func pullAll(t *testing.T, s *Server, c compatContent) {
	t.Helper()
	crane := tool(t, "crane")
	env := clientEnv(t)
	for ref, want := range c.Layouts {
		out := filepath.Join(t.TempDir(), "pull")
		runCmd(t, env, clientTimeout, crane, "pull", "--insecure", "--format", "oci", s.Addr+"/"+ref, out)
		if got := layoutManifestDigest(t, out, ""); got != want {
			t.Errorf("crane pull %s from %s: digest %s, expected %s", ref, s.Name, got, want)
		}
	}
	for _, repo := range []string{kolla, "library/busybox"} {
		runCmd(t, env, clientTimeout, crane, "pull", "--insecure", "--format", "oci", s.Addr+"/"+repo+":latest",
			filepath.Join(t.TempDir(), "pull"))
	}
}

// TestCompatReferenceToRegistryd: the reference writes, registryd serves.
func TestCompatReferenceToRegistryd(t *testing.T) {
	root := t.TempDir()
	ref := startReference(t, root)
	content := populate(t, ref)
	want := snapshot(t, ref, content)
	if err := ref.Stop(); err != nil {
		t.Logf("reference exit: %v", err)
	}
	srv := startRegistrydOn(t, root)
	got := snapshot(t, srv, content)
	compareSnapshots(t, ref, srv, want, got)
	pullAll(t, srv, content)
}

// TestCompatRegistrydToReference: registryd writes, the reference serves.
func TestCompatRegistrydToReference(t *testing.T) {
	root := t.TempDir()
	srv := startRegistrydOn(t, root)
	content := populate(t, srv)
	want := snapshot(t, srv, content)
	if err := srv.Stop(); err != nil {
		t.Errorf("registryd did not exit cleanly on SIGTERM: %v", err)
	}
	ref := startReference(t, root)
	got := snapshot(t, ref, content)
	compareSnapshots(t, srv, ref, want, got)
	pullAll(t, ref, content)
}
