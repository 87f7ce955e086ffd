package v2

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// BenchmarkListings times whole tags/list and _catalog responses from warm
// caches, in process: the storage's share and the JSON.
func BenchmarkListings(b *testing.B) {
	root := b.TempDir()
	v2 := filepath.Join(root, "docker", "registry", "v2", "repositories")
	link := []byte("sha256:" + fmt.Sprintf("%064d", 0))
	for i := range 10000 {
		p := filepath.Join(v2, "r", "_manifests", "tags", fmt.Sprintf("t%06d", i), "current")
		if err := os.MkdirAll(p, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "link"), link, 0o644); err != nil {
			b.Fatal(err)
		}
		rev := filepath.Join(v2, "c", fmt.Sprintf("r%06d", i), "_manifests", "revisions", "sha256", fmt.Sprintf("%064d", 0))
		if err := os.MkdirAll(rev, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	d, err := filesystem.New(root)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	h := NewHandler(storage.New(d, storage.Options{}), Options{CatalogMaxEntries: 10000})
	for _, u := range []string{"/v2/r/tags/list", "/v2/_catalog?n=10000", "/v2/_catalog?n=100&last=c/r005000"} {
		b.Run(u, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, u, nil)
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}
