package s3

import (
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

// TestConditionalSuite runs the compare-and-swap and batch delete checks
// on MinIO, several clients on one bucket; IfMatchMissingFails pins the
// behaviour minio#21526 once broke.
func TestConditionalSuite(t *testing.T) {
	testsuite.RunConditional(t, func(t *testing.T, n int) []driver.StorageDriver {
		first := newTestDriver(t, nil)
		ds := []driver.StorageDriver{first}
		for len(ds) < n {
			ds = append(ds, newTestDriver(t, func(p *Parameters) { p.Bucket = first.Bucket() }))
		}
		return ds
	})
}
