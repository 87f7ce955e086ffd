// Package driver defines the small interface between the registry's storage
// logic and the place its bytes live. A driver knows paths and bytes, nothing
// about blobs, manifests or repositories, so that a local filesystem and an
// S3-compatible object store can both implement it.
//
// Paths are slash-separated keys that start with "/" and contain only the
// characters [A-Za-z0-9._/-] (plus ":" is never used: digests are split into
// algorithm and hex by the caller). A path never contains "." or ".."
// components or empty components. Drivers reject any other path with
// InvalidPathError before touching the backing store.
package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// StorageDriver is implemented by every storage backend.
//
// All methods take a context and must honour its cancellation where the
// backend allows it. Methods are safe for concurrent use.
type StorageDriver interface {
	// Name identifies the driver in logs and errors ("filesystem", "inmemory", "s3").
	Name() string

	// GetContent returns the whole content at path. Meant for small objects
	// (links, hash states); blobs are read with Reader.
	GetContent(ctx context.Context, path string) ([]byte, error)

	// PutContent stores content at path, replacing any previous content
	// atomically: a reader sees either the old or the new content, never a
	// mix, and after a crash one of the two is there. Content is durable
	// when PutContent returns.
	PutContent(ctx context.Context, path string, content []byte) error

	// Reader returns a stream of the content at path starting at offset.
	// An offset beyond the end yields InvalidOffsetError. The filesystem
	// driver returns an *os.File so that net/http can use sendfile.
	Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error)

	// Writer returns a writer to path. With append it continues the content
	// already there (resumable uploads: a later request, possibly on another
	// instance, appends where the previous one stopped); without it the
	// content is truncated. Nothing written is promised durable until
	// Commit returns.
	Writer(ctx context.Context, path string, append bool) (FileWriter, error)

	// Stat describes the object or directory at path.
	Stat(ctx context.Context, path string) (FileInfo, error)

	// List returns the full paths of the direct children of the directory
	// at path, sorted lexically. A missing directory is PathNotFoundError.
	List(ctx context.Context, path string) ([]string, error)

	// Move renames src to dst, replacing dst if it exists. Where the
	// backend can, the move is atomic: dst shows either its old content or
	// all of src. Parents of dst are created as needed.
	Move(ctx context.Context, src, dst string) error

	// Delete removes the object or the whole tree at path. A missing path
	// is PathNotFoundError.
	Delete(ctx context.Context, path string) error

	// Walk calls fn for every object and directory below path (not path
	// itself), depth first, children in lexical order. If fn returns
	// ErrSkipDir for a directory its children are skipped; any other error
	// stops the walk and is returned.
	Walk(ctx context.Context, path string, fn WalkFn) error
}

// DirDeleter is an optional extension of StorageDriver, for drivers where
// removing a directory costs a listing of it (the filesystem): the caller
// names the files it knows are there, and the driver removes them and the
// directory without looking. The registry's layout has many such
// directories (a blob's holds data, a link's holds link), and garbage
// collection removes them by the thousand. Drivers without directories
// (an object store) have nothing to gain and need not implement it.
type DirDeleter interface {
	// DeleteDir removes the files names (single path components) in the
	// directory at path, then the directory. Whatever else is in it is
	// removed too: the outcome is Delete's, and so is a missing path
	// (PathNotFoundError).
	DeleteDir(ctx context.Context, path string, names ...string) error
}

// Flusher is an optional extension of StorageDriver, for drivers whose
// Delete is not durable on return (the filesystem syncs nothing on
// removal): Flush makes the removals done so far in the directories at
// dirs durable (missing ones are skipped). A caller that needs removals to
// reach the disk in order (garbage collection removes links before the
// content they point at) flushes between them. Drivers whose removals are
// durable on return need not implement it.
type Flusher interface {
	Flush(ctx context.Context, dirs ...string) error
}

// Flush calls d's Flusher, if it has one.
func Flush(ctx context.Context, d StorageDriver, dirs ...string) error {
	// Through wrappers (metrics): a wrapper that does not forward Flush
	// must not make it a no-op.
	if f, ok := As[Flusher](d); ok {
		return f.Flush(ctx, dirs...)
	}
	return nil
}

// DeleteDir removes the directory at path holding the files names, with
// d's DirDeleter when it has one and with Delete otherwise.
func DeleteDir(ctx context.Context, d StorageDriver, path string, names ...string) error {
	if dd, ok := As[DirDeleter](d); ok {
		return dd.DeleteDir(ctx, path, names...)
	}
	return d.Delete(ctx, path)
}

// FileWriter streams content into a driver path.
type FileWriter interface {
	io.Writer
	// Size is the number of bytes in the object so far, including what was
	// there before an appending Writer was opened.
	Size() int64
	// Close releases the writer. Written bytes stay and may be appended to
	// by a later Writer; they are not necessarily durable.
	Close() error
	// Cancel removes what was written and releases the writer.
	Cancel(ctx context.Context) error
	// Commit makes the content durable; the writer must still be closed.
	Commit(ctx context.Context) error
}

// FileInfo describes a path.
type FileInfo interface {
	Path() string
	Size() int64
	ModTime() time.Time
	IsDir() bool
}

// WalkFn is called by Walk for each path found.
type WalkFn func(fi FileInfo) error

// ErrSkipDir is returned by a WalkFn to skip a directory's children.
var ErrSkipDir = errors.New("skip this directory")

// ErrPathNotFound is matched by errors.Is for every PathNotFoundError.
var ErrPathNotFound = errors.New("path not found")

// PathNotFoundError is returned when a path does not exist.
type PathNotFoundError struct {
	Path       string
	DriverName string
}

func (e PathNotFoundError) Error() string {
	return fmt.Sprintf("%s: path not found: %s", e.DriverName, e.Path)
}

// Is makes errors.Is(err, ErrPathNotFound) true.
func (e PathNotFoundError) Is(target error) bool { return target == ErrPathNotFound }

// InvalidPathError is returned for a path outside the grammar above.
type InvalidPathError struct {
	Path       string
	DriverName string
}

func (e InvalidPathError) Error() string {
	return fmt.Sprintf("%s: invalid path: %q", e.DriverName, e.Path)
}

// InvalidOffsetError is returned when an offset is negative or past the end.
type InvalidOffsetError struct {
	Path       string
	Offset     int64
	DriverName string
}

func (e InvalidOffsetError) Error() string {
	return fmt.Sprintf("%s: invalid offset %d for path %s", e.DriverName, e.Offset, e.Path)
}

// FileInfoFields is a plain FileInfo implementation for drivers.
type FileInfoFields struct {
	P   string
	Sz  int64
	MT  time.Time
	Dir bool
}

func (f FileInfoFields) Path() string       { return f.P }
func (f FileInfoFields) Size() int64        { return f.Sz }
func (f FileInfoFields) ModTime() time.Time { return f.MT }
func (f FileInfoFields) IsDir() bool        { return f.Dir }

// ValidPath reports whether p is a path a driver accepts: "/" alone (the
// root), or one or more components, each "/" followed by one or more of
// [A-Za-z0-9._-], at most 4096 bytes in all. Components "." and ".." are
// refused even though the character class allows them, so no path can climb
// out of a driver's root. It runs on every storage call, so it is a plain
// loop rather than a regular expression.
func ValidPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || len(p) > 4096 || p[0] != '/' {
		return false
	}
	start := 1 // first byte of the current component
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if c := p[start:i]; c == "" || c == "." || c == ".." {
				return false
			}
			start = i + 1
			continue
		}
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

type scratchKey struct{}

// WithScratch returns a context under which the caller declares that what a
// call creates strictly below the driver path root (directories, files
// written by PutContent, files created by Writer) need not survive a crash:
// it is scratch state the caller can rebuild or do without, such as an
// upload session's files. A driver may then skip making those entries and
// contents durable (the filesystem driver skips their fsyncs). Everything
// else keeps the usual guarantees: root itself and directories above it
// are created durably, PutContent stays atomic for readers, and a Writer's
// Commit still makes its content durable.
func WithScratch(ctx context.Context, root string) context.Context {
	return context.WithValue(ctx, scratchKey{}, root)
}

// ScratchRoot is the scratch root ctx declares (see WithScratch), or ""
// for none.
func ScratchRoot(ctx context.Context) string {
	root, _ := ctx.Value(scratchKey{}).(string)
	return root
}

// DirLister is implemented by drivers that can list a directory together
// with its description, read before the listing (so that a change made
// while listing gives the directory a later modification time than the
// one returned), more cheaply than Stat followed by List.
type DirLister interface {
	// ListDir is Stat and List of the directory at p. A p that is not a
	// directory is PathNotFoundError.
	ListDir(ctx context.Context, p string) ([]string, FileInfo, error)
}

// WriterState is the lifecycle every FileWriter shares, kept in one place so
// that all drivers refuse the same misuse with the same errors: nothing is
// written or committed after Close or Cancel, nothing written after Commit,
// Close and Cancel at most once between them. A driver's writer embeds it
// with DriverName set and calls the Begin methods before doing the work.
type WriterState struct {
	DriverName                   string
	closed, committed, cancelled bool
}

// Usable reports why the writer can no longer be written to or committed,
// or nil.
func (s *WriterState) Usable() error {
	switch {
	case s.cancelled:
		return s.misuse("cancelled")
	case s.closed:
		return s.misuse("closed")
	case s.committed:
		return s.misuse("committed")
	}
	return nil
}

// BeginCommit checks that the writer may commit and marks it committed.
func (s *WriterState) BeginCommit() error {
	if err := s.Usable(); err != nil {
		return err
	}
	s.committed = true
	return nil
}

// BeginClose checks that the writer may close (also after Commit) and
// marks it closed.
func (s *WriterState) BeginClose() error {
	if err := s.endable(); err != nil {
		return err
	}
	s.closed = true
	return nil
}

// BeginCancel checks that the writer may cancel and marks it cancelled.
func (s *WriterState) BeginCancel() error {
	if err := s.endable(); err != nil {
		return err
	}
	s.cancelled = true
	return nil
}

// Committed reports whether Commit was called.
func (s *WriterState) Committed() bool { return s.committed }

func (s *WriterState) endable() error {
	switch {
	case s.cancelled:
		return s.misuse("cancelled")
	case s.closed:
		return s.misuse("closed")
	}
	return nil
}

func (s *WriterState) misuse(what string) error {
	return fmt.Errorf("%s: writer already %s", s.DriverName, what)
}

// DirWatcher is an optional extension of StorageDriver, for drivers that
// are told when a directory changes (the filesystem on Linux, through
// inotify). A caller that keeps a listing of a directory checks it against
// the directory's version, a memory read, instead of asking the backend
// (a stat per directory, the catalog's main cost otherwise).
//
// A version is a number that changes whenever the directory at p may no
// longer list what it listed: an entry of it is created, removed or
// renamed; p itself or one of its ancestors is removed or renamed (p is
// then no longer watched); or notifications were lost (every version
// changes). Versions are never reused for a path, so a cached version
// that still matches proves nothing changed since it was read.
//
// Sync is the consistency barrier: every change that completed before
// Sync was called has moved its directory's version when Sync returns.
// A request calls it once at its start and then trusts DirVersion, so a
// change made before the request (by this process or any other) is seen
// by it, as with a stat per directory.
//
// Drivers that cannot watch a directory (missing, a watch limit reached,
// an unsupported system) say so, and the caller falls back to validating
// it some other way (directory times); nothing is ever wrong, only slower.
type DirWatcher interface {
	// Watch starts watching the directory at p, if it is not watched
	// already, and returns its version; ok is false when it cannot be
	// watched. Call it before reading what the version is to vouch for
	// (the listing), so that a change made while reading moves it.
	Watch(ctx context.Context, p string) (version uint64, ok bool)
	// DirVersion returns the version of the watched directory at p; ok is
	// false when p is not watched (never was, or no longer is).
	DirVersion(p string) (version uint64, ok bool)
	// Sync applies the notifications of every change completed before the
	// call: one system call when nothing changed.
	Sync(ctx context.Context) error
}

// DirChanges is an optional extension of a DirWatcher for callers that
// hold many versions: Changes returns a number that moves whenever the
// version of any watched directory moves or a watch is added or dropped,
// so that one comparison (after Sync) says that none of them did. Zero
// means unknown: check each version.
type DirChanges interface {
	Changes() uint64
}

// Unwrapper is implemented by drivers that wrap another one (the metrics
// instrumentation), so that callers can reach optional extensions of the
// driver underneath that the wrapper does not forward.
type Unwrapper interface {
	Unwrap() StorageDriver
}

// As returns the first driver in d's chain of wrappers, d itself first,
// that is a T (an optional extension such as DirWatcher).
func As[T any](d StorageDriver) (T, bool) {
	for d != nil {
		if t, ok := d.(T); ok {
			return t, true
		}
		u, ok := d.(Unwrapper)
		if !ok {
			break
		}
		d = u.Unwrap()
	}
	var zero T
	return zero, false
}
