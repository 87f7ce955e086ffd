package testsuite

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// RunStaged runs the tests of driver.Stager's contract: a staged write is
// invisible at its path until Commit returns, then whole; Cancel, Close
// without Commit and a failed write leave the path as it was. size is a
// content size that makes the driver send parts before Commit (more than
// its part size), so that what it does with them is tested too.
//
// Every test runs twice: with the size given to StagedWriter in advance,
// and without.
func RunStaged(t *testing.T, size int, newDriver func(t *testing.T) driver.StorageDriver) {
	for _, known := range []bool{false, true} {
		name := "SizeUnknown"
		if known {
			name = "SizeKnown"
		}
		t.Run(name, func(t *testing.T) { runStaged(t, size, known, newDriver) })
	}
}

// sized is a Stager that announces the size of every write it is asked
// for, or never.
type sized struct {
	driver.Stager
	known bool
}

func (s sized) open(ctx context.Context, p string, n int) (driver.FileWriter, error) {
	size := int64(-1)
	if s.known {
		size = int64(n)
	}
	return s.StagedWriter(ctx, p, size)
}

func runStaged(t *testing.T, size int, known bool, newDriver func(t *testing.T) driver.StorageDriver) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, d driver.StorageDriver, st sized, size int)
	}{
		{"InvisibleUntilCommit", testStagedInvisible},
		{"ReplacesWhole", testStagedReplaces},
		{"CancelAndCloseKeepOld", testStagedDiscard},
		{"Concurrent", testStagedConcurrent},
		{"Misuse", testStagedMisuse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t)
			st, ok := driver.As[driver.Stager](d)
			if !ok {
				t.Fatalf("%s is no driver.Stager", d.Name())
			}
			tc.fn(t, d, sized{st, known}, size)
		})
	}
}

func content(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

func readAll(t *testing.T, d driver.StorageDriver, p string) []byte {
	t.Helper()
	rc, err := d.Reader(context.Background(), p, 0)
	if err != nil {
		t.Fatalf("Reader(%s): %v", p, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// writeStaged writes data in uneven pieces.
func writeStaged(t *testing.T, w driver.FileWriter, data []byte) {
	t.Helper()
	for off, i := 0, 0; off < len(data); i++ {
		n := min(len(data)-off, 1+(i*977+31)%(1<<20))
		if k, err := w.Write(data[off : off+n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		off += n
	}
	if w.Size() != int64(len(data)) {
		t.Fatalf("Size %d after writing %d bytes", w.Size(), len(data))
	}
}

func testStagedInvisible(t *testing.T, d driver.StorageDriver, st sized, size int) {
	ctx := context.Background()
	for _, n := range []int{0, 5, size} {
		data := content(uint64(n), n)
		p := "/staged/new/data"
		w, err := st.open(ctx, p, len(data))
		if err != nil {
			t.Fatal(err)
		}
		writeStaged(t, w, data)
		// Everything written (parts sent), nothing committed.
		_, err = d.Stat(ctx, p)
		wantNotFound(t, "Stat before Commit", err)
		_, err = d.Reader(ctx, p, 0)
		wantNotFound(t, "Reader before Commit", err)
		_, err = d.List(ctx, "/staged/new")
		wantNotFound(t, "List of the parent before Commit", err)
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit of %d bytes: %v", n, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close after Commit: %v", err)
		}
		if got := readAll(t, d, p); !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes after Commit of %d", len(got), n)
		}
		fi, err := d.Stat(ctx, p)
		if err != nil || fi.Size() != int64(n) || fi.IsDir() {
			t.Fatalf("Stat after Commit: %v %v", fi, err)
		}
		if err := d.Delete(ctx, "/staged"); err != nil {
			t.Fatal(err)
		}
	}
}

func testStagedReplaces(t *testing.T, d driver.StorageDriver, st sized, size int) {
	ctx := context.Background()
	p := "/staged/r/data"
	old := []byte("old content")
	mustPut(t, d, p, old)
	data := content(7, size)
	w, err := st.open(ctx, p, size)
	if err != nil {
		t.Fatal(err)
	}
	writeStaged(t, w, data)
	if got := readAll(t, d, p); !bytes.Equal(got, old) {
		t.Fatalf("before Commit the path shows %d bytes, want the old %d", len(got), len(old))
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if got := readAll(t, d, p); !bytes.Equal(got, data) {
		t.Fatalf("after Commit the path shows %d bytes, want %d", len(got), len(data))
	}
	// An appending Writer continues the staged object like any other.
	aw, err := d.Writer(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	if aw.Size() != int64(len(data)) {
		t.Fatalf("appending writer starts at %d, want %d", aw.Size(), len(data))
	}
	_, _ = aw.Write([]byte("tail"))
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, d, p); !bytes.Equal(got, append(bytes.Clone(data), "tail"...)) {
		t.Fatalf("after an append: %d bytes", len(got))
	}
}

func testStagedDiscard(t *testing.T, d driver.StorageDriver, st sized, size int) {
	ctx := context.Background()
	for _, how := range []string{"cancel", "close"} {
		for _, n := range []int{3, size} {
			p := "/staged/d/data"
			old := []byte("kept")
			mustPut(t, d, p, old)
			w, err := st.open(ctx, p, n)
			if err != nil {
				t.Fatal(err)
			}
			writeStaged(t, w, content(9, n))
			if how == "cancel" {
				err = w.Cancel(ctx)
			} else {
				err = w.Close()
			}
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			if got := mustGet(t, d, p); !bytes.Equal(got, old) {
				t.Fatalf("after %s of %d bytes the path shows %d bytes, want the old content", how, n, len(got))
			}
			if _, err := w.Write([]byte("x")); err == nil {
				t.Fatalf("Write after %s succeeded", how)
			}
			if err := w.Commit(ctx); err == nil {
				t.Fatalf("Commit after %s succeeded", how)
			}
			if got := mustGet(t, d, p); !bytes.Equal(got, old) {
				t.Fatalf("a refused Commit after %s changed the path", how)
			}
			// And where there was nothing, there is still nothing.
			w, err = st.open(ctx, "/staged/d/none", n)
			if err != nil {
				t.Fatal(err)
			}
			writeStaged(t, w, content(10, n))
			if how == "cancel" {
				_ = w.Cancel(ctx)
			} else {
				_ = w.Close()
			}
			_, err = d.Stat(ctx, "/staged/d/none")
			wantNotFound(t, "Stat after "+how, err)
		}
	}
	// A writer whose request ends mid-way: nothing appears either.
	cctx, cancel := context.WithCancel(ctx)
	w, err := st.open(cctx, "/staged/d/cut", 2*size)
	if err != nil {
		t.Fatal(err)
	}
	writeStaged(t, w, content(11, size))
	cancel()
	_, _ = w.Write(content(12, size))
	if err := w.Commit(cctx); err == nil {
		t.Fatal("Commit with its context cancelled succeeded")
	}
	_ = w.Close()
	_, err = d.Stat(ctx, "/staged/d/cut")
	wantNotFound(t, "Stat after a cancelled context", err)
}

// Two staged writers of one path: each commit replaces the object whole.
func testStagedConcurrent(t *testing.T, d driver.StorageDriver, st sized, size int) {
	ctx := context.Background()
	p := "/staged/c/data"
	datas := [][]byte{content(21, size), content(22, size+1)}
	var wg sync.WaitGroup
	errs := make([]error, len(datas))
	for i, data := range datas {
		wg.Go(func() {
			w, err := st.open(ctx, p, len(data))
			if err != nil {
				errs[i] = err
				return
			}
			if _, err := w.Write(data); err != nil {
				errs[i] = err
				return
			}
			errs[i] = w.Commit(ctx)
			_ = w.Close()
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, d, p)
	if !bytes.Equal(got, datas[0]) && !bytes.Equal(got, datas[1]) {
		t.Fatalf("after two staged writes the path holds %d bytes, neither content", len(got))
	}
}

func testStagedMisuse(t *testing.T, d driver.StorageDriver, st sized, size int) {
	ctx := context.Background()
	for _, p := range []string{"", "/", "rel", "/a/../b", "/a//b"} {
		if _, err := st.open(ctx, p, 1); err == nil {
			t.Fatalf("StagedWriter(%q) succeeded", p)
		}
	}
	w, err := st.open(ctx, "/staged/m", 3)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("abc"))
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("a second Commit succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("a second Close succeeded")
	}
	if got := mustGet(t, d, "/staged/m"); string(got) != "abc" {
		t.Fatalf("content %q", got)
	}
}
