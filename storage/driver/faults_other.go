//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package driver

// isFullErr: elsewhere only drivers' FaultErrors name a full storage.
func isFullErr(err error) bool { return false }
