// Package inmemory is a storage driver that keeps everything in memory.
// It exists for tests and for throwaway registries; it has the semantics
// of the filesystem driver, directories included (a directory exists while
// it has a child).
package inmemory

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

const name = "inmemory"

type file struct {
	data    []byte
	modTime time.Time
}

// Driver is the in-memory storage driver.
type Driver struct {
	mu    sync.RWMutex
	files map[string]*file
}

// New returns an empty in-memory driver.
func New() *Driver { return &Driver{files: make(map[string]*file)} }

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

func check(p string) error {
	if !driver.ValidPath(p) {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	return nil
}

func notFound(p string) error { return driver.PathNotFoundError{Path: p, DriverName: name} }

// isDir reports whether some file lies below p. Caller holds the lock.
func (d *Driver) isDir(p string) bool {
	prefix := strings.TrimSuffix(p, "/") + "/"
	for k := range d.files {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f, ok := d.files[p]
	if !ok {
		return nil, notFound(p)
	}
	return bytes.Clone(f.data), nil
}

// PutContent implements driver.StorageDriver.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if err := check(p); err != nil || p == "/" {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.files[p] = &file{data: bytes.Clone(content), modTime: time.Now()}
	return nil
}

// Reader implements driver.StorageDriver.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	f, ok := d.files[p]
	if !ok {
		return nil, notFound(p)
	}
	if offset < 0 || offset > int64(len(f.data)) {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	// The slice is never written in place (writers replace it), so a
	// reader can keep the snapshot without copying.
	return io.NopCloser(bytes.NewReader(f.data[offset:])), nil
}

// Writer implements driver.StorageDriver.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if err := check(p); err != nil || p == "/" {
		return nil, driver.InvalidPathError{Path: p, DriverName: name}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[p]
	if !ok || !append {
		f = &file{modTime: time.Now()}
		d.files[p] = f
	}
	return &writer{d: d, path: p, size: int64(len(f.data))}, nil
}

type writer struct {
	d      *Driver
	path   string
	size   int64
	buf    bytes.Buffer
	closed bool
}

func (w *writer) Write(b []byte) (int, error) {
	if w.closed {
		return 0, io.ErrClosedPipe
	}
	n, _ := w.buf.Write(b)
	w.size += int64(n)
	if w.buf.Len() >= 1<<20 {
		w.flush()
	}
	return n, nil
}

// flush appends buffered bytes with copy-on-write, so open readers keep
// their snapshot.
func (w *writer) flush() {
	if w.buf.Len() == 0 {
		return
	}
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	f, ok := w.d.files[w.path]
	if !ok {
		f = &file{}
		w.d.files[w.path] = f
	}
	data := make([]byte, 0, len(f.data)+w.buf.Len())
	data = append(append(data, f.data...), w.buf.Bytes()...)
	f.data = data
	f.modTime = time.Now()
	w.buf.Reset()
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) Close() error {
	if w.closed {
		return io.ErrClosedPipe
	}
	w.flush()
	w.closed = true
	return nil
}

func (w *writer) Cancel(ctx context.Context) error {
	w.closed = true
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	delete(w.d.files, w.path)
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	if w.closed {
		return io.ErrClosedPipe
	}
	w.flush()
	return nil
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if f, ok := d.files[p]; ok {
		return driver.FileInfoFields{P: p, Sz: int64(len(f.data)), MT: f.modTime}, nil
	}
	if p == "/" || d.isDir(p) {
		return driver.FileInfoFields{P: p, Dir: true}, nil
	}
	return nil, notFound(p)
}

// children returns the sorted direct children of dir. Caller holds the lock.
func (d *Driver) children(dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	set := map[string]struct{}{}
	for k := range d.files {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i]
			}
			set[prefix+rest] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// List implements driver.StorageDriver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if err := check(p); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := d.children(p)
	if len(out) == 0 && p != "/" {
		return nil, notFound(p)
	}
	return out, nil
}

// Move implements driver.StorageDriver.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := check(src); err != nil {
		return err
	}
	if err := check(dst); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[src]
	if !ok {
		return notFound(src)
	}
	delete(d.files, src)
	d.files[dst] = f
	return nil
}

// Delete implements driver.StorageDriver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if err := check(p); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	if _, ok := d.files[p]; ok {
		delete(d.files, p)
		found = true
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for k := range d.files {
		if strings.HasPrefix(k, prefix) {
			delete(d.files, k)
			found = true
		}
	}
	if !found {
		return notFound(p)
	}
	return nil
}

// Walk implements driver.StorageDriver.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if err := check(p); err != nil {
		return err
	}
	d.mu.RLock()
	children := d.children(p)
	d.mu.RUnlock()
	if len(children) == 0 {
		if _, err := d.Stat(ctx, p); err != nil {
			return err
		}
	}
	for _, c := range children {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Stat(ctx, c)
		if err != nil {
			continue // removed meanwhile
		}
		err = fn(fi)
		if err == driver.ErrSkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := d.Walk(ctx, c, fn); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	return nil
}

func isNotFound(err error) bool {
	_, ok := err.(driver.PathNotFoundError)
	return ok
}
