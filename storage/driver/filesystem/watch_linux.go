//go:build linux

package filesystem

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// watcher implements driver.DirWatcher with inotify.
//
// Why not fsnotify: it delivers events on a channel from its own
// goroutine, so a caller cannot know that the events of a change that
// completed before its request have been applied. The kernel queues an
// inotify event while the changing system call runs, so a non-blocking
// read of the descriptor to EAGAIN, events applied under the same lock,
// is a barrier: that is Sync. A background goroutine also drains the
// queue as events arrive, so that it does not overflow while no request
// comes; version bumps commute, so who applies an event does not matter,
// only that reading and applying happen under one lock (a request must
// not return from Sync while another reader holds events read before it
// but not yet applied).
//
// A directory's version is valid while its path still names the inode
// that is watched. A watched directory p sees its entries created,
// removed and renamed (a name event for X also drops the watches at and
// below p/X, whose path no longer names what was watched), and its own
// removal or renaming (IN_DELETE_SELF, IN_MOVE_SELF: its watch and those
// below it are dropped). A rename of an ancestor is seen when the ancestor
// or its parent is watched, so Watch keeps every ancestor of a watched
// directory either watched or with a watched parent, adding watches top
// down before the directory's own (a rename after an ancestor's watch is
// seen; one before resolves the path to what is there now). The
// catalog's repository directories are watched anyway, so this costs one
// more watch per repository (_manifests/revisions, between the
// repository and revisions/sha256).
//
// Overflow (IN_Q_OVERFLOW: events were lost) moves every version, through
// an epoch that is part of every version. Versions are drawn from one
// counter that only grows, so a bump always yields a value never returned
// before.
type watcher struct {
	root  string // full path of the driver root
	max   int    // most watches held; the kernel's limit applies too
	warnf func(format string, args ...any)

	fd int // the inotify descriptor, for add and rm (f.Fd would make it blocking)
	f  *os.File
	rc syscall.RawConn

	counter atomic.Uint64 // last version handed out
	epoch   atomic.Uint64 // version of the last overflow

	// mu guards the maps and the reading of the descriptor (write lock);
	// DirVersion reads under the read lock.
	mu     sync.RWMutex
	byPath map[string]*watch // driver path
	byWD   map[int32]*watch
	// under counts the watches strictly below a path, so that the common
	// name event (a revision removed) finds at once that no watch lies
	// below the removed name.
	under  map[string]int
	buf    []byte
	warned bool
	closed bool
	done   chan struct{} // closed when the draining goroutine has stopped
}

// changes is the last version handed out: every version that moves
// (a change, a watch added or dropped, an overflow) takes a new one.
func (w *watcher) changes() uint64 { return w.counter.Load() }

type watch struct {
	wd   int32
	path string
	v    atomic.Uint64
}

const watchMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR | syscall.IN_DONT_FOLLOW

// newWatcher returns a watcher of directories below root, or an error when
// inotify is not available (too many instances, say).
func newWatcher(root string, max int, warnf func(string, ...any), background bool) (*watcher, error) {
	t, err := fsType(root)
	if err != nil {
		return nil, fmt.Errorf("statfs %s: %w", root, err)
	}
	if !localFS[t] {
		// inotify reports what this kernel does to the files. On NFS,
		// CephFS, SMB, FUSE, 9p or virtiofs another host (or the VM's
		// host) changes them without it, and a watched listing would
		// stay stale for good; directory times do travel.
		return nil, fmt.Errorf("the storage root is on a filesystem of type %#x, not a known local one: changes made elsewhere would not be notified", t)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	// A non-blocking descriptor joins the runtime's poller, so the
	// draining goroutine waits without holding a thread and Close wakes
	// it.
	f := os.NewFile(uintptr(fd), "inotify")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if share := userWatchShare(); share > 0 && share < max {
		max = share
	}
	w := &watcher{
		root: root, max: max, warnf: warnf, fd: fd, f: f, rc: rc,
		byPath: map[string]*watch{}, byWD: map[int32]*watch{}, under: map[string]int{},
		buf: make([]byte, 64<<10), done: make(chan struct{}),
	}
	if background {
		go w.run()
	} else {
		close(w.done)
	}
	return w, nil
}

// localFS holds the filesystem types (statfs f_type, linux/magic.h) whose
// changes all go through this kernel, so inotify sees every one of them.
var localFS = map[int64]bool{
	0xEF53:     true, // ext2, ext3, ext4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x2FC12FC1: true, // zfs
	0xF2F52010: true, // f2fs
	0xCA451A4E: true, // bcachefs
	0x01021994: true, // tmpfs
	0x858458F6: true, // ramfs
	0x794C7630: true, // overlayfs (a container's own filesystem)
	0x52654973: true, // reiserfs
	0x3153464A: true, // jfs
}

// fsType returns the type of the filesystem holding path (tests replace
// it).
var fsType = func(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

// maxUserWatches is where the kernel's per-user watch limit is read.
var maxUserWatches = "/proc/sys/fs/inotify/max_user_watches"

// userWatchShare is the share of the kernel's per-user watch limit a
// registry takes: half. The limit counts every process of the user (for
// root: systemd, udev, editors, other registries), and a program that
// meets it fails, where the registry only falls back to modification
// times; so the registry leaves the other half to them. 0 when the limit
// cannot be read.
func userWatchShare() int {
	b, err := os.ReadFile(maxUserWatches)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 1 {
		return 0
	}
	return n / 2
}

// run drains the queue whenever events arrive, until close.
func (w *watcher) run() {
	defer close(w.done)
	_ = w.rc.Read(func(fd uintptr) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.drainLocked(int(fd)) != nil || w.closed
	})
}

// close stops the goroutine and releases the descriptor (and with it every
// watch).
func (w *watcher) close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	err := w.f.Close() // wakes run, and waits for it to let go of the descriptor
	<-w.done
	return err
}

// sync applies every queued event: the barrier of driver.DirWatcher.Sync.
func (w *watcher) sync() error {
	var derr error
	err := w.rc.Control(func(fd uintptr) {
		w.mu.Lock()
		defer w.mu.Unlock()
		derr = w.drainLocked(int(fd))
	})
	if err != nil {
		return err
	}
	return derr
}

// drainLocked reads and applies events until the queue is empty.
func (w *watcher) drainLocked(fd int) error {
	for {
		n, err := syscall.Read(fd, w.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return nil
		case err != nil:
			return err
		case n <= 0:
			return nil
		}
		w.applyLocked(w.buf[:n])
	}
}

func (w *watcher) applyLocked(b []byte) {
	for len(b) >= syscall.SizeofInotifyEvent {
		ev := (*syscall.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := syscall.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return
		}
		name := ""
		if ev.Len > 0 {
			nb := b[syscall.SizeofInotifyEvent:end]
			if i := indexByte(nb, 0); i >= 0 {
				nb = nb[:i]
			}
			name = string(nb)
		}
		w.eventLocked(ev.Wd, ev.Mask, name)
		b = b[end:]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// eventLocked applies one event.
func (w *watcher) eventLocked(wd int32, mask uint32, name string) {
	if mask&syscall.IN_Q_OVERFLOW != 0 {
		w.epoch.Store(w.counter.Add(1))
		return
	}
	x := w.byWD[wd]
	if x == nil {
		return // a watch already dropped
	}
	if mask&(syscall.IN_IGNORED|syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF|syscall.IN_UNMOUNT) != 0 {
		w.dropTreeLocked(x.path)
		return
	}
	x.v.Store(w.counter.Add(1))
	if name != "" && mask&(syscall.IN_DELETE|syscall.IN_MOVED_FROM|syscall.IN_MOVED_TO) != 0 {
		w.dropTreeLocked(childPrefix(x.path) + name)
	}
}

// version is x's version with the epoch folded in: the larger of the two
// (both come from the same growing counter, so either moving moves it).
func (w *watcher) version(x *watch) uint64 {
	return max(x.v.Load(), w.epoch.Load())
}

// dirVersion implements driver.DirWatcher.DirVersion.
func (w *watcher) dirVersion(p string) (uint64, bool) {
	w.mu.RLock()
	x := w.byPath[p]
	w.mu.RUnlock()
	if x == nil {
		return 0, false
	}
	return w.version(x), true
}

// watchDir implements driver.DirWatcher.Watch for a valid driver path.
func (w *watcher) watchDir(p string) (uint64, bool) {
	if v, ok := w.dirVersion(p); ok {
		return v, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, false
	}
	if x := w.byPath[p]; x != nil {
		return w.version(x), true
	}
	// The ancestors that need a watch of their own (see watcher), found
	// bottom up and added top down.
	var need []string
	for a := parentPath(p); a != ""; {
		if w.byPath[a] != nil {
			break
		}
		pa := parentPath(a)
		if pa != "" && w.byPath[pa] != nil {
			break
		}
		need = append(need, a)
		a = pa
	}
	for i := len(need) - 1; i >= 0; i-- {
		if w.addLocked(need[i]) == nil {
			return 0, false
		}
	}
	x := w.addLocked(p)
	if x == nil {
		return 0, false
	}
	return w.version(x), true
}

// addLocked adds a watch on the directory at driver path p, or returns
// nil.
func (w *watcher) addLocked(p string) *watch {
	if len(w.byPath) >= w.max {
		w.warnOnceLocked("%d directories watched (the configured limit); further directories are checked by their modification times", len(w.byPath))
		return nil
	}
	full := w.root
	if p != "/" {
		full += p
	}
	wd, err := syscall.InotifyAddWatch(w.fd, full, watchMask)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			w.warnOnceLocked("inotify watch limit reached after %d directories (raise fs.inotify.max_user_watches); further directories are checked by their modification times", len(w.byPath))
		}
		return nil
	}
	if old := w.byWD[int32(wd)]; old != nil {
		// The same inode under another path: the old path's watch is
		// stale (a rename whose event is still on its way). Drop both;
		// the next Watch starts afresh.
		w.dropTreeLocked(old.path)
		return nil
	}
	x := &watch{wd: int32(wd), path: p}
	x.v.Store(w.counter.Add(1))
	w.byPath[p] = x
	w.byWD[x.wd] = x
	for a := parentPath(p); a != ""; a = parentPath(a) {
		w.under[a]++
	}
	return x
}

// dropTreeLocked drops the watches at p and below it.
func (w *watcher) dropTreeLocked(p string) {
	if x := w.byPath[p]; x != nil {
		w.removeLocked(x)
	}
	if w.under[p] == 0 {
		return
	}
	prefix := childPrefix(p)
	for q, x := range w.byPath {
		if strings.HasPrefix(q, prefix) {
			w.removeLocked(x)
		}
	}
}

func (w *watcher) removeLocked(x *watch) {
	delete(w.byPath, x.path)
	delete(w.byWD, x.wd)
	for a := parentPath(x.path); a != ""; a = parentPath(a) {
		if w.under[a]--; w.under[a] <= 0 {
			delete(w.under, a)
		}
	}
	// Gone already when the kernel dropped it (EINVAL then).
	_, _ = syscall.InotifyRmWatch(w.fd, uint32(x.wd))
}

func (w *watcher) warnOnceLocked(format string, args ...any) {
	if w.warned || w.warnf == nil {
		return
	}
	w.warned = true
	w.warnf("filesystem: "+format, args...)
}

// watches is the number of directories watched (tests).
func (w *watcher) watches() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return len(w.byPath)
}

// overflow loses the queued events and applies a queue overflow, as the
// kernel reports it when its queue is full (tests).
func (w *watcher) overflow() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.rc.Control(func(fd uintptr) {
		for {
			if n, err := syscall.Read(int(fd), w.buf); err != syscall.EINTR && (err != nil || n <= 0) {
				return
			}
		}
	})
	w.eventLocked(-1, syscall.IN_Q_OVERFLOW, "")
}

// parentPath is the driver path of p's parent, "" for the root.
func parentPath(p string) string {
	if p == "/" {
		return ""
	}
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}
