//go:build linux

package filesystem

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// behind starts the writeback of a writer's data as it arrives (sync_file_range
// with SYNC_FILE_RANGE_WRITE), on a goroutine of its own. A blob's Commit
// fsyncs the whole file; without this, all of a large upload is still dirty
// in the page cache at that moment and the client's final PUT waits for the
// disk to write it all (about 0.3-0.6 s per GiB here). Started as the data
// arrives, the writeback overlaps the network transfer and the fsync only
// waits for the tail.
//
// Why a goroutine: sync_file_range does not wait for the writes, but it
// does wait to submit them when the disk's queue is full, which is most of
// the time on a slow or busy disk. Called from the request, it held the
// upload to the disk's pace chunk by chunk (the network and the disk took
// turns); here the request only records how far it wants writeback, and
// the goroutine asks the kernel for everything requested since its last
// call, coalescing requests while the disk is behind. Nothing about
// durability changes (Commit still syncs), so errors are ignored: at worst
// the fsync does all the work.
type behind struct {
	fd   int          // a duplicate of the file's descriptor, the goroutine's to close
	want atomic.Int64 // end of the range requested so far
	kick chan struct{}
	stop chan struct{}
}

// startBehind starts the goroutine for f, whose writeback has been
// started up to offset from; nil if the descriptor cannot be duplicated.
func startBehind(f *os.File, from int64) *behind {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil
	}
	b := &behind{fd: fd, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	b.want.Store(from)
	go b.run(from)
	return b
}

func (b *behind) run(pos int64) {
	defer unix.Close(b.fd)
	for {
		stopping := false
		select {
		case <-b.kick:
		case <-b.stop:
			stopping = true
		}
		if end := b.want.Load(); end > pos {
			_ = unix.SyncFileRange(b.fd, pos, end-pos, unix.SYNC_FILE_RANGE_WRITE)
			pos = end
		}
		if stopping {
			return
		}
	}
}

// request asks for writeback up to offset end.
func (b *behind) request(end int64) {
	b.want.Store(end)
	select {
	case b.kick <- struct{}{}:
	default: // a kick is pending: the goroutine will see end
	}
}

// close lets the goroutine finish what was requested and end; the file
// may be closed at once.
func (b *behind) close() { close(b.stop) }
