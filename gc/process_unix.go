//go:build unix

package gc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// processGone reports whether no live process with this pid exists in our
// pid namespace. A process we may not signal (EPERM) exists; a zombie (killed,
// not yet reaped by its parent) is gone, where /proc can tell.
func processGone(pid int) bool {
	if pid <= 0 {
		return false
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	return zombie(pid)
}

// zombie reads the state field of /proc/<pid>/stat: "pid (comm) S ...",
// where comm may itself contain parentheses.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state == 'Z' || state == 'X'
}
