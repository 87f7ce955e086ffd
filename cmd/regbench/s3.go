package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/internal/minio"
)

// The s3 workload runs the big push and pull against each server's S3
// driver over one MinIO on loopback, started by regbench.

const (
	minioUser     = "regbench"
	minioPassword = "regbench-secret-key"
)

// s3Flavor says which dialect of storage.s3 a server reads.
type s3Flavor int

const (
	flavorRegistryd s3Flavor = iota // registryd: forcepathstyle, endpoint scheme decides TLS
	flavor28                        // distribution 2.8 (s3-aws): v4auth, secure; path style is implied by regionendpoint
	flavorV3                        // distribution v3 (s3-aws): forcepathstyle, secure
)

// flavorOf maps a target's column name to its dialect.
func flavorOf(name string) s3Flavor {
	switch {
	case strings.Contains(name, "2.8"):
		return flavor28
	case strings.Contains(name, "v3"):
		return flavorV3
	}
	return flavorRegistryd
}

// flavorOfTarget is flavorOf for a target: every build of registryd
// (-extra included) reads registryd's dialect.
func flavorOfTarget(t target) s3Flavor {
	if t.Kind == kindRegistryd {
		return flavorRegistryd
	}
	return flavorOf(t.Name)
}

// s3Params is one server's bucket on the benchmark's MinIO.
type s3Params struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
	RootDir   string // key prefix, "" for none
}

// s3Storage is the storage driver section (indented under storage:) for a
// server of the given flavor: the same bucket, credentials and prefix for
// every flavor, each driver's default chunk size (10 MiB for all three),
// and redirects off, so that pulls go through the registry rather than
// straight to MinIO (distribution redirects by default, registryd does not).
func s3Storage(f s3Flavor, p s3Params) string {
	var b strings.Builder
	b.WriteString("  s3:\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "    %s: %s\n", k, v) }
	kv("region", "us-east-1")
	kv("regionendpoint", p.Endpoint)
	kv("bucket", p.Bucket)
	kv("accesskey", p.AccessKey)
	kv("secretkey", p.SecretKey)
	switch f {
	case flavorRegistryd:
		kv("forcepathstyle", "true")
	case flavor28:
		kv("secure", "false")
		kv("v4auth", "true")
	case flavorV3:
		kv("secure", "false")
		kv("forcepathstyle", "true")
	}
	if p.RootDir != "" {
		kv("rootdirectory", p.RootDir)
	}
	b.WriteString("  redirect:\n    disable: true\n")
	return b.String()
}

// s3StorageRedirect is s3Storage with blob GETs redirected (307) to a
// presigned URL of the bucket: distribution's default, registryd's
// storage.redirect.enable.
func s3StorageRedirect(f s3Flavor, p s3Params) string {
	s := strings.Replace(s3Storage(f, p), "  redirect:\n    disable: true\n", "", 1)
	if f == flavorRegistryd {
		s += "  redirect:\n    enable: true\n"
	}
	return s
}

// bucketName is a valid S3 bucket name (3-63 lowercase letters, digits and
// hyphens) for server name in repetition rep.
func bucketName(name string, rep int) string {
	var b strings.Builder
	b.WriteString("regbench-")
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	s := strings.TrimSuffix(b.String(), "-")
	suffix := fmt.Sprintf("-r%d", rep)
	if len(s)+len(suffix) > 63 {
		s = strings.TrimSuffix(s[:63-len(suffix)], "-")
	}
	return s + suffix
}

// minioServer is the benchmark's MinIO.
type minioServer struct {
	*minio.Server
}

// startMinio starts bin as a single-drive MinIO over dir on loopback.
func startMinio(bin, dir string) (*minioServer, error) {
	srv, err := minio.Start(minio.Options{Bin: bin, Dir: dir, User: minioUser, Password: minioPassword, Env: cleanEnv()})
	if err != nil {
		return nil, err
	}
	return &minioServer{srv}, nil
}

// failReason shortens a failure for the S3 table's footnote: the error's
// first line and, when the server's log has one, its last panic or fatal
// line (a startup panic's message is above the stack trace that the
// error's tail of the log shows).
func failReason(err error, log string) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	why := ""
	for _, l := range strings.Split(log, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "panic:") || strings.Contains(l, "level=fatal") || strings.HasPrefix(l, "fatal") {
			why = l
		}
	}
	if why != "" && !strings.Contains(s, why) {
		s = strings.TrimSuffix(s, ":") + ": " + why
	}
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "..."
	}
	return s
}

// direct is MinIO's own rate for the blob, the ceiling of the S3 rows: a
// PutObject streamed in 10 MiB parts (the drivers' default chunk size) and
// a GetObject with the digest checked, in MB/s, in a bucket of its own.
func (m *minioServer) direct(bucket string, a bigBlob) (put, get float64, err error) {
	if err = m.MakeBucket(bucket); err != nil {
		return
	}
	defer m.RemoveBucket(bucket)
	ctx := context.Background()
	start := time.Now()
	if _, err = m.Client.PutObject(ctx, bucket, "blob", newPRNG(a.Seed, a.Size), a.Size,
		miniogo.PutObjectOptions{PartSize: 10 << 20, ContentType: "application/octet-stream"}); err != nil {
		return
	}
	put = mbps(a.Size, time.Since(start))
	start = time.Now()
	obj, err := m.Client.GetObject(ctx, bucket, "blob", miniogo.GetObjectOptions{})
	if err != nil {
		return
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, obj, make([]byte, 1<<20))
	if err != nil {
		return
	}
	if n != a.Size || digest.NewDigest(digest.SHA256, h) != a.D {
		return 0, 0, fmt.Errorf("minio returned %d bytes, digest %s; want %d, %s", n, digest.NewDigest(digest.SHA256, h), a.Size, a.D)
	}
	get = mbps(a.Size, time.Since(start))
	return put, get, nil
}
