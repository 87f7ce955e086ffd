//go:build linux

package filesystem

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Every change to a watched directory, made through the file system as
// another process would, moves its version by the next Sync, with no wait;
// a removed or renamed directory (or ancestor) is no longer watched.
func TestWatchVersions(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.ws.quiet = true // no background draining: every event waits for Sync
	full := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	mkdir := func(p string) {
		if err := os.MkdirAll(full(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("/a/m/r/s")
	mkdir("/b")
	mkdir("/a/m/r/s/x2")
	type step struct {
		name    string
		change  func()
		watched string // the directory checked
		moved   bool   // its version must move
		gone    bool   // it must no longer be watched
	}
	steps := []step{
		{"nothing", func() {}, "/a/m/r/s", false, false},
		{"entry created", func() { mkdir("/a/m/r/s/x") }, "/a/m/r/s", true, false},
		{"entry removed", func() { os.Remove(full("/a/m/r/s/x")) }, "/a/m/r/s", true, false},
		{"file in a subdirectory", func() { os.WriteFile(full("/a/m/r/s/x2/f"), nil, 0o644) }, "/a/m/r/s", false, false},
		{"parent's sibling", func() { mkdir("/a/m/r/t") }, "/a/m/r/s", false, false},
		{"unwatched ancestor renamed", func() {
			if err := os.Rename(full("/a/m/r"), full("/a/m/r2")); err != nil {
				t.Fatal(err)
			}
			mkdir("/a/m/r/s")
		}, "/a/m/r/s", true, true},
		{"itself renamed", func() { os.Rename(full("/b"), full("/b2")); mkdir("/b") }, "/b", true, true},
		{"itself removed", func() { os.Remove(full("/b")); mkdir("/b") }, "/b", true, true},
		{"overflow", func() { os.Mkdir(full("/c"), 0o755); d.SimulateOverflow() }, "/b", true, false},
	}
	for _, s := range steps {
		v, ok := d.Watch(ctx, s.watched)
		if !ok {
			t.Fatalf("%s: not watched", s.name)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		v, _ = d.DirVersion(s.watched) // settle what the setup queued
		s.change()
		if v1, ok := d.DirVersion(s.watched); s.name != "overflow" && (!ok || v1 != v) {
			// only Sync applies events here: the barrier is Sync's
			t.Fatalf("%s: version moved before Sync", s.name)
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		v2, ok := d.DirVersion(s.watched)
		if s.gone && ok {
			t.Errorf("%s: %s still watched", s.name, s.watched)
		}
		if !s.gone && !ok {
			t.Errorf("%s: %s no longer watched", s.name, s.watched)
		}
		if ok && (v2 != v) != s.moved {
			t.Errorf("%s: version %d -> %d, want moved=%v", s.name, v, v2, s.moved)
		}
		if s.gone {
			if v3, ok := d.Watch(ctx, s.watched); !ok || v3 == v {
				t.Errorf("%s: re-watched at %d (ok %v), was %d", s.name, v3, ok, v)
			}
		}
	}
	if _, ok := d.Watch(ctx, "/missing"); ok {
		t.Error("a missing directory is watched")
	}
}

// The limit on watches leaves further directories unwatched (callers fall
// back to directory times), warned about once.
func TestWatchLimit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := New(root)
	defer d.Close()
	var warnings int
	d.SetWarnf(func(string, ...any) { warnings++ })
	d.SetMaxWatches(2)
	for _, p := range []string{"/x", "/y", "/z"} {
		os.Mkdir(filepath.Join(root, p), 0o755)
	}
	// "/" and "/x" fill it
	if _, ok := d.Watch(ctx, "/x"); !ok {
		t.Fatal("first not watched")
	}
	if _, ok := d.Watch(ctx, "/y"); ok {
		t.Fatal("watched beyond the limit")
	}
	d.Watch(ctx, "/z")
	if warnings != 1 {
		t.Fatalf("%d warnings", warnings)
	}
}

// Close (and a driver dropped without it) releases the descriptor and the
// goroutine; the driver then watches nothing.
func TestWatchClose(t *testing.T) {
	ctx := context.Background()
	fds := func() int { es, _ := os.ReadDir("/proc/self/fd"); return len(es) }
	g0, f0 := runtime.NumGoroutine(), fds()
	for range 20 {
		d, _ := New(t.TempDir())
		if _, ok := d.Watch(ctx, "/"); !ok {
			t.Fatal("root not watched")
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Watch(ctx, "/"); ok {
			t.Fatal("watched after Close")
		}
		if err := d.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		d, _ := New(t.TempDir())
		d.Watch(ctx, "/")
	}
	for i := 0; i < 50 && (runtime.NumGoroutine() > g0 || fds() > f0); i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if g, f := runtime.NumGoroutine(), fds(); g > g0 || f > f0 {
		t.Fatalf("goroutines %d -> %d, descriptors %d -> %d", g0, g, f0, f)
	}
}

// A root reached through a symbolic link is watched like any other.
func TestWatchRootThroughLink(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d, err := New(filepath.Join(dir, "link"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.MkdirAll(filepath.Join(dir, "real", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Watch(ctx, "/a"); !ok {
		t.Fatal("not watched below a linked root")
	}
}

// The registry takes at most half of the kernel's per-user watch limit,
// whatever it was configured with, so the user's other programs keep the
// rest.
func TestUserWatchShare(t *testing.T) {
	tests := []struct {
		name, limit string
		max, want   int
	}{
		{"half of the kernel's limit", "8\n", 100, 4},
		{"configured limit lower", "8\n", 3, 3},
		{"unreadable limit", "", 3, 3},
		{"garbage", "many\n", 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "max_user_watches")
			if tc.limit != "" {
				if err := os.WriteFile(f, []byte(tc.limit), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old := maxUserWatches
			maxUserWatches = f
			defer func() { maxUserWatches = old }()
			root := t.TempDir()
			d, _ := New(root)
			defer d.Close()
			d.SetWarnf(func(string, ...any) {})
			d.SetMaxWatches(tc.max)
			for i := range 10 {
				os.Mkdir(filepath.Join(root, fmt.Sprint(i)), 0o755)
			}
			watched := 0
			for i := range 10 {
				if _, ok := d.Watch(context.Background(), fmt.Sprintf("/%d", i)); ok {
					watched++
				}
			}
			// The root takes a watch of its own.
			if watched != tc.want-1 {
				t.Errorf("%d directories watched besides the root, want %d", watched, tc.want-1)
			}
		})
	}
}

// A storage root on a network or shared filesystem is not watched (other
// hosts change it without this kernel seeing): listings fall back to
// directory times, and the operator is told why once.
func TestWatchOnlyLocalFilesystems(t *testing.T) {
	tests := []struct {
		name    string
		fstype  int64
		watched bool
	}{
		{"ext4", 0xEF53, true},
		{"xfs", 0x58465342, true},
		{"overlayfs", 0x794C7630, true},
		{"nfs", 0x6969, false},
		{"cephfs", 0x00C36400, false},
		{"fuse", 0x65735546, false},
		{"9p", 0x01021997, false},
		{"cifs", 0xFF534D42, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := fsType
			fsType = func(string) (int64, error) { return tc.fstype, nil }
			defer func() { fsType = old }()
			root := t.TempDir()
			d, _ := New(root)
			defer d.Close()
			var warnings []string
			d.SetWarnf(func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
			os.Mkdir(filepath.Join(root, "x"), 0o755)
			_, ok := d.Watch(context.Background(), "/x")
			if ok != tc.watched {
				t.Fatalf("watched = %v, want %v", ok, tc.watched)
			}
			if !tc.watched && (len(warnings) != 1 || !strings.Contains(warnings[0], "not a known local one")) {
				t.Errorf("warnings %q, want one saying why nothing is watched", warnings)
			}
			if tc.watched && len(warnings) != 0 {
				t.Errorf("warnings %q on a local filesystem", warnings)
			}
		})
	}
}
