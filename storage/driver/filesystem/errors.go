package filesystem

import "syscall"

// errIsDir and syscallENOTDIR let mapErr and GetContent treat "a file was
// expected but a directory is there" and "a parent is a file" as a path
// that does not exist, which is what the layer above asks about.
var (
	errIsDir       error = syscall.EISDIR
	syscallENOTDIR error = syscall.ENOTDIR
)
