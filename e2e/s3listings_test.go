package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
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
