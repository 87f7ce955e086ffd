//go:build !linux

package filesystem

import (
	"context"
	"os"
)

// Flush implements driver.Flusher: a sync of the root directory, which
// makes its entries durable; on systems without syncfs(2) that is as far
// as a portable call goes, and file systems that journal metadata in order
// (the common case) make earlier removals durable with it.
func (d *Driver) Flush(ctx context.Context) error {
	return syncDir(d.root)
}
