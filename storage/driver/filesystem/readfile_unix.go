//go:build unix

package filesystem

import (
	"io/fs"
	"syscall"
)

// readFile is os.ReadFile for the small files GetContent reads (links of
// about 71 bytes, manifests of a few KiB), in the fewest system calls:
// open, read until end of file, close. os.ReadFile also tries to add the
// descriptor to the network poller (fcntl twice and a failing epoll_ctl,
// for a regular file) and fstats it for its size: twice the calls, for a
// read that a manifest GET by tag makes twice and garbage-collect once per
// link.
func readFile(name string) ([]byte, error) {
	var fd int
	err := retryEINTR(func() error {
		var err error
		fd, err = syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer syscall.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		var n int
		err := retryEINTR(func() error {
			var err error
			n, err = syscall.Read(fd, b[len(b):cap(b)])
			return err
		})
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
