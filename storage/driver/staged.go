package driver

import "context"

// Stager is an optional extension of StorageDriver, for drivers that can
// write content at its final path while keeping it invisible there until
// it is committed (an object store's multipart upload: its parts are
// nowhere until CompleteMultipartUpload, which makes the whole object
// appear at once). The registry uses it for a blob whose digest is known
// before its bytes arrive (a monolithic upload): the bytes go once to the
// key where they stay, and the upload is completed only after their
// digest checked out. A driver where a rename is cheap (the filesystem)
// gains nothing from it and need not implement it.
type Stager interface {
	// StagedWriter returns a writer to path whose content appears there,
	// whole and at once, only when its Commit returns nil. Until then
	// path shows what it showed before (nothing, or its old content),
	// and Cancel, Close without Commit, a failed Commit or a crash of the
	// process leave it so: nothing half-written is ever visible. What a
	// crash leaves behind is invisible to every method of the driver.
	// Close after Commit only releases the writer. size is how many bytes
	// will be written, when known in advance, else -1: a driver may hold
	// less in memory when it knows.
	StagedWriter(ctx context.Context, path string, size int64) (FileWriter, error)
}
