package testsuite

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// RunConditional checks driver.ConditionalWriter and driver.BatchDeleter,
// which every driver registryd ships implements. newDrivers returns n
// drivers over one empty store (n > 1: separate instances, as separate
// processes would hold; the compare-and-swap must hold between them).
func RunConditional(t *testing.T, newDrivers func(t *testing.T, n int) []driver.StorageDriver) {
	t.Run("CreateOnly", func(t *testing.T) { testCreateOnly(t, newDrivers(t, 1)[0]) })
	t.Run("IfMatch", func(t *testing.T) { testIfMatch(t, newDrivers(t, 1)[0]) })
	t.Run("IfMatchMissingFails", func(t *testing.T) { testIfMatchMissing(t, newDrivers(t, 1)[0]) })
	t.Run("CASCounter", func(t *testing.T) { testCASCounter(t, newDrivers(t, 2)) })
	t.Run("DeleteFiles", func(t *testing.T) { testDeleteFiles(t, newDrivers(t, 1)[0]) })
}

func conditional(t *testing.T, d driver.StorageDriver) driver.ConditionalWriter {
	t.Helper()
	cw, ok := driver.As[driver.ConditionalWriter](d)
	if !ok {
		t.Fatalf("%s: not a driver.ConditionalWriter", d.Name())
	}
	return cw
}

func testCreateOnly(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	cw := conditional(t, d)
	p := "/cas/lease"
	v1, err := cw.PutContentIf(ctx, p, []byte("one"), "")
	if err != nil || v1 == "" {
		t.Fatalf("create: %q, %v", v1, err)
	}
	if _, err := cw.PutContentIf(ctx, p, []byte("two"), ""); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("second create: %v, want ErrPreconditionFailed", err)
	}
	b, v, err := cw.GetContentVersion(ctx, p)
	if err != nil || string(b) != "one" || v != v1 {
		t.Fatalf("after a refused create: %q %q %v, want %q %q", b, v, err, "one", v1)
	}
	if _, _, err := cw.GetContentVersion(ctx, "/cas/none"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("version of a missing object: %v, want ErrPathNotFound", err)
	}
	// The object is an ordinary one to the rest of the driver.
	if got, err := d.GetContent(ctx, p); err != nil || string(got) != "one" {
		t.Fatalf("GetContent: %q %v", got, err)
	}
	ps, err := d.List(ctx, "/cas")
	if err != nil || !slices.Equal(ps, []string{p}) {
		t.Fatalf("List(/cas) = %v, %v; want only %s (no lock files)", ps, err, p)
	}
}

func testIfMatch(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	cw := conditional(t, d)
	p := "/cas/state"
	v1, err := cw.PutContentIf(ctx, p, []byte("a"), "")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := cw.PutContentIf(ctx, p, []byte("b"), v1)
	if err != nil || v2 == v1 {
		t.Fatalf("replace: %q, %v (old version %q)", v2, err, v1)
	}
	if _, err := cw.PutContentIf(ctx, p, []byte("c"), v1); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("replace with a stale version: %v, want ErrPreconditionFailed", err)
	}
	// A plain write moves the version on too.
	if err := d.PutContent(ctx, p, []byte("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutContentIf(ctx, p, []byte("e"), v2); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("replace after an unconditional write: %v, want ErrPreconditionFailed", err)
	}
	b, v, err := cw.GetContentVersion(ctx, p)
	if err != nil || string(b) != "d" {
		t.Fatalf("content %q, %v; want d", b, err)
	}
	if _, err := cw.PutContentIf(ctx, p, []byte("f"), v); err != nil {
		t.Fatalf("replace with the current version: %v", err)
	}
}

// testIfMatchMissing pins the S3 semantics MinIO once got wrong
// (minio#21526: If-Match on a missing key succeeded): replacing an object
// that is not there must fail, or a lease released and deleted could be
// "renewed" by a collector that lost it.
func testIfMatchMissing(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	cw := conditional(t, d)
	p := "/cas/missing"
	if _, err := cw.PutContentIf(ctx, p, []byte("x"), "0123456789abcdef0123456789abcdef"); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("If-Match on a missing object: %v, want ErrPreconditionFailed", err)
	}
	v, err := cw.PutContentIf(ctx, p, []byte("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := cw.PutContentIf(ctx, p, []byte("y"), v); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("If-Match with the version of a deleted object: %v, want ErrPreconditionFailed", err)
	}
	if _, err := d.Stat(ctx, p); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("a refused write created the object: %v", err)
	}
}

// testCASCounter increments a counter from several goroutines on several
// driver instances, each by read, compare-and-swap, retry: no increment
// may be lost, which is exactly the mutual exclusion a lease needs.
func testCASCounter(t *testing.T, ds []driver.StorageDriver) {
	ctx := context.Background()
	p := "/cas/counter"
	if _, err := conditional(t, ds[0]).PutContentIf(ctx, p, []byte("0"), ""); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 15
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := conditional(t, ds[w%len(ds)])
			for range each {
				for attempt := 0; ; attempt++ {
					if attempt > 1000 {
						errc <- errors.New("no progress after 1000 attempts")
						return
					}
					b, v, err := cw.GetContentVersion(ctx, p)
					if err != nil {
						errc <- err
						return
					}
					n, _ := strconv.Atoi(string(b))
					_, err = cw.PutContentIf(ctx, p, []byte(strconv.Itoa(n+1)), v)
					if err == nil {
						break
					}
					if !errors.Is(err, driver.ErrPreconditionFailed) {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	b, err := ds[0].GetContent(ctx, p)
	if err != nil || string(b) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %q, %v; want %d (an increment was lost)", b, err, workers*each)
	}
}

func testDeleteFiles(t *testing.T, d driver.StorageDriver) {
	ctx := context.Background()
	bd, ok := driver.As[driver.BatchDeleter](d)
	if !ok {
		t.Fatalf("%s: not a driver.BatchDeleter", d.Name())
	}
	var doomed []string
	for i := range 25 {
		p := fmt.Sprintf("/b/%02d/data", i)
		mustPut(t, d, p, []byte(p))
		if i%5 != 0 {
			doomed = append(doomed, p)
		}
	}
	mustPut(t, d, "/b/01/other", []byte("stays"))
	doomed = append(doomed, "/b/99/data", "/nowhere/link") // missing: fine
	if err := bd.DeleteFiles(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	if err := bd.DeleteFiles(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ps, err := d.List(ctx, "/b")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, path.Base(p))
	}
	// Emptied directories are gone (on drivers with directories, removed;
	// on others they never existed); 01 keeps its other file.
	if want := []string{"00", "01", "05", "10", "15", "20"}; !slices.Equal(names, want) {
		t.Fatalf("List(/b) after DeleteFiles = %v, want %v", names, want)
	}
	if b, err := d.GetContent(ctx, "/b/01/other"); err != nil || string(b) != "stays" {
		t.Fatalf("/b/01/other: %q %v", b, err)
	}
	if _, err := d.Stat(ctx, "/b/01/data"); !errors.Is(err, driver.ErrPathNotFound) {
		t.Fatalf("/b/01/data survived: %v", err)
	}
}
