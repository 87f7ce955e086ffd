package filesystem

import (
	"context"
	"os"

	"golang.org/x/sys/unix"
)

// Flush implements driver.Flusher with syncfs(2): the file system that
// holds the root writes back every change so far, removals included. One
// call, however many directories the removals touched.
func (d *Driver) Flush(ctx context.Context) error {
	f, err := os.Open(d.root)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
