// Package localsrv holds what the programs that start registry servers as
// child processes on loopback share (the e2e tests, the MinIO starter,
// regbench): a free address to listen on, and the end of a server's log
// for an error message.
package localsrv

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago. Another process may take it before the caller's server binds it;
// callers that can retry do.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Tail returns the last n lines of the file at path, or a note saying why
// there are none.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
