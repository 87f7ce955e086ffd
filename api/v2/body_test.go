package v2

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/registryd/registryd/errcode"
)

func TestChunkRange(t *testing.T) {
	for _, tc := range []struct {
		header        []string // nil: absent
		contentLength int64
		start, length int64
		status        int // 0: accepted
	}{
		{nil, 10, -1, -1, 0},
		{[]string{"0-9"}, 10, 0, 10, 0},
		{[]string{"10-19"}, -1, 10, 10, 0},
		{[]string{"5-5"}, 1, 5, 1, 0},
		{[]string{"0-9"}, 11, 0, 0, 416}, // length differs from the body
		{[]string{"0-9"}, 0, 0, 0, 416},
		{[]string{"bytes=0-99"}, 100, 0, 0, 416}, // the Range request syntax
		{[]string{"bytes 0-99/100"}, 100, 0, 0, 416},
		{[]string{"bytes 0-99/*"}, 100, 0, 0, 416},
		{[]string{"x-y"}, 3, 0, 0, 400},
		{[]string{""}, 0, 0, 0, 400},
		{[]string{"-9"}, 10, 0, 0, 400},
		{[]string{"0-"}, 10, 0, 0, 400},
		{[]string{"+0-9"}, 10, 0, 0, 400},
		{[]string{"0-+9"}, 10, 0, 0, 400},
		{[]string{" 0-9"}, 10, 0, 0, 400},
		{[]string{"0-9 "}, 10, 0, 0, 400},
		{[]string{"9-0"}, 10, 0, 0, 400},
		{[]string{"0-9-10"}, 10, 0, 0, 400},
		{[]string{"0x0-9"}, 10, 0, 0, 400},
		{[]string{"0-9", "10-19"}, 10, 0, 0, 400},
		{[]string{"99999999999999999999-99999999999999999999"}, 1, 0, 0, 400}, // overflow
		{[]string{"bytes=x-y"}, 1, 0, 0, 400},
	} {
		r := httptest.NewRequest(http.MethodPatch, "/", nil)
		r.ContentLength = tc.contentLength
		if tc.header != nil {
			r.Header["Content-Range"] = tc.header
		}
		start, length, err := chunkRange(r)
		if tc.status == 0 {
			if err != nil || start != tc.start || length != tc.length {
				t.Errorf("%q (CL %d): %d, %d, %v; want %d, %d", tc.header, tc.contentLength, start, length, err, tc.start, tc.length)
			}
			continue
		}
		e := errcode.From(err)
		if e == nil || e.Code != errcode.RangeInvalid || e.HTTPStatus() != tc.status {
			t.Errorf("%q (CL %d): %v, want RANGE_INVALID %d", tc.header, tc.contentLength, err, tc.status)
		}
	}
}

// errReader returns its bytes, then err (net/http's body returns
// io.ErrUnexpectedEOF when the connection ends before Content-Length).
func errReader(b []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(b), iotest.ErrReader(err))
}

func TestRequestBody(t *testing.T) {
	for _, tc := range []struct {
		name          string
		body          io.Reader
		contentLength int64
		want          string
		incomplete    bool
	}{
		{"whole", strings.NewReader("abcd"), 4, "abcd", false},
		{"chunked whole", strings.NewReader("abcd"), -1, "abcd", false},
		{"cut short", errReader([]byte("ab"), io.ErrUnexpectedEOF), 4, "ab", true},
		{"chunked without last chunk", errReader([]byte("ab"), io.ErrUnexpectedEOF), -1, "ab", true},
		{"EOF before Content-Length", strings.NewReader("ab"), 4, "ab", true},
		{"connection reset", errReader([]byte("ab"), errors.New("connection reset by peer")), 4, "ab", true},
	} {
		r := httptest.NewRequest(http.MethodPut, "/", tc.body)
		r.ContentLength = tc.contentLength
		got, err := io.ReadAll(requestBody(r))
		if string(got) != tc.want || errors.Is(err, errBodyIncomplete) != tc.incomplete {
			t.Errorf("%s: %q, %v; want %q, incomplete %v", tc.name, got, err, tc.want, tc.incomplete)
		}
		// The whole point: nothing downstream may read it as a clean end.
		if tc.incomplete && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			t.Errorf("%s: error %v is an EOF", tc.name, err)
		}
	}
}

func TestChunkBodyBoundsAChunkedBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		length int64
		want   string
		status int
	}{
		{"exact", "abcd", 4, "abcd", 0},
		{"longer than the range", "abcdef", 4, "abcd", 416},
		{"shorter than the range", "ab", 4, "ab", 416},
		{"empty range", "", 0, "", 0},
	} {
		r := httptest.NewRequest(http.MethodPatch, "/", strings.NewReader(tc.body))
		r.ContentLength = -1
		got, err := io.ReadAll(chunkBody(r, tc.length))
		if string(got) != tc.want {
			t.Errorf("%s: read %q, want %q", tc.name, got, tc.want)
		}
		if tc.status == 0 && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.status != 0 {
			if e := errcode.From(err); e == nil || e.Code != errcode.RangeInvalid || e.HTTPStatus() != tc.status {
				t.Errorf("%s: %v, want RANGE_INVALID %d", tc.name, err, tc.status)
			}
		}
	}
}
