package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Hostile input against the real binary: requests are written byte for
// byte on a raw connection, so neither Go's client nor its URL parser
// cleans, encodes or completes anything on the way.

// rawReq is one request as it goes on the wire.
type rawReq struct {
	method, target string
	header         []string // "Key: value"
	body           []byte   // sent as is, after the header
	// cut half-closes the connection after body: the server sees the
	// body end there, whatever Content-Length or chunking promised.
	cut bool
}

type rawResp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResp) code() string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (r rawResp) String() string {
	return fmt.Sprintf("%d %s %q", r.status, r.header.Get("Location"), clipBody(r.body))
}

func clipBody(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

func rawDo(t testing.TB, addr string, q rawReq) rawResp {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", q.method, q.target, addr)
	hasLen := false
	for _, h := range q.header {
		hasLen = hasLen || strings.HasPrefix(strings.ToLower(h), "content-length:") || strings.HasPrefix(strings.ToLower(h), "transfer-encoding:")
		b.WriteString(h + "\r\n")
	}
	if !hasLen {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(q.body))
	}
	b.WriteString("\r\n")
	b.Write(q.body)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatalf("%s %s: write: %v", q.method, q.target, err)
	}
	if q.cut {
		must(t, c.(*net.TCPConn).CloseWrite())
	}
	req, _ := http.NewRequest(q.method, "http://"+addr+"/", nil)
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", q.method, q.target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResp{status: resp.StatusCode, header: resp.Header, body: body}
}

const zeroDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// hostileRoutes is every V2 route under a repository name, with a method
// it answers to (the name is spliced in at %s).
var hostileRoutes = []struct{ method, path string }{
	{"GET", "/v2/%s/tags/list"},
	{"GET", "/v2/%s/manifests/latest"},
	{"HEAD", "/v2/%s/manifests/" + zeroDigest},
	{"PUT", "/v2/%s/manifests/latest"},
	{"DELETE", "/v2/%s/manifests/" + zeroDigest},
	{"GET", "/v2/%s/referrers/" + zeroDigest},
	{"POST", "/v2/%s/blobs/uploads/"},
	{"POST", "/v2/%s/blobs/uploads/?digest=" + zeroDigest},
	{"POST", "/v2/%s/blobs/uploads/?mount=" + zeroDigest + "&from=library/x"},
	{"GET", "/v2/%s/blobs/uploads/0b2a41f4-8ab0-4a7d-9b0e-2b5f3c1e7a10"},
	{"PATCH", "/v2/%s/blobs/uploads/0b2a41f4-8ab0-4a7d-9b0e-2b5f3c1e7a10"},
	{"PUT", "/v2/%s/blobs/uploads/0b2a41f4-8ab0-4a7d-9b0e-2b5f3c1e7a10?digest=" + zeroDigest},
	{"DELETE", "/v2/%s/blobs/uploads/0b2a41f4-8ab0-4a7d-9b0e-2b5f3c1e7a10"},
	{"GET", "/v2/%s/blobs/" + zeroDigest},
	{"HEAD", "/v2/%s/blobs/" + zeroDigest},
	{"DELETE", "/v2/%s/blobs/" + zeroDigest},
}

// hostileNames are repository names that a path-cleaning router would
// turn into another (valid) repository, or that reach outside the names.
var hostileNames = []string{
	"abuse/../etc", "abuse//b", "abuse/x/", "abuse/./x", "./abuse", "../abuse",
	"abuse/..", "abuse/.", "abuse/../../../../etc", "abuse/%2e%2e/etc", "abuse/%2E%2E/etc",
	"abuse/%2fetc", "abuse%2f..%2fetc", "abuse/x%00y", "ABUSE/x", "abuse/x\\..\\y", "abuse/-x",
}

// hostileOther are paths outside the repository routes: none may redirect.
var hostileOther = []string{
	"/v2/../v2/_catalog", "/v2/./_catalog", "/v2//_catalog", "/v2/_catalog/", "/v2/_catalog/..",
	"/v2/_catalog/../abuse/tags/list", "//v2/", "/v2/.", "/v2/..", "/v2/./", "/./v2/", "/v2/../",
	"/healthz/", "/healthz/..", "/./healthz", "/healthz/../v2/_catalog", "/readyz//",
	"/auth/token/..", "/auth//token", "/auth/./token", "/auth/token/../../v2/_catalog",
	"/v2/_registryd/../_catalog", "/ui/../v2/_catalog", "/%2e%2e/v2/_catalog",
}

func checkNoRedirect(t *testing.T, what string, r rawResp) {
	t.Helper()
	if r.status >= 300 && r.status < 400 || r.header.Get("Location") != "" && r.status != http.StatusAccepted && r.status != http.StatusCreated {
		t.Errorf("%s: %s: a redirect (or a Location) for a path that names no valid repository", what, r)
	}
	if r.status >= 500 {
		t.Errorf("%s: %s: a 5xx for bad input", what, r)
	}
}

func hostilePaths(t *testing.T, addr string, auth []string) {
	n := 0
	for _, rt := range hostileRoutes {
		for _, name := range hostileNames {
			target := fmt.Sprintf(rt.path, name)
			r := rawDo(t, addr, rawReq{method: rt.method, target: target, header: auth})
			what := rt.method + " " + target
			checkNoRedirect(t, what, r)
			if r.status != http.StatusBadRequest {
				t.Errorf("%s: %s, want 400 NAME_INVALID", what, r)
			} else if rt.method != http.MethodHead && r.code() != "NAME_INVALID" {
				t.Errorf("%s: code %q, want NAME_INVALID", what, r.code())
			}
			n++
		}
	}
	for _, p := range hostileOther {
		for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "POST"} {
			r := rawDo(t, addr, rawReq{method: m, target: p, header: auth})
			checkNoRedirect(t, m+" "+p, r)
			if r.status != http.StatusNotFound && r.status != http.StatusBadRequest && r.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %s, want 404 (no such route) or 400", m, p, r)
			}
			n++
		}
	}
	t.Logf("%d hostile requests, none redirected", n)
}

// TestHostilePaths: no path is cleaned or redirected, on any route, with
// and without auth (issue: ServeMux in front of the API answered 307 with
// a Location in another repository).
func TestHostilePaths(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		s := startRegistryd(t)
		hostilePaths(t, s.Addr, nil)
	})
	for _, mode := range []string{"htpasswd", "token"} {
		t.Run(mode, func(t *testing.T) {
			s := startAuthRegistryd(t, mode)
			for _, creds := range []http.Header{nil, basicHeader("root")} {
				var hdr []string
				for k, vs := range creds {
					hdr = append(hdr, k+": "+vs[0])
				}
				hostilePaths(t, s.Addr, hdr)
			}
		})
	}
}

func startUpload(t *testing.T, s *Server, repo string) string {
	t.Helper()
	r := doHTTP(t, http.MethodPost, s.URL("/v2/"+repo+"/blobs/uploads/"), nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("start upload: %s", r)
	}
	loc := r.Header.Get("Location")
	if i := strings.Index(loc, "/v2/"); i > 0 {
		loc = loc[i:]
	}
	return loc
}

func withQuery(loc, q string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + q
	}
	return loc + "?" + q
}

// uploadRange is the Range of GET on the upload: what it durably holds.
func uploadRange(t *testing.T, s *Server, loc string) string {
	t.Helper()
	r := doHTTP(t, http.MethodGet, s.URL(loc), nil, nil)
	if r.Status != http.StatusNoContent {
		t.Fatalf("GET %s: %s", loc, r)
	}
	return r.Header.Get("Range")
}

func blobStatus(t *testing.T, s *Server, repo, d string) int {
	t.Helper()
	return doHTTP(t, http.MethodHead, s.URL("/v2/"+repo+"/blobs/"+d), nil, nil).Status
}

func chunked(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n", len(p))
		b.Write(p)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// TestTruncatedRequests: a request whose body did not arrive whole has no
// effect, even when the bytes that did arrive hash to the digest named.
func TestTruncatedRequests(t *testing.T) {
	s := startRegistryd(t)
	half := bytes.Repeat([]byte("registryd truncated body "), 512<<10/25)
	d := sha256Digest(half)
	declared := fmt.Sprintf("Content-Length: %d", 2*len(half))

	t.Run("monolithic PUT cut short", func(t *testing.T) {
		loc := startUpload(t, s, "trunc/put")
		r := rawDo(t, s.Addr, rawReq{method: "PUT", target: withQuery(loc, "digest="+d), header: []string{declared}, body: half, cut: true})
		if r.status != http.StatusBadRequest || r.code() != "BLOB_UPLOAD_INVALID" {
			t.Errorf("cut-off PUT: %s, want 400 BLOB_UPLOAD_INVALID", r)
		}
		if st := blobStatus(t, s, "trunc/put", d); st != http.StatusNotFound {
			t.Fatalf("blob visible after a cut-off PUT: HEAD %d", st)
		}
		// What arrived may stay in the session (the client learns how much
		// from GET), and completing it with the rest is a normal upload.
		if got := uploadRange(t, s, loc); got != fmt.Sprintf("0-%d", len(half)-1) && got != "0-0" {
			t.Fatalf("upload Range %q after the cut-off PUT", got)
		}
	})
	t.Run("POST with digest cut short", func(t *testing.T) {
		r := rawDo(t, s.Addr, rawReq{method: "POST", target: "/v2/trunc/post/blobs/uploads/?digest=" + d, header: []string{declared}, body: half, cut: true})
		if r.status != http.StatusBadRequest {
			t.Errorf("cut-off POST: %s, want 400", r)
		}
		if st := blobStatus(t, s, "trunc/post", d); st != http.StatusNotFound {
			t.Fatalf("blob visible after a cut-off POST: HEAD %d", st)
		}
	})
	t.Run("chunked PUT without its last chunk", func(t *testing.T) {
		loc := startUpload(t, s, "trunc/chunked")
		r := rawDo(t, s.Addr, rawReq{method: "PUT", target: withQuery(loc, "digest="+d), header: []string{"Transfer-Encoding: chunked"}, body: chunked(half[:1000], half[1000:]), cut: true})
		if r.status != http.StatusBadRequest {
			t.Errorf("chunked PUT without the last chunk: %s, want 400", r)
		}
		if st := blobStatus(t, s, "trunc/chunked", d); st != http.StatusNotFound {
			t.Fatalf("blob visible after a chunked PUT without its last chunk: HEAD %d", st)
		}
		// The same body with its last chunk is a complete request.
		loc = startUpload(t, s, "trunc/chunked")
		body := append(chunked(half[:1000], half[1000:]), "0\r\n\r\n"...)
		if r := rawDo(t, s.Addr, rawReq{method: "PUT", target: withQuery(loc, "digest="+d), header: []string{"Transfer-Encoding: chunked"}, body: body}); r.status != http.StatusCreated {
			t.Fatalf("complete chunked PUT: %s", r)
		}
	})
	t.Run("PATCH cut short keeps at most what arrived", func(t *testing.T) {
		loc := startUpload(t, s, "trunc/patch")
		r := rawDo(t, s.Addr, rawReq{method: "PATCH", target: loc, header: []string{declared, "Content-Range: 0-" + fmt.Sprint(2*len(half)-1)}, body: half, cut: true})
		if r.status != http.StatusBadRequest {
			t.Errorf("cut-off PATCH: %s, want 400", r)
		}
		var got int
		if _, err := fmt.Sscanf(uploadRange(t, s, loc), "0-%d", &got); err != nil || got+1 > len(half) {
			t.Fatalf("upload holds %d bytes after a PATCH that sent %d", got+1, len(half))
		}
		// Resume from the offset the server gives, finish, pull back.
		rest := half[got+1:]
		if got == 0 && uploadRange(t, s, loc) == "0-0" {
			rest = half // nothing kept
		}
		if off := len(half) - len(rest); len(rest) > 0 {
			r = rawDo(t, s.Addr, rawReq{method: "PATCH", target: loc, header: []string{fmt.Sprintf("Content-Range: %d-%d", off, len(half)-1)}, body: rest})
			if r.status != http.StatusAccepted {
				t.Fatalf("resuming PATCH: %s", r)
			}
		}
		if r := doHTTP(t, http.MethodPut, s.URL(withQuery(loc, "digest="+d)), nil, nil); r.Status != http.StatusCreated {
			t.Fatalf("completing PUT: %s", r)
		}
		checkBlob(t, s, "trunc/patch", d, half)
	})
	t.Run("manifest PUT cut short", func(t *testing.T) {
		cfg := pushBlobHTTP(t, s, "trunc/m", []byte(`{"os":"linux"}`))
		m := imageManifest(cfg, len(`{"os":"linux"}`), d, len(half))
		pushBlobHTTP(t, s, "trunc/m", half)
		r := rawDo(t, s.Addr, rawReq{method: "PUT", target: "/v2/trunc/m/manifests/v1", header: []string{"Content-Type: application/vnd.oci.image.manifest.v1+json", fmt.Sprintf("Content-Length: %d", len(m)+10)}, body: m, cut: true})
		if r.status != http.StatusBadRequest || r.code() != "MANIFEST_INVALID" {
			t.Errorf("cut-off manifest PUT: %s, want 400 MANIFEST_INVALID", r)
		}
		if r := getManifest(t, s, "trunc/m", "v1"); r.Status != http.StatusNotFound {
			t.Fatalf("manifest visible after a cut-off PUT: %s", r)
		}
	})
}

// TestContentRange: only the spec's "<start>-<end>", matching the body;
// anything else is refused before a byte is written.
func TestContentRange(t *testing.T) {
	s := startRegistryd(t)
	body := []byte("0123456789")
	for _, tc := range []struct {
		header []string
		body   []byte
		status int
		kept   string // Range of the upload afterwards
	}{
		{[]string{"Content-Range: bytes=0-9"}, body, 416, "0-0"},
		{[]string{"Content-Range: bytes 0-9/10"}, body, 416, "0-0"},
		{[]string{"Content-Range: x-y"}, body, 400, "0-0"},
		{[]string{"Content-Range: 0-9/10"}, body, 400, "0-0"},
		{[]string{"Content-Range: -0-9"}, body, 400, "0-0"},
		{[]string{"Content-Range: 0-19"}, body, 416, "0-0"}, // longer than the body
		{[]string{"Content-Range: 0-4"}, body, 416, "0-0"},  // shorter than the body
		{[]string{"Content-Range: 5-14"}, body, 416, "0-0"}, // not at the end of the upload
		// No Content-Length: the range bounds the body while reading.
		{[]string{"Content-Range: 0-9", "Transfer-Encoding: chunked"}, append(chunked(body), "0\r\n\r\n"...), 202, "0-9"},
		{[]string{"Content-Range: 0-19", "Transfer-Encoding: chunked"}, append(chunked(body), "0\r\n\r\n"...), 416, "0-9"},
		{[]string{"Content-Range: 0-9"}, body, 202, "0-9"},
	} {
		loc := startUpload(t, s, "range/x")
		r := rawDo(t, s.Addr, rawReq{method: "PATCH", target: loc, header: tc.header, body: tc.body})
		if r.status != tc.status || r.status != http.StatusAccepted && r.code() != "RANGE_INVALID" {
			t.Errorf("PATCH %q: %s, want %d RANGE_INVALID", tc.header, r, tc.status)
		}
		if got := uploadRange(t, s, loc); got != tc.kept {
			t.Errorf("PATCH %q: upload Range %q afterwards, want %q", tc.header, got, tc.kept)
		}
	}
}
