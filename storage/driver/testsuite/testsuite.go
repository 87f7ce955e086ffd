// Package testsuite is the one test suite every storage driver passes
// unchanged: the filesystem and in-memory drivers now, object stores later.
// It checks the contract written in package driver, not an implementation.
package testsuite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// Run runs the suite; newDriver returns an empty driver for each subtest.
func Run(t *testing.T, newDriver func(t *testing.T) driver.StorageDriver) {
	ctx := context.Background()
	sub := func(name string, f func(t *testing.T, d driver.StorageDriver)) {
		t.Run(name, func(t *testing.T) { f(t, newDriver(t)) })
	}

	sub("PutGet", func(t *testing.T, d driver.StorageDriver) {
		for _, c := range [][]byte{[]byte("hello"), {}, bytes.Repeat([]byte{0, 1, 2}, 100000)} {
			mustPut(t, d, "/a/b/c", c)
			got, err := d.GetContent(ctx, "/a/b/c")
			if err != nil || !bytes.Equal(got, c) {
				t.Fatalf("GetContent after PutContent of %d bytes: %d bytes, %v", len(c), len(got), err)
			}
		}
		if _, err := d.GetContent(ctx, "/missing"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("missing: %v", err)
		}
		if _, err := d.GetContent(ctx, "/a/b"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("GetContent of a directory: %v", err)
		}
	})

	sub("LargeStream", func(t *testing.T, d driver.StorageDriver) {
		const size = 20 << 20
		src := rand.New(rand.NewSource(1))
		w, err := d.Writer(ctx, "/big/data", false)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(w, h), src, size); err != nil {
			t.Fatal(err)
		}
		if w.Size() != size {
			t.Fatalf("Size %d", w.Size())
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want := h.Sum(nil)
		rc, err := d.Reader(ctx, "/big/data", 0)
		if err != nil {
			t.Fatal(err)
		}
		h.Reset()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
			t.Fatalf("read back %d bytes, %v, hash equal %v", n, err, bytes.Equal(h.Sum(nil), want))
		}
		fi, err := d.Stat(ctx, "/big/data")
		if err != nil || fi.Size() != size || fi.IsDir() {
			t.Fatalf("Stat: %v %v", fi, err)
		}
	})

	sub("ReaderOffsets", func(t *testing.T, d driver.StorageDriver) {
		mustPut(t, d, "/f", []byte("0123456789"))
		for _, c := range []struct {
			off  int64
			want string
		}{{0, "0123456789"}, {4, "456789"}, {10, ""}} {
			rc, err := d.Reader(ctx, "/f", c.off)
			if err != nil {
				t.Fatalf("offset %d: %v", c.off, err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != c.want {
				t.Fatalf("offset %d: %q", c.off, b)
			}
		}
		for _, off := range []int64{11, -1} {
			if _, err := d.Reader(ctx, "/f", off); !errors.As(err, new(driver.InvalidOffsetError)) {
				t.Fatalf("offset %d: %v", off, err)
			}
		}
		if _, err := d.Reader(ctx, "/nope", 0); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("missing: %v", err)
		}
	})

	sub("WriterAppendAcrossWriters", func(t *testing.T, d driver.StorageDriver) {
		chunks := []string{"first-", "second-", "third"}
		var total int64
		for i, c := range chunks {
			w, err := d.Writer(ctx, "/up/data", i > 0)
			if err != nil {
				t.Fatal(err)
			}
			if w.Size() != total {
				t.Fatalf("writer %d starts at %d, want %d", i, w.Size(), total)
			}
			io.WriteString(w, c)
			total += int64(len(c))
			if w.Size() != total {
				t.Fatalf("writer %d size %d", i, w.Size())
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := d.GetContent(ctx, "/up/data")
		if string(got) != "first-second-third" {
			t.Fatalf("content %q", got)
		}
		// without append, a writer truncates
		w, _ := d.Writer(ctx, "/up/data", false)
		io.WriteString(w, "new")
		w.Commit(ctx)
		w.Close()
		if got, _ := d.GetContent(ctx, "/up/data"); string(got) != "new" {
			t.Fatalf("truncating writer: %q", got)
		}
	})

	sub("WriterCancel", func(t *testing.T, d driver.StorageDriver) {
		w, err := d.Writer(ctx, "/c/data", false)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "doomed")
		if err := w.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Stat(ctx, "/c/data"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("cancelled content still there: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("write after cancel succeeded")
		}
	})

	sub("StatListTree", func(t *testing.T, d driver.StorageDriver) {
		for _, p := range []string{"/r/b/file", "/r/a", "/r/c/d/e", "/other"} {
			mustPut(t, d, p, []byte(p))
		}
		fi, err := d.Stat(ctx, "/r/c")
		if err != nil || !fi.IsDir() {
			t.Fatalf("Stat dir: %v %v", fi, err)
		}
		if fi, err := d.Stat(ctx, "/r/a"); err != nil || fi.IsDir() || fi.Size() != 4 || fi.Path() != "/r/a" {
			t.Fatalf("Stat file: %v %v", fi, err)
		}
		if _, err := d.Stat(ctx, "/r/zz"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("Stat missing: %v", err)
		}
		got, err := d.List(ctx, "/r")
		if err != nil || fmt.Sprint(got) != "[/r/a /r/b /r/c]" {
			t.Fatalf("List: %v %v", got, err)
		}
		root, err := d.List(ctx, "/")
		if err != nil || fmt.Sprint(root) != "[/other /r]" {
			t.Fatalf("List /: %v %v", root, err)
		}
		if _, err := d.List(ctx, "/nothing"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("List missing: %v", err)
		}
	})

	sub("Move", func(t *testing.T, d driver.StorageDriver) {
		mustPut(t, d, "/m/src", []byte("content"))
		mustPut(t, d, "/n/dst", []byte("old"))
		if err := d.Move(ctx, "/m/src", "/n/dst"); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.GetContent(ctx, "/n/dst"); string(got) != "content" {
			t.Fatalf("dst %q", got)
		}
		if _, err := d.Stat(ctx, "/m/src"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("src still there: %v", err)
		}
		if err := d.Move(ctx, "/n/dst", "/deep/new/parents/x"); err != nil {
			t.Fatal(err)
		}
		if err := d.Move(ctx, "/m/src", "/y"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("move of missing: %v", err)
		}
	})

	sub("Delete", func(t *testing.T, d driver.StorageDriver) {
		mustPut(t, d, "/t/a/1", []byte("1"))
		mustPut(t, d, "/t/a/2", []byte("2"))
		mustPut(t, d, "/t/b", []byte("b"))
		if err := d.Delete(ctx, "/t/b"); err != nil {
			t.Fatal(err)
		}
		if err := d.Delete(ctx, "/t/a"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/t/a/1", "/t/a/2", "/t/b", "/t/a"} {
			if _, err := d.Stat(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
				t.Fatalf("%s after delete: %v", p, err)
			}
		}
		if err := d.Delete(ctx, "/t/a"); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})

	sub("Walk", func(t *testing.T, d driver.StorageDriver) {
		for _, p := range []string{"/w/b/2", "/w/a/1", "/w/b/1", "/w/c", "/w/skip/x"} {
			mustPut(t, d, p, []byte("x"))
		}
		var seen []string
		err := d.Walk(ctx, "/w", func(fi driver.FileInfo) error {
			seen = append(seen, fi.Path())
			if fi.Path() == "/w/skip" {
				return driver.ErrSkipDir
			}
			return nil
		})
		want := "[/w/a /w/a/1 /w/b /w/b/1 /w/b/2 /w/c /w/skip]"
		if err != nil || fmt.Sprint(seen) != want {
			t.Fatalf("Walk: %v %v, want %s", seen, err, want)
		}
		stop := errors.New("stop")
		if err := d.Walk(ctx, "/w", func(driver.FileInfo) error { return stop }); err != stop {
			t.Fatalf("Walk error not returned: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := d.Walk(cctx, "/w", func(driver.FileInfo) error { return nil }); err == nil {
			t.Fatal("Walk ignored a cancelled context")
		}
	})

	sub("InvalidPaths", func(t *testing.T, d driver.StorageDriver) {
		bad := []string{"", "a", "/a/../b", "/a/./b", "//a", "/a/", "/a b", "/a\x00b", "/../etc/passwd", "/a:b", "/..", "/a/\\b"}
		for _, p := range bad {
			errs := map[string]error{}
			_, errs["GetContent"] = d.GetContent(ctx, p)
			errs["PutContent"] = d.PutContent(ctx, p, []byte("x"))
			_, errs["Reader"] = d.Reader(ctx, p, 0)
			_, errs["Writer"] = d.Writer(ctx, p, false)
			_, errs["Stat"] = d.Stat(ctx, p)
			_, errs["List"] = d.List(ctx, p)
			errs["Move"] = d.Move(ctx, p, "/ok")
			errs["Move dst"] = d.Move(ctx, "/ok", p)
			errs["Delete"] = d.Delete(ctx, p)
			errs["Walk"] = d.Walk(ctx, p, func(driver.FileInfo) error { return nil })
			for m, err := range errs {
				if !errors.As(err, new(driver.InvalidPathError)) {
					t.Errorf("%s(%q): %v, want InvalidPathError", m, p, err)
				}
			}
		}
	})

	sub("ConcurrentPutSamePath", func(t *testing.T, d driver.StorageDriver) {
		var wg sync.WaitGroup
		values := map[string]bool{}
		for i := 0; i < 16; i++ {
			v := bytes.Repeat([]byte{byte('a' + i)}, 64<<10)
			values[string(v)] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.PutContent(ctx, "/same", v); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := d.GetContent(ctx, "/same")
		if err != nil || !values[string(got)] {
			t.Fatalf("concurrent PutContent left a mix or nothing (%d bytes, %v)", len(got), err)
		}
		if ls, _ := d.List(ctx, "/"); len(ls) != 1 {
			t.Fatalf("leftovers: %v", ls)
		}
	})

	sub("ConcurrentWriters", func(t *testing.T, d driver.StorageDriver) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				w, err := d.Writer(ctx, fmt.Sprintf("/cw/%d", i), false)
				if err != nil {
					t.Error(err)
					return
				}
				for j := 0; j < 100; j++ {
					fmt.Fprintf(w, "%d-%d;", i, j)
				}
				w.Commit(ctx)
				w.Close()
			}(i)
		}
		wg.Wait()
		ls, _ := d.List(ctx, "/cw")
		sort.Strings(ls)
		if len(ls) != 8 {
			t.Fatalf("files: %v", ls)
		}
		for i := 0; i < 8; i++ {
			b, _ := d.GetContent(ctx, fmt.Sprintf("/cw/%d", i))
			if !bytes.HasSuffix(b, []byte(fmt.Sprintf("%d-99;", i))) || bytes.Count(b, []byte(";")) != 100 {
				t.Fatalf("writer %d content wrong", i)
			}
		}
	})
}

func mustPut(t *testing.T, d driver.StorageDriver, p string, b []byte) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, b); err != nil {
		t.Fatalf("PutContent(%s): %v", p, err)
	}
}
