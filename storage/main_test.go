package storage

import (
	"os"
	"testing"

	"github.com/registryd/registryd/internal/miniotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	miniotest.Stop() // the MinIO of the S3 tests, if one started
	os.Exit(code)
}
