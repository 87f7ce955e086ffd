//go:build !linux

package filesystem

import "errors"

// watcher is the stand-in where there is no inotify: nothing is watched,
// and callers validate listings by directory times as before.
type watcher struct{}

func newWatcher(root string, max int, warnf func(string, ...any), background bool) (*watcher, error) {
	return nil, errors.New("directory watching needs Linux")
}

func (w *watcher) close() error                       { return nil }
func (w *watcher) sync() error                        { return nil }
func (w *watcher) dirVersion(p string) (uint64, bool) { return 0, false }
func (w *watcher) watchDir(p string) (uint64, bool)   { return 0, false }
func (w *watcher) watches() int                       { return 0 }
func (w *watcher) overflow()                          {}
func (w *watcher) changes() uint64                    { return 0 }
