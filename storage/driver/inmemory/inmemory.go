// Package inmemory is a storage driver that keeps everything in memory.
// It exists for tests and for throwaway registries.
//
// It mirrors the filesystem driver: content lives in a tree of directories
// and files, a file cannot have children, a directory cannot be overwritten
// by a file, and Reader, Writer, Move and Delete behave like their
// filesystem counterparts (a Writer keeps writing to the file it opened
// even if the path is replaced or moved, as a file descriptor would). The
// one difference is that directories exist only while they have children:
// they are created with their first child and removed with their last, so
// List and Stat of a directory whose content was deleted say
// PathNotFoundError where the filesystem driver shows an empty directory.
package inmemory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

const name = "inmemory"

// node is a file (children == nil) or a directory.
//
// A file's bytes below len(data) are never changed once written: writers
// append (in place when there is capacity, which readers do not see), and
// truncation and replacement install a new slice. So Reader can hand out
// the slice itself as a snapshot.
type node struct {
	children map[string]*node
	data     []byte
	modTime  time.Time
}

func newDir(now time.Time) *node { return &node{children: map[string]*node{}, modTime: now} }

func (n *node) isDir() bool { return n.children != nil }

// Driver is the in-memory storage driver.
type Driver struct {
	mu   sync.RWMutex
	root *node
}

// New returns an empty in-memory driver.
func New() *Driver { return &Driver{root: newDir(time.Now())} }

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

func invalid(p string) error  { return driver.InvalidPathError{Path: p, DriverName: name} }
func notFound(p string) error { return driver.PathNotFoundError{Path: p, DriverName: name} }

// Errors for a tree that does not allow an operation, where the filesystem
// driver gets ENOTDIR, EISDIR, ENOTEMPTY or EINVAL from the kernel.
var (
	errParentNotDir = errors.New("a parent is not a directory")
	errIsDir        = errors.New("is a directory")
	errNotDir       = errors.New("not a directory")
	errExists       = errors.New("directory exists")
	errIntoItself   = errors.New("cannot move a directory into itself")
)

func opErr(op, p string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", name, op, p, err)
}

// parts splits a valid path into its components; "/" has none.
func parts(p string) []string {
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

func childPrefix(p string) string {
	if p == "/" {
		return p
	}
	return p + "/"
}

// lookup returns the node at p, or nil. Caller holds the lock.
func (d *Driver) lookup(p string) *node {
	n := d.root
	for _, c := range parts(p) {
		if !n.isDir() {
			return nil
		}
		if n = n.children[c]; n == nil {
			return nil
		}
	}
	return n
}

// checkParents fails if a component above the last of p is a file, that
// is if the directory for p cannot be created. Caller holds the lock.
func (d *Driver) checkParents(p string) error {
	n := d.root
	ps := parts(p)
	for _, c := range ps[:len(ps)-1] {
		if n = n.children[c]; n == nil {
			return nil
		}
		if !n.isDir() {
			return errParentNotDir
		}
	}
	return nil
}

// mkParents returns the directory that holds p, creating missing
// directories; checkParents must have passed. Caller holds the write lock.
func (d *Driver) mkParents(p string, now time.Time) *node {
	n := d.root
	ps := parts(p)
	for _, c := range ps[:len(ps)-1] {
		next := n.children[c]
		if next == nil {
			next = newDir(now)
			n.children[c] = next
			n.modTime = now
		}
		n = next
	}
	return n
}

// detach removes the node at p (which exists) and then every directory
// above it that became empty, except the root. Caller holds the write lock.
func (d *Driver) detach(p string, now time.Time) {
	ps := parts(p)
	chain := make([]*node, 0, len(ps))
	n := d.root
	for _, c := range ps[:len(ps)-1] {
		chain = append(chain, n)
		n = n.children[c]
	}
	chain = append(chain, n)
	for i := len(ps) - 1; i >= 0; i-- {
		dir := chain[i]
		delete(dir.children, ps[i])
		dir.modTime = now
		if i == 0 || len(dir.children) > 0 {
			return
		}
	}
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.lookup(p)
	if n == nil || n.isDir() {
		return nil, notFound(p)
	}
	return bytes.Clone(n.data), nil
}

// PutContent implements driver.StorageDriver. It installs a new file, as
// the filesystem driver's rename does, so open writers of the old one do
// not touch it.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	if !driver.ValidPath(p) || p == "/" {
		return invalid(p)
	}
	data := bytes.Clone(content)
	if data == nil {
		data = []byte{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkParents(p); err != nil {
		return opErr("put", p, err)
	}
	if n := d.lookup(p); n != nil && n.isDir() {
		return opErr("put", p, errIsDir)
	}
	now := time.Now()
	dir := d.mkParents(p, now)
	dir.children[lastPart(p)] = &node{data: data, modTime: now}
	dir.modTime = now
	return nil
}

func lastPart(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// Reader implements driver.StorageDriver. The reader is a snapshot: later
// writes to the path do not show in it.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.lookup(p)
	if n == nil || n.isDir() {
		return nil, notFound(p)
	}
	if offset < 0 || offset > int64(len(n.data)) {
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	return io.NopCloser(bytes.NewReader(n.data[offset:len(n.data):len(n.data)])), nil
}

// Writer implements driver.StorageDriver. The file is created at once;
// without append an existing file is truncated.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	if !driver.ValidPath(p) || p == "/" {
		return nil, invalid(p)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkParents(p); err != nil {
		return nil, opErr("open", p, err)
	}
	now := time.Now()
	n := d.lookup(p)
	switch {
	case n == nil:
		n = &node{data: []byte{}, modTime: now}
		dir := d.mkParents(p, now)
		dir.children[lastPart(p)] = n
		dir.modTime = now
	case n.isDir():
		return nil, opErr("open", p, errIsDir)
	case !append:
		n.data = []byte{} // a new slice: snapshots keep the old bytes
		n.modTime = now
	}
	return &writer{d: d, n: n, path: p, size: int64(len(n.data)), WriterState: driver.WriterState{DriverName: name}}, nil
}

type writer struct {
	d    *Driver
	n    *node
	path string
	size int64
	driver.WriterState
}

// Write appends to the file the writer opened, like a file descriptor:
// if the path was deleted or replaced meanwhile the bytes go nowhere
// visible.
func (w *writer) Write(b []byte) (int, error) {
	if err := w.Usable(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	w.d.mu.Lock()
	w.n.data = append(w.n.data, b...)
	w.n.modTime = time.Now()
	w.d.mu.Unlock()
	w.size += int64(len(b))
	return len(b), nil
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) Close() error {
	if err := w.BeginClose(); err != nil {
		return err
	}
	return nil
}

// Cancel closes the writer and removes the file at its path.
func (w *writer) Cancel(ctx context.Context) error {
	if err := w.BeginCancel(); err != nil {
		return err
	}
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if n := w.d.lookup(w.path); n != nil && !n.isDir() {
		w.d.detach(w.path, time.Now())
	}
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	if err := w.BeginCommit(); err != nil {
		return err
	}
	return nil
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.lookup(p)
	if n == nil {
		return nil, notFound(p)
	}
	return info(p, n), nil
}

// info describes n. Caller holds the lock.
func info(p string, n *node) driver.FileInfo {
	return driver.FileInfoFields{P: p, Sz: int64(len(n.data)), MT: n.modTime, Dir: n.isDir()}
}

// List implements driver.StorageDriver. Listing a file is
// PathNotFoundError, as in the filesystem driver.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	if !driver.ValidPath(p) {
		return nil, invalid(p)
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := d.lookup(p)
	if n == nil || !n.isDir() {
		return nil, notFound(p)
	}
	prefix := childPrefix(p)
	out := make([]string, 0, len(n.children))
	for c := range n.children {
		out = append(out, prefix+c)
	}
	slices.Sort(out)
	return out, nil
}

// Move implements driver.StorageDriver, with rename(2)'s rules: a file
// replaces a file, a directory may move only where nothing is, and a
// directory cannot move below itself.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if !driver.ValidPath(src) || src == "/" {
		return invalid(src)
	}
	if !driver.ValidPath(dst) || dst == "/" {
		return invalid(dst)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookup(src)
	if n == nil {
		return notFound(src)
	}
	if src == dst {
		return nil
	}
	if strings.HasPrefix(dst, src+"/") {
		return opErr("move", src, errIntoItself)
	}
	if err := d.checkParents(dst); err != nil {
		return opErr("move", dst, err)
	}
	if old := d.lookup(dst); old != nil {
		switch {
		case old.isDir() && !n.isDir():
			return opErr("move", dst, errIsDir)
		case old.isDir():
			return opErr("move", dst, errExists) // never empty here
		case n.isDir():
			return opErr("move", dst, errNotDir)
		}
	}
	now := time.Now()
	d.detach(src, now)
	dir := d.mkParents(dst, now)
	dir.children[lastPart(dst)] = n
	dir.modTime = now
	return nil
}

// Delete implements driver.StorageDriver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	if !driver.ValidPath(p) || p == "/" {
		return invalid(p)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lookup(p) == nil {
		return notFound(p)
	}
	d.detach(p, time.Now())
	return nil
}

// Walk implements driver.StorageDriver. The lock is not held while fn
// runs, so fn may use the driver; each directory's children are read when
// the walk reaches it, and a directory removed by then is skipped.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	if !driver.ValidPath(p) {
		return invalid(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.RLock()
	n := d.lookup(p)
	d.mu.RUnlock()
	if n == nil {
		return notFound(p)
	}
	return d.walk(ctx, p, fn)
}

func (d *Driver) walk(ctx context.Context, p string, fn driver.WalkFn) error {
	d.mu.RLock()
	dir := d.lookup(p)
	if dir == nil || !dir.isDir() {
		d.mu.RUnlock()
		return nil
	}
	prefix := childPrefix(p)
	infos := make([]driver.FileInfo, 0, len(dir.children))
	for c, n := range dir.children {
		infos = append(infos, info(prefix+c, n))
	}
	d.mu.RUnlock()
	slices.SortFunc(infos, func(a, b driver.FileInfo) int { return strings.Compare(a.Path(), b.Path()) })
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := fn(fi)
		if errors.Is(err, driver.ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := d.walk(ctx, fi.Path(), fn); err != nil {
				return err
			}
		}
	}
	return nil
}
