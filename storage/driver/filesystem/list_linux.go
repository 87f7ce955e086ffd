//go:build linux

package filesystem

import (
	"errors"
	"io/fs"
	"sync"
	"syscall"
	"time"
)

// direntBufs holds listing buffers: a listing is the catalog's unit of
// work on a cold cache, one or two per repository.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// readDir reads the names in the directory full (without "." and "..")
// and, when stat is set, its modification time, read before the names
// through the same descriptor. It is os.Open and Readdirnames without
// what they add for a directory read once (registering with the poller,
// a finalizer, an fcntl): about half the system calls.
func readDir(full string, stat bool) ([]string, time.Time, error) {
	var fd int
	err := retryEINTR(func() error {
		var err error
		fd, err = syscall.Open(full, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, time.Time{}, &fs.PathError{Op: "open", Path: full, Err: err}
	}
	defer syscall.Close(fd)
	var mod time.Time
	if stat {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return nil, time.Time{}, &fs.PathError{Op: "fstat", Path: full, Err: err}
		}
		mod = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	}
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var names []string
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, time.Time{}, &fs.PathError{Op: "readdirent", Path: full, Err: err}
		}
		if n <= 0 {
			return names, mod, nil
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}
