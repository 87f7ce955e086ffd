//go:build !linux

package filesystem

import (
	"os"
	"syscall"
	"time"
)

// readDir reads the names in the directory full and, when stat is set,
// its modification time, read before the names.
func readDir(full string, stat bool) ([]string, time.Time, error) {
	f, err := os.Open(full)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	var mod time.Time
	if stat {
		fi, err := f.Stat()
		if err != nil {
			return nil, time.Time{}, err
		}
		if !fi.IsDir() {
			return nil, time.Time{}, &os.PathError{Op: "open", Path: full, Err: syscall.ENOTDIR}
		}
		mod = fi.ModTime()
	}
	names, err := f.Readdirnames(-1)
	return names, mod, err
}
