package storage

// What tag retention (package retention) needs of a repository beyond the
// enumeration garbage collection uses: when each revision was last
// written, what digests a tag has had, and a tag delete that does not
// remove a tag someone has just moved.

import (
	"context"
	"errors"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// RevisionTimes returns every manifest revision of the repository (as
// Revisions counts them) with the modification time of its link: when
// the manifest was last pushed, since a push rewrites the link.
func (repo *Repository) RevisionTimes(ctx context.Context) (map[digest.Digest]time.Time, error) {
	root := revisionsRoot(repo.name)
	out := map[digest.Digest]time.Time{}
	err := repo.reg.driver.Walk(ctx, root, func(fi driver.FileInfo) error {
		rel := strings.TrimPrefix(fi.Path(), root+"/")
		parts := strings.Split(rel, "/")
		if fi.IsDir() {
			if len(parts) > 2 {
				return driver.ErrSkipDir
			}
			return nil
		}
		if len(parts) == 3 && parts[2] == "link" {
			if d, ok := digestFromDirs(parts[0], parts[1]); ok {
				out[d] = fi.ModTime()
			}
		}
		return nil
	})
	if isNotFound(err) {
		return out, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	return out, nil
}

// TagHistory returns the digests the tag has pointed at (its index/
// entries, which the reference writes too), its current one included. A
// tag that does not exist has none.
func (repo *Repository) TagHistory(ctx context.Context, tag string) ([]digest.Digest, error) {
	if !ValidTag(tag) {
		return nil, nil
	}
	root := path.Join(tagDir(repo.name, tag), "index")
	algs, err := repo.reg.driver.List(ctx, root)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	var out []digest.Digest
	for _, a := range algs {
		hexes, err := repo.reg.driver.List(ctx, a)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, storageErr(err)
		}
		for _, h := range hexes {
			if d, ok := digestFromDirs(path.Base(a), path.Base(h)); ok {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// ErrTagMoved is returned by DeleteTagIf when the tag no longer points at
// the digest the caller decided about.
var ErrTagMoved = errors.New("the tag was moved to another manifest")

// DeleteTagIf deletes the tag only while it still points at d: a tag
// pushed again since a caller decided to delete it (retention) stays. The
// check and the delete are two storage operations; a push between them is
// lost, a window of one round trip rather than of a whole run. A tag that
// is already gone is MANIFEST_UNKNOWN, as for DeleteTag.
func (repo *Repository) DeleteTagIf(ctx context.Context, tag string, d digest.Digest) error {
	if !ValidTag(tag) {
		return manifestUnknown(tag)
	}
	cur, err := repo.reg.readLink(ctx, tagCurrentPath(repo.name, tag))
	if isNotFound(err) {
		return manifestUnknown(tag)
	}
	if err != nil {
		return storageErr(err)
	}
	if cur != d {
		return errcode.Newf(errcode.Denied, "tag %s of %s points at %s, not %s", tag, repo.name, cur, d).Wrap(ErrTagMoved)
	}
	return repo.DeleteTag(ctx, tag)
}
