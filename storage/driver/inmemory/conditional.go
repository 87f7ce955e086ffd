package inmemory

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// PutContentIf implements driver.ConditionalWriter: the comparison and the
// write happen under the driver's lock. Versions are content hashes
// (driver.ContentVersion).
func (d *Driver) PutContentIf(ctx context.Context, p string, content []byte, ifVersion string) (string, error) {
	if !driver.ValidPath(p) || p == "/" {
		return "", invalid(p)
	}
	data := bytes.Clone(content)
	if data == nil {
		data = []byte{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkParents(p); err != nil {
		return "", opErr("put", p, err)
	}
	n := d.lookup(p)
	if n != nil && n.isDir() {
		return "", opErr("put", p, errIsDir)
	}
	switch {
	case ifVersion == "" && n != nil:
		return "", fmt.Errorf("%s: put %s: object exists: %w", name, p, driver.ErrPreconditionFailed)
	case ifVersion != "" && n == nil:
		return "", fmt.Errorf("%s: put %s: no object: %w", name, p, driver.ErrPreconditionFailed)
	case ifVersion != "" && driver.ContentVersion(n.data) != ifVersion:
		return "", fmt.Errorf("%s: put %s: version changed: %w", name, p, driver.ErrPreconditionFailed)
	}
	now := time.Now()
	dir := d.mkParents(p, now)
	dir.children[lastPart(p)] = &node{data: data, modTime: now}
	dir.modTime = now
	return driver.ContentVersion(data), nil
}

// GetContentVersion implements driver.ConditionalWriter.
func (d *Driver) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	if !driver.ValidPath(p) {
		return nil, "", invalid(p)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.lookup(p)
	if n == nil || n.isDir() {
		return nil, "", notFound(p)
	}
	return bytes.Clone(n.data), driver.ContentVersion(n.data), nil
}

// DeleteFiles implements driver.BatchDeleter. Directories exist here only
// while they have children, so emptied ones go with their last file.
func (d *Driver) DeleteFiles(ctx context.Context, paths []string) error {
	for _, p := range paths {
		if !driver.ValidPath(p) || p == "/" {
			return invalid(p)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for _, p := range paths {
		if n := d.lookup(p); n != nil && !n.isDir() {
			d.detach(p, now)
		}
	}
	return nil
}
