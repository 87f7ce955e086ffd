package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// diskLoad is a competing writer on the servers' disk (-disk-load): each of
// its goroutines writes a 64 MiB file, fsyncs it and removes it, over and
// over, so that the pushes measured meanwhile meet a busy disk (a "slow
// disk day", reproducible on a quiet machine). What it wrote is reported,
// so a run says how busy the disk was.
type diskLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	written atomic.Int64
	start   time.Time
}

// startDiskLoad starts n writers in dir; nil for n <= 0.
func startDiskLoad(dir string, n int) *diskLoad {
	if n <= 0 {
		return nil
	}
	l := &diskLoad{stop: make(chan struct{}), start: time.Now()}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for i := range n {
		l.wg.Go(func() {
			p := filepath.Join(dir, fmt.Sprintf("disk-load-%d", i))
			defer os.Remove(p)
			for {
				f, err := os.Create(p)
				if err != nil {
					return
				}
				for range 64 {
					select {
					case <-l.stop:
						f.Close()
						return
					default:
					}
					if _, err := f.Write(buf); err != nil {
						f.Close()
						return
					}
					l.written.Add(int64(len(buf)))
				}
				f.Sync()
				f.Close()
				os.Remove(p)
			}
		})
	}
	return l
}

// Stop ends the writers and returns the rate they wrote at, in MB/s.
func (l *diskLoad) Stop() float64 {
	if l == nil {
		return 0
	}
	close(l.stop)
	l.wg.Wait()
	return mbps(l.written.Load(), time.Since(l.start))
}
