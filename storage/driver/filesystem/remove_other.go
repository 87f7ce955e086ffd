//go:build !unix

package filesystem

import "os"

// removeTree removes full, a file or a whole directory tree, and reports
// fs.ErrNotExist (wrapped) when there is nothing there.
func removeTree(full string) error {
	if _, err := os.Lstat(full); err != nil {
		return err
	}
	return os.RemoveAll(full)
}

// deleteDirFast reports false: Delete does the work.
func deleteDirFast(dir string, names []string) bool { return false }
