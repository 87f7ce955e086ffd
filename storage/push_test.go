package storage

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// BenchmarkPushSmallImages pushes small images (a config, two 4 KiB
// layers, a manifest by tag) from 1 and 16 goroutines, each into its own
// repository, through the filesystem driver with every flush it makes: the
// storage half of regbench's small-image row, without HTTP. The figure
// to watch is images/s; one op is one image. With one pusher it is the
// latency of an image's chain of flushes.
func BenchmarkPushSmallImages(b *testing.B) {
	for _, pushers := range []int{1, 16} {
		b.Run(fmt.Sprintf("pushers=%d", pushers), func(b *testing.B) { benchPushSmall(b, pushers) })
	}
}

func benchPushSmall(b *testing.B, pushers int) {
	d, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r := New(d, Options{})
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range pushers {
		wg.Go(func() {
			repo, _ := r.Repository(fmt.Sprintf("bench/c%02d", c))
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := pushSmallImage(ctx, repo, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

func pushSmallImage(ctx context.Context, repo *Repository, i int64) error {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","image":%d}`, i))
	blobs := [][]byte{cfg, bytes.Repeat([]byte(fmt.Sprintf("layer a %d ", i)), 400), bytes.Repeat([]byte(fmt.Sprintf("layer b %d ", i)), 400)}
	var descs []Descriptor
	for _, bl := range blobs {
		up, err := repo.NewUpload(ctx, "")
		if err != nil {
			return err
		}
		desc, err := up.Commit(ctx, bytes.NewReader(bl), -1, digest.FromBytes(bl))
		if err != nil {
			return err
		}
		descs = append(descs, desc)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[`, descs[0].Digest, descs[0].Size)
	for k, l := range descs[1:] {
		if k > 0 {
			m += ","
		}
		m += fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, l.Digest, l.Size)
	}
	m += "]}"
	_, err := repo.PutManifest(ctx, fmt.Sprintf("i%d", i), MediaTypeOCIManifest, []byte(m), nil)
	return err
}

// Pushes through one driver batch per request, on the filesystem (its
// Batcher) and in memory (one operation at a time): a manifest with its
// tag repeated among the extra tags, the same blob committed twice and
// into a second repository (kept, not moved), the same manifest pushed
// again (its content kept).
func TestPushBatches(t *testing.T) {
	ctx := context.Background()
	fsd, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]driver.StorageDriver{"filesystem": fsd, "inmemory": inmemory.New()} {
		t.Run(name, func(t *testing.T) {
			r := New(d, Options{})
			repo, other := mustRepo(t, r, "a/b"), mustRepo(t, r, "c")
			cfg := []byte(`{"os":"linux"}`)
			for _, rp := range []*Repository{repo, repo, other} {
				up, err := rp.NewUpload(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := up.Commit(ctx, bytes.NewReader(cfg), -1, digest.FromBytes(cfg)); err != nil {
					t.Fatal(err)
				}
			}
			if got := readAllBlob(t, other, digest.FromBytes(cfg)); !bytes.Equal(got, cfg) {
				t.Fatalf("blob in the second repository: %q", got)
			}
			m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, digest.FromBytes(cfg), len(cfg)))
			for range 2 {
				if _, err := repo.PutManifest(ctx, "v1", MediaTypeOCIManifest, m, []string{"v2", "v1", "v2"}); err != nil {
					t.Fatal(err)
				}
			}
			tags, _, err := repo.Tags(ctx, "", -1)
			if err != nil || fmt.Sprint(tags) != "[v1 v2]" {
				t.Fatalf("tags %v, %v", tags, err)
			}
			for _, ref := range []string{"v1", "v2", digest.FromBytes(m).String()} {
				got, err := repo.GetManifest(ctx, ref)
				if err != nil || !bytes.Equal(got.Content, m) {
					t.Fatalf("%s: %v", ref, err)
				}
			}
		})
	}
}
