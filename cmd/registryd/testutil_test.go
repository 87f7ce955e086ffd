package main

import "os"

// removeAndBlock replaces dir with a plain file, so that no path below it
// can be created: a storage failure a test can cause without root tricks.
func removeAndBlock(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.WriteFile(dir, []byte("not a directory"), 0o644)
}
