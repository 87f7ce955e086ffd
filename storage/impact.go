package storage

import (
	"context"
	"slices"

	"github.com/opencontainers/go-digest"
)

// DeletionImpact is what deleting the given tags and manifest revisions
// of the repository, then a collection, frees: the bytes live in the
// repository only through them and held by no other repository. It is
// one figure for the whole set, not a sum of each deletion's: two
// deleted images sharing a layer free it together, and neither alone
// would. With the collector's untagged collection off, a deleted tag
// frees nothing while its manifest stays (the revision keeps it alive).
func (repo *Repository) DeletionImpact(ctx context.Context, tags []string, revisions []digest.Digest) (int64, error) {
	r := repo.reg
	r.syncWatches(ctx)
	if err := r.syncSizes(ctx, nil); err != nil {
		return 0, err
	}
	rs, err := r.repoState(ctx, repo.name)
	if err != nil {
		return 0, err
	}
	current, err := repo.TagsAndTargets(ctx)
	if err != nil {
		return 0, err
	}
	remaining := make(map[string]digest.Digest, len(current))
	for t, d := range current {
		if !slices.Contains(tags, t) {
			remaining[t] = d
		}
	}
	skip := make(map[digest.Digest]bool, len(revisions))
	for _, d := range revisions {
		skip[d] = true
	}
	if err := r.ensureManifests(ctx, slices.Collect(mapValues(remaining))); err != nil {
		return 0, err
	}
	return r.sizes.freedWithout(rs, remaining, skip), nil
}

// freedWithout is the bytes of the repository's live set that are no
// longer live once its tags are only remaining and the revisions in skip
// are gone, and that no other repository holds. s.mu is taken.
func (s *sizeIndex) freedWithout(rs *repoSizes, remaining map[string]digest.Digest, skip map[digest.Digest]bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	after := s.liveSet(rs.revs, remaining, skip)
	kept := make(map[uint32]bool, len(after))
	for _, i := range after {
		kept[i] = true
	}
	var freed int64
	for _, i := range rs.live {
		if !kept[i] && s.nodes[i].count == 1 {
			freed += s.nodes[i].size
		}
	}
	return freed
}
