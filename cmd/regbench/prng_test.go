package main

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPRNGDeterministic(t *testing.T) {
	const size = 1<<20 + 13
	a, err := io.ReadAll(newPRNG(42, size))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != size {
		t.Fatalf("read %d bytes, want %d", len(a), size)
	}
	// Odd read sizes give the same stream.
	var b bytes.Buffer
	r := newPRNG(42, size)
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf[:1+b.Len()%7])
		b.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(a, b.Bytes()) {
		t.Fatal("stream depends on read sizes")
	}
	c, _ := io.ReadAll(newPRNG(43, size))
	if bytes.Equal(a, c) {
		t.Fatal("different seeds give the same stream")
	}
	sum := sha256.Sum256(a)
	want := digest.NewDigestFromBytes(digest.SHA256, sum[:])
	if got := prngDigest(42, size); got != want {
		t.Fatalf("prngDigest = %s, want %s", got, want)
	}
}
