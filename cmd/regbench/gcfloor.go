package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
)

// gcGarbage lists the directories a complete collection of gcFixture(root,
// n) removes: for every deleted image, the blob directories of its config,
// layers and manifest (each holding a data file), and its repository's
// layer link directories for the config and layers (each holding a link
// file). It is computed from the fixture's definition, not from any
// collector's output.
func gcGarbage(root string, n int) []string {
	var dirs []string
	for i := 1; i < n; i += 2 {
		cfg, layers := smallImage(99, i)
		blobs := []digest.Digest{digest.FromBytes(cfg)}
		var sizes []int
		for _, l := range layers {
			blobs = append(blobs, digest.FromBytes(l))
			sizes = append(sizes, len(l))
		}
		m := digest.FromBytes(manifestJSON(blobs[0], len(cfg), blobs[1:], sizes))
		repo := fmt.Sprintf("gc/r%04d", i/gcImagesPerRepo)
		for _, d := range append(blobs, m) {
			h := d.Encoded()
			dirs = append(dirs, v2(root, "blobs", "sha256", h[:2], h))
		}
		for _, d := range blobs {
			dirs = append(dirs, filepath.Dir(layerLink(root, repo, d)))
		}
	}
	return dirs
}

// removalFloor removes dirs (each holding one file) with one unlink and one
// rmdir each, the least any collector can do to reclaim them, once on one
// goroutine and once on 16 (as many as registryd's collector uses by
// default), each time from a fresh fixture, and returns the faster time:
// the physical limit of the GC row, on this filesystem.
func removalFloor(work string, n int) (float64, error) {
	best := 0.0
	for _, workers := range []int{1, 16} {
		root := filepath.Join(work, "gc-floor")
		if err := os.RemoveAll(root); err != nil {
			return 0, err
		}
		if _, _, err := gcFixture(root, n); err != nil {
			return 0, err
		}
		dirs := gcGarbage(root, n)
		syscall.Sync()
		secs, err := removeDirs(dirs, workers)
		os.RemoveAll(root)
		if err != nil {
			return 0, err
		}
		if best == 0 || secs < best {
			best = secs
		}
	}
	return best, nil
}

// removeDirs removes every directory in dirs and the one file in each, on
// workers goroutines.
func removeDirs(dirs []string, workers int) (float64, error) {
	start := time.Now()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan string)
	for range workers {
		wg.Go(func() {
			for d := range next {
				err := removeOne(d)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, d := range dirs {
		next <- d
	}
	close(next)
	wg.Wait()
	return time.Since(start).Seconds(), first
}

// removeOne unlinks the file a blob or link directory holds and removes
// the directory: two system calls (os.Remove would try unlink on the
// directory first).
func removeOne(dir string) error {
	f := "data"
	if filepath.Base(filepath.Dir(filepath.Dir(dir))) == "_layers" {
		f = "link"
	}
	if err := syscall.Unlink(filepath.Join(dir, f)); err != nil {
		return fmt.Errorf("unlink %s: %w", filepath.Join(dir, f), err)
	}
	if err := syscall.Rmdir(dir); err != nil {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}
