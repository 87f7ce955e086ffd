package inmemory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func TestDriverSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return New() })
}

func TestHierarchicalSuite(t *testing.T) {
	testsuite.RunHierarchical(t, func(t *testing.T) driver.StorageDriver { return New() })
}

// Directories exist while they have children: they appear with the first
// and go with the last, up to (not including) the root.
func TestImplicitDirectories(t *testing.T) {
	ctx := context.Background()
	d := New()
	if ls, err := d.List(ctx, "/"); err != nil || len(ls) != 0 {
		t.Fatalf("List of an empty root: %v %v", ls, err)
	}
	if err := d.PutContent(ctx, "/a/b/c/file", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(ctx, "/a/keep", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/a/b/c"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat of an implicit directory: %v %v", fi, err)
	}
	if err := d.Delete(ctx, "/a/b/c/file"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/a/b/c", "/a/b"} {
		if _, err := d.List(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
			t.Fatalf("List(%s) after its last child went: %v", p, err)
		}
	}
	if ls, err := d.List(ctx, "/a"); err != nil || fmt.Sprint(ls) != "[/a/keep]" {
		t.Fatalf("List /a: %v %v", ls, err)
	}
	// a cancelled writer and a moved file take their emptied parents along
	w, err := d.Writer(ctx, "/u/1/data", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Move(ctx, "/a/keep", "/z/kept"); err != nil {
		t.Fatal(err)
	}
	if ls, err := d.List(ctx, "/"); err != nil || fmt.Sprint(ls) != "[/z]" {
		t.Fatalf("List / at the end: %v %v", ls, err)
	}
	if err := d.Delete(ctx, "/z"); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.Stat(ctx, "/"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat of an empty root: %v %v", fi, err)
	}
}

// A Reader is a snapshot: neither appends nor truncation show in it.
func TestReaderSnapshot(t *testing.T) {
	ctx := context.Background()
	d := New()
	w, err := d.Writer(ctx, "/f", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "abc")
	r1, _ := d.Reader(ctx, "/f", 1)
	_, _ = io.WriteString(w, "def")
	_ = w.Close()
	r2, _ := d.Reader(ctx, "/f", 0)
	w, err = d.Writer(ctx, "/f", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "XY")
	_ = w.Close()
	r3, _ := d.Reader(ctx, "/f", 0)
	for i, c := range []struct {
		r    io.Reader
		want string
	}{{r1, "bc"}, {r2, "abcdef"}, {r3, "XY"}} {
		if b, _ := io.ReadAll(c.r); string(b) != c.want {
			t.Fatalf("reader %d: %q, want %q", i+1, b, c.want)
		}
	}
}

// Readers run while a writer appends, under the race detector.
func TestConcurrentReadWhileAppending(t *testing.T) {
	ctx := context.Background()
	d := New()
	w, err := d.Writer(ctx, "/grow", false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rc, err := d.Reader(ctx, "/grow", 0)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(rc)
				for i, c := range b {
					if c != byte('a'+i%26) {
						t.Errorf("byte %d is %q", i, c)
						return
					}
				}
			}
		}()
	}
	buf := make([]byte, 26)
	for i := range buf {
		buf[i] = byte('a' + i)
	}
	for range 2000 {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	_ = w.Close()
}
