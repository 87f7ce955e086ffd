package filesystem

import (
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

// TestConditionalSuite runs the compare-and-swap checks with several
// drivers over one directory, as several processes would share it: each
// holds its own lock file descriptions, so flock arbitrates between them.
func TestConditionalSuite(t *testing.T) {
	testsuite.RunConditional(t, func(t *testing.T, n int) []driver.StorageDriver {
		root := t.TempDir()
		var ds []driver.StorageDriver
		for range n {
			d, err := New(root)
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, d)
		}
		return ds
	})
}
