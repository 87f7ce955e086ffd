//go:build !unix

package filesystem

import (
	"context"
	"sync"
)

// lockFiles serialises conditional writes within this process where
// flock(2) does not exist; several processes sharing a directory are not
// serialised there.
var lockFiles sync.Map // full path -> *sync.Mutex

func lockFile(ctx context.Context, full string) (unlock func(), err error) {
	m, _ := lockFiles.LoadOrStore(full, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock, nil
}
