package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// PutContentIf implements driver.ConditionalWriter with S3's conditional
// writes: If-None-Match: * to create, If-Match: <etag> to replace. S3
// answers 412 when the condition does not hold, 409 when a concurrent
// conditional write to the key won the race and 404 to If-Match on a key
// that does not exist; all are driver.ErrPreconditionFailed (the caller
// reads again), and none writes anything. Versions are
// ETags. A service that ignores the headers would make every write
// succeed; the collector's startup check (and this package's tests on
// MinIO) catch that.
func (d *Driver) PutContentIf(ctx context.Context, p string, content []byte, ifVersion string) (string, error) {
	if err := checkObject(p); err != nil {
		return "", err
	}
	opts := d.putContentOpts
	if ifVersion == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(ifVersion)
	}
	info, err := d.client.PutObject(ctx, d.bucket, d.key(p), bytes.NewReader(content), int64(len(content)), opts)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusPreconditionFailed || r.StatusCode == http.StatusConflict ||
			r.Code == minio.PreconditionFailed || r.Code == "ConditionalRequestConflict" {
			return "", fmt.Errorf("s3: put %s: %s: %w", p, r.Code, driver.ErrPreconditionFailed)
		}
		if ifVersion != "" && isNoKey(err) {
			return "", fmt.Errorf("s3: put %s: no object: %w", p, driver.ErrPreconditionFailed)
		}
		return "", wrap("put", p, err)
	}
	return strings.Trim(info.ETag, `"`), nil
}

// GetContentVersion implements driver.ConditionalWriter: one GET, whose
// ETag is the version. Objects written by appending Writers (segmented)
// have no single version and are refused; conditional objects are only
// ever written whole.
func (d *Driver) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	if err := checkPath(p); err != nil {
		return nil, "", err
	}
	if p == "/" {
		return nil, "", notFound(p)
	}
	rc, oi, h, err := d.core.GetObject(ctx, d.bucket, d.key(p), minio.GetObjectOptions{})
	if err != nil {
		if isNoKey(err) {
			return nil, "", notFound(p)
		}
		return nil, "", wrap("get", p, err)
	}
	defer rc.Close()
	if genOf(h) != "" {
		return nil, "", fmt.Errorf("s3: get %s: a segmented object has no single version", p)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, "", wrap("get", p, err)
	}
	return b, strings.Trim(oi.ETag, `"`), nil
}
