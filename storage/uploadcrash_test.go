package storage

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// Upload-session files are not synced (uploadScratch), so after a crash a
// hash state may be empty, torn or (a state file reused by name) saved for
// another offset. None of these may be trusted: the hash is rebuilt from
// the data and the upload commits under its true digest.
func TestUploadTornHashState(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	repo := mustRepo(t, r, "x")
	other := mustRepo(t, r, "other")
	for _, tc := range []struct {
		name  string
		state func(good []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"truncated", func(g []byte) []byte { return g[:len(g)/2] }},
		{"wrong offset", func([]byte) []byte {
			// a valid state, of a different length of data
			up, _ := other.NewUpload(ctx, "")
			if _, err := up.Append(ctx, strings.NewReader("abc"), 0); err != nil {
				t.Fatal(err)
			}
			st, err := d.GetContent(ctx, uploadHashStatePath("other", up.ID(), digest.SHA256, 3))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	} {
		up, _ := repo.NewUpload(ctx, "")
		if _, err := up.Append(ctx, strings.NewReader("hello "), 0); err != nil {
			t.Fatal(err)
		}
		p := uploadHashStatePath("x", up.ID(), digest.SHA256, 6)
		good, err := d.GetContent(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if hashStateLen(good) != 6 {
			t.Fatalf("%s: saved state says %d bytes", tc.name, hashStateLen(good))
		}
		if err := d.PutContent(ctx, p, tc.state(good)); err != nil {
			t.Fatal(err)
		}
		desc, err := up.Commit(ctx, strings.NewReader("world"), 6, digest.FromString("hello world"))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if desc.Digest != digest.FromString("hello world") {
			t.Fatalf("%s: %s", tc.name, desc.Digest)
		}
	}
}

// A torn hash state that still parses for the right length cannot make
// the registry store content under a digest it does not have: Commit
// checks the whole upload against the client's digest.
func TestUploadCorruptHashStateRefused(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	repo := mustRepo(t, r, "x")
	up, _ := repo.NewUpload(ctx, "")
	if _, err := up.Append(ctx, strings.NewReader("hello "), 0); err != nil {
		t.Fatal(err)
	}
	p := uploadHashStatePath("x", up.ID(), digest.SHA256, 6)
	st, _ := d.GetContent(ctx, p)
	st[10] ^= 0xff // inside the chaining values
	if err := d.PutContent(ctx, p, st); err != nil {
		t.Fatal(err)
	}
	_, err := up.Commit(ctx, strings.NewReader("world"), 6, digest.FromString("hello world"))
	if !errcode.Is(err, errcode.DigestInvalid) {
		t.Fatalf("corrupt state accepted: %v", err)
	}
	if _, err := repo.StatBlob(ctx, digest.FromString("hello world")); err == nil {
		t.Fatal("blob stored from a corrupt hash state")
	}
}

// A torn algorithm file makes the session unknown (the client starts
// again); an empty startedat is aged by the directory's time.
func TestUploadTornSessionFiles(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	repo := mustRepo(t, r, "x")
	up, err := repo.NewUpload(ctx, digest.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, uploadDir("x", up.ID())+"/algorithm", []byte("sha5")); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Upload(ctx, up.ID()); !errcode.Is(err, errcode.BlobUploadUnknown) {
		t.Fatalf("torn algorithm: %v", err)
	}

	up2, _ := repo.NewUpload(ctx, "")
	if err := d.PutContent(ctx, uploadStartedAtPath("x", up2.ID()), nil); err != nil {
		t.Fatal(err)
	}
	n, err := r.PurgeUploads(ctx, time.Now().Add(time.Hour), true)
	if err != nil || n != 2 {
		t.Fatalf("purge with an empty startedat: %d %v", n, err)
	}
}
