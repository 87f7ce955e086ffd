// Package filesystem is the storage driver for a local directory tree.
//
// Durability is its main concern: content that the registry has
// acknowledged survives a crash (a power cut, not only a killed process),
// and content it has not never shows up half-written under its final name.
// Writes are atomic renames of temporary files; what makes them durable
// is a small set of flushes (fsync of a file or of a directory), each one
// needed by a crash argument, and no others:
//
//  1. A file's content, before the rename that gives it its name
//     (PutContent, a Batch's Put, the source of a Batch's Move, a
//     Writer's Commit). rename(2) is atomic for readers but says nothing
//     of content after a crash: without it the name can come back empty
//     or half-written, wrong bytes under a digest or a link naming
//     nothing.
//  2. The parent of every directory the driver creates, before any name
//     appears in the new directory: else a crash can take the directory
//     away, and the acknowledged object in it. A directory that another
//     batch of this process created and has not flushed yet counts as
//     new for whoever stores into it (flusher.young): it must not answer
//     before that flush.
//  3. The directory a name is renamed into, or that a Batch's Keep names,
//     before the call returns: the rename is durable only then. A Keep is
//     for an object the caller found and relies on (a blob or link that a
//     concurrent push stored a moment ago, maybe not flushed yet), so that
//     no answer gets ahead of the flush of what it relies on.
//  4. Between the parts of a Batch (driver.Barrier), the directories of one
//     part before the next part's renames: the order a crash must respect
//     (a tag moves only once the manifest it names is durable).
//  5. A Writer's new file outside scratch: its directory entry, when it is
//     created, so that a later Commit (possibly by another Writer that
//     appends) has only the content left to sync.
//  6. Flush (driver.Flusher): the directories of removals, for callers that
//     order them (garbage collection removes links before blobs).
//
// Flushes 1 and 2 of a batch run at once, then its renames, then flush 3 of
// all its directories at once (see Batch): a blob commit with its link is
// two rounds, a manifest with its tags three, where the same writes one at
// a time waited for a flush per file and per directory level created
// (about 36 for a small image). Directory flushes are shared between
// concurrent writers (group commit, see flusher): a writer waits for an
// fsync that started after its change, and every writer arriving while
// one runs is covered by the next. The rounds' fsyncs are issued together,
// so a journaling filesystem commits them at once.
//
// Not flushed, and why that is safe: removals (Delete, DeleteDir: a
// removal that a crash undoes leaves what was there, which every caller
// tolerates by removing it again; Flush is there for those that need
// order); temporary files and their removal (invisible, see below); a
// Move's source content (the Writer's Commit syncs it, or the Batch's
// Move does); and scratch state (driver.WithScratch: upload sessions):
// files and directories created below the declared scratch root are not
// flushed, since the caller does not need them after a crash. Directories
// at and above the root are still created durably, so a durable file
// written later below them (a committed blob, a link) is reachable.
//
// Temporary files live next to their target and are named with tmpPrefix.
// List and Walk never return them, and no driver path may name one (such a
// path is InvalidPathError), so a temporary left behind by a crash is
// invisible. Registry names never start with ".", so no real name is lost.
//
// Semantics beyond the driver contract:
//   - List of a file is PathNotFoundError: there is no directory there.
//   - Delete does not remove parent directories that become empty, so List
//     of such a directory is an empty list (other drivers, where
//     directories exist only while they have children, say
//     PathNotFoundError; callers treat both alike).
//   - "/" is the root directory: it can be listed, walked and stat'ed, but
//     PutContent, Writer, Move and Delete refuse it with InvalidPathError.
//   - Walk does not follow symbolic links (they are skipped).
//   - Cancel on a Writer removes the whole file, including content that was
//     there before an appending Writer was opened.
//
// Directory watching (driver.DirWatcher) uses inotify on Linux (see
// watcher in watch_linux.go for the semantics and why not fsnotify): the
// descriptor and its draining goroutine start with the first Watch and
// end with Close (or when the driver is collected). A directory costs one
// watch, plus one for an ancestor that neither is watched nor has a
// watched parent (three per repository for the catalog). Where watching
// fails (another system; a root on a network or shared filesystem, whose
// changes by other hosts inotify never sees; inotify_init1 refused; half
// of the kernel's fs.inotify.max_user_watches or SetMaxWatches reached:
// each reported once through SetWarnf) Watch says so and callers validate
// by directory times.
package filesystem

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

const name = "filesystem"

// tmpPrefix starts the names of temporary files. Paths with a component
// that starts with it are refused, so the prefix can never clash with a
// name stored through the driver.
const tmpPrefix = ".tmp-registryd-"

// writeBufferSize is the Writer's buffer: large enough that a blob upload
// turns into few, large write(2) calls.
const writeBufferSize = 1 << 20

// Driver stores paths as files below a root directory.
type Driver struct {
	root  string
	ws    *watchState
	flush *flusher
}

// watchState holds the driver's directory watcher (driver.DirWatcher),
// created on the first Watch: most drivers (tests, garbage-collect) never
// watch anything and should not hold an inotify descriptor.
type watchState struct {
	root  string
	w     atomic.Pointer[watcher]
	mu    sync.Mutex // serialises creating and closing w
	off   bool       // no watching: closed, or inotify unavailable
	max   int
	warnf func(format string, args ...any)
	// quiet leaves events to Sync alone, no background draining (tests of
	// the barrier).
	quiet bool
}

// defaultMaxWatches bounds the watches (and the memory they cost here and
// in the kernel, which keeps every watched directory's inode) unless the
// kernel's own limit (fs.inotify.max_user_watches) is lower: three per
// repository, so enough for 300,000 repositories.
const defaultMaxWatches = 1 << 20

// New returns a driver rooted at rootDirectory, creating it (and its
// parents) if needed.
func New(rootDirectory string) (*Driver, error) {
	if rootDirectory == "" {
		return nil, errors.New("filesystem: root directory is empty")
	}
	abs, err := filepath.Abs(rootDirectory)
	if err != nil {
		return nil, fmt.Errorf("filesystem: root directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem: root directory: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("filesystem: root directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("filesystem: root directory %s is not a directory", abs)
	}
	// Watches resolve the root's symbolic links once (a root configured
	// as a link is common; watches refuse to follow a link at the end of
	// a path, which is what keeps them on directories).
	wroot := abs
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		wroot = r
	}
	d := &Driver{root: abs, ws: &watchState{root: wroot, max: defaultMaxWatches}, flush: newFlusher()}
	// A driver dropped without Close (tests make many) still releases its
	// watcher's descriptor and goroutine once it is collected; the
	// watcher does not refer to the driver, so it does not keep it alive.
	runtime.AddCleanup(d, func(ws *watchState) { _ = ws.close() }, d.ws)
	return d, nil
}

// Close releases the directory watcher, if one was started. The driver
// stays usable; it no longer watches directories, so callers validate
// listings by directory times again.
func (d *Driver) Close() error { return d.ws.close() }

// SetMaxWatches bounds the number of directories watched at once (the
// kernel's fs.inotify.max_user_watches bounds it too); directories beyond
// it are validated by their times. Call it before the first Watch.
func (d *Driver) SetMaxWatches(n int) {
	d.ws.mu.Lock()
	defer d.ws.mu.Unlock()
	d.ws.max = n
}

// SetWarnf sets where the driver reports, once, that it cannot watch
// every directory (a watch limit reached, inotify unavailable). Call it
// before the first Watch.
func (d *Driver) SetWarnf(f func(format string, args ...any)) {
	d.ws.mu.Lock()
	defer d.ws.mu.Unlock()
	d.ws.warnf = f
}

// SimulateOverflow is for tests of callers: it drops the change
// notifications queued so far, as the kernel does when its queue
// overflows, and reports the overflow as the kernel would. Callers must
// still see every change (all versions move).
func (d *Driver) SimulateOverflow() {
	if w := d.ws.w.Load(); w != nil {
		w.overflow()
	}
}

// Watch implements driver.DirWatcher.
func (d *Driver) Watch(ctx context.Context, p string) (uint64, bool) {
	if _, err := d.full(p); err != nil {
		return 0, false
	}
	w := d.ws.get()
	if w == nil {
		return 0, false
	}
	return w.watchDir(p)
}

// DirVersion implements driver.DirWatcher.
func (d *Driver) DirVersion(p string) (uint64, bool) {
	w := d.ws.w.Load()
	if w == nil {
		return 0, false
	}
	return w.dirVersion(p)
}

// Changes implements driver.DirChanges: zero while nothing is watched
// (before the first Watch, after Close).
func (d *Driver) Changes() uint64 {
	w := d.ws.w.Load()
	if w == nil {
		return 0
	}
	return w.changes()
}

// Sync implements driver.DirWatcher. Before the first Watch nothing is
// watched and there is nothing to apply.
func (d *Driver) Sync(ctx context.Context) error {
	w := d.ws.w.Load()
	if w == nil {
		return nil
	}
	if err := w.sync(); err != nil {
		// Closed meanwhile: nothing is watched any more.
		if d.ws.w.Load() == nil {
			return nil
		}
		return err
	}
	return nil
}

// get returns the watcher, starting it on first use, or nil.
func (ws *watchState) get() *watcher {
	if w := ws.w.Load(); w != nil {
		return w
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.w.Load(); w != nil || ws.off {
		return w
	}
	w, err := newWatcher(ws.root, ws.max, ws.warnf, !ws.quiet)
	if err != nil {
		ws.off = true
		if ws.warnf != nil {
			ws.warnf("filesystem: directories are not watched, listings are checked by their modification times: %v", err)
		}
		return nil
	}
	ws.w.Store(w)
	return w
}

func (ws *watchState) close() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.off = true
	w := ws.w.Swap(nil)
	if w == nil {
		return nil
	}
	return w.close()
}

// Name implements driver.StorageDriver.
func (d *Driver) Name() string { return name }

// full maps a driver path to a file path below the root. Every method calls
// it before any system call, so no path can reach outside the root or name
// a temporary file.
func (d *Driver) full(p string) (string, error) {
	if !driver.ValidPath(p) || strings.Contains(p, "/"+tmpPrefix) {
		return "", d.invalid(p)
	}
	if p == "/" {
		return d.root, nil
	}
	return filepath.Join(d.root, filepath.FromSlash(p[1:])), nil
}

// fullObject is full for methods that create, move or delete an object,
// which "/" (the root directory) can never be.
func (d *Driver) fullObject(p string) (string, error) {
	if p == "/" {
		return "", d.invalid(p)
	}
	return d.full(p)
}

func (d *Driver) invalid(p string) error {
	return driver.InvalidPathError{Path: p, DriverName: name}
}

func (d *Driver) notFound(p string) error {
	return driver.PathNotFoundError{Path: p, DriverName: name}
}

// mapReadErr turns "no such file" and "a parent is a file" into
// PathNotFoundError. Methods that create things do not use it: for them a
// file in the way is a real error, not an absent path.
func (d *Driver) mapReadErr(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return d.notFound(p)
	}
	return err
}

// GetContent implements driver.StorageDriver.
func (d *Driver) GetContent(ctx context.Context, p string) ([]byte, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	b, err := readFile(full)
	if err != nil {
		if errors.Is(err, syscall.EISDIR) {
			return nil, d.notFound(p)
		}
		return nil, d.mapReadErr(p, err)
	}
	return b, nil
}

// PutContent implements driver.StorageDriver: a batch of one Put (see
// Batch): a temporary file in the target's directory, its fsync, the
// rename over the target, the fsync of the directory.
func (d *Driver) PutContent(ctx context.Context, p string, content []byte) error {
	return d.batch(ctx, true, driver.PutOp(p, content))
}

// scratchRoot is the full path of the scratch root ctx declares (see
// driver.WithScratch), or "" for none.
func (d *Driver) scratchRoot(ctx context.Context) string {
	root := driver.ScratchRoot(ctx)
	if root == "" {
		return ""
	}
	full, err := d.full(root)
	if err != nil {
		return ""
	}
	return full
}

// below reports whether full path p lies strictly below full path root
// ("" is no root: nothing lies below it).
func below(p, root string) bool {
	return root != "" && len(p) > len(root)+1 && p[:len(root)] == root && p[len(root)] == filepath.Separator
}

// createTemp creates a new, empty temporary file for base in dir.
func createTemp(dir, base string) (*os.File, error) {
	var b [12]byte
	for range 8 {
		_, _ = rand.Read(b[:]) // never fails
		n := filepath.Join(dir, tmpPrefix+base+"-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(n, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, errors.New("filesystem: cannot create a temporary file")
}

// syncHook, when set (tests), is called with the name of every file or
// directory the driver syncs, once the sync has returned.
var syncHook func(name string)

// syncFile syncs f, through syncHook.
func syncFile(f *os.File) error {
	err := f.Sync()
	if syncHook != nil && err == nil {
		syncHook(f.Name())
	}
	return err
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := syncFile(f)
	cerr := f.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// Reader implements driver.StorageDriver. It returns the *os.File itself,
// positioned at offset, so that net/http can send it with sendfile.
func (d *Driver) Reader(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, d.mapReadErr(p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, d.notFound(p)
	}
	if offset < 0 || offset > fi.Size() {
		_ = f.Close()
		return nil, driver.InvalidOffsetError{Path: p, Offset: offset, DriverName: name}
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Writer implements driver.StorageDriver. The file is created (with its
// parents) at once, and a newly created file's directory entry is synced
// then, so that a later Commit, possibly by another Writer appending to
// it, has only the file's content left to sync.
func (d *Driver) Writer(ctx context.Context, p string, append bool) (driver.FileWriter, error) {
	full, err := d.fullObject(p)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(full)
	scratch := d.scratchRoot(ctx)
	if err := d.ensureDir(dir, scratch); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	switch {
	case err == nil && below(full, scratch):
		// A scratch file's entry is not synced; Commit still syncs its
		// content. The only scratch file that is committed is an upload's
		// data, which is then moved into the content store, and the move
		// syncs the directory it lands in: the entry that matters.
	case err == nil:
		if err := d.flush.flushDir(dir); err != nil {
			_ = f.Close()
			return nil, err
		}
	case errors.Is(err, fs.ErrExist):
		flags := os.O_WRONLY
		if !append {
			flags |= os.O_TRUNC
		}
		if f, err = os.OpenFile(full, flags, 0o644); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	var size int64
	if append {
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	return &writer{f: f, size: size, wb: size, WriterState: driver.WriterState{DriverName: name}}, nil
}

// writeBufs holds the Writers' buffers: a small upload would otherwise
// allocate (and zero) a whole writeBufferSize for a few kilobytes.
var writeBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

type writer struct {
	f    *os.File
	bw   *bufio.Writer // from writeBufs, taken at the first Write
	size int64
	wb   int64   // offset up to which writeback has been requested
	bh   *behind // the write-behind goroutine, once started
	driver.WriterState
}

// writeBehind is how much written data accumulates before the writer
// starts its writeback (startWriteback).
const writeBehind = 8 << 20

func (w *writer) Write(p []byte) (int, error) {
	if err := w.Usable(); err != nil {
		return 0, err
	}
	if w.bw == nil {
		w.bw = writeBufs.Get().(*bufio.Writer)
		w.bw.Reset(w.f)
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if done := w.size - int64(w.bw.Buffered()); done-w.wb >= writeBehind {
		w.writeback(done)
	}
	return n, err
}

func (w *writer) Size() int64 { return w.size }

// writeback requests the writeback of what was written since the last
// request, up to offset end (see behind).
func (w *writer) writeback(end int64) {
	if writebackHook != nil {
		writebackHook(w.f.Name(), w.wb, end-w.wb)
	}
	if w.bh == nil {
		if w.bh = startBehind(w.f, w.wb); w.bh == nil {
			return
		}
	}
	w.bh.request(end)
	w.wb = end
}

// stopBehind ends the write-behind goroutine, which finishes what was
// requested on its own descriptor.
func (w *writer) stopBehind() {
	if w.bh != nil {
		w.bh.close()
		w.bh = nil
	}
}

// writebackHook, when set (tests), sees every range a writer starts the
// writeback of.
var writebackHook func(name string, off, n int64)

func (w *writer) flush() error {
	if w.bw == nil {
		return nil
	}
	return w.bw.Flush()
}

// release returns the buffer to writeBufs, dropping what it still holds.
func (w *writer) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writeBufs.Put(w.bw)
		w.bw = nil
	}
}

// Close flushes what is buffered and closes the file. It is allowed after
// Commit, and required.
func (w *writer) Close() error {
	if err := w.BeginClose(); err != nil {
		return err
	}
	ferr := w.flush()
	w.release()
	if ferr == nil && !w.Committed() && w.size-w.wb >= writeBehind/8 {
		// The rest of what this writer wrote: an upload's next PATCH may
		// come much later, and its Commit then finds this on disk. Small
		// files are left to the kernel, and after Commit's fsync there is
		// nothing left to write.
		w.writeback(w.size)
	}
	w.stopBehind()
	cerr := w.f.Close()
	if ferr != nil {
		return ferr
	}
	return cerr
}

// Cancel closes the writer and removes the file.
func (w *writer) Cancel(ctx context.Context) error {
	if err := w.BeginCancel(); err != nil {
		return err
	}
	w.release()
	w.stopBehind()
	_ = w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Commit flushes and syncs the file, so its content survives a crash from
// here on. The file's directory entry was synced when it was created.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.BeginCommit(); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	return syncFile(w.f)
}

// Stat implements driver.StorageDriver.
func (d *Driver) Stat(ctx context.Context, p string) (driver.FileInfo, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return nil, d.mapReadErr(p, err)
	}
	return driver.FileInfoFields{P: p, Sz: fi.Size(), MT: fi.ModTime(), Dir: fi.IsDir()}, nil
}

// List implements driver.StorageDriver. It reads names only, without a stat
// per entry, so a directory of 100,000 repositories lists quickly. Listing
// a file is PathNotFoundError.
func (d *Driver) List(ctx context.Context, p string) ([]string, error) {
	out, _, err := d.list(p, false)
	return out, err
}

// ListDir implements driver.DirLister: the directory's description comes
// from fstat of the descriptor it is then read through, which costs no
// second path lookup.
func (d *Driver) ListDir(ctx context.Context, p string) ([]string, driver.FileInfo, error) {
	return d.list(p, true)
}

func (d *Driver) list(p string, stat bool) ([]string, driver.FileInfo, error) {
	full, err := d.full(p)
	if err != nil {
		return nil, nil, err
	}
	names, mod, err := readDir(full, stat)
	if err != nil {
		return nil, nil, d.mapReadErr(p, err)
	}
	var info driver.FileInfo
	if stat {
		info = driver.FileInfoFields{P: p, MT: mod, Dir: true}
	}
	prefix := childPrefix(p)
	out := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		out = append(out, prefix+n)
	}
	slices.Sort(out)
	return out, info, nil
}

// childPrefix is what a child's name is appended to: "/" for the root,
// p+"/" otherwise.
func childPrefix(p string) string {
	if p == "/" {
		return p
	}
	return p + "/"
}

// Move implements driver.StorageDriver with rename(2), which replaces dst
// atomically: a batch of one Move (see Batch), so dst's directory is
// flushed and the move is durable. The moved content is as durable as its
// Writer left it (Commit syncs it); Batch's moves sync it themselves.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	return d.batch(ctx, false, driver.MoveOp(src, dst))
}

// Delete implements driver.StorageDriver. Parent directories that become
// empty are left alone. Nothing is synced: see removeTree.
func (d *Driver) Delete(ctx context.Context, p string) error {
	full, err := d.fullObject(p)
	if err != nil {
		return err
	}
	if err := removeTree(full); err != nil {
		return d.mapReadErr(p, err)
	}
	return nil
}

// DeleteDir implements driver.DirDeleter: an unlink per named file and a
// rmdir, where Delete would also open and read the directory. When the
// directory holds anything else (rmdir fails) or is not one, Delete takes
// over. Nothing is synced, as for Delete.
func (d *Driver) DeleteDir(ctx context.Context, p string, names ...string) error {
	full, err := d.fullObject(p)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == "" || strings.Contains(n, "/") || !driver.ValidPath("/"+n) || strings.HasPrefix(n, tmpPrefix) {
			return d.invalid(p + "/" + n)
		}
	}
	if deleteDirFast(full, names) {
		return nil
	}
	return d.Delete(ctx, p)
}

// Flush implements driver.Flusher: an fsync of each directory, which
// makes the removal of its entries durable. Only the directories' own
// entries are synced, not the file system's other dirty data (which
// syncfs(2) would write too). Missing directories are skipped.
func (d *Driver) Flush(ctx context.Context, dirs ...string) error {
	seen := make(map[string]bool, len(dirs))
	for _, p := range dirs {
		if seen[p] {
			continue
		}
		seen[p] = true
		if err := ctx.Err(); err != nil {
			return err
		}
		full, err := d.full(p)
		if err != nil {
			return err
		}
		if err := syncDir(full); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return err
		}
	}
	return nil
}

// Walk implements driver.StorageDriver: depth first, children in lexical
// order, temporaries and symbolic links skipped. Walking a file visits
// nothing.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFn) error {
	full, err := d.full(p)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(full)
	if err != nil {
		return d.mapReadErr(p, err)
	}
	if !fi.IsDir() {
		return nil
	}
	return d.walk(ctx, p, full, fn)
}

func (d *Driver) walk(ctx context.Context, p, full string, fn driver.WalkFn) error {
	entries, err := os.ReadDir(full) // sorted by name
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		return err
	}
	prefix := childPrefix(p)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		// The entry's type comes from the directory itself (os.ReadDir
		// lstats only where the file system does not say): most callers
		// look at names and IsDir only, so size and time are read when
		// asked for.
		child := prefix + e.Name()
		err = fn(&walkInfo{p: child, e: e})
		if errors.Is(err, driver.ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if e.IsDir() {
			if err := d.walk(ctx, child, filepath.Join(full, e.Name()), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkInfo is the FileInfo of a Walk entry: IsDir from the directory entry,
// size and modification time from an lstat on first use. An entry removed
// since the directory was read has size 0 and the zero time.
type walkInfo struct {
	p    string
	e    fs.DirEntry
	once sync.Once
	fi   fs.FileInfo
}

func (w *walkInfo) Path() string { return w.p }
func (w *walkInfo) IsDir() bool  { return w.e.IsDir() }

func (w *walkInfo) info() fs.FileInfo {
	w.once.Do(func() { w.fi, _ = w.e.Info() })
	return w.fi
}

func (w *walkInfo) Size() int64 {
	if fi := w.info(); fi != nil {
		return fi.Size()
	}
	return 0
}

func (w *walkInfo) ModTime() time.Time {
	if fi := w.info(); fi != nil {
		return fi.ModTime()
	}
	return time.Time{}
}

var _ driver.DirWatcher = (*Driver)(nil)
