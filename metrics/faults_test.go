package metrics

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// fullDisk fails every write with ENOSPC, as a full filesystem does, and
// Stat with an unreachable backend.
type fullDisk struct{ driver.StorageDriver }

var errFull = &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}

func (fullDisk) PutContent(context.Context, string, []byte) error { return errFull }
func (fullDisk) Stat(context.Context, string) (driver.FileInfo, error) {
	return nil, &driver.FaultError{Fault: driver.FaultUnreachable, Err: errors.New("connection refused")}
}
func (d fullDisk) Writer(ctx context.Context, p string, app bool) (driver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, p, app)
	return fullWriter{w}, err
}

type fullWriter struct{ driver.FileWriter }

func (fullWriter) Write([]byte) (int, error) { return 0, errFull }

// Storage faults are counted by cause, including those of a writer's
// writes; other failures are not faults.
func TestStorageFaultMetric(t *testing.T) {
	m := New()
	d := m.Driver(fullDisk{inmemory.New()})
	ctx := context.Background()
	_ = d.PutContent(ctx, "/a", []byte("x"))
	_ = d.PutContent(ctx, "/a", []byte("x"))
	_, _ = d.Stat(ctx, "/a")
	w, err := d.Writer(ctx, "/b", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("x"))
	_ = w.Close()
	_, _ = d.GetContent(ctx, "/missing") // not found: neither error nor fault
	if got := testutil.ToFloat64(m.driverFaults.WithLabelValues("inmemory", "full")); got != 3 {
		t.Errorf("full: %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.driverFaults.WithLabelValues("inmemory", "unreachable")); got != 1 {
		t.Errorf("unreachable: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.driverErrors.WithLabelValues("inmemory", "write")); got != 1 {
		t.Errorf("write errors: %v, want 1", got)
	}
}
