package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
)

// TestS3SharedBucketListings: two registryd processes serve one MinIO
// bucket, where the catalog comes from registryd's index of repository
// names and tags/list from a listing of the page. What A writes is in B's
// very next catalog and tags/list answer, as on a shared disk
// (TestSharedDiskListings): pushes, a nested repository, a new tag, pages
// that follow Link, a deleted manifest; and after a restart of B with the
// index removed from the bucket (it answers from the layout and rebuilds
// the index meanwhile).
func TestS3SharedBucketListings(t *testing.T) {
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	a := startRegistrydStorage(t, storageYAML)
	b := startRegistrydStorage(t, storageYAML)
	crane := tool(t, "crane")
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout
	}
	catalog := func(s *Server) []string {
		t.Helper()
		var c struct{ Repositories []string }
		getJSON(t, s, "/v2/_catalog", &c)
		return c.Repositories
	}
	tags := func(repo string) []string {
		t.Helper()
		var l struct{ Tags []string }
		getJSON(t, b, "/v2/"+repo+"/tags/list", &l)
		return l.Tags
	}
	want := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s on B: %q, want %q", what, got, want)
		}
	}

	want("empty catalog", catalog(b), []string{})

	img := newTestImage(t, t.TempDir(), "v1", "s3-shared-one")
	cr("push", img.Layout, a.Addr+"/team/one:v1")
	want("catalog after A's push", catalog(b), []string{"team/one"})
	want("tags after A's push", tags("team/one"), []string{"v1"})

	cr("tag", a.Addr+"/team/one:v1", "v2")
	want("tags after A's tag", tags("team/one"), []string{"v1", "v2"})

	// A nested repository, and one that sorts between in S3's key order
	// but after in the catalog's ("team/one-x" vs "team/one/aaa").
	other := newTestImage(t, t.TempDir(), "v1", "s3-shared-nested")
	cr("push", other.Layout, a.Addr+"/team/one/aaa:x")
	cr("push", other.Layout, a.Addr+"/team/one-x:y")
	want("catalog after the nested pushes", catalog(b), []string{"team/one", "team/one/aaa", "team/one-x"})
	var page struct{ Repositories []string }
	getJSON(t, b, "/v2/_catalog?n=1&last=team/one", &page)
	want("page after team/one", page.Repositories, []string{"team/one/aaa"})

	// Enough repositories for pages, pushed through A, walked on B by Link.
	var many []string
	for i := range 25 {
		repo := fmt.Sprintf("many/r%02d", i)
		many = append(many, repo)
		cr("copy", a.Addr+"/team/one:v1", a.Addr+"/"+repo+":t")
	}
	var walked []string
	next := "/v2/_catalog?n=4"
	for next != "" {
		r := doHTTP(t, http.MethodGet, b.URL(next), nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s on B: %s", next, r)
		}
		var p struct{ Repositories []string }
		must(t, json.Unmarshal(r.Body, &p))
		if len(p.Repositories) > 4 {
			t.Fatalf("a page of %d with n=4", len(p.Repositories))
		}
		walked = append(walked, p.Repositories...)
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ";")[0], "<"), ">")
		}
	}
	all := append(append([]string{}, many...), "team/one", "team/one/aaa", "team/one-x")
	want("catalog walked by Link", walked, all)

	// Deleting the only manifest of team/one through A removes its tags
	// and takes it out of B's catalog at once.
	del := doHTTP(t, http.MethodDelete, a.URL("/v2/team/one/manifests/"+img.Digest), nil, nil)
	if del.Status != http.StatusAccepted {
		t.Fatalf("DELETE through A: %s", del)
	}
	all = slices.DeleteFunc(all, func(s string) bool { return s == "team/one" })
	want("catalog after A's delete", catalog(b), all)
	want("tags after A's delete", tags("team/one"), []string{})

	// The index removed from the bucket and B restarted: the same answer
	// at once (from the layout), and again once B rebuilt the index.
	for _, k := range m.keys(t, bucket, "registry/docker/registry/v2/_registryd/catalog/") {
		must(t, m.Client.RemoveObject(t.Context(), bucket, k, miniogo.RemoveObjectOptions{}))
	}
	b.Restart()
	want("catalog with the index lost", catalog(b), all)
	deadline := time.Now().Add(time.Minute)
	for len(m.keys(t, bucket, "registry/docker/registry/v2/_registryd/catalog/built")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("B did not rebuild the index within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	want("catalog from the rebuilt index", catalog(b), all)
	cr("push", img.Layout, a.Addr+"/team/one:v3")
	want("catalog after A's push, rebuilt index", catalog(b), append([]string{}, append(many, "team/one", "team/one/aaa", "team/one-x")...))
}

// TestS3WithTheReference: registryd and the reference registry
// (docker-registry 2.8) on one bucket. What registryd writes (a blob
// streamed straight to its final key, its catalog index under
// _registryd/) the reference reads as its own: it lists and pulls
// registryd's push. The reference does not keep registryd's index, so a
// repository it pushes is in registryd's catalog after `registryd
// reindex` (its tags/list, read from the bucket, has it at once), and one
// whose manifest it deletes leaves registryd's catalog after the same.
func TestS3WithTheReference(t *testing.T) {
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	reg := startRegistrydStorage(t, storageYAML)
	refYAML := fmt.Sprintf("  s3:\n    bucket: %s\n    regionendpoint: %s\n    region: us-east-1\n    secure: false\n    v4auth: true\n    accesskey: %s\n    secretkey: %s\n    rootdirectory: /registry\n",
		bucket, m.endpoint, e2eMinioUser, e2eMinioPassword)
	bin := referenceBin
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("reference registry not found at %s: %s", bin, installHint)
	}
	// (AWS_CA_BUNDLE makes 2.8's S3 driver panic at startup)
	ref := startServerStorage(t, "reference", bin, "", refYAML, []string{"AWS_CA_BUNDLE="})
	crane := tool(t, "crane")
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout
	}
	catalog := func(s *Server) []string {
		t.Helper()
		var c struct{ Repositories []string }
		getJSON(t, s, "/v2/_catalog", &c)
		return c.Repositories
	}
	want := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}

	// A monolithic push (crane sends each blob in one PUT) through registryd.
	img := newTestImage(t, t.TempDir(), "v1", "s3-with-ref")
	cr("push", img.Layout, reg.Addr+"/mine/app:v1")
	want("the reference's catalog after registryd's push", catalog(ref), []string{"mine/app"})
	pulled := t.TempDir()
	cr("pull", "--format=oci", ref.Addr+"/mine/app:v1", pulled)
	if d := strings.TrimSpace(cr("digest", ref.Addr+"/mine/app:v1")); d != img.Digest {
		t.Fatalf("the reference serves %s, registryd pushed %s", d, img.Digest)
	}

	// A push through the reference.
	other := newTestImage(t, t.TempDir(), "x", "s3-with-ref-2")
	cr("push", other.Layout, ref.Addr+"/theirs/app:x")
	var l struct{ Tags []string }
	getJSON(t, reg, "/v2/theirs/app/tags/list", &l)
	want("registryd's tags of the reference's push", l.Tags, []string{"x"})
	res := runCmd(t, serverEnv(nil), 2*time.Minute, registrydBin, "reindex", reg.Config)
	if !strings.Contains(res.Stdout, "2 repositories") {
		t.Fatalf("reindex: %s%s", res.Stdout, res.Stderr)
	}
	want("registryd's catalog after reindex", catalog(reg), []string{"mine/app", "theirs/app"})

	// The reference deletes its manifest.
	od := strings.TrimSpace(cr("digest", ref.Addr+"/theirs/app:x"))
	if r := doHTTP(t, http.MethodDelete, ref.URL("/v2/theirs/app/manifests/"+od), nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("DELETE through the reference: %s", r)
	}
	runCmd(t, serverEnv(nil), 2*time.Minute, registrydBin, "reindex", reg.Config)
	want("registryd's catalog after the reference's delete and reindex", catalog(reg), []string{"mine/app"})
}
