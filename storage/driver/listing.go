package driver

import (
	"context"
	"errors"
	"time"
)

// Listings that cost a page, and writes under a condition: optional
// extensions for object stores, where List reads a whole directory (one
// request per thousand entries) and a listing of 100,000 repositories or
// tags is the cost of every page of the catalog or of tags/list. With them
// the registry lists a page with a request or two, and keeps its own index
// of repository names consistent across instances without a lock.

// Entry is what a listing tells of one path, without another request.
type Entry struct {
	Path    string // the full driver path
	Dir     bool
	Size    int64
	ModTime time.Time // zero for directories
	// Version changes whenever the object is written (an S3 ETag); ""
	// for directories and where the driver has none.
	Version string
}

// PageLister lists a directory a page at a time.
type PageLister interface {
	// ListPage returns the direct children of the directory at p whose
	// names (last path components) sort after `after` ("" for none), at
	// most n of them, in List's order (by name), and whether more follow.
	// A name that is both an object and a directory is one entry, a
	// directory. A missing directory is an empty page, not an error.
	ListPage(ctx context.Context, p, after string, n int) ([]Entry, bool, error)
}

// TreeLister lists the objects of a tree in path order, a page at a time.
type TreeLister interface {
	// ListTree returns the objects (never directories) at any depth below
	// p whose paths sort after `after` ("" for none) byte by byte, at
	// most n of them, in that order, and whether more follow. Each
	// request costs about a page, whatever the size of the tree.
	ListTree(ctx context.Context, p, after string, n int) ([]Entry, bool, error)
}

// Condition is when PutContentIf writes.
type Condition struct {
	// IfAbsent: only if nothing is at the path.
	IfAbsent bool
	// IfVersion: only if the object at the path has this Version.
	IfVersion string
}

// ErrPreconditionFailed says a conditional write did not happen because
// its condition did not hold.
var ErrPreconditionFailed = errors.New("precondition failed")

// ConditionalPutter writes under a condition that the store checks
// atomically with the write (S3's If-None-Match and If-Match), so that
// instances sharing a store can update an object without a lock.
type ConditionalPutter interface {
	// PutContentIf is PutContent if c holds when the write happens, and
	// returns the Version written; otherwise it writes nothing and
	// returns ErrPreconditionFailed. A zero Condition always writes.
	//
	// A store may ignore the conditions (some S3-compatible ones do):
	// callers that rely on them check first that a write under a false
	// condition fails.
	PutContentIf(ctx context.Context, p string, content []byte, c Condition) (string, error)
}
