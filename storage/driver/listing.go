package driver

import (
	"context"
	"time"
)

// Listings that cost a page: optional extensions for object stores, where
// List reads a whole directory (one request per thousand entries) and a
// listing of 100,000 repositories or tags is the cost of every page of the
// catalog or of tags/list. With them the registry lists a page with a
// request or two; with ConditionalWriter (conditional.go) besides, it
// keeps its own index of repository names consistent across instances
// without a lock.

// Entry is what a listing tells of one path, without another request.
type Entry struct {
	Path    string // the full driver path
	Dir     bool
	Size    int64
	ModTime time.Time // zero for directories
	// Version changes whenever the object is written (an S3 ETag); ""
	// for directories and where the driver has none. Where the driver is
	// also a ConditionalWriter it is the version PutContentIf returns and
	// GetContentVersion reads.
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
