package storage

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
)

func TestDeleteTagIf(t *testing.T) {
	f := newEnumFixture(t)
	a, b := f.image("r", "v1", "x"), f.image("r", "", "y")
	repo := f.repo("r")
	// Moved since the caller decided: the tag stays, and the error says so.
	err := repo.DeleteTagIf(f.ctx, "v1", b.Digest)
	if !errors.Is(err, ErrTagMoved) || !errcode.Is(err, errcode.Denied) {
		t.Fatalf("%v", err)
	}
	if f.mustResolve("r", "v1") != a.Digest {
		t.Fatal("moved tag deleted")
	}
	if err := repo.DeleteTagIf(f.ctx, "v1", a.Digest); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteTagIf(f.ctx, "v1", a.Digest); !ErrNotFound(err) {
		t.Fatalf("gone: %v", err)
	}
	if err := repo.DeleteTagIf(f.ctx, "../x", a.Digest); !ErrNotFound(err) {
		t.Fatalf("invalid: %v", err)
	}
	// The manifest stays, by digest.
	if f.mustResolve("r", a.Digest.String()) != a.Digest {
		t.Fatal("manifest gone with its tag")
	}
}

func TestTagHistoryAndRevisionTimes(t *testing.T) {
	f := newEnumFixture(t)
	a := f.image("r", "v1", "x")
	b := f.image("r", "", "y")
	c := f.image("r", "other", "z")
	if _, err := f.repo("r").PutManifest(f.ctx, "v1", "", mustContent(t, f, b.Digest), nil); err != nil {
		t.Fatal(err)
	}
	hist, err := f.repo("r").TagHistory(f.ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sortedDigestList(hist...), sortedDigestList(a.Digest, b.Digest); !equalDigests(got, want) {
		t.Errorf("history %v, want %v", got, want)
	}
	if h, err := f.repo("r").TagHistory(f.ctx, "nope"); err != nil || len(h) != 0 {
		t.Errorf("%v %v", h, err)
	}
	times, err := f.repo("r").RevisionTimes(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 3 || times[a.Digest].IsZero() || times[b.Digest].IsZero() || times[c.Digest].IsZero() {
		t.Errorf("%v", times)
	}
	// A revision whose link was deleted is not one.
	if err := f.repo("r").RemoveRevision(f.ctx, c.Digest); err != nil {
		t.Fatal(err)
	}
	if times, _ := f.repo("r").RevisionTimes(f.ctx); len(times) != 2 {
		t.Errorf("%v", times)
	}
	if times, err := f.repo("none").RevisionTimes(f.ctx); err != nil || len(times) != 0 {
		t.Errorf("%v %v", times, err)
	}
}

func mustContent(t *testing.T, f *enumFixture, d digest.Digest) []byte {
	t.Helper()
	b, err := f.r.ManifestContent(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
