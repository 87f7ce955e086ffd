package v2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestFromLoopback(t *testing.T) {
	tests := []struct {
		name  string
		local net.Addr
		want  bool
	}{
		{"ipv4 loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, true},
		{"other 127/8 address", &net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 5000}, true},
		{"ipv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, true},
		{"private address", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5000}, false},
		{"unspecified", &net.TCPAddr{IP: net.IPv4zero, Port: 5000}, false},
		{"unix socket", &net.UnixAddr{Name: "/run/registryd.sock", Net: "unix"}, false},
		{"no address", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/a/blobs/x", nil)
			if tc.local != nil {
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, tc.local))
			}
			if got := fromLoopback(r); got != tc.want {
				t.Errorf("fromLoopback = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSendBlob checks both ways of sending a blob give the client exactly
// the requested bytes, for lengths around the copy buffer's size.
func TestSendBlob(t *testing.T) {
	blob := make([]byte, 3*loopbackBufSize+17)
	for i := range blob {
		blob[i] = byte(i * 31)
	}
	for _, loopback := range []bool{true, false} {
		for _, n := range []int64{0, 1, loopbackBufSize - 1, loopbackBufSize, loopbackBufSize + 1, int64(len(blob)) - 5} {
			t.Run(fmt.Sprintf("loopback=%v/n=%d", loopback, n), func(t *testing.T) {
				r := withLocalAddr(loopback)
				w := httptest.NewRecorder()
				if err := sendBlob(w, r, bytes.NewReader(blob), n); err != nil {
					t.Fatal(err)
				}
				if got := w.Body.Bytes(); sha256.Sum256(got) != sha256.Sum256(blob[:n]) {
					t.Fatalf("sent %d bytes, not the first %d of the blob", len(got), n)
				}
			})
		}
	}
	// A source shorter than length (a blob truncated on disk) is an error
	// both ways, so the download is not reported as a pull.
	for _, loopback := range []bool{true, false} {
		if err := sendBlob(httptest.NewRecorder(), withLocalAddr(loopback), bytes.NewReader(blob[:10]), 11); err != io.EOF {
			t.Errorf("loopback=%v: short source gave %v, want EOF", loopback, err)
		}
	}
}

// withLocalAddr is a request accepted on a loopback or a remote address.
func withLocalAddr(loopback bool) *http.Request {
	ip := net.IPv4(192, 0, 2, 1)
	if loopback {
		ip = net.IPv4(127, 0, 0, 1)
	}
	r := httptest.NewRequest("GET", "/", nil)
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: ip, Port: 5000}))
}
