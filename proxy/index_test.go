package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const mtIndex = "application/vnd.oci.image.index.v1+json"

// pushIndex stores in the upstream an index of imgs' manifests (pushed
// by digest, untagged) tagged tag. Its JSON is indented and carries an
// annotation, so a mirror that re-encoded it would change its digest.
func (u *upstreamServer) pushIndex(t *testing.T, repo, tag string, imgs ...image) ([]byte, digest.Digest) {
	t.Helper()
	ctx := context.Background()
	r, err := u.reg.Repository(repo)
	must(t, err)
	var entries []string
	for i, img := range imgs {
		entries = append(entries, fmt.Sprintf(`    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": %q,
      "size": %d,
      "platform": {"architecture": "arch%d", "os": "linux"}
    }`, img.digest, len(img.manifest), i))
	}
	idx := []byte("{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"" + mtIndex + "\",\n  \"manifests\": [\n" +
		strings.Join(entries, ",\n") + "\n  ],\n  \"annotations\": {\"org.example.kept\": \"as sent\"}\n}\n")
	got, err := r.PutManifest(ctx, tag, mtIndex, idx, nil)
	must(t, err)
	return idx, got.Digest
}

// pushUntagged stores an image in repo by digest only (an index's child).
func (u *upstreamServer) pushUntagged(t *testing.T, repo string, size int, seed int64) image {
	t.Helper()
	img := u.push(t, repo, "scratch", size, seed)
	r, err := u.reg.Repository(repo)
	must(t, err)
	must(t, r.DeleteTag(context.Background(), "scratch"))
	img.tag = img.digest.String()
	return img
}

// An index is cached whole and bit for bit (the upstream's bytes, media
// type and digest); its children are fetched when a client asks for them,
// not before; with the upstream down the index and the children pulled
// before are served from the cache, a child never asked for is 503.
func TestIndexBitForBit(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	a := up.pushUntagged(t, "multi/app", 8<<10, 40)
	b := up.pushUntagged(t, "multi/app", 8<<10, 41)
	idx, idxDigest := up.pushIndex(t, "multi/app", "v1", a, b)
	m := startMirror(t, single(up))
	up.reset()

	r := do(t, "GET", m.URL+"/v2/multi/app/manifests/v1", accept)
	if r.status != 200 || !bytes.Equal(r.body, idx) {
		t.Fatalf("index by tag through the mirror: %d, %d bytes (equal: %v)", r.status, len(r.body), bytes.Equal(r.body, idx))
	}
	if ct, dg := r.header.Get("Content-Type"), r.header.Get("Docker-Content-Digest"); ct != mtIndex || dg != idxDigest.String() {
		t.Errorf("index served as %q %s, want %q %s", ct, dg, mtIndex, idxDigest)
	}
	if n := up.count("GET", "manifest"); n != 1 {
		t.Errorf("the index alone cost %d manifest GETs upstream, want 1 (children only when asked): %v", n, up.requests())
	}
	// The cache holds the upstream's bytes under the upstream's digest.
	got, err := m.cacheRepo(t, "multi/app").GetManifest(t.Context(), idxDigest.String())
	if err != nil || !bytes.Equal(got.Content, idx) {
		t.Fatalf("the cached index: %v", err)
	}

	// One child, as a client of arch0 pulls it: by digest, then its blobs.
	pull(t, m, "multi/app", a)
	if n := up.count("GET", "manifest"); n != 2 {
		t.Errorf("after pulling one child: %d manifest GETs upstream, want 2: %v", n, up.requests())
	}
	waitFor(t, "the child's layer in the cache", func() bool {
		_, err := m.cacheRepo(t, "multi/app").StatBlob(t.Context(), a.layer)
		return err == nil
	})

	// The upstream fails from now on; past revalidate the tag is checked.
	up.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	m.clock.add(2 * time.Minute)
	r = do(t, "GET", m.URL+"/v2/multi/app/manifests/v1", accept)
	if r.status != 200 || !bytes.Equal(r.body, idx) || r.header.Get("Warning") == "" {
		t.Errorf("index with the upstream down: %d (same bytes: %v), Warning %q", r.status, bytes.Equal(r.body, idx), r.header.Get("Warning"))
	}
	pull(t, m, "multi/app", a)
	r = do(t, "GET", m.URL+"/v2/multi/app/manifests/"+b.digest.String(), accept)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("a child never fetched, with the upstream down: %d %v %s", r.status, r.header, r.body)
	}
}
