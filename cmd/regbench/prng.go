package main

import (
	"crypto/sha256"
	"encoding/binary"
	"io"

	"github.com/opencontainers/go-digest"
)

// prngReader is a deterministic, fast stream of pseudo-random bytes
// (splitmix64), so a 1 GiB blob is generated on the fly instead of held in
// memory: the same seed and size always give the same bytes, hence the same
// digest.
type prngReader struct {
	state  uint64
	remain int64
	buf    [8]byte
	bufN   int // unread bytes at the end of buf
}

func newPRNG(seed uint64, size int64) *prngReader {
	return &prngReader{state: seed, remain: size}
}

func (r *prngReader) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *prngReader) Read(p []byte) (int, error) {
	if r.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n := 0
	// Leftover bytes of the previous word first, so reads of any size
	// concatenate to the same stream.
	for r.bufN > 0 && n < len(p) {
		p[n] = r.buf[8-r.bufN]
		r.bufN--
		n++
	}
	for ; n+8 <= len(p); n += 8 {
		binary.LittleEndian.PutUint64(p[n:], r.next())
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(r.buf[:], r.next())
		r.bufN = 8
		for n < len(p) {
			p[n] = r.buf[8-r.bufN]
			r.bufN--
			n++
		}
	}
	r.remain -= int64(n)
	return n, nil
}

// prngDigest is the sha256 digest of newPRNG(seed, size)'s stream.
func prngDigest(seed uint64, size int64) digest.Digest {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	io.CopyBuffer(h, newPRNG(seed, size), buf)
	return digest.NewDigest(digest.SHA256, h)
}
