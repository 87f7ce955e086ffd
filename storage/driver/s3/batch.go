package s3

import (
	"context"
	"errors"

	"github.com/minio/minio-go/v7"
)

// DeleteFiles implements driver.BatchDeleter with DeleteObjects, which
// removes up to 1,000 keys per request (minio-go splits the stream into
// such batches); a key that does not exist is not an error to S3 either.
// Only the keys themselves go: the objects garbage collection removes this
// way (links, blob data moved into place whole) never have hidden segment
// keys beside them.
func (d *Driver) DeleteFiles(ctx context.Context, paths []string) error {
	for _, p := range paths {
		if err := checkObject(p); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objs := make(chan minio.ObjectInfo)
	go func() {
		defer close(objs)
		for _, p := range paths {
			select {
			case objs <- minio.ObjectInfo{Key: d.key(p)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for r := range d.client.RemoveObjects(ctx, d.bucket, objs, minio.RemoveObjectsOptions{}) {
		if r.Err != nil && !isNoKey(r.Err) {
			errs = append(errs, wrap("delete", "/"+r.ObjectName[len(d.root):], r.Err))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}
