package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var assetFS embed.FS

// assetSet serves the embedded static files under names that carry a
// hash of their content (app.3f2a9c01d4e5.css). Embedded files have no
// modification time, so nothing could be revalidated by date; with the
// hash in the name a file never changes under its URL and is cached for a
// year, and a new build's pages name new URLs.
type assetSet struct {
	prefix string            // URL prefix, ".../assets/"
	byName map[string]string // "app.css" -> "app.<hash>.css"
	files  map[string]asset  // hashed name -> content
}

type asset struct {
	body  []byte
	ctype string
	etag  string
}

func loadAssets(prefix string) (*assetSet, error) {
	s := &assetSet{prefix: prefix, byName: map[string]string{}, files: map[string]asset{}}
	err := fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:6])
		name := path.Base(p)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		s.byName[name] = hashed
		s.files[hashed] = asset{body: b, ctype: ct, etag: `"` + h + `"`}
		return nil
	})
	return s, err
}

// url is the URL of the asset called name; it panics on a name that is
// not embedded, which the template tests catch.
func (s *assetSet) url(name string) (string, error) {
	h, ok := s.byName[name]
	if !ok {
		return "", fmt.Errorf("no asset %q", name)
	}
	return s.prefix + h, nil
}

func (s *assetSet) serve(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := s.files[name]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", a.etag)
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}
