package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver/filesystem"
)

// makeTags writes n tag links straight into a filesystem root (the way the
// registry lays them out), fast enough for 100,000 tags, and backdates the
// tags directory so the listing cache may keep it.
func makeTags(t testing.TB, root, repo string, n int) {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(tagsRoot(repo)))
	link := []byte("sha256:" + strings.Repeat("a", 64))
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("t%06d", i), "current")
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "link"), link, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
}

func TestListCacheFollowsChanges(t *testing.T) {
	forWatchModes(t, testListCacheFollowsChanges)
}

func testListCacheFollowsChanges(t *testing.T, watch bool) {
	ctx := context.Background()
	root := t.TempDir()
	r, _ := newFSRegistry(t, root, watch)
	makeTags(t, root, "r", 300)
	repo := mustRepo(t, r, "r")
	tags, more, err := repo.Tags(ctx, "t000297", -1)
	if err != nil || strings.Join(tags, ",") != "t000298,t000299" || more {
		t.Fatalf("tags: %v %v %v", tags, more, err)
	}
	if _, ok := r.lists.entries[tagsRoot("r")]; !ok {
		t.Fatal("a large, settled directory was not cached")
	}
	// a new tag changes the directory: it must show at once
	if err := repo.tag(ctx, "t000300", digest.Digest("sha256:"+digestHex('b'))); err != nil {
		t.Fatal(err)
	}
	tags, _, _ = repo.Tags(ctx, "t000298", -1)
	if strings.Join(tags, ",") != "t000299,t000300" {
		t.Fatalf("new tag not seen: %v", tags)
	}
	// and the freshly modified directory is not cached (racy window)
	// unless it is watched
	if e, ok := r.lists.entries[tagsRoot("r")]; !watch && ok && len(e.children) == 301 {
		t.Fatal("a directory modified just now was cached")
	}
	// a deleted tag disappears
	if err := repo.DeleteTag(ctx, "t000299"); err != nil {
		t.Fatal(err)
	}
	tags, _, _ = repo.Tags(ctx, "t000298", -1)
	if strings.Join(tags, ",") != "t000300" {
		t.Fatalf("deleted tag still listed: %v", tags)
	}
}

func digestHex(c byte) string { return strings.Repeat(string(c), 64) }

// BenchmarkTagsPage shows that one page of tags/list costs the same with
// 10,000 and with 100,000 tags.
func BenchmarkTagsPage(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			root := b.TempDir()
			d, _ := filesystem.New(root)
			r := New(d, Options{})
			makeTags(b, root, "r", n)
			repo, _ := r.Repository("r")
			ctx := context.Background()
			last := fmt.Sprintf("t%06d", n/2)
			repo.Tags(ctx, last, 100) // fill the cache
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tags, _, err := repo.Tags(ctx, last, 100)
				if err != nil || len(tags) != 100 {
					b.Fatal(len(tags), err)
				}
			}
		})
	}
}
