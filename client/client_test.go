package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	v2 "github.com/registryd/registryd/api/v2"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

func TestParseReference(t *testing.T) {
	d := digest.FromString("x")
	cases := []struct {
		in      string
		want    Reference
		wantErr string
	}{
		{"localhost:5000/team/app:v1", Reference{Host: "localhost:5000", Repository: "team/app", Tag: "v1"}, ""},
		{"localhost:5000/team/app", Reference{Host: "localhost:5000", Repository: "team/app"}, ""},
		{"localhost:5000", Reference{Host: "localhost:5000"}, ""},
		{"localhost:5000/", Reference{Host: "localhost:5000"}, ""},
		{"localhost/app", Reference{Host: "localhost", Repository: "app"}, ""},
		{"registry.example.com/a/b/c@" + string(d), Reference{Host: "registry.example.com", Repository: "a/b/c", Digest: d}, ""},
		{"registry.example.com/a:v1@" + string(d), Reference{Host: "registry.example.com", Repository: "a", Tag: "v1", Digest: d}, ""},
		{"https://registry.example.com/a", Reference{Host: "registry.example.com", Repository: "a"}, ""},
		{"[::1]:5000/a", Reference{Host: "[::1]:5000", Repository: "a"}, ""},
		{"127.0.0.1:5000/a.b_c__d-e/f", Reference{Host: "127.0.0.1:5000", Repository: "a.b_c__d-e/f"}, ""},
		{"docker.io/alpine:3", Reference{Host: "docker.io", Repository: "library/alpine", Tag: "3"}, ""},
		{"team/app:v1", Reference{}, "not a registry host"},
		{"app", Reference{}, "not a registry host"},
		{"", Reference{}, "empty reference"},
		{"localhost:5000/Team/app", Reference{}, "invalid repository name"},
		{"localhost:5000/a//b", Reference{}, "invalid repository name"},
		{"localhost:5000/a:-bad", Reference{}, "invalid tag"},
		{"localhost:5000/a@sha256:zz", Reference{}, "invalid digest"},
		{"localhost:x/a", Reference{}, "invalid port"},
		{"local_host:5000/a", Reference{}, "invalid registry host"},
		{"[zz]:5000/a", Reference{}, "invalid registry host"},
	}
	for _, tc := range cases {
		got, err := ParseReference(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseReference(%q) = %+v, %v; want error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	r, _ := ParseReference("localhost:5000/a:v1")
	if r.String() != "localhost:5000/a:v1" || r.Ref() != "v1" || r.Repo().String() != "localhost:5000/a" {
		t.Errorf("%q %q %q", r.String(), r.Ref(), r.Repo())
	}
	if (Reference{Host: "h.io", Repository: "a"}).Ref() != "latest" {
		t.Error("a reference without tag or digest is latest, as docker")
	}
	if (Reference{Host: "docker.io"}).APIHost() != "registry-1.docker.io" {
		t.Error("docker.io is served by registry-1.docker.io")
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.8.9.1": true, "[::1]:5000": true, "::1": true,
		"10.0.0.1:5000": false, "192.168.1.2": false, "registry.local": false, "example.com": false, "localhost.example.com": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

// Plain HTTP goes to loopback hosts only, unless Insecure: credentials
// would otherwise cross the network in the clear (go-containerregistry's
// ping alone also tries http for RFC 1918 addresses and *.local).
func TestSchemeGuard(t *testing.T) {
	var sent atomic.Int32
	inner := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent.Add(1)
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	for _, tc := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"http://127.0.0.1:5000/v2/", false, true},
		{"http://localhost:5000/v2/", false, true},
		{"http://10.1.2.3:5000/v2/", false, false},
		{"http://registry.local/v2/", false, false},
		{"http://10.1.2.3:5000/v2/", true, true},
		{"https://10.1.2.3:5000/v2/", false, true},
	} {
		g := &schemeGuard{inner: inner, insecure: tc.insecure}
		req, _ := http.NewRequest("GET", tc.url, nil)
		before := sent.Load()
		_, err := g.RoundTrip(req)
		if (err == nil) != tc.ok || (sent.Load() > before) != tc.ok {
			t.Errorf("%s insecure=%v: err %v, sent %v", tc.url, tc.insecure, err, sent.Load() > before)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNextLink(t *testing.T) {
	for _, tc := range []struct {
		link, path, last string
	}{
		{`</v2/_catalog?last=b&n=2>; rel="next"`, "/v2/_catalog", "b"},
		{`<https://elsewhere.example.com/v2/_catalog?last=c&n=2>; rel="next"`, "/v2/_catalog", "c"}, // same registry, whatever host
		{`</v2/a/tags/list?last=x>; rel=next`, "/v2/a/tags/list", "x"},
		{`</v2/x>; rel="prev"`, "", ""},
		{``, "", ""},
	} {
		h := http.Header{}
		if tc.link != "" {
			h.Set("Link", tc.link)
		}
		p, q := nextLink(h)
		if p != tc.path || q.Get("last") != tc.last {
			t.Errorf("nextLink(%q) = %q %v", tc.link, p, q)
		}
	}
}

func TestErrorDecoding(t *testing.T) {
	mk := func(status int, body string) error {
		rec := httptest.NewRecorder()
		rec.WriteHeader(status)
		rec.WriteString(body)
		u, _ := url.Parse("https://h.io/v2/a/manifests/v1")
		return decodeError("DELETE", u, rec.Result())
	}
	err := mk(404, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
	if !IsNotFound(err) || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || !strings.Contains(err.Error(), "DELETE /v2/a/manifests/v1: 404") {
		t.Errorf("404: %v", err)
	}
	for _, tc := range []struct {
		status int
		body   string
		unsup  bool
	}{
		{405, `{"errors":[{"code":"UNSUPPORTED"}]}`, true},
		{400, `{"errors":[{"code":"DIGEST_INVALID"}]}`, true}, // distribution 2.x, DELETE by tag
		{400, ``, true},
		{400, `{"errors":[{"code":"NAME_INVALID"}]}`, false},
		{401, `{"errors":[{"code":"UNAUTHORIZED"}]}`, false},
		{404, ``, false},
	} {
		if got := IsUnsupported(mk(tc.status, tc.body)); got != tc.unsup {
			t.Errorf("IsUnsupported(%d %s) = %v", tc.status, tc.body, got)
		}
	}
	if err := mk(401, ""); !strings.Contains(err.Error(), "registryd login") {
		t.Errorf("401 says how to log in: %v", err)
	}
	if err := mk(500, strings.Repeat("x", 1000)); len(err.Error()) > 400 {
		t.Errorf("a long non-JSON body is cut: %d bytes", len(err.Error()))
	}
}

func TestPlaceholderManifestIsUnique(t *testing.T) {
	a, mt, err := placeholderManifest()
	if err != nil || mt != ocispec.MediaTypeImageManifest {
		t.Fatal(err, mt)
	}
	b, _, _ := placeholderManifest()
	if bytes.Equal(a, b) {
		t.Fatal("two placeholders have the same digest: deleting one could take another tag")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(a, &m); err != nil || m.SchemaVersion != 2 || m.Config.Digest != digest.FromBytes([]byte("{}")) || m.Layers == nil {
		t.Fatalf("%s", a)
	}
}

// ---------------------------------------------------------------- against registryd's API handler

// testServer is registryd's V2 handler on a loopback httptest server,
// with wrap to change its behaviour (a registry without delete by tag).
type testServer struct {
	*httptest.Server
	host string
	reqs atomic.Int64
}

func newTestServer(t *testing.T, maxEntries int, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	reg := storage.New(inmemory.New(), storage.Options{NoDirWatch: true})
	var h http.Handler = v2.Middleware(v2.NewHandler(reg, v2.Options{DeleteEnabled: true, CatalogMaxEntries: maxEntries}), nil)
	if wrap != nil {
		h = wrap(h)
	}
	ts := &testServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.reqs.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	ts.host = u.Host
	return ts
}

func newTestClient(t *testing.T) *Client {
	t.Helper()
	c, err := New(Options{Keychain: staticKeychain{authn.Anonymous}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// image pushes a one-layer image (config, layer and manifest) with the
// client's own calls and returns the manifest's digest and total size.
func pushImage(t *testing.T, c *Client, r Reference, seed string, tags ...string) (digest.Digest, int64) {
	t.Helper()
	ctx := context.Background()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05Z","config":{"Env":["SEED=%s"],"Labels":{"seed":%q}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"test %s"}]}`, seed, seed, seed))
	layer := []byte("layer " + seed)
	cd, err := c.PutBlob(ctx, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := c.PutBlob(ctx, r, layer)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specsVersioned(),
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: ld, Size: int64(len(layer))}},
	})
	var d digest.Digest
	for _, tag := range tags {
		d, err = c.PutManifest(ctx, r.WithTag(tag), ocispec.MediaTypeImageManifest, m)
		if err != nil {
			t.Fatal(err)
		}
	}
	return d, int64(len(m) + len(cfg) + len(layer))
}

func TestV2AgainstRegistryd(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, 2, nil) // pages of 2: pagination is followed
	c := newTestClient(t)
	repo := func(name string) Reference { return Reference{Host: ts.host, Repository: name} }
	for _, n := range []string{"a", "b", "c", "team/x", "team/y"} {
		pushImage(t, c, repo(n), n, "v1")
	}
	d1, size1 := pushImage(t, c, repo("team/app"), "one", "v1", "v1-alias", "v3", "v4", "v5")
	d2, _ := pushImage(t, c, repo("team/app"), "two", "v2")

	repos, err := c.Repositories(ctx, ts.host)
	if err != nil || !slices.Equal(repos, []string{"a", "b", "c", "team/app", "team/x", "team/y"}) {
		t.Fatalf("Repositories = %v, %v", repos, err)
	}
	tags, err := c.Tags(ctx, repo("team/app"))
	if err != nil || !slices.Equal(tags, []string{"v1", "v1-alias", "v2", "v3", "v4", "v5"}) {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
	if _, err := c.Tags(ctx, repo("nope")); !IsNotFound(err) {
		t.Fatalf("Tags of a missing repository: %v", err)
	}
	desc, err := c.Head(ctx, repo("team/app").WithTag("v1"))
	if err != nil || desc.Digest != d1 || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("Head = %+v, %v", desc, err)
	}
	if _, err := c.Head(ctx, repo("team/app").WithTag("nope")); !IsNotFound(err) {
		t.Fatalf("Head of a missing tag: %v", err)
	}

	img, err := c.Inspect(ctx, repo("team/app").WithTag("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d1 || img.Size != size1 || img.Platform != "linux/amd64" || len(img.Layers) != 1 ||
		img.Config == nil || img.Config.Labels["seed"] != "one" || img.Config.Created == nil || len(img.Config.History) != 1 {
		t.Fatalf("Inspect = %+v", img)
	}

	byDigest, err := c.TagsOf(ctx, repo("team/app"))
	if err != nil || !slices.Equal(byDigest[d1], []string{"v1", "v1-alias", "v3", "v4", "v5"}) || !slices.Equal(byDigest[d2], []string{"v2"}) {
		t.Fatalf("TagsOf = %v, %v", byDigest, err)
	}
	imp, err := c.Impact(ctx, repo("team/app").WithDigest(d1))
	if err != nil || len(imp.Tags) != 5 || imp.Exclusive != -1 {
		t.Fatalf("Impact = %+v, %v", imp, err)
	}

	// registryd deletes by tag: only that tag goes.
	how, err := c.DeleteTag(ctx, repo("team/app").WithTag("v1"))
	if err != nil || how != TagDeleteOCI {
		t.Fatalf("DeleteTag = %q, %v", how, err)
	}
	if got, _ := c.Head(ctx, repo("team/app").WithTag("v1-alias")); got.Digest != d1 {
		t.Fatal("the sibling tag went with the deleted one")
	}
	if _, err := c.Head(ctx, repo("team/app").WithTag("v1")); !IsNotFound(err) {
		t.Fatalf("the deleted tag is still there: %v", err)
	}
}

// A registry that deletes only by digest (distribution 2.x answers a DELETE
// by tag with 400 DIGEST_INVALID): tag rm pushes a placeholder over the tag
// and deletes that, and the sibling stays.
func TestDeleteTagPlaceholder(t *testing.T) {
	ctx := context.Background()
	byTag := 0
	ts := newTestServer(t, 100, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "sha256:") {
				byTag++
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				fmt.Fprint(w, `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	c := newTestClient(t)
	r := Reference{Host: ts.host, Repository: "team/app"}
	d, _ := pushImage(t, c, r, "one", "v1", "v2")
	how, err := c.DeleteTag(ctx, r.WithTag("v1"))
	if err != nil || how != TagDeletePlaceholder || byTag != 1 {
		t.Fatalf("DeleteTag = %q, %v (%d deletes by tag)", how, err, byTag)
	}
	tags, _ := c.Tags(ctx, r)
	if !slices.Equal(tags, []string{"v2"}) {
		t.Fatalf("tags after tag rm: %v", tags)
	}
	if got, _ := c.Head(ctx, r.WithTag("v2")); got.Digest != d {
		t.Fatalf("v2 now points to %s", got.Digest)
	}
}

func TestComputeUsage(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, 100, nil)
	c := newTestClient(t)
	repo := func(name string) Reference { return Reference{Host: ts.host, Repository: name} }
	_, sizeA := pushImage(t, c, repo("a"), "only-a", "v1", "v2") // two tags, one image
	_, sizeShared := pushImage(t, c, repo("a"), "shared", "s")
	pushImage(t, c, repo("b"), "shared", "s")
	var calls []int
	u, err := c.ComputeUsage(ctx, ts.host, []string{"a", "b"}, func(n string) bool { return n == "a" }, func(done, total int) { calls = append(calls, done) })
	if err != nil {
		t.Fatal(err)
	}
	want := RepoUsage{Repository: "a", Tags: 3, Logical: sizeA + sizeShared, Unique: sizeA + sizeShared, Exclusive: sizeA}
	if len(u) != 1 || u[0] != want {
		t.Fatalf("ComputeUsage = %+v, want %+v", u, want)
	}
	if len(calls) != 2 {
		t.Errorf("progress calls: %v", calls)
	}
}

func TestRepoContents(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, 100, nil)
	c := newTestClient(t)
	r := Reference{Host: ts.host, Repository: "multi"}
	amd, _ := pushImage(t, c, r, "amd", "amd")
	arm, _ := pushImage(t, c, r, "arm", "arm")
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: amd, Size: sizeOf(t, c, r, amd), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: arm, Size: sizeOf(t, c, r, arm), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
	}})
	id, err := c.PutManifest(ctx, r.WithTag("v1"), ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		t.Fatal(err)
	}
	// The children lose their own tags: only the index reaches them.
	for _, tag := range []string{"amd", "arm"} {
		if _, err := c.DeleteTag(ctx, r.WithTag(tag)); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := c.Contents(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Tags) != 1 || rc.Tags["v1"] != id || len(rc.Manifests) != 3 || rc.Manifests[0] != id {
		t.Fatalf("Contents = %+v (index %s)", rc, id)
	}
	img, err := c.Inspect(ctx, r.WithTag("v1"))
	if err != nil || len(img.Manifests) != 2 || img.Manifests[1].Platform != "linux/arm64" || img.Manifests[0].Config == nil {
		t.Fatalf("Inspect of an index = %+v, %v", img, err)
	}
	// One image, the index with its platforms: logical counts it once,
	// and its children only as parts of it.
	u, err := c.ComputeUsage(ctx, ts.host, []string{"multi"}, nil, nil)
	if err != nil || len(u) != 1 || u[0].Logical != img.Size || u[0].Unique != img.Size || u[0].Exclusive != img.Size || u[0].Tags != 1 {
		t.Fatalf("ComputeUsage of an index = %+v, %v; the image is %d bytes", u, err, img.Size)
	}
}

func sizeOf(t *testing.T, c *Client, r Reference, d digest.Digest) int64 {
	t.Helper()
	m, err := c.Manifest(context.Background(), r.WithDigest(d))
	if err != nil {
		t.Fatal(err)
	}
	return m.Descriptor.Size
}

// The admin API is discovered: registryd without it (404) and any other
// registry get nil, and the answer is asked once per host.
func TestAdminDiscovery(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, 100, nil)
	c := newTestClient(t)
	for range 3 {
		info, err := c.Admin(ctx, ts.host)
		if err != nil || info != nil {
			t.Fatalf("Admin = %+v, %v", info, err)
		}
	}
	before := ts.reqs.Load()
	c.Admin(ctx, ts.host)
	if ts.reqs.Load() != before {
		t.Error("the admin API was asked again")
	}
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

// A signature pushed with a subject: inspect lists it, du counts it in the
// repository, repo rm's contents include it, manifest rm's impact names it.
func TestReferrers(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t, 100, nil)
	c := newTestClient(t)
	r := Reference{Host: ts.host, Repository: "signed"}
	img, size := pushImage(t, c, r, "img", "v1")
	payload := []byte(`{"signature":"x"}`)
	pd, err := c.PutBlob(ctx, r, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutBlob(ctx, r, emptyJSON); err != nil {
		t.Fatal(err)
	}
	sig, _ := json.Marshal(ocispec.Manifest{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
		Config:       ocispec.Descriptor{MediaType: mediaTypeEmpty, Digest: digest.FromBytes(emptyJSON), Size: 2},
		Layers:       []ocispec.Descriptor{{MediaType: "application/octet-stream", Digest: pd, Size: int64(len(payload))}},
		Subject:      &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: img, Size: sizeOf(t, c, r, img)}})
	sd, err := c.PutManifest(ctx, r.WithDigest(digest.FromBytes(sig)), ocispec.MediaTypeImageManifest, sig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Inspect(ctx, r.WithTag("v1"))
	if err != nil || len(got.Referrers) != 1 || got.Referrers[0].Digest != sd || got.Referrers[0].ArtifactType != "application/vnd.dev.cosign.artifact.sig.v1+json" {
		t.Fatalf("Inspect referrers = %+v, %v", got.Referrers, err)
	}
	u, err := c.ComputeUsage(ctx, ts.host, []string{"signed"}, nil, nil)
	sigSize := int64(len(sig) + len(payload) + 2)
	if err != nil || u[0].Unique != size+sigSize || u[0].Logical != size+sigSize {
		t.Fatalf("ComputeUsage with a referrer = %+v, %v (image %d, signature %d)", u, err, size, sigSize)
	}
	rc, err := c.Contents(ctx, r)
	if err != nil || !slices.Equal(rc.Manifests, []digest.Digest{img, sd}) {
		t.Fatalf("Contents = %+v, %v", rc, err)
	}
	imp, err := c.Impact(ctx, r.WithDigest(img))
	if err != nil || len(imp.Referrers) != 1 || imp.Referrers[0].Digest != sd || !slices.Equal(imp.Tags, []string{"v1"}) {
		t.Fatalf("Impact = %+v, %v", imp, err)
	}
}
