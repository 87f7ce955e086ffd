// Package miniotest gives a test binary one MinIO server, started on first
// use and stopped by Stop (from TestMain), for tests that need a real S3
// store. Without a minio binary (scripts/install-deps.sh installs it into
// .cache/bin; REGISTRYD_MINIO names another) the tests fail, unless
// REGISTRYD_S3_SKIP=1 says to skip them.
package miniotest

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/registryd/registryd/internal/minio"
	"github.com/registryd/registryd/storage/driver/s3"
)

// The root user of the server.
const (
	User     = "registryd-test"
	Password = "registryd-test-secret"
)

var (
	once sync.Once
	srv  *minio.Server
	dir  string
	err  error
)

// Server returns the test binary's MinIO, starting it on first use.
func Server(t testing.TB) *minio.Server {
	t.Helper()
	once.Do(func() {
		bin := minio.Find("")
		if bin == "" {
			err = fmt.Errorf("no minio binary: run scripts/install-deps.sh, or set REGISTRYD_MINIO")
			return
		}
		if dir, err = os.MkdirTemp("", "registryd-minio-"); err != nil {
			return
		}
		srv, err = minio.Start(minio.Options{Bin: bin, Dir: dir, User: User, Password: Password})
	})
	if err != nil {
		if os.Getenv("REGISTRYD_S3_SKIP") == "1" {
			t.Skipf("!!! SKIPPING S3 TEST (REGISTRYD_S3_SKIP=1): %v", err)
		}
		t.Fatalf("this test needs MinIO: %v (set REGISTRYD_S3_SKIP=1 to skip it)", err)
	}
	return srv
}

// Stop stops the server, if one was started, and removes its data.
func Stop() {
	srv.Stop()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// Params are driver parameters for a new, empty bucket of the server
// (prefix names it), under root directory /registry, with 5 MiB parts.
func Params(t testing.TB, prefix string) s3.Parameters {
	t.Helper()
	s := Server(t)
	bucket, err := s.NewBucket(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s3.Parameters{
		AccessKey: User, SecretKey: Password, RegionEndpoint: s.Endpoint,
		Bucket: bucket, ForcePathStyle: true, RootDirectory: "/registry",
		ChunkSize: s3.MinChunkSize,
	}
}

// Driver returns a driver for p.
func Driver(t testing.TB, p s3.Parameters) *s3.Driver {
	t.Helper()
	d, err := s3.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
