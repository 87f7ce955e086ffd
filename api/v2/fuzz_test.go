package v2

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// The fuzz targets of the API: the two range grammars, and whole requests
// as they arrive on the wire. Seeds are the f.Add calls and the files in
// testdata/fuzz/<target>; `go test` runs them all, `make fuzz` explores.

// FuzzParseRange: whatever a client puts in Range, a partial answer lies
// inside the blob, and a range refused as unsatisfiable was well formed.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=9-0", "bytes=0-0,2-3", "bytes=+1-+2", "bytes= 3-4", "items=0-1", "bytes=-0", "bytes=99999999999999999999-", "bytes=+1-2", "bytes=1--2", "bytes=--1"} {
		for _, size := range []int64{0, 1, 10, 1 << 40} {
			f.Add(s, size)
		}
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return // sizes come from storage, never negative
		}
		start, length, partial, ok := parseRange(h, size)
		switch {
		case !ok:
			if !strings.HasPrefix(h, "bytes=") {
				t.Fatalf("%q refused though not a byte range", h)
			}
		case partial:
			if start < 0 || length < 1 || start > size-length {
				t.Fatalf("%q on %d bytes: start %d length %d outside the blob", h, size, start, length)
			}
			// Positions are digits, around one dash.
			if spec := strings.TrimSpace(strings.TrimPrefix(h, "bytes=")); strings.Count(spec, "-") != 1 || strings.Trim(spec, "0123456789") != "-" {
				t.Fatalf("%q taken as a range", h)
			}
		default:
			if start != 0 || length != size {
				t.Fatalf("%q on %d bytes: whole answer is %d+%d", h, size, start, length)
			}
		}
	})
}

// FuzzParseChunkRange: an accepted Content-Range is the spec's
// <start>-<end> in decimal and nothing else.
func FuzzParseChunkRange(f *testing.F) {
	for _, s := range []string{"0-99", "100-199", "0-0", "5-4", "bytes=0-99", "bytes 0-99/100", "-1-5", "+1-2", "0x1-2", "1-", "-", "", "999999999999999999-999999999999999999", "9999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, ok := parseChunkRange([]string{v})
		if !ok {
			return
		}
		if start < 0 || end < start {
			t.Fatalf("%q accepted as %d-%d", v, start, end)
		}
		// Only digits around one dash (leading zeros are still decimal).
		if strings.Trim(v, "0123456789") != "-" || strings.Count(v, "-") != 1 {
			t.Fatalf("%q accepted as %d-%d", v, start, end)
		}
		if otherRangeSyntax(v) {
			t.Fatalf("%q is both forms", v)
		}
	})
}

// fuzzServer is one registry shared by the iterations of FuzzAPI, holding
// a tagged image so that requests can reach existing content.
var fuzzServer = sync.OnceValue(func() http.Handler {
	reg := storage.New(inmemory.New(), storage.Options{})
	h := Middleware(NewHandler(reg, Options{DeleteEnabled: true}), nil)
	do := func(method, target, ct string, body []byte) {
		req := httptest.NewRequest(method, target, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			panic(fmt.Sprintf("seeding %s %s: %d %s", method, target, w.Code, w.Body.Bytes()))
		}
	}
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		do("POST", "/v2/fuzz/app/blobs/uploads/?digest="+d.String(), "", b)
		return d
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer")
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		ociManifest, put(cfg), len(cfg), put(layer), len(layer))
	do("PUT", "/v2/fuzz/app/manifests/latest", ociManifest, []byte(m))
	return h
})

// FuzzAPI feeds whole HTTP requests, as bytes on the wire, to the API:
// none may get a 5xx, a redirect, or a Location outside /v2/.
func FuzzAPI(f *testing.F) {
	d := digest.FromString("x")
	for _, s := range []string{
		"GET /v2/ HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/_catalog?n=2&last=a HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz/app/tags/list?n=-1 HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz/app/manifests/latest HTTP/1.1\r\nHost: r\r\nAccept: application/vnd.oci.image.index.v1+json\r\n\r\n",
		"HEAD /v2/fuzz/app/manifests/" + d.String() + " HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz/app/blobs/" + digest.FromString("layer").String() + " HTTP/1.1\r\nHost: r\r\nRange: bytes=1-2\r\n\r\n",
		"POST /v2/fuzz/app/blobs/uploads/?digest=" + digest.FromString("ab").String() + " HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\nab",
		"POST /v2/fuzz/app/blobs/uploads/?mount=" + d.String() + "&from=other/repo HTTP/1.1\r\nHost: r\r\n\r\n",
		"PATCH /v2/fuzz/app/blobs/uploads/00000000-0000-0000-0000-000000000000 HTTP/1.1\r\nHost: r\r\nContent-Range: 0-1\r\nContent-Length: 2\r\n\r\nab",
		"PUT /v2/fuzz/app/manifests/t HTTP/1.1\r\nHost: r\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 2\r\n\r\n{}",
		"PUT /v2/fuzz/app/manifests/t HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
		"DELETE /v2/fuzz/app/manifests/" + d.String() + " HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz/app/referrers/" + d.String() + "?artifactType=a%2Fb HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz/../app/tags/list HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/fuzz//app/tags/list HTTP/1.1\r\nHost: r\r\n\r\n",
		"GET /v2/Fuzz/%2e%2e/tags/list HTTP/1.1\r\nHost: r\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	h := fuzzServer()
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return // net/http would have answered 400 before the API
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		io.Copy(io.Discard, req.Body)
		if w.Code >= 500 || (w.Code >= 300 && w.Code < 400) {
			t.Fatalf("%s %s: %d %s", req.Method, req.RequestURI, w.Code, w.Body.Bytes())
		}
		if loc := w.Header().Get("Location"); loc != "" {
			// Relative, or on the host the client named: never another
			// authority, never out of /v2/.
			u, err := url.Parse(loc)
			if err != nil || !strings.HasPrefix(u.Path, "/v2/") || strings.Contains(loc, "/../") ||
				u.User != nil || (u.Host != "" && u.Host != req.Host && u.Host != req.Header.Get("X-Forwarded-Host")) {
				t.Fatalf("%s %s (Host %q): Location %q", req.Method, req.RequestURI, req.Host, loc)
			}
		}
	})
}

// TestLocationHost: a Location is absolute only on a host that cannot
// change which authority the URL names.
func TestLocationHost(t *testing.T) {
	a := &API{}
	for _, c := range []struct{ host, fwd, want string }{
		{"reg:5000", "", "http://reg:5000/v2/x"},
		{"[::1]:5000", "", "http://[::1]:5000/v2/x"},
		{"reg", "mirror.example.com", "http://mirror.example.com/v2/x"},
		{"reg", "evil@other", "http://reg/v2/x"},
		{"reg", "a/b", "http://reg/v2/x"},
		{"reg", "a,b", "http://reg/v2/x"},
		{"", "", "/v2/x"},
		{"a?b", "", "/v2/x"},
		{"u@h", "", "/v2/x"},
	} {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.Host = c.host
		if c.fwd != "" {
			r.Header.Set("X-Forwarded-Host", c.fwd)
		}
		if got := a.location(r, "/v2/x"); got != c.want {
			t.Errorf("Host %q, X-Forwarded-Host %q: %q, want %q", c.host, c.fwd, got, c.want)
		}
	}
}
