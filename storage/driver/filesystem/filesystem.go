// Package filesystem is the storage driver for a local directory tree.
//
// Durability is its main concern: PutContent and Move are atomic renames
// followed by a sync of the directory, and a Writer's Commit syncs the file,
// so content that the registry has acknowledged survives a crash and
// content it has not never shows up half-written under its final name.
package filesystem

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/registryd/registryd/storage/driver"
)

const name = "filesystem"

// tmpPrefix starts the names of temporary files. A valid path component
// may start with ".", so List and Walk recognise temporaries by this whole
// prefix, which the registry never uses for a name of its own.
const tmpPrefix = ".tmp-registryd-"

// Driver stores paths as files below a root directory.
type Driver struct {
	root string
}

// New returns a driver rooted at rootDirectory, creating it if needed.
func New(rootDirectory string) (*Driver, error) {
	if rootDirectory == "" {
		return nil, errors.New("filesystem: rootdirectory is empty")
	}
	abs, err := filepath.Abs(rootDirectory)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	return &Driver{root: abs}, nil
}

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

// full maps a validated driver path to a file path below the root. Paths
// are checked here, before any system call, so nothing can reach outside.
func (d *Driver) full(p string) (string, error) {
	if !driver.ValidPath(p) {
		return "", driver.InvalidPathError{Path: p, DriverName: name}
	}
	return filepath.Join(d.root, filepath.FromSlash(p)), nil
}

func (d *Driver) mapErr(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
		return driver.PathNotFoundError{Path: p, DriverName: name}
	}
	return err
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	f, err := d.full(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(pe.Err, errIsDir) {
			return nil, driver.PathNotFoundError{Path: p, DriverName: name}
		}
		return nil, d.mapErr(p, err)
	}
	return b, nil
}

// PutContent implements driver.StorageDriver: temp file, fsync, rename,
// fsync of the directory.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	f, err := d.full(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	dir := filepath.Dir(f)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d.mapErr(p, err)
	}
	tmp, err := createTemp(dir, filepath.Base(f))
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func createTemp(dir, base string) (*os.File, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return os.OpenFile(filepath.Join(dir, tmpPrefix+base+"-"+hex.EncodeToString(b[:])), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Reader implements driver.StorageDriver. It returns the *os.File itself so
// that net/http can send it with sendfile.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, d.mapErr(p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, driver.PathNotFoundError{Path: p, DriverName: name}
	}
	if offset < 0 || offset > fi.Size() {
		f.Close()
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Writer implements driver.StorageDriver.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, driver.InvalidPathError{Path: p, DriverName: name}
	}
	dir := filepath.Dir(full)
	_, statErr := os.Stat(full)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, d.mapErr(p, err)
	}
	flags := os.O_WRONLY | os.O_CREATE
	if !append {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(full, flags, 0o644)
	if err != nil {
		return nil, d.mapErr(p, err)
	}
	var size int64
	if append {
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &writer{f: f, dir: dir, created: created, size: size, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

type writer struct {
	f       *os.File
	bw      *bufio.Writer
	dir     string
	created bool
	size    int64
	done    bool
}

var errWriterDone = errors.New("filesystem: writer already closed, committed or cancelled")

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) Close() error {
	if w.done {
		return errWriterDone
	}
	w.done = true
	ferr := w.bw.Flush()
	cerr := w.f.Close()
	if ferr != nil {
		return ferr
	}
	return cerr
}

func (w *writer) Cancel(ctx context.Context) error {
	w.done = true
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Commit flushes and syncs the file (and its directory entry when the
// file is new), so the content survives a crash from here on.
func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return errWriterDone
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if w.created {
		return syncDir(w.dir)
	}
	return nil
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return nil, d.mapErr(p, err)
	}
	return driver.FileInfoFields{P: p, Sz: fi.Size(), MT: fi.ModTime(), Dir: fi.IsDir()}, nil
}

// List implements driver.StorageDriver. It reads names only (no stat per
// entry), so a directory of 100,000 repositories lists quickly. Listing a
// file is PathNotFoundError: there is no directory there.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, d.mapErr(p, err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, d.mapErr(p, err)
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	out := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		out = append(out, prefix+n)
	}
	sort.Strings(out)
	return out, nil
}

// Move implements driver.StorageDriver with rename(2), which replaces dst
// atomically; the destination directory is synced so the move is durable.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	fs, err := d.full(src)
	if err != nil {
		return err
	}
	fd, err := d.full(dst)
	if err != nil {
		return err
	}
	if _, err := os.Stat(fs); err != nil {
		return d.mapErr(src, err)
	}
	dir := filepath.Dir(fd)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(fs, fd); err != nil {
		return d.mapErr(src, err)
	}
	return syncDir(dir)
}

// Delete implements driver.StorageDriver.
func (d *Driver) Delete(ctx context.Context, p string) error {
	full, err := d.full(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return driver.InvalidPathError{Path: p, DriverName: name}
	}
	if _, err := os.Lstat(full); err != nil {
		return d.mapErr(p, err)
	}
	return os.RemoveAll(full)
}

// Walk implements driver.StorageDriver: depth first, lexical order,
// temporaries skipped.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	full, err := d.full(p)
	if err != nil {
		return err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return d.mapErr(p, err)
	}
	if !fi.IsDir() {
		return nil
	}
	return d.walk(ctx, p, full, fn)
}

func (d *Driver) walk(ctx context.Context, p, full string, fn driver.WalkFn) error {
	entries, err := os.ReadDir(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		return err
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		child := prefix + e.Name()
		cfull := filepath.Join(full, e.Name())
		isDir := info.IsDir()
		if info.Mode()&fs.ModeSymlink != 0 {
			// Links are not followed: the tree is the registry's own.
			continue
		}
		err = fn(driver.FileInfoFields{P: child, Sz: info.Size(), MT: info.ModTime(), Dir: isDir})
		if errors.Is(err, driver.ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if isDir {
			if err := d.walk(ctx, child, cfull, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
