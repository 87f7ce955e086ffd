package health

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// writeFails is an in-memory driver whose PutContent fails with err.
type writeFails struct {
	driver.StorageDriver
	mu  sync.Mutex
	err error
}

func (d *writeFails) set(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

func (d *writeFails) PutContent(ctx context.Context, p string, b []byte) error {
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

func readyz(t *testing.T, c *Checker, background bool) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	c.Handler(background).ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}

// A full storage keeps the instance ready (it still serves pulls) and
// says why pushes fail; another failure makes it not ready. Neither
// answer names a path.
func TestReadyzStorageFull(t *testing.T) {
	const path = "/var/lib/registry/docker/registry/v2/_registryd/health/x"
	for _, background := range []bool{false, true} {
		d := &writeFails{StorageDriver: inmemory.New()}
		c := New(d, "id", false, 1)
		check := func(wantCode int, want string) {
			t.Helper()
			if background {
				c.record(c.Check(context.Background()))
			}
			code, body := readyz(t, c, background)
			if code != wantCode || !strings.Contains(body, want) || strings.Contains(body, "/var/lib") {
				t.Errorf("background=%v: %d %q, want %d saying %q (and no path)", background, code, body, wantCode, want)
			}
		}
		check(http.StatusOK, "ok")
		d.set(&fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC})
		check(http.StatusOK, "storage full: writes are refused")
		d.set(&fs.PathError{Op: "open", Path: path, Err: syscall.EACCES})
		check(http.StatusServiceUnavailable, "not ready: storage not writable")
		d.set(&driver.FaultError{Fault: driver.FaultUnreachable, Err: &fs.PathError{Op: "dial", Path: path, Err: syscall.ECONNREFUSED}})
		check(http.StatusServiceUnavailable, "not ready: storage not writable (unreachable)")
		d.set(nil)
		check(http.StatusOK, "ok")
	}
}
