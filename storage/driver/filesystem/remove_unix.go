//go:build unix

package filesystem

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// removeTree removes full, a file or a whole directory tree, and reports
// fs.ErrNotExist (wrapped) when there is nothing there. It costs one
// unlink per file and one open, getdents, close and rmdir per directory:
// about half of os.RemoveAll, which first tries to unlink and rmdir every
// directory (both fail on a directory with children) and Lstats the path.
// Nothing is synced: a removal that a crash undoes leaves what was there,
// which every caller (garbage collection, uploads, untagging) tolerates by
// removing it again.
//
// The directory is opened with O_NOFOLLOW, so a symbolic link is unlinked
// itself and never followed.
func removeTree(full string) error {
	return removePath(full, true)
}

// removePath removes full. likelyDir says which to try first: a path the
// caller names is usually a directory (a blob, a link, a revision), what is
// inside one usually a file (data, link), and the wrong guess costs one
// failed system call.
func removePath(full string, likelyDir bool) error {
	if !likelyDir {
		err := retryEINTR(func() error { return syscall.Unlink(full) })
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EPERM):
			// EISDIR is Linux's answer for a directory, EPERM POSIX's.
			return &fs.PathError{Op: "unlink", Path: full, Err: err}
		}
	}
	fd, err := openDir(full)
	switch {
	case err == nil:
	case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP):
		// A file, a symbolic link, or a parent is a file (unlink says
		// which).
		if err := retryEINTR(func() error { return syscall.Unlink(full) }); err != nil {
			return &fs.PathError{Op: "unlink", Path: full, Err: err}
		}
		return nil
	default:
		return &fs.PathError{Op: "open", Path: full, Err: err}
	}
	names, err := readNames(fd)
	_ = syscall.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "readdirent", Path: full, Err: err}
	}
	for _, n := range names {
		if err := removePath(filepath.Join(full, n), false); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := retryEINTR(func() error { return syscall.Rmdir(full) }); err != nil {
		return &fs.PathError{Op: "rmdir", Path: full, Err: err}
	}
	return nil
}

func openDir(full string) (int, error) {
	var fd int
	err := retryEINTR(func() error {
		var err error
		fd, err = syscall.Open(full, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// readNames reads the names in directory fd, without "." and "..".
func readNames(fd int) ([]string, error) {
	buf := make([]byte, 8192)
	var names []string
	for {
		var n int
		err := retryEINTR(func() error {
			var err error
			n, err = syscall.ReadDirent(fd, buf)
			return err
		})
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
}

func retryEINTR(f func() error) error {
	for {
		err := f()
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// deleteDirFast unlinks the named files in dir and removes dir, and reports
// whether that removed it; false (dir missing, not a directory, holding
// something else) leaves the rest to Delete, which says what went wrong.
func deleteDirFast(dir string, names []string) bool {
	for _, n := range names {
		err := retryEINTR(func() error { return syscall.Unlink(filepath.Join(dir, n)) })
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return false
		}
	}
	return retryEINTR(func() error { return syscall.Rmdir(dir) }) == nil
}
