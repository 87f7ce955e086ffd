package storage

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// A body that ends in io.ErrUnexpectedEOF was cut off (that is how net/http
// reports a connection closed before Content-Length), even though io.ReadFull
// uses the same error for a short last buffer: the upload must not commit,
// even when the bytes that did arrive hash to the digest the client named.
func TestCommitRefusesTruncatedBody(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{0, 1, 1 << 19, 1<<20 + 7, 3 << 20} {
		reg := New(inmemory.New(), Options{})
		repo := mustRepo(t, reg, "trunc/x")
		sent := bytes.Repeat([]byte{'z'}, size)
		d := digest.FromBytes(sent)
		up, err := repo.NewUpload(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		cut := io.MultiReader(bytes.NewReader(sent), iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := up.Commit(ctx, cut, -1, d); err == nil {
			t.Fatalf("%d bytes: a cut-off body was committed", size)
		} else if e := errcode.From(err); e == nil || e.Code != errcode.BlobUploadInvalid {
			t.Fatalf("%d bytes: %v, want BLOB_UPLOAD_INVALID", size, err)
		}
		if _, err := repo.StatBlob(ctx, d); !errcode.Is(err, errcode.BlobUnknown) {
			t.Fatalf("%d bytes: blob visible after a cut-off commit: %v", size, err)
		}
		// The session keeps what arrived; the client resumes from its size.
		n, err := up.Size(ctx)
		if err != nil || n != int64(size) {
			t.Fatalf("%d bytes: upload size %d, %v", size, n, err)
		}
		if _, err := up.Commit(ctx, bytes.NewReader(nil), n, d); err != nil {
			t.Fatalf("%d bytes: completing the resumed upload: %v", size, err)
		}
		if got := readAllBlob(t, repo, d); !bytes.Equal(got, sent) {
			t.Fatalf("%d bytes: content differs", size)
		}
	}
}

func TestFill(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    io.Reader
		buf  int
		k    int
		err  error
	}{
		{"full", bytes.NewReader([]byte("abcdef")), 4, 4, nil},
		{"short then EOF", bytes.NewReader([]byte("ab")), 4, 2, io.EOF},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader([]byte("abcdef"))), 4, 4, nil},
		{"cut off", io.MultiReader(bytes.NewReader([]byte("ab")), iotest.ErrReader(io.ErrUnexpectedEOF)), 4, 2, io.ErrUnexpectedEOF},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader([]byte("ab"))), 4, 2, io.EOF},
	} {
		k, err := fill(tc.r, make([]byte, tc.buf))
		if k != tc.k || err != tc.err {
			t.Errorf("%s: %d, %v; want %d, %v", tc.name, k, err, tc.k, tc.err)
		}
	}
}
