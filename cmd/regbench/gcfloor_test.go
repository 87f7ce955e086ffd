package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGCGarbage checks that the floor removes what a collection must and
// nothing else: every listed directory exists, removing them all leaves
// every live image whole and exactly the live images' blobs, and no layer
// link of a deleted image.
func TestGCGarbage(t *testing.T) {
	for _, n := range []int{2, 21, 60} {
		root := t.TempDir()
		wantBlobs, _, err := gcFixture(root, n)
		if err != nil {
			t.Fatal(err)
		}
		before, _, err := countBlobs(root)
		if err != nil {
			t.Fatal(err)
		}
		dirs := gcGarbage(root, n)
		if want := 7 * (n / 2); len(dirs) != want {
			t.Fatalf("n=%d: %d directories listed, want %d", n, len(dirs), want)
		}
		seen := map[string]bool{}
		for _, d := range dirs {
			if seen[d] {
				t.Fatalf("n=%d: %s listed twice", n, d)
			}
			seen[d] = true
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("n=%d: listed directory missing: %v", n, err)
			}
		}
		if _, err := removeDirs(dirs, 2); err != nil {
			t.Fatal(err)
		}
		after, _, err := countBlobs(root)
		if err != nil {
			t.Fatal(err)
		}
		if before-after != wantBlobs {
			t.Errorf("n=%d: %d blobs removed, want %d", n, before-after, wantBlobs)
		}
		live, err := verifyLive(root)
		if err != nil || live != n-n/2 {
			t.Errorf("n=%d: %d live images intact (%v), want %d", n, live, err, n-n/2)
		}
		links, err := filepath.Glob(v2(root, "repositories", "gc", "*", "_layers", "sha256", "*"))
		if err != nil {
			t.Fatal(err)
		}
		if want := 3 * (n - n/2); len(links) != want {
			t.Errorf("n=%d: %d layer links left, want %d (the live images')", n, len(links), want)
		}
	}
}
