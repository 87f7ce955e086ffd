//go:build unix

package storage

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// ProcessGone reports whether no live process with this pid exists in
// this process's pid namespace: signal 0 says there is none, or /proc says
// it is a zombie (killed, not yet reaped). A process we may not signal
// (EPERM) exists.
func ProcessGone(pid int) bool {
	if pid <= 0 {
		return false
	}
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...", where comm may itself hold parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
