package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// ErrPreconditionFailed is matched by errors.Is when a conditional write
// (ConditionalWriter.PutContentIf) found the object in another version
// than the caller expected: someone else wrote it first. The caller reads
// it again and decides anew; nothing was written.
var ErrPreconditionFailed = errors.New("precondition failed")

// ConditionalWriter is an optional extension of StorageDriver: a
// compare-and-swap on one small object, which is all the coordination
// several registries sharing a store need to elect one garbage collector
// (a lease) and to fence one that lost its election (its state writes
// fail). On S3 it is a PUT with If-None-Match: * or If-Match: <etag>; on
// the filesystem a lock on a hidden sidecar file (flock, which also
// serialises processes on other hosts of an NFSv4 mount), a comparison and
// the usual atomic rename; in memory a mutex.
//
// A version is an opaque string that changes whenever the content does
// (an ETag; a content hash where the driver has none). Two writes of the
// same bytes may give the same version: callers that must tell writes
// apart put something unique in the content.
type ConditionalWriter interface {
	// PutContentIf stores content at path, as PutContent does, only if
	// the object is at version ifVersion; ifVersion "" means only if
	// there is no object at path. It returns the new version. When the
	// condition does not hold it writes nothing and returns an error
	// matching ErrPreconditionFailed (also for a missing object and a
	// non-empty ifVersion).
	PutContentIf(ctx context.Context, path string, content []byte, ifVersion string) (newVersion string, err error)
	// GetContentVersion returns the content at path and its version, to
	// be given to PutContentIf. A missing object is PathNotFoundError.
	GetContentVersion(ctx context.Context, path string) (content []byte, version string, err error)
}

// BatchDeleter is an optional extension of StorageDriver for removing many
// files at once: S3's DeleteObjects removes up to 1,000 keys in one
// request where Delete costs several per key. Garbage collection removes
// links and blobs by the thousand through it.
type BatchDeleter interface {
	// DeleteFiles removes the files (objects, not directories) at paths.
	// A path that names nothing is not an error. On drivers with
	// directories, a directory a removal leaves empty is removed too (the
	// registry's layout keeps one file per leaf directory, blobs/.../data,
	// _layers/.../link). Like Delete, removals need not be durable on
	// return (see Flusher). On error some of the files may be gone.
	DeleteFiles(ctx context.Context, paths []string) error
}

// ContentVersion is the version drivers without a native one (the
// filesystem, memory) give content: a hash of it, so that every host
// sharing a store computes the same version for the same object.
func ContentVersion(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
