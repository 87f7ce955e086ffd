package inmemory

import (
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func TestConditionalSuite(t *testing.T) {
	testsuite.RunConditional(t, func(t *testing.T, n int) []driver.StorageDriver {
		d := New()
		ds := make([]driver.StorageDriver, n)
		for i := range ds {
			ds[i] = d // one store: in memory, instances cannot share it otherwise
		}
		return ds
	})
}
