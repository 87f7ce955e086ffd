package v2

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

type testRegistry struct {
	t   *testing.T
	srv *httptest.Server
}

func newTestRegistry(t *testing.T, opts Options) *testRegistry {
	t.Helper()
	reg := storage.New(inmemory.New(), storage.Options{})
	srv := httptest.NewServer(Middleware(NewHandler(reg, opts), nil))
	t.Cleanup(srv.Close)
	return &testRegistry{t: t, srv: srv}
}

func (tr *testRegistry) do(method, path string, body []byte, hdr ...string) *http.Response {
	tr.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tr.srv.URL+path, rd)
	if err != nil {
		tr.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errCode returns the first error code of an error body.
func errCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	b := readBody(t, resp)
	if err := json.Unmarshal(b, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("status %d: not an error body: %q", resp.StatusCode, b)
	}
	return body.Errors[0].Code
}

func (tr *testRegistry) pushBlob(name string, content []byte) digest.Digest {
	tr.t.Helper()
	d := digest.FromBytes(content)
	resp := tr.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), content)
	if resp.StatusCode != http.StatusCreated {
		tr.t.Fatalf("push blob: %d %s", resp.StatusCode, readBody(tr.t, resp))
	}
	return d
}

func (tr *testRegistry) pushManifest(name, ref, mediaType string, content []byte) *http.Response {
	tr.t.Helper()
	return tr.do("PUT", "/v2/"+name+"/manifests/"+ref, content, "Content-Type", mediaType)
}

// image pushes a config and one layer and returns an OCI manifest for them.
func (tr *testRegistry) image(name string, seed string) []byte {
	tr.t.Helper()
	cfg := tr.pushBlob(name, []byte(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`))
	layer := tr.pushBlob(name, []byte("layer-"+seed))
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		cfg, len(`{"architecture":"amd64","os":"linux","seed":"`+seed+`"}`), layer, len("layer-"+seed)))
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func TestBase(t *testing.T) {
	tr := newTestRegistry(t, Options{Version: "1.2.3"})
	for _, m := range []string{"GET", "HEAD"} {
		resp := tr.do(m, "/v2/", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s /v2/: %d", m, resp.StatusCode)
		}
		if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
			t.Errorf("API version header = %q", got)
		}
		if got := resp.Header.Get("X-Registry-Version"); got != "1.2.3" {
			t.Errorf("X-Registry-Version = %q", got)
		}
		if resp.Header.Get(RequestIDHeader) == "" {
			t.Errorf("no request id")
		}
	}
}

func TestBlobUploadFlows(t *testing.T) {
	tr := newTestRegistry(t, Options{DeleteEnabled: true})
	content := []byte("hello, registry: a blob of some bytes")
	d := digest.FromBytes(content)

	t.Run("chunked", func(t *testing.T) {
		resp := tr.do("POST", "/v2/a/b/blobs/uploads/", nil)
		if resp.StatusCode != 202 {
			t.Fatalf("POST: %d", resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		if resp.Header.Get("Range") != "0-0" || resp.Header.Get("Docker-Upload-UUID") == "" || !strings.Contains(loc, "/v2/a/b/blobs/uploads/") {
			t.Fatalf("POST headers: %v", resp.Header)
		}
		path := strings.TrimPrefix(loc, tr.srv.URL)
		resp = tr.do("PATCH", path, content[:10], "Content-Range", "0-9", "Content-Type", "application/octet-stream")
		if resp.StatusCode != 202 || resp.Header.Get("Range") != "0-9" {
			t.Fatalf("PATCH 1: %d range %q", resp.StatusCode, resp.Header.Get("Range"))
		}
		// out of order: 416, nothing written
		resp = tr.do("PATCH", path, content[20:], "Content-Range", "20-"+strconv.Itoa(len(content)-1))
		if resp.StatusCode != 416 {
			t.Fatalf("out of order PATCH: %d", resp.StatusCode)
		}
		resp = tr.do("GET", path, nil)
		if resp.StatusCode != 204 || resp.Header.Get("Range") != "0-9" {
			t.Fatalf("status: %d range %q", resp.StatusCode, resp.Header.Get("Range"))
		}
		resp = tr.do("PATCH", path, content[10:20], "Content-Range", "10-19")
		if resp.StatusCode != 202 {
			t.Fatalf("PATCH 2: %d", resp.StatusCode)
		}
		// final chunk on the PUT
		resp = tr.do("PUT", path+"?digest="+d.String(), content[20:], "Content-Range", "20-"+strconv.Itoa(len(content)-1))
		if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d.String() || !strings.HasSuffix(resp.Header.Get("Location"), "/v2/a/b/blobs/"+d.String()) {
			t.Fatalf("PUT: %d %v %s", resp.StatusCode, resp.Header, readBody(t, resp))
		}
		resp = tr.do("GET", "/v2/a/b/blobs/"+d.String(), nil)
		if got := readBody(t, resp); resp.StatusCode != 200 || !bytes.Equal(got, content) {
			t.Fatalf("GET blob: %d %q", resp.StatusCode, got)
		}
		// the session is gone
		resp = tr.do("GET", path, nil)
		if resp.StatusCode != 404 || errCode(t, resp) != "BLOB_UPLOAD_UNKNOWN" {
			t.Fatalf("finished upload still there: %d", resp.StatusCode)
		}
	})

	t.Run("bad digest", func(t *testing.T) {
		wrong := digest.FromString("something else")
		resp := tr.do("POST", "/v2/a/b/blobs/uploads/?digest="+wrong.String(), content)
		if resp.StatusCode != 400 || errCode(t, resp) != "DIGEST_INVALID" {
			t.Fatalf("mismatch: %d", resp.StatusCode)
		}
		resp = tr.do("HEAD", "/v2/a/b/blobs/"+wrong.String(), nil)
		if resp.StatusCode != 404 {
			t.Fatalf("mismatched blob visible: %d", resp.StatusCode)
		}
	})

	t.Run("sha512", func(t *testing.T) {
		sum := sha512.Sum512(content)
		d512 := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
		resp := tr.do("POST", "/v2/a/b/blobs/uploads/", nil)
		path := strings.TrimPrefix(resp.Header.Get("Location"), tr.srv.URL)
		resp = tr.do("PATCH", path, content)
		if resp.StatusCode != 202 {
			t.Fatalf("PATCH: %d", resp.StatusCode)
		}
		resp = tr.do("PUT", path+"?digest="+d512.String(), nil)
		if resp.StatusCode != 201 {
			t.Fatalf("PUT sha512: %d %s", resp.StatusCode, readBody(t, resp))
		}
		resp = tr.do("GET", "/v2/a/b/blobs/"+d512.String(), nil)
		if got := readBody(t, resp); !bytes.Equal(got, content) {
			t.Fatalf("sha512 blob: %q", got)
		}
	})

	t.Run("empty blob", func(t *testing.T) {
		empty := digest.FromBytes(nil)
		resp := tr.do("POST", "/v2/a/b/blobs/uploads/?digest="+empty.String(), []byte{})
		if resp.StatusCode != 201 {
			t.Fatalf("empty: %d", resp.StatusCode)
		}
		resp = tr.do("HEAD", "/v2/a/b/blobs/"+empty.String(), nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "0" {
			t.Fatalf("HEAD empty: %d %q", resp.StatusCode, resp.Header.Get("Content-Length"))
		}
	})

	t.Run("cancel", func(t *testing.T) {
		resp := tr.do("POST", "/v2/a/b/blobs/uploads/", nil)
		path := strings.TrimPrefix(resp.Header.Get("Location"), tr.srv.URL)
		if resp := tr.do("DELETE", path, nil); resp.StatusCode != 204 {
			t.Fatalf("DELETE upload: %d", resp.StatusCode)
		}
		if resp := tr.do("PATCH", path, []byte("x")); resp.StatusCode != 404 || errCode(t, resp) != "BLOB_UPLOAD_UNKNOWN" {
			t.Fatalf("PATCH after cancel: %d", resp.StatusCode)
		}
	})

	t.Run("mount", func(t *testing.T) {
		resp := tr.do("POST", "/v2/other/blobs/uploads/?mount="+d.String()+"&from=a/b", nil)
		if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("mount: %d", resp.StatusCode)
		}
		// from a repository that does not have it: a new session instead
		resp = tr.do("POST", "/v2/third/blobs/uploads/?mount="+d.String()+"&from=nothere", nil)
		if resp.StatusCode != 202 || resp.Header.Get("Location") == "" {
			t.Fatalf("failed mount: %d", resp.StatusCode)
		}
	})

	t.Run("visibility", func(t *testing.T) {
		resp := tr.do("GET", "/v2/never/pushed/blobs/"+d.String(), nil)
		if resp.StatusCode != 404 || errCode(t, resp) != "BLOB_UNKNOWN" {
			t.Fatalf("blob visible in a repository that never linked it: %d", resp.StatusCode)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if resp := tr.do("DELETE", "/v2/other/blobs/"+d.String(), nil); resp.StatusCode != 202 {
			t.Fatalf("delete blob: %d", resp.StatusCode)
		}
		if resp := tr.do("HEAD", "/v2/other/blobs/"+d.String(), nil); resp.StatusCode != 404 {
			t.Fatalf("deleted blob still linked: %d", resp.StatusCode)
		}
		if resp := tr.do("HEAD", "/v2/a/b/blobs/"+d.String(), nil); resp.StatusCode != 200 {
			t.Fatalf("delete in one repository affected another: %d", resp.StatusCode)
		}
		if resp := tr.do("DELETE", "/v2/other/blobs/"+d.String(), nil); resp.StatusCode != 404 || errCode(t, resp) != "BLOB_UNKNOWN" {
			t.Fatalf("second delete: %d", resp.StatusCode)
		}
	})
}

func TestBlobRanges(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	content := []byte("0123456789")
	d := tr.pushBlob("r", content)
	cases := []struct {
		rng    string
		status int
		body   string
		cr     string
	}{
		{"", 200, "0123456789", ""},
		{"bytes=0-3", 206, "0123", "bytes 0-3/10"},
		{"bytes=5-", 206, "56789", "bytes 5-9/10"},
		{"bytes=-2", 206, "89", "bytes 8-9/10"},
		{"bytes=8-100", 206, "89", "bytes 8-9/10"},
		{"bytes=10-", 416, "", "bytes */10"},
		{"bytes=5-2", 416, "", "bytes */10"},
		{"bytes=0-1,3-4", 200, "0123456789", ""},
		{"garbage", 200, "0123456789", ""},
	}
	for _, c := range cases {
		t.Run(c.rng, func(t *testing.T) {
			var resp *http.Response
			if c.rng == "" {
				resp = tr.do("GET", "/v2/r/blobs/"+d.String(), nil)
			} else {
				resp = tr.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", c.rng)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if got := resp.Header.Get("Content-Range"); got != c.cr {
				t.Errorf("Content-Range %q, want %q", got, c.cr)
			}
			if c.status == 416 {
				if code := errCode(t, resp); code != "RANGE_INVALID" {
					t.Errorf("code %s", code)
				}
				return
			}
			if got := string(readBody(t, resp)); got != c.body {
				t.Errorf("body %q, want %q", got, c.body)
			}
			if resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("ETag") == "" {
				t.Errorf("headers: %v", resp.Header)
			}
		})
	}
}

func TestManifests(t *testing.T) {
	tr := newTestRegistry(t, Options{DeleteEnabled: true})
	name := "openstack.kolla/ubuntu-source-mariadb-clustercheck"
	m := tr.image(name, "one")
	d := digest.FromBytes(m)

	resp := tr.pushManifest(name, "wallaby", ociManifest, m)
	if resp.StatusCode != 201 || resp.Header.Get("Docker-Content-Digest") != d.String() || !strings.HasSuffix(resp.Header.Get("Location"), "/manifests/"+d.String()) {
		t.Fatalf("PUT: %d %v %s", resp.StatusCode, resp.Header, readBody(t, resp))
	}
	for _, ref := range []string{"wallaby", d.String()} {
		for _, method := range []string{"GET", "HEAD"} {
			resp := tr.do(method, "/v2/"+name+"/manifests/"+ref, nil, "Accept", ociManifest)
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d", method, ref, resp.StatusCode)
			}
			if resp.Header.Get("Docker-Content-Digest") != d.String() || resp.Header.Get("Content-Type") != ociManifest || resp.Header.Get("Content-Length") != strconv.Itoa(len(m)) {
				t.Fatalf("%s %s headers: %v", method, ref, resp.Header)
			}
			if body := readBody(t, resp); method == "GET" && !bytes.Equal(body, m) {
				t.Fatalf("body differs")
			}
		}
	}

	t.Run("errors", func(t *testing.T) {
		missing := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2},"layers":[]}`)
		cases := []struct {
			name, ref, ct string
			body          []byte
			status        int
			code          string
		}{
			{"missing blob", "t1", ociManifest, missing, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"not json", "t1", ociManifest, []byte("{"), 400, "MANIFEST_INVALID"},
			{"schema1", "t1", "application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"name":"x","tag":"t","fsLayers":[]}`), 400, "MANIFEST_INVALID"},
			{"media type mismatch", "t1", "application/vnd.oci.image.index.v1+json", m, 400, "MANIFEST_INVALID"},
			{"digest mismatch", digest.FromString("x").String(), ociManifest, m, 400, "DIGEST_INVALID"},
			{"bad tag", "-bad", ociManifest, m, 400, "MANIFEST_INVALID"},
			{"bad digest", "sha256:zz", ociManifest, m, 400, "DIGEST_INVALID"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp := tr.pushManifest(name, c.ref, c.ct, c.body)
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
				}
				if code := errCode(t, resp); code != c.code {
					t.Fatalf("code %s, want %s", code, c.code)
				}
			})
		}
	})

	t.Run("too large", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), storage.DefaultMaxManifestBytes+1)
		resp := tr.pushManifest(name, "big", ociManifest, big)
		if resp.StatusCode != 413 {
			t.Fatalf("oversized manifest: %d", resp.StatusCode)
		}
	})

	t.Run("tags list and delete", func(t *testing.T) {
		for _, tag := range []string{"b", "a", "c"} {
			if resp := tr.pushManifest(name, tag, ociManifest, m); resp.StatusCode != 201 {
				t.Fatalf("tag %s: %d", tag, resp.StatusCode)
			}
		}
		resp := tr.do("GET", "/v2/"+name+"/tags/list?n=2", nil)
		var tl struct {
			Name string
			Tags []string
		}
		json.Unmarshal(readBody(t, resp), &tl)
		if tl.Name != name || strings.Join(tl.Tags, ",") != "a,b" {
			t.Fatalf("page 1: %+v", tl)
		}
		if link := resp.Header.Get("Link"); !strings.Contains(link, "last=b") || !strings.Contains(link, `rel="next"`) {
			t.Fatalf("Link %q", link)
		}
		resp = tr.do("GET", "/v2/"+name+"/tags/list?n=0", nil)
		json.Unmarshal(readBody(t, resp), &tl)
		if len(tl.Tags) != 0 || resp.Header.Get("Link") != "" {
			t.Fatalf("n=0: %+v %q", tl, resp.Header.Get("Link"))
		}
		resp = tr.do("GET", "/v2/"+name+"/tags/list?n=-1", nil)
		if resp.StatusCode != 400 || errCode(t, resp) != "PAGINATION_NUMBER_INVALID" {
			t.Fatalf("n=-1: %d", resp.StatusCode)
		}
		if resp := tr.do("DELETE", "/v2/"+name+"/manifests/a", nil); resp.StatusCode != 202 {
			t.Fatalf("delete tag: %d", resp.StatusCode)
		}
		if resp := tr.do("GET", "/v2/"+name+"/manifests/a", nil); resp.StatusCode != 404 || errCode(t, resp) != "MANIFEST_UNKNOWN" {
			t.Fatalf("deleted tag: %d", resp.StatusCode)
		}
		if resp := tr.do("GET", "/v2/"+name+"/manifests/b", nil); resp.StatusCode != 200 {
			t.Fatalf("other tag gone with the deleted one: %d", resp.StatusCode)
		}
		// delete by digest removes the revision and every tag pointing at it
		if resp := tr.do("DELETE", "/v2/"+name+"/manifests/"+d.String(), nil); resp.StatusCode != 202 {
			t.Fatalf("delete manifest: %d", resp.StatusCode)
		}
		for _, ref := range []string{"b", "c", "wallaby", d.String()} {
			if resp := tr.do("HEAD", "/v2/"+name+"/manifests/"+ref, nil); resp.StatusCode != 404 {
				t.Fatalf("%s still there: %d", ref, resp.StatusCode)
			}
		}
		resp = tr.do("GET", "/v2/"+name+"/tags/list", nil)
		json.Unmarshal(readBody(t, resp), &tl)
		if len(tl.Tags) != 0 {
			t.Fatalf("tags after delete: %v", tl.Tags)
		}
		resp = tr.do("GET", "/v2/_catalog", nil)
		if body := string(readBody(t, resp)); strings.Contains(body, name) {
			t.Fatalf("repository with no manifests still in catalog: %s", body)
		}
	})

	t.Run("unknown repository", func(t *testing.T) {
		resp := tr.do("GET", "/v2/no/such/tags/list", nil)
		if resp.StatusCode != 404 || errCode(t, resp) != "NAME_UNKNOWN" {
			t.Fatalf("tags of unknown repo: %d", resp.StatusCode)
		}
	})
}

func TestIndexAndReferrers(t *testing.T) {
	tr := newTestRegistry(t, Options{DeleteEnabled: true})
	img := tr.image("r", "x")
	imgD := digest.FromBytes(img)
	if resp := tr.pushManifest("r", imgD.String(), ociManifest, img); resp.StatusCode != 201 {
		t.Fatalf("image: %d", resp.StatusCode)
	}
	idx := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"%s","digest":"%s","size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}`, ociManifest, imgD, len(img)))
	if resp := tr.pushManifest("r", "multi", "application/vnd.oci.image.index.v1+json", idx); resp.StatusCode != 201 {
		t.Fatalf("index: %d %s", resp.StatusCode, readBody(t, resp))
	}
	// an index whose child is not in the repository
	bad := bytes.Replace(idx, []byte(imgD.Encoded()), []byte(strings.Repeat("b", 64)), 1)
	if resp := tr.pushManifest("r", "bad", "application/vnd.oci.image.index.v1+json", bad); resp.StatusCode != 400 || errCode(t, resp) != "MANIFEST_BLOB_UNKNOWN" {
		t.Fatalf("index with missing child: %d", resp.StatusCode)
	}
	empty := tr.pushBlob("r", []byte("{}"))
	artifact := func(at string) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","artifactType":"%s","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"%s","digest":"%s","size":%d}}`, ociManifest, at, empty, ociManifest, imgD, len(img)))
	}
	sig := artifact("application/vnd.example.sig")
	sbom := artifact("application/vnd.example.sbom")
	for _, a := range [][]byte{sig, sbom} {
		resp := tr.pushManifest("r", digest.FromBytes(a).String(), ociManifest, a)
		if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != imgD.String() {
			t.Fatalf("artifact: %d subject %q %s", resp.StatusCode, resp.Header.Get("OCI-Subject"), readBody(t, resp))
		}
	}
	get := func(q string) (*http.Response, []string) {
		resp := tr.do("GET", "/v2/r/referrers/"+imgD.String()+q, nil)
		var ix struct {
			MediaType string
			Manifests []struct {
				Digest       string
				ArtifactType string
			}
		}
		json.Unmarshal(readBody(t, resp), &ix)
		var ats []string
		for _, m := range ix.Manifests {
			ats = append(ats, m.ArtifactType)
		}
		if ix.MediaType != "application/vnd.oci.image.index.v1+json" {
			t.Fatalf("referrers media type %q", ix.MediaType)
		}
		return resp, ats
	}
	resp, ats := get("")
	if resp.StatusCode != 200 || len(ats) != 2 || resp.Header.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers: %d %v", resp.StatusCode, ats)
	}
	resp, ats = get("?artifactType=application/vnd.example.sbom")
	if len(ats) != 1 || ats[0] != "application/vnd.example.sbom" || resp.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %v %q", ats, resp.Header.Get("OCI-Filters-Applied"))
	}
	if resp := tr.do("DELETE", "/v2/r/manifests/"+digest.FromBytes(sig).String(), nil); resp.StatusCode != 202 {
		t.Fatalf("delete sig: %d", resp.StatusCode)
	}
	if _, ats = get(""); len(ats) != 1 {
		t.Fatalf("deleted referrer still listed: %v", ats)
	}
	if resp := tr.do("GET", "/v2/r/referrers/"+digest.FromString("none").String(), nil); resp.StatusCode != 200 {
		t.Fatalf("referrers of unknown subject: %d", resp.StatusCode)
	}
}

func TestCatalog(t *testing.T) {
	tr := newTestRegistry(t, Options{CatalogMaxEntries: 3})
	names := []string{"b", "a", "a/b", "a-b", "quay.io/coreos/flannel", "c/d/e"}
	for _, n := range names {
		m := tr.image(n, n)
		if resp := tr.pushManifest(n, "latest", ociManifest, m); resp.StatusCode != 201 {
			t.Fatalf("push %s: %d", n, resp.StatusCode)
		}
	}
	var all []string
	next := "/v2/_catalog?n=2"
	for pages := 0; next != ""; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		resp := tr.do("GET", next, nil)
		var c struct{ Repositories []string }
		json.Unmarshal(readBody(t, resp), &c)
		if len(c.Repositories) > 2 {
			t.Fatalf("page larger than n: %v", c.Repositories)
		}
		all = append(all, c.Repositories...)
		next = ""
		if l := resp.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	want := "a,a/b,a-b,b,c/d/e,quay.io/coreos/flannel"
	if got := strings.Join(all, ","); got != want {
		t.Fatalf("catalog %s, want %s", got, want)
	}
	// n above catalog.maxentries is cut to it, with a Link to go on
	resp := tr.do("GET", "/v2/_catalog?n=100", nil)
	var c struct{ Repositories []string }
	json.Unmarshal(readBody(t, resp), &c)
	if len(c.Repositories) != 3 || resp.Header.Get("Link") == "" {
		t.Fatalf("maxentries: %v %q", c.Repositories, resp.Header.Get("Link"))
	}
}

func TestGuards(t *testing.T) {
	tr := newTestRegistry(t, Options{})
	m := tr.image("r", "x")
	tr.pushManifest("r", "latest", ociManifest, m)
	d := digest.FromBytes(m)
	for _, p := range []string{"/v2/r/manifests/" + d.String(), "/v2/r/manifests/latest", "/v2/r/blobs/" + d.String()} {
		resp := tr.do("DELETE", p, nil)
		if resp.StatusCode != 405 || errCode(t, resp) != "UNSUPPORTED" {
			t.Fatalf("DELETE %s with delete disabled: %d", p, resp.StatusCode)
		}
	}
	ro := newTestRegistry(t, Options{ReadOnly: true, DeleteEnabled: true})
	for _, c := range []struct{ method, path string }{
		{"POST", "/v2/r/blobs/uploads/"},
		{"PUT", "/v2/r/manifests/latest"},
		{"DELETE", "/v2/r/manifests/latest"},
	} {
		resp := ro.do(c.method, c.path, []byte("{}"))
		if resp.StatusCode != 405 || errCode(t, resp) != "UNSUPPORTED" {
			t.Fatalf("read-only %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if resp := ro.do("GET", "/v2/_catalog", nil); resp.StatusCode != 200 {
		t.Fatalf("read-only catalog: %d", resp.StatusCode)
	}
}

// TestHostileInput: everything gets a 4xx with the right code, never a 5xx.
func TestHostileInput(t *testing.T) {
	tr := newTestRegistry(t, Options{DeleteEnabled: true})
	long := strings.Repeat("a", 300)
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/UPPER/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a/../b/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a/%2e%2e/b/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a%2fb/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/" + long + "/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a//b/tags/list", 400, "NAME_INVALID"},
		{"GET", "/v2/a/blobs/sha256:abc", 400, "DIGEST_INVALID"},
		{"GET", "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"},
		{"GET", "/v2/a/blobs/sha256:../../../../etc/passwd", 404, "UNSUPPORTED"},
		{"GET", "/v2/a/manifests/sha256:xyz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/a/manifests/..", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/a/blobs/uploads/../../x", 404, "UNSUPPORTED"},
		{"PATCH", "/v2/a/blobs/uploads/not-a-uuid", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"PUT", "/v2/a/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=sha256:" + strings.Repeat("0", 64), 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/a/referrers/nodigest", 400, "DIGEST_INVALID"},
		{"GET", "/v2/_catalog?n=abc", 400, "PAGINATION_NUMBER_INVALID"},
		{"POST", "/v2/a/blobs/uploads/?digest=sha256:short", 400, "DIGEST_INVALID"},
		{"POST", "/v2/a/blobs/uploads/?digest-algorithm=md5", 400, "DIGEST_INVALID"},
		{"PUT", "/v2/a/manifests/latest", 400, "MANIFEST_INVALID"},
		{"TRACE", "/v2/a/manifests/latest", 405, "UNSUPPORTED"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			resp := tr.do(c.method, c.path, []byte("not json"))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, readBody(t, resp))
			}
			if c.code != "" {
				if code := errCode(t, resp); code != c.code {
					t.Fatalf("code %s, want %s", code, c.code)
				}
			}
		})
	}
	// an upload PUT with a malformed Content-Range
	resp := tr.do("POST", "/v2/a/blobs/uploads/", nil)
	path := strings.TrimPrefix(resp.Header.Get("Location"), tr.srv.URL)
	resp = tr.do("PATCH", path, []byte("abc"), "Content-Range", "x-y")
	if resp.StatusCode != 400 {
		t.Fatalf("bad Content-Range: %d", resp.StatusCode)
	}
}
