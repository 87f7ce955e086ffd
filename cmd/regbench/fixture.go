package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// The store fixtures are written directly in distribution's filesystem
// layout (storage/paths.go), which all three servers read.

func v2(root string, parts ...string) string {
	return filepath.Join(append([]string{root, "docker", "registry", "v2"}, parts...)...)
}

func writeFile(p string, b []byte) error {
	if err := os.WriteFile(p, b, 0o644); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

func writeBlob(root string, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	h := d.Encoded()
	return d, writeFile(v2(root, "blobs", "sha256", h[:2], h, "data"), b)
}

func writeLink(p string, d digest.Digest) error { return writeFile(p, []byte(d.String())) }

func layerLink(root, repo string, d digest.Digest) string {
	return v2(root, "repositories", repo, "_layers", "sha256", d.Encoded(), "link")
}

func revisionDir(root, repo string, d digest.Digest) string {
	return v2(root, "repositories", repo, "_manifests", "revisions", "sha256", d.Encoded())
}

func tagDir(root, repo, tag string) string {
	return v2(root, "repositories", repo, "_manifests", "tags", tag)
}

// diskImage is an image whose blobs are already in the store.
type diskImage struct {
	Manifest digest.Digest
	Blobs    []digest.Digest // config and layers
}

// writeImage stores an image's blobs (config, layers, manifest).
func writeImage(root string, cfg []byte, layers [][]byte) (diskImage, error) {
	var im diskImage
	cd, err := writeBlob(root, cfg)
	if err != nil {
		return im, err
	}
	im.Blobs = append(im.Blobs, cd)
	var sizes []int
	for _, l := range layers {
		d, err := writeBlob(root, l)
		if err != nil {
			return im, err
		}
		im.Blobs = append(im.Blobs, d)
		sizes = append(sizes, len(l))
	}
	im.Manifest, err = writeBlob(root, manifestJSON(cd, len(cfg), im.Blobs[1:], sizes))
	return im, err
}

// linkImage links an image into repo (layer links, revision) and tags it.
func linkImage(root, repo, tag string, im diskImage) error {
	for _, d := range im.Blobs {
		if err := writeLink(layerLink(root, repo, d), d); err != nil {
			return err
		}
	}
	if err := writeLink(filepath.Join(revisionDir(root, repo, im.Manifest), "link"), im.Manifest); err != nil {
		return err
	}
	if tag == "" {
		return nil
	}
	td := tagDir(root, repo, tag)
	if err := writeLink(filepath.Join(td, "current", "link"), im.Manifest); err != nil {
		return err
	}
	return writeLink(filepath.Join(td, "index", "sha256", im.Manifest.Encoded(), "link"), im.Manifest)
}

// untagAndDelete removes what DELETE /v2/<repo>/manifests/<digest> removes:
// the revision link and the tags pointing at it.
func untagAndDelete(root, repo, tag string, im diskImage) error {
	if err := os.RemoveAll(revisionDir(root, repo, im.Manifest)); err != nil {
		return err
	}
	return os.RemoveAll(tagDir(root, repo, tag))
}

// catalogFixture: repos repositories catalog/rNNNNNN, each holding one
// shared manifest revision tagged latest and a link to its config blob
// (the least that lists a repository in every server's catalog: 2.8 looks
// for _layers, v3 for _manifests, registryd for a revision; kept small so
// the fixture writes and copies fast), and repository tags/many with tags
// tags (tNNNNNN) on one image.
func catalogFixture(root string, repos, tags int) error {
	cfg, layers := smallImage(7, 0)
	im, err := writeImage(root, cfg, layers)
	if err != nil {
		return err
	}
	for i := 0; i < repos; i++ {
		repo := catalogRepo(i)
		if err := writeLink(layerLink(root, repo, im.Blobs[0]), im.Blobs[0]); err != nil {
			return err
		}
		if err := writeLink(filepath.Join(revisionDir(root, repo, im.Manifest), "link"), im.Manifest); err != nil {
			return err
		}
		if err := writeLink(filepath.Join(tagDir(root, repo, "latest"), "current", "link"), im.Manifest); err != nil {
			return err
		}
	}
	if err := linkImage(root, "tags/many", "", im); err != nil {
		return err
	}
	for i := 0; i < tags; i++ {
		td := tagDir(root, "tags/many", fmt.Sprintf("t%06d", i))
		if err := writeLink(filepath.Join(td, "current", "link"), im.Manifest); err != nil {
			return err
		}
	}
	return nil
}

func catalogRepo(i int) string { return fmt.Sprintf("catalog/r%06d", i) }

const gcImagesPerRepo = 20

// gcFixture: n images (config + two 4 KiB layers each, all distinct) in
// repositories gc/rNNNN, 20 to a repository, tagged iNNNNNN; every odd image
// is then deleted as the API would. It returns the blobs and bytes that a
// collection should reclaim.
func gcFixture(root string, n int) (blobs int, bytes int64, err error) {
	for i := 0; i < n; i++ {
		cfg, layers := smallImage(99, i)
		im, err := writeImage(root, cfg, layers)
		if err != nil {
			return 0, 0, err
		}
		repo := fmt.Sprintf("gc/r%04d", i/gcImagesPerRepo)
		tag := fmt.Sprintf("i%06d", i)
		if err := linkImage(root, repo, tag, im); err != nil {
			return 0, 0, err
		}
		if i%2 == 1 {
			if err := untagAndDelete(root, repo, tag, im); err != nil {
				return 0, 0, err
			}
			blobs += 4
			bytes += int64(len(cfg)+len(layers[0])+len(layers[1])) + int64(len(manifestJSON(im.Blobs[0], len(cfg), im.Blobs[1:], []int{4096, 4096})))
		}
	}
	return blobs, bytes, nil
}

// countBlobs counts blob data files and their bytes.
func countBlobs(root string) (n int, size int64, err error) {
	err = filepath.WalkDir(v2(root, "blobs"), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && e.Name() == "data" {
			fi, err := e.Info()
			if err != nil {
				return err
			}
			n++
			size += fi.Size()
		}
		return nil
	})
	return n, size, err
}

// verifyLive checks that every tag left in the store resolves to a manifest
// whose config and layers are all still present. It returns the number of
// live tags checked.
func verifyLive(root string) (int, error) {
	repos, err := filepath.Glob(v2(root, "repositories", "gc", "*"))
	if err != nil {
		return 0, err
	}
	exists := func(d digest.Digest) bool {
		h := d.Encoded()
		_, err := os.Stat(v2(root, "blobs", "sha256", h[:2], h, "data"))
		return err == nil
	}
	checked := 0
	for _, rp := range repos {
		tags, err := os.ReadDir(filepath.Join(rp, "_manifests", "tags"))
		if err != nil {
			return checked, err
		}
		for _, t := range tags {
			l, err := os.ReadFile(filepath.Join(rp, "_manifests", "tags", t.Name(), "current", "link"))
			if err != nil {
				return checked, err
			}
			md, err := digest.Parse(string(l))
			if err != nil {
				return checked, err
			}
			h := md.Encoded()
			mb, err := os.ReadFile(v2(root, "blobs", "sha256", h[:2], h, "data"))
			if err != nil {
				return checked, fmt.Errorf("%s:%s: manifest %s lost", filepath.Base(rp), t.Name(), md)
			}
			var m struct {
				Config struct{ Digest digest.Digest }
				Layers []struct{ Digest digest.Digest }
			}
			if err := json.Unmarshal(mb, &m); err != nil {
				return checked, err
			}
			ds := []digest.Digest{m.Config.Digest}
			for _, l := range m.Layers {
				ds = append(ds, l.Digest)
			}
			for _, d := range ds {
				if !exists(d) {
					return checked, fmt.Errorf("%s:%s: blob %s lost", filepath.Base(rp), t.Name(), d)
				}
				if _, err := os.Stat(layerLink(root, "gc/"+filepath.Base(rp), d)); err != nil {
					return checked, fmt.Errorf("%s:%s: layer link %s lost", filepath.Base(rp), t.Name(), d)
				}
			}
			checked++
		}
	}
	return checked, nil
}
