package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/registryd/registryd/storage/driver"
)

// PutContentIf implements driver.ConditionalWriter. Writers of one path
// are serialised by an exclusive lock on a hidden sidecar file next to it
// (tmpPrefix, so no listing shows it and no driver path names it); under
// the lock the current content is compared with ifVersion and, if it
// matches, replaced as PutContent replaces it (temporary file, fsync,
// rename, fsync of the directory). Readers need no lock: they see the old
// or the new file. The lock is flock(2), which serialises processes on
// this host and, on Linux, on every host of an NFSv4 mount (where flock is
// a byte-range lock the server arbitrates). Versions are content hashes
// (driver.ContentVersion).
func (d *Driver) PutContentIf(ctx context.Context, p string, content []byte, ifVersion string) (string, error) {
	full, err := d.fullObject(p)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(full)
	if err := d.ensureDir(dir, ""); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, tmpPrefix+"lock-"+filepath.Base(full)))
	if err != nil {
		return "", fmt.Errorf("%s: lock %s: %w", name, p, err)
	}
	defer unlock()
	cur, err := readFile(full)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, syscall.EISDIR) {
			return "", fmt.Errorf("%s: put %s: is a directory", name, p)
		}
		return "", err
	}
	switch {
	case ifVersion == "" && exists:
		return "", fmt.Errorf("%s: put %s: object exists: %w", name, p, driver.ErrPreconditionFailed)
	case ifVersion != "" && !exists:
		return "", fmt.Errorf("%s: put %s: no object: %w", name, p, driver.ErrPreconditionFailed)
	case ifVersion != "" && driver.ContentVersion(cur) != ifVersion:
		return "", fmt.Errorf("%s: put %s: version changed: %w", name, p, driver.ErrPreconditionFailed)
	}
	if err := d.PutContent(ctx, p, content); err != nil {
		return "", err
	}
	return driver.ContentVersion(content), nil
}

// GetContentVersion implements driver.ConditionalWriter.
func (d *Driver) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	b, err := d.GetContent(ctx, p)
	if err != nil {
		return nil, "", err
	}
	return b, driver.ContentVersion(b), nil
}

// DeleteFiles implements driver.BatchDeleter: an unlink per file, then a
// rmdir of its directory, which fails harmlessly while anything else is
// in it. Nothing is synced (see Flush).
func (d *Driver) DeleteFiles(ctx context.Context, paths []string) error {
	fulls := make([]string, len(paths))
	for i, p := range paths {
		full, err := d.fullObject(p)
		if err != nil {
			return err
		}
		fulls[i] = full
	}
	for i, full := range fulls {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Remove(full); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			return fmt.Errorf("%s: delete %s: %w", name, paths[i], err)
		}
		if dir := filepath.Dir(full); dir != d.root {
			_ = syscall.Rmdir(dir)
		}
	}
	return nil
}
