package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/internal/localsrv"
)

// More hostile input against the real binary, raw on the wire, open and
// behind htpasswd and token auth: malformed digests, names, ranges and
// manifests, slow and cut-off requests, a full disk. Nothing may get a
// 5xx (but a full disk's 503), a redirect, a Location outside an upload
// or a push, or store anything; what is refused is refused with the
// spec's code. Crashes mid-request are in crash_test.go.

// hostileTarget is a registry and the credentials its requests carry.
type hostileTarget struct {
	name string
	addr string
	auth []string // header lines; nil for none
}

const hostileRepo = "hostile/app"

// hostileTargets starts registryd open, with htpasswd and with token
// auth (root's credentials, a token for everything the tests touch).
func hostileTargets(t *testing.T) []hostileTarget {
	t.Helper()
	open := startRegistryd(t)
	htp := startAuthRegistryd(t, "htpasswd")
	tok := startAuthRegistryd(t, "token")
	scope := url.QueryEscape("repository:" + hostileRepo + ":pull,push,delete")
	r := doHTTP(t, http.MethodGet, tok.URL("/auth/token?service=registryd-e2e&scope="+scope), basicHeader("root"), nil)
	var tk struct {
		Token string `json:"token"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tk) != nil || tk.Token == "" {
		t.Fatalf("token: %s", r)
	}
	return []hostileTarget{
		{"open", open.Addr, nil},
		{"htpasswd", htp.Addr, []string{"Authorization: " + basicHeader("root").Get("Authorization")}},
		{"token", tok.Addr, []string{"Authorization: Bearer " + tk.Token}},
	}
}

func (h hostileTarget) do(t *testing.T, method, target string, header []string, body []byte) rawResp {
	t.Helper()
	return rawDo(t, h.addr, rawReq{method: method, target: target, header: append(append([]string{}, h.auth...), header...), body: body})
}

// strict checks what every answer here must be: no 5xx, no redirect, no
// Location but an upload's or a push's, under /v2/ and this repository.
func strict(t *testing.T, what string, r rawResp) {
	t.Helper()
	if r.status >= 500 {
		t.Errorf("%s: %s: a 5xx for bad input", what, r)
	}
	if r.status >= 300 && r.status < 400 {
		t.Errorf("%s: %s: a redirect", what, r)
	}
	if loc := r.header.Get("Location"); loc != "" {
		u, err := url.Parse(loc)
		if err != nil || (r.status != http.StatusAccepted && r.status != http.StatusCreated) || !strings.HasPrefix(u.Path, "/v2/"+hostileRepo+"/") {
			t.Errorf("%s: %s: Location %q", what, r, loc)
		}
	}
}

// expect checks status and, for a body, the error code.
func expect(t *testing.T, what string, r rawResp, status int, code string) {
	t.Helper()
	strict(t, what, r)
	if r.status != status || (code != "" && r.code() != code) {
		t.Errorf("%s: %s, want %d %s", what, r, status, code)
	}
}

// hostileImage pushes a config and a layer and tags a manifest v1.
func hostileImage(t *testing.T, h hostileTarget) (layer []byte, layerDigest string) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer = bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for _, b := range [][]byte{cfg, layer} {
		r := h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/?digest="+sha256Digest(b), nil, b)
		if r.status != http.StatusCreated {
			t.Fatalf("%s: push blob: %s", h.name, r)
		}
	}
	m := imageManifest(sha256Digest(cfg), len(cfg), sha256Digest(layer), len(layer))
	if r := h.do(t, "PUT", "/v2/"+hostileRepo+"/manifests/v1", []string{"Content-Type: " + mtOCIManifest}, m); r.status != http.StatusCreated {
		t.Fatalf("%s: push manifest: %s", h.name, r)
	}
	return layer, sha256Digest(layer)
}

var hex64 = strings.Repeat("0123456789abcdef", 4)

// malformedDigests are digests no route may take, as they appear in a URL.
var malformedDigests = []string{
	"sha256:abc", "sha256:" + strings.ToUpper(hex64), "sha256:" + hex64[:63], "sha256:" + hex64 + "0",
	"md5:d41d8cd98f00b204e9800998ecf8427e", "sha384:" + hex64 + hex64[:32], "sha256:", ":", "sha256::" + hex64,
	"sha256:" + hex64 + "%00", "sha256%3A" + hex64, "SHA256:" + hex64, "sha256:" + hex64 + "%20", "sha256:%2e%2e%2f%2e%2e",
	"sha256:" + strings.Repeat("a", 4000), "sha256+b64:YWJj", "sha256:" + hex64 + ";x", "%C3%A4:" + hex64,
}

func TestHostileInput(t *testing.T) {
	for _, h := range hostileTargets(t) {
		t.Run(h.name, func(t *testing.T) {
			layer, layerDigest := hostileImage(t, h)
			t.Run("digests", func(t *testing.T) { hostileDigests(t, h) })
			t.Run("names", func(t *testing.T) { hostileNamesInput(t, h) })
			t.Run("ranges", func(t *testing.T) { hostileRanges(t, h, layer, layerDigest) })
			t.Run("manifests", func(t *testing.T) { hostileManifests(t, h, layerDigest, len(layer)) })
			if h.auth != nil {
				t.Run("without credentials", func(t *testing.T) { hostileAnonymous(t, h) })
			}
		})
	}
}

func hostileDigests(t *testing.T, h hostileTarget) {
	base := "/v2/" + hostileRepo
	loc := startUploadRaw(t, h)
	n := 0
	for _, d := range malformedDigests {
		for _, c := range []struct {
			method, target string
			body           []byte
			status         int
			code           string
		}{
			{"GET", base + "/blobs/" + d, nil, 400, "DIGEST_INVALID"},
			{"HEAD", base + "/blobs/" + d, nil, 400, ""},
			{"DELETE", base + "/blobs/" + d, nil, 400, "DIGEST_INVALID"},
			{"GET", base + "/manifests/" + d, nil, 400, "DIGEST_INVALID"},
			{"HEAD", base + "/manifests/" + d, nil, 400, ""},
			{"DELETE", base + "/manifests/" + d, nil, 400, "DIGEST_INVALID"},
			{"PUT", base + "/manifests/" + d, []byte(`{}`), 400, "DIGEST_INVALID"},
			{"GET", base + "/referrers/" + d, nil, 400, "DIGEST_INVALID"},
			{"POST", base + "/blobs/uploads/?digest=" + d, []byte("x"), 400, "DIGEST_INVALID"},
			{"PUT", withQuery(loc, "digest="+d), []byte("x"), 400, "DIGEST_INVALID"},
		} {
			r := h.do(t, c.method, c.target, nil, c.body)
			what := c.method + " " + clipStr(c.target)
			n++
			switch {
			case strings.Contains(c.target, "/manifests/") && !strings.Contains(d, ":"):
				// Without a ":" the reference is a tag, one out of the
				// tag grammar: unknown, and refused as one by PUT.
				if c.method == "PUT" {
					expect(t, what, r, 400, "MANIFEST_INVALID")
				} else {
					expect(t, what, r, 404, map[bool]string{true: "", false: "MANIFEST_UNKNOWN"}[c.method == "HEAD"])
				}
				continue
			case strings.Contains(c.target, "?") && strings.Contains(d, ";"):
				// A query Go cannot read whole: refused as such.
				expect(t, what, r, 400, "UNSUPPORTED")
				continue
			}
			expect(t, what, r, c.status, c.code)
		}
		// A mount of something that is no digest is an ordinary upload.
		if strings.Contains(d, ";") {
			continue // a query Go cannot read whole: refused above
		}
		r := h.do(t, "POST", base+"/blobs/uploads/?mount="+d+"&from="+hostileRepo, nil, nil)
		expect(t, "POST mount="+clipStr(d), r, http.StatusAccepted, "")
		if !strings.Contains(r.header.Get("Location"), "/blobs/uploads/") {
			t.Errorf("POST mount=%s: Location %q is no upload", clipStr(d), r.header.Get("Location"))
		}
		n++
	}
	// Nothing was stored by any of it.
	if got := uploadRangeRaw(t, h, loc); got != "0-0" {
		t.Errorf("the upload holds %s after refused PUTs", got)
	}
	t.Logf("%d requests with malformed digests", n)
}

func clipStr(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func startUploadRaw(t *testing.T, h hostileTarget) string {
	t.Helper()
	r := h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("start upload: %s", r)
	}
	loc := r.header.Get("Location")
	if i := strings.Index(loc, "/v2/"); i > 0 {
		loc = loc[i:]
	}
	return loc
}

func uploadRangeRaw(t *testing.T, h hostileTarget, loc string) string {
	t.Helper()
	r := h.do(t, "GET", loc, nil, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("GET %s: %s", loc, r)
	}
	return r.header.Get("Range")
}

// badNames are repository names outside the grammar, beyond the
// path-cleaning ones of hostile_test.go.
var badNames = []string{
	"UPPER/case", strings.Repeat("a", 256), strings.Repeat("ab/", 85) + "c", "%C3%BCnicode", "a..b", "a___b", "-a", "a-", "a/_b",
	"a%20b", "a%09b", "a%0d%0ab", "a/.b", "a./b", "_catalog/x", "a%2Fb/c", "a/%2e", "a:5000/b", "a@b", "a%00",
}

func hostileNamesInput(t *testing.T, h hostileTarget) {
	for _, name := range badNames {
		for _, c := range []struct{ method, path string }{
			{"POST", "/v2/%s/blobs/uploads/"},
			{"GET", "/v2/%s/tags/list"},
			{"GET", "/v2/%s/manifests/latest"},
			{"PUT", "/v2/%s/manifests/latest"},
			{"HEAD", "/v2/%s/blobs/sha256:" + hex64},
		} {
			target := fmt.Sprintf(c.path, name)
			r := h.do(t, c.method, target, nil, nil)
			what := c.method + " " + clipStr(target)
			strict(t, what, r)
			if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
				t.Errorf("%s: %s, want 400 NAME_INVALID (or 404 where no route has its shape)", what, r)
			} else if r.status == http.StatusBadRequest && c.method != "HEAD" && r.code() != "NAME_INVALID" {
				t.Errorf("%s: code %q, want NAME_INVALID", what, r.code())
			}
		}
	}
	// A mount from a repository whose name is no name: an ordinary upload.
	for _, name := range badNames {
		r := h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/?mount=sha256:"+hex64+"&from="+url.QueryEscape(name), nil, nil)
		expect(t, "mount from "+clipStr(name), r, http.StatusAccepted, "")
	}
}

func hostileRanges(t *testing.T, h hostileTarget, layer []byte, d string) {
	size := len(layer)
	target := "/v2/" + hostileRepo + "/blobs/" + d
	for _, c := range []struct {
		rng    string
		status int
		lo, hi int // the bytes of a 200 or 206
	}{
		{"bytes=0-9", 206, 0, 9},
		{"bytes=10-", 206, 10, size - 1},
		{"bytes=-5", 206, size - 5, size - 1},
		{"bytes=0-" + strconv.Itoa(size*10), 206, 0, size - 1},
		{"bytes=-" + strconv.Itoa(size*10), 206, 0, size - 1},
		{"bytes=5-2", 416, 0, 0},
		{"bytes=" + strconv.Itoa(size) + "-", 416, 0, 0},
		{"bytes=-0", 416, 0, 0},
		{"bytes=abc", 200, 0, size - 1},
		{"bytes=0-1,3-4", 200, 0, size - 1},
		{"bytes=99999999999999999999-", 200, 0, size - 1},
		{"bytes=-99999999999999999999", 200, 0, size - 1},
		{"bytes= 1-2", 206, 1, 2},
		{"items=0-1", 200, 0, size - 1},
		{"bytes=+1-2", 200, 0, size - 1},
		{"bytes=1--2", 200, 0, size - 1},
		{"bytes=0x10-0x20", 200, 0, size - 1},
		{"", 200, 0, size - 1},
	} {
		var hdr []string
		if c.rng != "" {
			hdr = []string{"Range: " + c.rng}
		}
		r := h.do(t, "GET", target, hdr, nil)
		what := "GET blob Range " + strconv.Quote(c.rng)
		strict(t, what, r)
		if r.status != c.status {
			t.Errorf("%s: %s, want %d", what, r, c.status)
			continue
		}
		switch c.status {
		case 416:
			if r.code() != "RANGE_INVALID" || r.header.Get("Content-Range") != "bytes */"+strconv.Itoa(size) {
				t.Errorf("%s: %s, Content-Range %q, want RANGE_INVALID and bytes */%d", what, r, r.header.Get("Content-Range"), size)
			}
		default:
			if !bytes.Equal(r.body, layer[c.lo:c.hi+1]) {
				t.Errorf("%s: %d bytes that are not bytes %d-%d of the blob", what, len(r.body), c.lo, c.hi)
			}
			if c.status == 206 && r.header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", c.lo, c.hi, size) {
				t.Errorf("%s: Content-Range %q", what, r.header.Get("Content-Range"))
			}
		}
	}
}

func hostileManifests(t *testing.T, h hostileTarget, layerDigest string, layerSize int) {
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := sha256Digest(cfg)
	good := string(imageManifest(cd, len(cfg), layerDigest, layerSize))
	unknown := sha256Digest([]byte("never pushed"))
	big := `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"a/b","digest":"` + cd + `","size":2},"layers":[],"annotations":{"x":"` + strings.Repeat("a", 4<<20) + `"}}`
	for _, c := range []struct {
		name, ct, body string
		ref            string
		extra          []string
		status         int
		code           string
	}{
		{"not JSON", mtOCIManifest, "this is not json", "", nil, 400, "MANIFEST_INVALID"},
		{"empty", mtOCIManifest, "", "", nil, 400, "MANIFEST_INVALID"},
		{"a JSON array", mtOCIManifest, "[1,2,3]", "", nil, 400, "MANIFEST_INVALID"},
		{"truncated JSON", mtOCIManifest, good[:len(good)/2], "", nil, 400, "MANIFEST_INVALID"},
		{"schema 1", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"name":"hostile/app","tag":"x","fsLayers":[{"blobSum":"` + layerDigest + `"}]}`, "", nil, 400, "MANIFEST_INVALID"},
		{"schemaVersion 3", mtOCIManifest, `{"schemaVersion":3,"config":{"mediaType":"a/b","digest":"` + cd + `","size":2}}`, "", nil, 400, "MANIFEST_INVALID"},
		{"schemaVersion a string", mtOCIManifest, `{"schemaVersion":"2","config":{"mediaType":"a/b","digest":"` + cd + `","size":2}}`, "", nil, 400, "MANIFEST_INVALID"},
		{"no config", mtOCIManifest, `{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","layers":[]}`, "", nil, 400, "MANIFEST_INVALID"},
		{"config digest malformed", mtOCIManifest, strings.Replace(good, cd, "sha256:zz", 1), "", nil, 400, "MANIFEST_INVALID"},
		{"negative size", mtOCIManifest, strings.Replace(good, `"size":`+strconv.Itoa(len(cfg)), `"size":-1`, 1), "", nil, 400, "MANIFEST_INVALID"},
		{"size not a number", mtOCIManifest, strings.Replace(good, `"size":`+strconv.Itoa(len(cfg)), `"size":"big"`, 1), "", nil, 400, "MANIFEST_INVALID"},
		{"huge size", mtOCIManifest, strings.Replace(good, `"size":`+strconv.Itoa(len(cfg)), `"size":99999999999999999999999`, 1), "", nil, 400, "MANIFEST_INVALID"},
		{"unknown layer", mtOCIManifest, strings.Replace(good, layerDigest, unknown, 1), "", nil, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown config", mtOCIManifest, strings.Replace(good, cd, unknown, 1), "", nil, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown child", mtOCIIndex, `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[{"mediaType":"` + mtOCIManifest + `","digest":"` + unknown + `","size":10}]}`, "", nil, 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index with layers", mtOCIIndex, `{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[],"layers":[]}`, "", nil, 400, "MANIFEST_INVALID"},
		{"Content-Type against mediaType", mtDockerManifest, good, "", nil, 400, "MANIFEST_INVALID"},
		{"unsupported mediaType", "application/x-evil", strings.Replace(good, mtOCIManifest, "application/x-evil", 1), "", nil, 400, "MANIFEST_INVALID"},
		{"nested 100000 deep", mtOCIManifest, strings.Repeat("[", 100000) + strings.Repeat("]", 100000), "", nil, 400, "MANIFEST_INVALID"},
		{"annotations nested deep", mtOCIManifest, strings.Replace(good, `"layers":`, `"annotations":`+strings.Repeat(`{"a":`, 20000)+"1"+strings.Repeat("}", 20000)+`,"layers":`, 1), "", nil, 400, "MANIFEST_INVALID"},
		{"over 4 MiB", mtOCIManifest, big, "", nil, 413, "SIZE_INVALID"},
		{"declares 10 GiB", mtOCIManifest, good, "", []string{"10 GiB"}, 413, "SIZE_INVALID"},
		{"by another digest", mtOCIManifest, good, sha256Digest([]byte("other")), nil, 400, "DIGEST_INVALID"},
		{"tag starting with -", mtOCIManifest, good, "-bad", nil, 400, ""},
		{"tag of 129 characters", mtOCIManifest, good, strings.Repeat("t", 129), nil, 400, ""},
		{"?tag= out of the grammar", mtOCIManifest, good, "ok?tag=..", nil, 400, ""},
	} {
		ref := c.ref
		if ref == "" {
			ref = "bad-" + strconv.Itoa(len(c.name)) + strings.ReplaceAll(strings.ToLower(strings.Fields(c.name)[0]), "?", "")
		}
		target := "/v2/" + hostileRepo + "/manifests/" + ref
		var r rawResp
		switch {
		case c.extra != nil:
			// A Content-Length that promises more than is sent: the
			// server refuses before reading the body.
			r = rawLoose(t, h.addr, "PUT", target, append(append([]string{}, h.auth...), "Content-Type: "+c.ct), []byte(c.body), 10<<30)
		case len(c.body) > 4<<20:
			r = rawLoose(t, h.addr, "PUT", target, append(append([]string{}, h.auth...), "Content-Type: "+c.ct), []byte(c.body), len(c.body))
		default:
			r = h.do(t, "PUT", target, []string{"Content-Type: " + c.ct}, []byte(c.body))
		}
		expect(t, "PUT manifest ("+c.name+")", r, c.status, c.code)
		// Nothing stored: the reference answers nothing.
		tagRef, _, _ := strings.Cut(ref, "?")
		if g := h.do(t, "GET", "/v2/"+hostileRepo+"/manifests/"+tagRef, []string{"Accept: " + mtOCIManifest}, nil); g.status != http.StatusNotFound && g.status != http.StatusBadRequest {
			t.Errorf("after the refused PUT (%s), GET %s: %s", c.name, clipStr(tagRef), g)
		}
	}
	var list struct{ Tags []string }
	r := h.do(t, "GET", "/v2/"+hostileRepo+"/tags/list", nil, nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil || len(list.Tags) != 1 || list.Tags[0] != "v1" {
		t.Errorf("tags after the refused manifests: %s", r)
	}
}

// hostileAnonymous: the same requests without credentials get 401 (or
// 400 for names that are no names, which are refused before auth), never
// a 5xx or a redirect.
func hostileAnonymous(t *testing.T, h hostileTarget) {
	anon := hostileTarget{name: h.name + " anonymous", addr: h.addr}
	for _, d := range malformedDigests[:6] {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			r := anon.do(t, m, "/v2/"+hostileRepo+"/manifests/"+d, nil, []byte(`{}`))
			expect(t, m+" manifest "+clipStr(d)+" anonymously", r, http.StatusUnauthorized, "UNAUTHORIZED")
		}
	}
	for _, name := range badNames[:6] {
		r := anon.do(t, "POST", "/v2/"+name+"/blobs/uploads/", nil, nil)
		strict(t, "POST to "+clipStr(name)+" anonymously", r)
		if r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
			t.Errorf("POST to %s anonymously: %s", clipStr(name), r)
		}
	}
	r := anon.do(t, "GET", "/v2/"+hostileRepo+"/blobs/sha256:"+hex64, []string{"Range: bytes=abc"}, nil)
	expect(t, "GET blob anonymously", r, http.StatusUnauthorized, "UNAUTHORIZED")
}

// TestHostileSlow: a server under slowloris attack (connections that
// never finish their headers) keeps serving everyone else and drops them
// after its header timeout; a slow body is no error, and one cut off
// commits nothing.
func TestHostileSlow(t *testing.T) {
	s := startRegistryd(t)
	cfg := pushBlobHTTP(t, s, "slow/app", []byte(`{"os":"linux"}`))
	layer := bytes.Repeat([]byte("slow "), 20000)
	ld := pushBlobHTTP(t, s, "slow/app", layer)
	m := imageManifest(cfg, len(`{"os":"linux"}`), ld, len(layer))
	if r := doHTTP(t, http.MethodPut, s.URL("/v2/slow/app/manifests/v1"), http.Header{"Content-Type": {mtOCIManifest}}, m); r.Status != http.StatusCreated {
		t.Fatalf("manifest: %s", r)
	}

	t.Run("slowloris", func(t *testing.T) {
		const conns = 200
		var open []net.Conn
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		for i := 0; i < conns; i++ {
			c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
			must(t, err)
			open = append(open, c)
			fmt.Fprintf(c, "GET /v2/slow/app/manifests/v1 HTTP/1.1\r\nHost: %s\r\nX-Slow: ", s.Addr)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // a byte of header every 200 ms on each
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				for _, c := range open {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					c.Write([]byte("a"))
				}
			}
		}()
		// Everyone else is served, whole.
		for i := 0; i < 30; i++ {
			r := getManifest(t, s, "slow/app", "v1")
			if r.Status != http.StatusOK || !bytes.Equal(r.Body, m) {
				t.Fatalf("pull %d during the attack: %s", i, r)
			}
			if b := getBlob(t, s, "slow/app", ld); b.Status != http.StatusOK || !bytes.Equal(b.Body, layer) {
				t.Fatalf("blob %d during the attack: %s", i, b)
			}
		}
		close(stop)
		wg.Wait()
		// A connection that never ends its headers is dropped after the
		// header timeout (30 s); give it twice that.
		c := open[0]
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		start := time.Now()
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a connection sending its headers forever is still open after %s", time.Since(start))
		}
		if bytes.Contains(b, []byte("HTTP/1.1 200")) {
			t.Fatalf("a request with unfinished headers was answered: %q", b)
		}
		t.Logf("unfinished headers: dropped %s after the last byte, answered %q", time.Since(start).Round(time.Second), statusLine(b))
	})

	t.Run("slow body", func(t *testing.T) {
		loc := startUpload(t, s, "slow/app")
		body := bytes.Repeat([]byte("trickle "), 8192)
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		must(t, err)
		defer c.Close()
		fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-%d\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", loc, s.Addr, len(body)-1, len(body))
		for off := 0; off < len(body); off += len(body) / 20 {
			end := min(off+len(body)/20, len(body))
			_, err := c.Write(body[off:end])
			must(t, err)
			time.Sleep(100 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufioReader(c), nil)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", len(body)-1) {
			t.Fatalf("a slow PATCH: %s Range %q", resp.Status, resp.Header.Get("Range"))
		}
		if r := doHTTP(t, http.MethodPut, s.URL(withQuery(loc, "digest="+sha256Digest(body))), nil, nil); r.Status != http.StatusCreated {
			t.Fatalf("completing the slow upload: %s", r)
		}
		checkBlob(t, s, "slow/app", sha256Digest(body), body)
	})

	t.Run("slow body cut off", func(t *testing.T) {
		loc := startUpload(t, s, "slow/app")
		body := bytes.Repeat([]byte("cut off "), 8192)
		d := sha256Digest(body)
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		must(t, err)
		fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", withQuery(loc, "digest="+d), s.Addr, len(body))
		for off := 0; off < len(body)/2; off += len(body) / 20 {
			_, err := c.Write(body[off : off+len(body)/20])
			must(t, err)
			time.Sleep(100 * time.Millisecond)
		}
		must(t, c.(*net.TCPConn).CloseWrite())
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufioReader(c), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("a slow PUT cut off: %s, want 400", resp.Status)
			}
		}
		c.Close()
		if st := blobStatus(t, s, "slow/app", d); st != http.StatusNotFound {
			t.Fatalf("a blob cut off half way is visible: HEAD %d", st)
		}
	})
}

func statusLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(line)
}

// TestHostileDiskFull: on a full disk every kind of push is 503
// UNAVAILABLE saying the storage is full, with and without auth, pulls go
// on, nothing half-written is visible, and pushes succeed again once space
// is freed. Needs root to mount the tmpfs it fills.
func TestHostileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPING the disk-full hostile test: it mounts a tmpfs to fill, which needs root")
	}
	for _, withAuth := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "htpasswd"}[withAuth], func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "registryd-hostile", dir).CombinedOutput(); err != nil {
				t.Skipf("!!! SKIPPING: cannot mount a tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
			h := startOnRoot(t, filepath.Join(dir, "data"), withAuth)
			layer, ld := hostileImage(t, h)
			loc := startUploadRaw(t, h)
			// Fill it.
			ballast := filepath.Join(dir, "ballast")
			f, err := os.Create(ballast)
			must(t, err)
			buf := make([]byte, 1<<20)
			for {
				if _, err := f.Write(buf); err != nil {
					break
				}
			}
			f.Close()
			big := bytes.Repeat([]byte("does not fit "), 200000)
			bd := sha256Digest(big)
			full := func(what string, r rawResp) {
				t.Helper()
				if r.header.Get("Location") != "" {
					t.Errorf("%s on a full disk: a Location: %s", what, r)
				}
				var e struct {
					Errors []struct {
						Code, Message string
					}
				}
				if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &e) != nil || len(e.Errors) != 1 ||
					e.Errors[0].Code != "UNAVAILABLE" || !strings.Contains(e.Errors[0].Message, "storage is full") || r.header.Get("Retry-After") == "" {
					t.Errorf("%s on a full disk: %s, want 503 UNAVAILABLE saying the storage is full, with Retry-After", what, r)
				}
				if bytes.Contains(r.body, []byte(dir)) {
					t.Errorf("%s: the answer names the storage path: %s", what, r)
				}
			}
			full("POST ?digest=", h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/?digest="+bd, nil, big))
			full("PATCH", h.do(t, "PATCH", loc, []string{"Content-Type: application/octet-stream"}, big))
			full("POST (a new session)", h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/", nil, nil))
			// A new manifest of stored blobs: only the manifest and its
			// tag need room.
			cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
			m := []byte(strings.Replace(string(imageManifest(sha256Digest(cfg), len(cfg), ld, len(layer))), `"layers"`, `"annotations":{"full":"disk"},"layers"`, 1))
			full("PUT manifest", h.do(t, "PUT", "/v2/"+hostileRepo+"/manifests/v2", []string{"Content-Type: " + mtOCIManifest}, m))
			// Pulls go on; nothing half-written shows.
			if r := h.do(t, "GET", "/v2/"+hostileRepo+"/blobs/"+ld, nil, nil); r.status != http.StatusOK || !bytes.Equal(r.body, layer) {
				t.Errorf("pull on a full disk: %s", r)
			}
			if r := h.do(t, "HEAD", "/v2/"+hostileRepo+"/blobs/"+bd, nil, nil); r.status != http.StatusNotFound {
				t.Errorf("the blob that did not fit: HEAD %d", r.status)
			}
			if r := h.do(t, "GET", "/v2/"+hostileRepo+"/manifests/v2", nil, nil); r.status != http.StatusNotFound {
				t.Errorf("the manifest that did not fit: GET %s", r)
			}
			var list struct{ Tags []string }
			if r := h.do(t, "GET", "/v2/"+hostileRepo+"/tags/list", nil, nil); json.Unmarshal(r.body, &list) != nil || len(list.Tags) != 1 {
				t.Errorf("tags on a full disk: %s", r)
			}
			// Space freed: the same pushes go through, no restart.
			must(t, os.Remove(ballast))
			if r := h.do(t, "POST", "/v2/"+hostileRepo+"/blobs/uploads/?digest="+bd, nil, big); r.status != http.StatusCreated {
				t.Fatalf("push after space was freed: %s", r)
			}
			if r := h.do(t, "PUT", "/v2/"+hostileRepo+"/manifests/v2", []string{"Content-Type: " + mtOCIManifest}, m); r.status != http.StatusCreated {
				t.Fatalf("manifest after space was freed: %s", r)
			}
		})
	}
}

// startOnRoot starts registryd over root, with htpasswd auth (user root)
// when withAuth, and returns it as a hostile target.
func startOnRoot(t *testing.T, root string, withAuth bool) hostileTarget {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	dir := t.TempDir()
	addr, err := localsrv.FreeAddr()
	must(t, err)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: %s\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", serverLogLvl, root, addr)
	h := hostileTarget{name: "open", addr: addr}
	if withAuth {
		hash, err := bcrypt.GenerateFromPassword([]byte(authUsers["root"]), bcrypt.MinCost)
		must(t, err)
		htpath := filepath.Join(dir, "htpasswd")
		must(t, os.WriteFile(htpath, []byte("root:"+string(hash)+"\n"), 0o600))
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: hostile\n    path: %s\n", htpath)
		h.name, h.auth = "htpasswd", []string{"Authorization: " + basicHeader("root").Get("Authorization")}
	}
	cfgPath := filepath.Join(dir, "config.yml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	logPath := filepath.Join(dir, "registryd.log")
	logf, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(registrydBin, "serve", cfgPath)
	cmd.Env = serverEnv(nil)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("registryd log:\n%s", tail(logPath, 40))
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("registryd did not start:\n%s", tail(logPath, 40))
		}
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// rawLoose sends a request whose head the server may answer before it
// has read the body (a Content-Length over a limit): the body is written
// meanwhile, and a connection reset while writing it is no failure.
func rawLoose(t *testing.T, addr, method, target string, header []string, body []byte, length int) rawResp {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	must(t, err)
	defer c.Close()
	must(t, c.SetDeadline(time.Now().Add(60*time.Second)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, addr, length)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	_, err = c.Write(b.Bytes())
	must(t, err)
	go c.Write(body) // may be cut off by the answer
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", method, target, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return rawResp{status: resp.StatusCode, header: resp.Header, body: rb}
}
