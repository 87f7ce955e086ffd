package storage

import (
	"bytes"
	"encoding/hex"
	"slices"

	"github.com/opencontainers/go-digest"
)

// DigestSet is a set of digests in a sorted array, each sha256 digest
// held as its 32 bytes: about 33 bytes a digest where a
// map[digest.Digest]struct{} costs over 120. It is what garbage
// collection marks live content in (a million live digests in about
// 32 MiB) and what every registry holds the collector's current plan in.
// Each digest carries a small bit mask for the caller (the plan's kinds of
// items). Digests of other algorithms (rare: sha512) are kept in a map.
//
// A DigestSet is immutable once built, and safe for concurrent reads.
type DigestSet struct {
	keys  []setKey
	other map[digest.Digest]uint8
}

type setKey struct {
	h    [32]byte
	mask uint8
}

func cmpKey(a, b setKey) int { return bytes.Compare(a.h[:], b.h[:]) }

// sha256Key returns the 32 bytes of a sha256 digest, ok false for any
// other digest (or a malformed one).
func sha256Key(d digest.Digest) (k [32]byte, ok bool) {
	s := string(d)
	if len(s) != len("sha256:")+64 || s[:7] != "sha256:" {
		return k, false
	}
	if _, err := hex.Decode(k[:], []byte(s[7:])); err != nil {
		return k, false
	}
	// Upper-case hex decodes too, but is not a valid digest: keep it
	// apart so that Digests gives back exactly what was added.
	for _, c := range s[7:] {
		if 'A' <= c && c <= 'F' {
			return k, false
		}
	}
	return k, true
}

// Len is the number of digests in the set.
func (s *DigestSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys) + len(s.other)
}

// Lookup reports whether d is in the set, and its mask.
func (s *DigestSet) Lookup(d digest.Digest) (mask uint8, ok bool) {
	if s == nil {
		return 0, false
	}
	if k, isKey := sha256Key(d); isKey {
		i, found := slices.BinarySearchFunc(s.keys, setKey{h: k}, cmpKey)
		if !found {
			return 0, false
		}
		return s.keys[i].mask, true
	}
	m, ok := s.other[d]
	return m, ok
}

// Contains reports whether d is in the set.
func (s *DigestSet) Contains(d digest.Digest) bool {
	_, ok := s.Lookup(d)
	return ok
}

// Range calls fn for every digest in lexical order of the digest strings,
// until fn returns false.
func (s *DigestSet) Range(fn func(d digest.Digest, mask uint8) bool) {
	if s == nil {
		return
	}
	var other []digest.Digest
	for d := range s.other {
		other = append(other, d)
	}
	slices.Sort(other)
	// sha256 digests sort among the others by their string: merge.
	i, j := 0, 0
	for i < len(s.keys) || j < len(other) {
		var d digest.Digest
		var m uint8
		if i < len(s.keys) {
			kd := digest.Digest("sha256:" + hex.EncodeToString(s.keys[i].h[:]))
			if j < len(other) && other[j] < kd {
				d, m = other[j], s.other[other[j]]
				j++
			} else {
				d, m = kd, s.keys[i].mask
				i++
			}
		} else {
			d, m = other[j], s.other[other[j]]
			j++
		}
		if !fn(d, m) {
			return
		}
	}
}

// DigestSetBuilder collects digests into a DigestSet with bounded
// overhead: additions go to a buffer that is sorted and merged into the
// set whenever it grows to the size of the set (or 64 Ki entries), so
// memory stays within about twice the final set, duplicates included,
// whatever order digests come in.
type DigestSetBuilder struct {
	set DigestSet
	buf []setKey
}

// Add adds d to the set, or-ing mask into its mask.
func (b *DigestSetBuilder) Add(d digest.Digest, mask uint8) {
	if k, ok := sha256Key(d); ok {
		b.buf = append(b.buf, setKey{h: k, mask: mask})
		if len(b.buf) >= max(len(b.set.keys), 1<<16) {
			b.compact()
		}
		return
	}
	if b.set.other == nil {
		b.set.other = make(map[digest.Digest]uint8)
	}
	b.set.other[d] |= mask
}

// Estimate is an upper bound of the set's size so far (duplicates not yet
// merged count twice).
func (b *DigestSetBuilder) Estimate() int {
	return len(b.set.keys) + len(b.buf) + len(b.set.other)
}

// compact sorts the buffer, merges it into the set and empties it.
func (b *DigestSetBuilder) compact() {
	if len(b.buf) == 0 {
		return
	}
	buf := b.buf
	slices.SortFunc(buf, cmpKey)
	// Duplicates within the buffer fold into their first.
	n := 0
	for _, k := range buf {
		if n > 0 && buf[n-1].h == k.h {
			buf[n-1].mask |= k.mask
			continue
		}
		buf[n] = k
		n++
	}
	buf = buf[:n]
	old := b.set.keys
	merged := make([]setKey, 0, len(old)+len(buf))
	i, j := 0, 0
	for i < len(old) || j < len(buf) {
		switch {
		case j == len(buf) || (i < len(old) && cmpKey(old[i], buf[j]) < 0):
			merged = append(merged, old[i])
			i++
		case i == len(old) || cmpKey(buf[j], old[i]) < 0:
			merged = append(merged, buf[j])
			j++
		default:
			k := old[i]
			k.mask |= buf[j].mask
			merged = append(merged, k)
			i++
			j++
		}
	}
	b.set.keys = merged
	b.buf = b.buf[:0]
}

// Build returns the set. The builder must not be used afterwards.
func (b *DigestSetBuilder) Build() *DigestSet {
	b.compact()
	b.buf = nil
	s := b.set
	s.keys = slices.Clip(s.keys)
	return &s
}
