package v2

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// errBodyIncomplete is what a request body that did not arrive whole reads
// as: the client declared a Content-Length and the connection ended
// before it (or a chunked body ended without its last chunk). net/http
// reports both as io.ErrUnexpectedEOF, which io.ReadFull and friends also
// use for "the stream ended mid-buffer" — a normal end. Under this name no
// layer below can take a cut-off body for a complete one, and a request
// that never completed has no effect: the upload is not committed, the
// manifest not stored.
var errBodyIncomplete = errors.New("request body incomplete")

// body is the reader every write reads its request body through.
type body struct {
	r    io.Reader
	want int64 // Content-Length, -1 when unknown (chunked)
	n    int64
}

// requestBody returns r's body as writes must read it (see errBodyIncomplete).
func requestBody(r *http.Request) io.Reader {
	return &body{r: r.Body, want: r.ContentLength}
}

// ExpectedSize is the Content-Length, or -1 (storage.SizedBody).
func (b *body) ExpectedSize() int64 { return b.want }

func (b *body) Read(p []byte) (int, error) {
	k, err := b.r.Read(p)
	b.n += int64(k)
	switch {
	case err == nil:
		return k, nil
	case err == io.EOF:
		// net/http enforces Content-Length itself; this guards servers
		// and wrappers that do not.
		if b.want >= 0 && b.n != b.want {
			return k, fmt.Errorf("%w: %d of %d bytes", errBodyIncomplete, b.n, b.want)
		}
		return k, io.EOF
	default:
		if b.want >= 0 {
			return k, fmt.Errorf("%w after %d of %d bytes: %v", errBodyIncomplete, b.n, b.want, err)
		}
		return k, fmt.Errorf("%w after %d bytes: %v", errBodyIncomplete, b.n, err)
	}
}
