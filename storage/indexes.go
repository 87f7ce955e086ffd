package storage

import (
	"context"
	"time"
)

// RunIndexes keeps the in-memory indexes warm and current while serving,
// until ctx is done. It builds the name index first (which reads every
// repository directory once and so fills the catalog's caches as
// WarmCatalog does; nameindex.go), then starts the size index's first sync
// (sizes.go). Then, every changeLogPoll, it reads the change log (so that
// an idle instance never falls changeLogGap behind it), removes the log's
// old entries every changeLogTTL/2, and runs the name index's background
// pass over unwatched directories when it is due (changelog.go). errf, if
// not nil, is told of failures; each is tried again at the next tick.
func (r *Registry) RunIndexes(ctx context.Context, errf func(error)) {
	report := func(err error) {
		if err != nil && errf != nil && ctx.Err() == nil {
			errf(err)
		}
	}
	err := r.syncIndexes(ctx)
	if err == nil {
		_, err = r.syncNames(ctx)
	}
	report(err)
	r.sizesReady()
	var cleaned time.Time
	tick := time.NewTicker(changeLogPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		report(r.syncIndexes(ctx))
		if time.Since(cleaned) >= changeLogTTL/2 {
			cleaned = time.Now()
			report(r.cleanChanges(ctx))
		}
		report(r.passNames(ctx))
	}
}
