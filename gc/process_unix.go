//go:build unix

package gc

import (
	"errors"
	"syscall"
)

// processGone reports whether no process with this pid exists in our pid
// namespace. A process we may not signal (EPERM) exists.
func processGone(pid int) bool {
	if pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
