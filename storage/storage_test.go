package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

func mustRepo(t *testing.T, r *Registry, name string) *Repository {
	t.Helper()
	repo, err := r.Repository(name)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func readAllBlob(t *testing.T, repo *Repository, d digest.Digest) []byte {
	t.Helper()
	rc, _, err := repo.OpenBlob(context.Background(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An upload continues on another Registry over the same driver: the state
// a PATCH needs is in storage, not in the process that began the upload.
func TestUploadResumesOnAnotherInstance(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	a, b := New(d, Options{}), New(d, Options{})
	content := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	want := digest.FromBytes(content)

	up, err := mustRepo(t, a, "x/y").NewUpload(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	chunks := [][]byte{content[:1000], content[1000:500000], content[500000:]}
	regs := []*Registry{a, b, a}
	var off int64
	for i, c := range chunks {
		u, err := mustRepo(t, regs[i], "x/y").Upload(ctx, up.ID())
		if err != nil {
			t.Fatal(err)
		}
		n, err := u.Append(ctx, bytes.NewReader(c), off)
		if err != nil {
			t.Fatal(err)
		}
		off += int64(len(c))
		if n != off {
			t.Fatalf("size %d, want %d", n, off)
		}
	}
	u, _ := mustRepo(t, b, "x/y").Upload(ctx, up.ID())
	offs, err := u.hashStateOffsets(ctx)
	if err != nil || len(offs) != 3 {
		t.Fatalf("hash states %v %v: the digest would have to be computed by re-reading", offs, err)
	}
	desc, err := u.Commit(ctx, bytes.NewReader(nil), -1, want)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Size != int64(len(content)) {
		t.Fatalf("size %d", desc.Size)
	}
	if got := readAllBlob(t, mustRepo(t, a, "x/y"), want); !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
}

// Without a saved hash state (an upload begun by the reference registry,
// or a chunk cut off before its state was written) the hash is rebuilt.
func TestUploadWithoutHashState(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	repo := mustRepo(t, r, "x")
	up, _ := repo.NewUpload(ctx, "")
	if _, err := up.Append(ctx, strings.NewReader("hello "), 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, uploadHashStatesDir("x", up.ID(), digest.SHA256)); err != nil {
		t.Fatal(err)
	}
	desc, err := up.Commit(ctx, strings.NewReader("world"), 6, digest.FromString("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest.FromString("hello world") {
		t.Fatal(desc.Digest)
	}
}

func TestUploadOutOfOrderWritesNothing(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	repo := mustRepo(t, r, "x")
	up, _ := repo.NewUpload(ctx, "")
	up.Append(ctx, strings.NewReader("abc"), 0)
	_, err := up.Append(ctx, strings.NewReader("zzz"), 10)
	if e := errcode.From(err); e == nil || e.HTTPStatus() != 416 {
		t.Fatalf("out of order: %v", err)
	}
	if n, _ := up.Size(ctx); n != 3 {
		t.Fatalf("size after refused chunk: %d", n)
	}
}

// Many clients pushing the same blob into the same and other repositories
// at once all succeed and the content is stored once, intact.
func TestConcurrentSameBlob(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	content := bytes.Repeat([]byte("z"), 1<<20)
	want := digest.FromBytes(content)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			repo, _ := r.Repository(fmt.Sprintf("repo%d", i%4))
			up, err := repo.NewUpload(ctx, "")
			if err != nil {
				errs <- err
				return
			}
			if _, err := up.Commit(ctx, bytes.NewReader(content), -1, want); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if got := readAllBlob(t, mustRepo(t, r, fmt.Sprintf("repo%d", i)), want); !bytes.Equal(got, content) {
			t.Fatal("content differs")
		}
	}
	// no upload left behind
	err := d.Walk(ctx, "/", func(fi driver.FileInfo) error {
		if strings.Contains(fi.Path(), "/_uploads/") {
			return fmt.Errorf("leftover %s", fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPurgeUploads(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	old, _ := mustRepo(t, r, "a/b").NewUpload(ctx, "")
	time.Sleep(1100 * time.Millisecond) // startedat has second resolution
	cut := time.Now()
	fresh, _ := mustRepo(t, r, "c").NewUpload(ctx, "")
	n, err := r.PurgeUploads(ctx, cut, true)
	if err != nil || n != 1 {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if _, err := mustRepo(t, r, "a/b").Upload(ctx, old.ID()); err != nil {
		t.Fatal("dry run removed an upload")
	}
	if n, err := r.PurgeUploads(ctx, cut, false); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := mustRepo(t, r, "a/b").Upload(ctx, old.ID()); !errcode.Is(err, errcode.BlobUploadUnknown) {
		t.Fatalf("old upload survived: %v", err)
	}
	if _, err := mustRepo(t, r, "c").Upload(ctx, fresh.ID()); err != nil {
		t.Fatal("fresh upload purged")
	}
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"library/ubuntu", true},
		{"openstack.kolla/ubuntu-source-mariadb-clustercheck", true},
		{"quay.io/coreos/flannel", true},
		{"a__b/c--d/e.f", true},
		{"", false},
		{"A", false},
		{"a/", false},
		{"/a", false},
		{"a//b", false},
		{"a/../b", false},
		{"..", false},
		{"a/.b", false},
		{"a_", false},
		{"a___b", false},
		{"_catalog", false},
		{strings.Repeat("a", 256), false},
	}
	for _, c := range cases {
		if err := ValidateName(c.name); (err == nil) != c.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestCatalogAfterLast(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	names := []string{"a", "a/b", "a/b/c", "a-b", "b", "b/a", "c"}
	for _, n := range names {
		repo := mustRepo(t, r, n)
		up, _ := repo.NewUpload(ctx, "")
		cfg := []byte("{}")
		if _, err := up.Commit(ctx, bytes.NewReader(cfg), -1, digest.FromBytes(cfg)); err != nil {
			t.Fatal(err)
		}
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes(cfg))
		if _, err := repo.PutManifest(ctx, "latest", "", []byte(m), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := -1; i < len(names); i++ {
		last := ""
		if i >= 0 {
			last = names[i]
		}
		got, more, err := r.Catalog(ctx, last, -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(names[i+1:], ","); strings.Join(got, ",") != want || more {
			t.Errorf("after %q: %v, want %s", last, got, want)
		}
	}
	// a "last" that is not itself a repository
	got, _, _ := r.Catalog(ctx, "a/a", -1, nil)
	if strings.Join(got, ",") != "a/b,a/b/c,a-b,b,b/a,c" {
		t.Errorf("after a/a: %v", got)
	}
}

func TestCatalogFilter(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	for _, n := range []string{"a", "b", "c", "d"} {
		repo := mustRepo(t, r, n)
		up, _ := repo.NewUpload(ctx, "")
		cfg := []byte("{}")
		up.Commit(ctx, bytes.NewReader(cfg), -1, digest.FromBytes(cfg))
		m := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes(cfg))
		if _, err := repo.PutManifest(ctx, "latest", "", []byte(m), nil); err != nil {
			t.Fatal(err)
		}
	}
	hideB := func(n string) bool { return n != "b" }
	got, more, err := r.Catalog(ctx, "", 2, hideB)
	if err != nil || strings.Join(got, ",") != "a,c" || !more {
		t.Fatalf("page 1: %v %v %v", got, more, err)
	}
	got, more, _ = r.Catalog(ctx, "c", 2, hideB)
	if strings.Join(got, ",") != "d" || more {
		t.Fatalf("page 2: %v %v", got, more)
	}
}

// A repository is listed while it has a revision of any algorithm: not once
// its manifests are deleted (an empty sha256 directory stays), and also when
// its only revision is sha512.
func TestCatalogRevisionAlgorithms(t *testing.T) {
	ctx := context.Background()
	r := New(inmemory.New(), Options{})
	cfg := []byte("{}")
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes(cfg)))
	for _, n := range []string{"gone", "kept", "s512"} {
		repo := mustRepo(t, r, n)
		up, _ := repo.NewUpload(ctx, "")
		if _, err := up.Commit(ctx, bytes.NewReader(cfg), -1, digest.FromBytes(cfg)); err != nil {
			t.Fatal(err)
		}
		ref := "latest"
		if n == "s512" {
			ref = digest.SHA512.FromBytes(m).String()
		}
		if _, err := repo.PutManifest(ctx, ref, "", m, nil); err != nil {
			t.Fatal(n, err)
		}
	}
	if err := mustRepo(t, r, "gone").DeleteManifest(ctx, digest.FromBytes(m)); err != nil {
		t.Fatal(err)
	}
	got, _, err := r.Catalog(ctx, "", -1, nil)
	if err != nil || strings.Join(got, ",") != "kept,s512" {
		t.Fatalf("catalog = %v, %v; want kept,s512", got, err)
	}
}
