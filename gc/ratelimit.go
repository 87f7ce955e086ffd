package gc

import (
	"context"
	"io"

	"golang.org/x/time/rate"

	"github.com/registryd/registryd/storage/driver"
)

// limited is the collector's view of the driver when a rate limit is
// configured (storage.maintenance.gc.ratelimit, storage requests per
// second): every request the collector makes waits for a token, so a
// collection over a large store spreads its load instead of competing
// with the registry's own requests. It forwards the optional abilities the
// collector uses (conditional writes, batch deletes, directory deletes,
// flushes), each a request, or in a batch one per file (S3 counts a batch
// delete as one request; the limit is meant for the store's request rate,
// so a batch costs one token per thousand files there).
type limited struct {
	driver.StorageDriver
	l *rate.Limiter
}

// Limit wraps d so that at most perSecond storage requests go through per
// second (bursts of up to perSecond); perSecond <= 0 returns d.
func Limit(d driver.StorageDriver, perSecond float64) driver.StorageDriver {
	if perSecond <= 0 {
		return d
	}
	return &limited{StorageDriver: d, l: rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))}
}

func (d *limited) wait(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, d.l.Burst())
		if err := d.l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func (d *limited) Unwrap() driver.StorageDriver { return d.StorageDriver }

func (d *limited) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := d.wait(ctx, 1); err != nil {
		return nil, err
	}
	return d.StorageDriver.GetContent(ctx, p)
}

func (d *limited) PutContent(ctx context.Context, p string, b []byte) error {
	if err := d.wait(ctx, 1); err != nil {
		return err
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

func (d *limited) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := d.wait(ctx, 1); err != nil {
		return nil, err
	}
	return d.StorageDriver.Reader(ctx, p, off)
}

func (d *limited) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := d.wait(ctx, 1); err != nil {
		return nil, err
	}
	return d.StorageDriver.Stat(ctx, p)
}

func (d *limited) List(ctx context.Context, p string) ([]string, error) {
	if err := d.wait(ctx, 1); err != nil {
		return nil, err
	}
	return d.StorageDriver.List(ctx, p)
}

func (d *limited) Delete(ctx context.Context, p string) error {
	if err := d.wait(ctx, 1); err != nil {
		return err
	}
	return d.StorageDriver.Delete(ctx, p)
}

func (d *limited) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	// One token per directory visited would need the driver's help; the
	// walk is charged as one request and its entries as they come.
	if err := d.wait(ctx, 1); err != nil {
		return err
	}
	return d.StorageDriver.Walk(ctx, p, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			if err := d.wait(ctx, 1); err != nil {
				return err
			}
		}
		return fn(fi)
	})
}

// DeleteDir forwards driver.DirDeleter, which driver.DeleteDir looks for
// on the driver itself.
func (d *limited) DeleteDir(ctx context.Context, p string, names ...string) error {
	if err := d.wait(ctx, 1); err != nil {
		return err
	}
	return driver.DeleteDir(ctx, d.StorageDriver, p, names...)
}

// Flush forwards driver.Flusher.
func (d *limited) Flush(ctx context.Context, dirs ...string) error {
	if err := d.wait(ctx, len(dirs)); err != nil {
		return err
	}
	return driver.Flush(ctx, d.StorageDriver, dirs...)
}

// PutContentIf forwards driver.ConditionalWriter. Lease and state writes
// are not held up long: they are one token each, as any request.
func (d *limited) PutContentIf(ctx context.Context, p string, b []byte, v string) (string, error) {
	cw, ok := driver.As[driver.ConditionalWriter](d.StorageDriver)
	if !ok {
		return "", errNoConditional
	}
	if err := d.wait(ctx, 1); err != nil {
		return "", err
	}
	return cw.PutContentIf(ctx, p, b, v)
}

func (d *limited) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	cw, ok := driver.As[driver.ConditionalWriter](d.StorageDriver)
	if !ok {
		return nil, "", errNoConditional
	}
	if err := d.wait(ctx, 1); err != nil {
		return nil, "", err
	}
	return cw.GetContentVersion(ctx, p)
}

// DeleteFiles forwards driver.BatchDeleter where the driver has one; a
// batch costs a token per thousand files (one S3 request) and, on a
// driver with directories, one per file.
func (d *limited) DeleteFiles(ctx context.Context, paths []string) error {
	bd, ok := driver.As[driver.BatchDeleter](d.StorageDriver)
	if !ok {
		for _, p := range paths {
			if err := d.Delete(ctx, p); err != nil && !isNotFoundErr(err) {
				return err
			}
		}
		return nil
	}
	cost := len(paths)
	if d.StorageDriver.Name() == "s3" {
		cost = (len(paths) + 999) / 1000
	}
	if err := d.wait(ctx, cost); err != nil {
		return err
	}
	return bd.DeleteFiles(ctx, paths)
}
