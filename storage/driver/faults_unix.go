//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package driver

import (
	"errors"
	"syscall"
)

func isFullErr(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
