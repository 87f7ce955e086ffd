package storage

import (
	"path"

	"github.com/opencontainers/go-digest"
)

// The layout is distribution's, so a data directory moves between registryd
// and the reference registry in both directions:
//
//	<root>/docker/registry/v2/
//	  blobs/<alg>/<hex[:2]>/<hex>/data                      content, stored once
//	  repositories/<name>/
//	    _layers/<alg>/<hex>/link                            blob linked into the repo
//	    _manifests/revisions/<alg>/<hex>/link               manifest revision
//	    _manifests/tags/<tag>/current/link                  tag -> digest
//	    _manifests/tags/<tag>/index/<alg>/<hex>/link        digests the tag has had
//	    _manifests/tags/<tag>/_pushed                       registryd only: {digest, pushed} of the last push
//	    _uploads/<uuid>/data, startedat, hashstates/<alg>/<offset>
//	    _referrers/<alg>/<hex>/<alg>/<hex>/link             registryd only: subject -> referrer
//	  _registryd/quarantine/<alg>/<hex>/<time>              registryd only: damaged blob data set aside by scrub --repair
//	    _registryd/pulled/<alg>/<hex>                       registryd only: last pull of a manifest
//	  _registryd/changes/<time>-<writer>-<seq>              registryd only: which repositories an instance changed (changelog.go)
//
// The reference registry skips directories starting with "_" that it does
// not know, so _referrers and _registryd are invisible to it. It reads only
// current/ and index/ of a tag directory and removes the directory whole
// when it deletes the tag, so _pushed is invisible to it too and goes with
// the tag whoever deletes it. The records are data, not file times, so
// they survive a copy of the data directory (cp -r, rsync without -t, an
// S3 sync) that resets modification times. Every function here takes
// values that were validated (names, tags, digests, upload ids) by the
// caller; driver.ValidPath is the second line of defence.
const rootPath = "/docker/registry/v2"

func blobsRoot() string { return path.Join(rootPath, "blobs") }

func blobDir(d digest.Digest) string {
	h := d.Encoded()
	return path.Join(rootPath, "blobs", d.Algorithm().String(), h[:2], h)
}

func blobDataPath(d digest.Digest) string { return path.Join(blobDir(d), "data") }

func reposRoot() string { return reposRootPath }

// reposRootPath is reposRoot, a constant so that the catalog can cut names
// out of paths without computing it.
const reposRootPath = rootPath + "/repositories"

func repoPath(name string) string { return path.Join(rootPath, "repositories", name) }

func layerLinkDir(name string, d digest.Digest) string {
	return path.Join(repoPath(name), "_layers", d.Algorithm().String(), d.Encoded())
}

func layerLinkPath(name string, d digest.Digest) string {
	return path.Join(layerLinkDir(name, d), "link")
}

func revisionsRoot(name string) string {
	return path.Join(repoPath(name), "_manifests", "revisions")
}

func revisionDir(name string, d digest.Digest) string {
	return path.Join(revisionsRoot(name), d.Algorithm().String(), d.Encoded())
}

func revisionLinkPath(name string, d digest.Digest) string {
	return path.Join(revisionDir(name, d), "link")
}

func tagsRoot(name string) string { return path.Join(repoPath(name), "_manifests", "tags") }

func tagDir(name, tag string) string { return path.Join(tagsRoot(name), tag) }

func tagCurrentPath(name, tag string) string {
	return path.Join(tagDir(name, tag), "current", "link")
}

func tagIndexPath(name, tag string, d digest.Digest) string {
	return path.Join(tagDir(name, tag), "index", d.Algorithm().String(), d.Encoded(), "link")
}

func uploadsRoot(name string) string { return path.Join(repoPath(name), "_uploads") }

func uploadDir(name, id string) string { return path.Join(uploadsRoot(name), id) }

func uploadDataPath(name, id string) string { return path.Join(uploadDir(name, id), "data") }

func uploadStartedAtPath(name, id string) string {
	return path.Join(uploadDir(name, id), "startedat")
}

func uploadHashStatePath(name, id string, alg digest.Algorithm, offset int64) string {
	return path.Join(uploadDir(name, id), "hashstates", alg.String(), itoa(offset))
}

func uploadHashStatesDir(name, id string, alg digest.Algorithm) string {
	return path.Join(uploadDir(name, id), "hashstates", alg.String())
}

func referrersDir(name string, subject digest.Digest) string {
	return path.Join(repoPath(name), "_referrers", subject.Algorithm().String(), subject.Encoded())
}

func referrerLinkPath(name string, subject, referrer digest.Digest) string {
	return path.Join(referrersDir(name, subject), referrer.Algorithm().String(), referrer.Encoded(), "link")
}

// Online garbage collection's objects (see gcstate.go), below
// _registryd/gc, which the reference registry never looks at:
//
//	_registryd/gc/lease                  the collector lease (compare-and-swap)
//	_registryd/gc/state                  plan, phase, sweep cursor (compare-and-swap)
//	_registryd/gc/clock                  probe written to read the store's clock
//	_registryd/gc/plans/<id>             items a run condemned, by digest
//	_registryd/gc/sweeps/<id>            the part of plan <id> being swept
//	_registryd/gc/pins/<id>/<alg>-<hex>  "a writer relied on this digest"
//	_registryd/gc/runs/<id>              run reports
func gcRoot() string              { return path.Join(rootPath, "_registryd", "gc") }
func gcLeasePath() string         { return path.Join(gcRoot(), "lease") }
func gcStatePath() string         { return path.Join(gcRoot(), "state") }
func gcClockPath() string         { return path.Join(gcRoot(), "clock") }
func gcPlanPath(id string) string { return path.Join(gcRoot(), "plans", id) }
func gcSweepPath(id string) string {
	return path.Join(gcRoot(), "sweeps", id)
}
func gcPinsDir(plan string) string { return path.Join(gcRoot(), "pins", plan) }
func gcPinPath(plan string, d digest.Digest) string {
	return path.Join(gcPinsDir(plan), d.Algorithm().String()+"-"+d.Encoded())
}
func gcRunsRoot() string         { return path.Join(gcRoot(), "runs") }
func gcRunPath(id string) string { return path.Join(gcRunsRoot(), id) }

// quarantineDir holds the data of blob d that scrub found damaged and set
// aside, one file per time it did (never deleted by registryd).
func quarantineDir(d digest.Digest) string {
	return path.Join(rootPath, "_registryd", "quarantine", d.Algorithm().String(), d.Encoded())
}

// quarantinePath is where scrub moves blob d's damaged data, at is a
// time stamp made of path characters (20060102T150405.000000000Z).
func quarantinePath(d digest.Digest, at string) string { return path.Join(quarantineDir(d), at) }

// scrubStatePath records the background scrub's last run (scrubstate.go),
// shared by the instances serving the storage.
func scrubStatePath() string { return path.Join(rootPath, "_registryd", "scrub", "state") }

// tagPushedPath is the record of a tag's last push (times.go). It lives in
// the tag's directory so that a tag delete, by registryd or the reference,
// removes it with the tag.
func tagPushedPath(name, tag string) string { return path.Join(tagDir(name, tag), "_pushed") }

// repoStateDir holds registryd's own records about a repository.
func repoStateDir(name string) string { return path.Join(repoPath(name), "_registryd") }

// pulledPath is the record of the last pull of manifest d in the
// repository (times.go). It is kept out of the revision's directory: a
// record written there while the revision is being deleted would leave a
// revision directory without a link, which the catalog counts.
func pulledPath(name string, d digest.Digest) string {
	return path.Join(repoStateDir(name), "pulled", d.Algorithm().String(), d.Encoded())
}

// gcProbePath is a probe of the startup consistency check.
func gcProbePath(id string) string { return path.Join(gcRoot(), "probes", id) }

// catalogIndexDir holds registryd's index of repository names on object
// stores (catalogindex.go): markers/<key>, one per repository, the key the
// name encoded in catalog order (encodeName), and built, written when a
// build of the whole index completed. The reference registry never looks
// below _registryd.
func catalogIndexDir() string { return path.Join(rootPath, "_registryd", "catalog") }

func catalogMarkersRoot() string { return path.Join(catalogIndexDir(), "markers") }

// catalogMarkerPath is the marker of repository name; ok is false for a
// string that is no repository name.
func catalogMarkerPath(name string) (string, bool) {
	key, ok := encodeName(name)
	if !ok {
		return "", false
	}
	return catalogMarkersRoot() + "/" + key, true
}

func catalogBuiltPath() string { return path.Join(catalogIndexDir(), "built") }

// catalogProbePath is written to check that the store honours conditional
// writes.
func catalogProbePath() string { return path.Join(catalogIndexDir(), "probe") }

// tombstonesRoot holds one tombstone per repository being deleted
// (repodelete.go). Each is named by the SHA-256 of the repository's name,
// a single path component whatever the name's length or depth, so the
// whole set is one listing.
func tombstonesRoot() string { return path.Join(rootPath, "_registryd", "tombstones") }

func tombstonePath(name string) string {
	return path.Join(tombstonesRoot(), digest.SHA256.FromString(name).Encoded())
}

// changesRoot holds the change log (changelog.go): one small file per
// change, named by its time and writer, removed after changeLogTTL.
func changesRoot() string { return path.Join(rootPath, "_registryd", "changes") }

// ChangeLogRoot is where instances leave their change log: bookkeeping,
// not content (its names carry times and instance ids), which tests that
// compare two stores leave out.
func ChangeLogRoot() string { return changesRoot() }

// repoOwnDirs are the directories of a repository's own state, which a
// repository delete removes, in this order: tags first (no tag is ever
// left naming a revision that is gone), referrers and revisions, then the
// layer links the revisions needed, uploads, and registryd's records.
// Nested repositories ("a/b" below "a") are other directories and stay.
func repoOwnDirs(name string) []string {
	return []string{
		tagsRoot(name),
		path.Join(repoPath(name), "_referrers"),
		revisionsRoot(name),
		path.Join(repoPath(name), "_manifests"),
		path.Join(repoPath(name), "_layers"),
		uploadsRoot(name),
		repoStateDir(name),
	}
}
