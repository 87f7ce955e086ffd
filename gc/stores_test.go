package gc

import (
	"fmt"
	"os"
	"sync"
	"testing"

	minioserver "github.com/registryd/registryd/internal/minio"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
	"github.com/registryd/registryd/storage/driver/s3"
)

// The online collector's tests run on the three drivers registryd ships:
// in memory, a directory, and a real MinIO (one per test binary, started
// on first use; REGISTRYD_S3_SKIP=1 skips the MinIO cases when there is no
// minio binary, as in the driver's tests).

const (
	minioUser     = "registryd-test"
	minioPassword = "registryd-test-secret"
)

var (
	minioOnce sync.Once
	theMinio  *minioserver.Server
	minioDir  string
	minioErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	theMinio.Stop()
	if minioDir != "" {
		_ = os.RemoveAll(minioDir)
	}
	os.Exit(code)
}

// store makes drivers over one empty store; each call of the returned
// function is another instance over the same store, as another process
// (or host) would have.
type store struct {
	name string
	open func(t testing.TB) func() driver.StorageDriver
}

var stores = []store{
	{"inmemory", func(t testing.TB) func() driver.StorageDriver {
		d := inmemory.New()
		return func() driver.StorageDriver { return d }
	}},
	{"filesystem", func(t testing.TB) func() driver.StorageDriver {
		root := t.TempDir()
		return func() driver.StorageDriver {
			d, err := filesystem.New(root)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}},
	{"minio", func(t testing.TB) func() driver.StorageDriver {
		srv := startMinio(t)
		bucket, err := srv.NewBucket("gc")
		if err != nil {
			t.Fatal(err)
		}
		return func() driver.StorageDriver {
			d, err := s3.New(s3.Parameters{
				AccessKey: minioUser, SecretKey: minioPassword, RegionEndpoint: srv.Endpoint,
				Bucket: bucket, ForcePathStyle: true, RootDirectory: "/registry",
			})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}},
}

func startMinio(t testing.TB) *minioserver.Server {
	t.Helper()
	minioOnce.Do(func() {
		bin := minioserver.Find("")
		if bin == "" {
			minioErr = fmt.Errorf("no minio binary: run scripts/install-deps.sh, or set REGISTRYD_MINIO")
			return
		}
		if minioDir, minioErr = os.MkdirTemp("", "registryd-gc-minio-"); minioErr != nil {
			return
		}
		theMinio, minioErr = minioserver.Start(minioserver.Options{Bin: bin, Dir: minioDir, User: minioUser, Password: minioPassword})
	})
	if minioErr != nil {
		if os.Getenv("REGISTRYD_S3_SKIP") == "1" {
			t.Skipf("!!! SKIPPING MINIO CASES (REGISTRYD_S3_SKIP=1): %v", minioErr)
		}
		t.Fatalf("these tests need MinIO: %v (set REGISTRYD_S3_SKIP=1 to skip them)", minioErr)
	}
	return theMinio
}

// eachStore runs fn on every store, a new empty one each.
func eachStore(t *testing.T, fn func(t *testing.T, open func() driver.StorageDriver)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			fn(t, s.open(t))
		})
	}
}

// eachStoreFresh runs fn on every store; fn makes as many new empty ones
// as it has subtests.
func eachStoreFresh(t *testing.T, fn func(t *testing.T, fresh func(t *testing.T) func() driver.StorageDriver)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			fn(t, func(t *testing.T) func() driver.StorageDriver { return s.open(t) })
		})
	}
}
