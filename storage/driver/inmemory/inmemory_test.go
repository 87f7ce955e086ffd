package inmemory

import (
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/testsuite"
)

func TestDriverSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T) driver.StorageDriver { return New() })
}
