package storage

// Scrub: the integrity check of the whole storage.
//
// It re-hashes every blob of the content store and reads every link of
// every repository (layer, revision, tag, tag history and referrer links),
// checking that each is a digest, the one its path names, of content that
// is there and whole; it parses every manifest and checks that what it
// references can be pulled from its repository. What is damaged is
// reported by repository and image, with the tags that reach the image.
//
// With Repair it makes the registry answer 404 where it would have served
// wrong bytes or nothing at all:
//   - a blob whose bytes do not match its digest is quarantined: its data
//     is moved aside (quarantinePath, never deleted), so the blob is
//     unknown until it is pushed again, when it comes back whole;
//   - a torn link (empty, not a digest: distribution#4489 is the
//     reference's case of it) whose path names content that is there and
//     whole is written again from its path; one whose content is not there
//     is removed, as is every link that names content that is missing or
//     was quarantined, and a tag whose target is no manifest of its
//     repository.
//
// Scrub takes no locks. It can run while the registry serves: pushes
// write content before the links that name it and deletes remove links
// before content, so no state a writer passes through looks damaged; and
// everything it changes is either damaged already or a link to nothing.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/time/rate"

	"github.com/registryd/registryd/storage/driver"
)

// ScrubOptions tune Scrub.
type ScrubOptions struct {
	// Repair quarantines damaged blobs and rewrites or removes broken
	// links (see the package comment of this file).
	Repair bool
	// BytesPerSecond bounds how fast blob content is read; 0 reads as fast
	// as the storage allows. An online scrub sets it so that serving is
	// never starved.
	BytesPerSecond int64
	// OnBytes, when set, is told of every chunk of content hashed.
	OnBytes func(n int64)
	// OnDamage, when set, is told of each damage as it is found (and
	// repaired), before Scrub returns.
	OnDamage func(Damage)
}

// DamageKind classifies what Scrub found.
type DamageKind string

const (
	// DamageBlob: content in the store does not hash to its digest, or
	// cannot be read.
	DamageBlob DamageKind = "blob"
	// DamageLink: a link file that is torn (empty, not a digest, another
	// digest than its path names) or names content that is not there.
	DamageLink DamageKind = "link"
	// DamageTag: a tag whose current link is torn or names no manifest of
	// the repository.
	DamageTag DamageKind = "tag"
	// DamageImage: a manifest whose content is damaged or missing, or that
	// references content that cannot be pulled from its repository.
	DamageImage DamageKind = "image"
)

// Damage is one thing Scrub found wrong.
type Damage struct {
	Kind DamageKind
	// Repository is the repository it is in; "" for the content store.
	Repository string
	// Digest is the blob, the manifest, or what the link's path names.
	Digest digest.Digest
	// Tag is the tag, for DamageTag and tag history links.
	Tag string
	// Link says which link, for DamageLink: "layer", "revision",
	// "tag history", "referrer".
	Link string
	// Problems says what is wrong, one entry per problem.
	Problems []string
	// Tags are the tags that reach a damaged image (DamageImage), directly
	// or through an index.
	Tags []string
	// Repaired says what Repair did about it: "quarantined", "rewritten",
	// "removed"; "" for nothing (without Repair, or nothing to do: an
	// image is repaired by pushing what it lacks).
	Repaired string
}

// String is the damage as scrub prints it: one line.
func (d Damage) String() string {
	var b strings.Builder
	switch d.Kind {
	case DamageBlob:
		fmt.Fprintf(&b, "blob %s", d.Digest)
	case DamageLink:
		fmt.Fprintf(&b, "%s link %s %s", d.Link, d.Repository, d.Digest)
		if d.Tag != "" {
			fmt.Fprintf(&b, " (tag %s)", d.Tag)
		}
	case DamageTag:
		fmt.Fprintf(&b, "tag %s:%s", d.Repository, d.Tag)
	case DamageImage:
		fmt.Fprintf(&b, "image %s@%s", d.Repository, d.Digest)
		if len(d.Tags) > 0 {
			fmt.Fprintf(&b, " (tags: %s)", strings.Join(d.Tags, ", "))
		} else {
			b.WriteString(" (untagged)")
		}
	}
	fmt.Fprintf(&b, ": %s", strings.Join(d.Problems, "; "))
	if d.Repaired != "" {
		fmt.Fprintf(&b, " [%s]", d.Repaired)
	}
	return b.String()
}

// ScrubReport is what Scrub checked and found.
type ScrubReport struct {
	Blobs     int64 // blobs re-hashed
	BlobBytes int64 // bytes re-hashed
	// Unverifiable counts blobs of digest algorithms registryd cannot
	// compute (left alone).
	Unverifiable                    int64
	Repositories, Manifests, Tags   int
	Links                           int // link files read
	Damage                          []Damage
	Quarantined, Rewritten, Removed int
	// Leftovers counts tag directories holding no file at all: what a
	// push interrupted between making a new tag's directories and
	// renaming its links into them leaves (a crash, a full disk). No
	// client sees them (tags/list leaves out a tag without a current
	// link); --repair removes them.
	Leftovers int
}

// Damaged reports whether anything was found damaged.
func (r *ScrubReport) Damaged() bool { return len(r.Damage) > 0 }

// Count returns how many damages of kind k were found.
func (r *ScrubReport) Count(k DamageKind) int {
	n := 0
	for _, d := range r.Damage {
		if d.Kind == k {
			n++
		}
	}
	return n
}

// maxPresentMemo bounds the blobs remembered whole (a Stat each, beyond).
const maxPresentMemo = 1 << 20

// scrubChunk is how much content is read (and paced) at a time.
const scrubChunk = 256 << 10

// scrub is the state of one run.
type scrub struct {
	ctx    context.Context
	r      *Registry
	opts   ScrubOptions
	lim    *rate.Limiter
	report ScrubReport
	stamp  string // for quarantine paths
	// bad holds the blobs found damaged (and quarantined, with Repair),
	// by digest, with what is wrong.
	bad map[digest.Digest]string
	// present memoizes whether blobs exist whole in the store.
	present map[digest.Digest]bool
	buf     []byte
}

// Scrub checks the whole storage, as the comment at the top of this file
// says. An error means it could not finish (the storage failed, ctx
// ended): what it found until then is in the report all the same, but a
// clean report then proves nothing.
func (r *Registry) Scrub(ctx context.Context, opts ScrubOptions) (*ScrubReport, error) {
	s := &scrub{
		ctx: ctx, r: r, opts: opts,
		stamp:   time.Now().UTC().Format("20060102T150405.000000000Z"),
		bad:     map[digest.Digest]string{},
		present: map[digest.Digest]bool{},
		buf:     make([]byte, scrubChunk),
	}
	if opts.BytesPerSecond > 0 {
		s.lim = rate.NewLimiter(rate.Limit(opts.BytesPerSecond), max(scrubChunk, int(min(opts.BytesPerSecond, 1<<30))))
	}
	err := r.WalkBlobs(ctx, s.checkBlob)
	if err == nil {
		err = r.WalkRepositories(ctx, s.checkRepository)
	}
	return &s.report, err
}

func (s *scrub) found(d Damage) {
	switch d.Repaired {
	case "quarantined":
		s.report.Quarantined++
	case "rewritten":
		s.report.Rewritten++
	case "removed":
		s.report.Removed++
	}
	s.report.Damage = append(s.report.Damage, d)
	if s.opts.OnDamage != nil {
		s.opts.OnDamage(d)
	}
}

// fatal reports whether a storage error stops the scrub rather than being
// damage of one thing: a condition of the whole storage (full, throttled,
// unreachable), or the run being cancelled.
func fatal(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	f, _ := driver.FaultOf(err)
	return f != ""
}

// checkBlob re-hashes one blob of the content store.
func (s *scrub) checkBlob(d digest.Digest, size int64) error {
	ctx := s.ctx
	if !d.Algorithm().Available() {
		s.report.Unverifiable++
		return nil
	}
	problem, err := s.hashBlob(ctx, d)
	if err != nil {
		return err
	}
	s.report.Blobs++
	if problem == "" {
		if len(s.present) < maxPresentMemo {
			s.present[d] = true
		}
		return nil
	}
	s.bad[d] = problem
	dmg := Damage{Kind: DamageBlob, Digest: d, Problems: []string{problem}}
	if s.opts.Repair {
		if err := s.quarantine(ctx, d); err != nil {
			return err
		}
		dmg.Repaired = "quarantined"
	}
	s.found(dmg)
	return nil
}

// hashBlob reads blob d whole and says what is wrong with it ("" for
// nothing). A blob gone meanwhile (collected) is not damage.
func (s *scrub) hashBlob(ctx context.Context, d digest.Digest) (string, error) {
	rc, err := s.r.driver.Reader(ctx, blobDataPath(d), 0)
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		if fatal(ctx, err) {
			return "", fmt.Errorf("reading blob %s: %w", d, storageErr(err))
		}
		return fmt.Sprintf("cannot be read (%v)", err), nil
	}
	defer rc.Close()
	h := d.Algorithm().Hash()
	var n int64
	for {
		k, rerr := io.ReadFull(rc, s.buf)
		if k > 0 {
			if s.lim != nil {
				if err := s.lim.WaitN(ctx, k); err != nil {
					return "", err
				}
			}
			h.Write(s.buf[:k])
			n += int64(k)
			s.report.BlobBytes += int64(k)
			if s.opts.OnBytes != nil {
				s.opts.OnBytes(int64(k))
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			if isNotFound(rerr) {
				return "", nil
			}
			if fatal(ctx, rerr) {
				return "", fmt.Errorf("reading blob %s: %w", d, storageErr(rerr))
			}
			return fmt.Sprintf("cannot be read after %d bytes (%v)", n, rerr), nil
		}
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return fmt.Sprintf("content does not match its digest (%d bytes hash to %s)", n, got), nil
	}
	return "", nil
}

// quarantine moves blob d's data aside.
func (s *scrub) quarantine(ctx context.Context, d digest.Digest) error {
	err := s.r.driver.Move(ctx, blobDataPath(d), quarantinePath(d, s.stamp))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("quarantining blob %s: %w", d, storageErr(err))
	}
	s.r.manifests.remove(d)
	return nil
}

// blobState says whether blob d is in the store and whole: "" when it is,
// else what it is ("damaged (...)", "missing from the store", ...).
func (s *scrub) blobState(ctx context.Context, d digest.Digest) (string, error) {
	if p, ok := s.bad[d]; ok {
		if s.opts.Repair {
			return "quarantined (" + p + ")", nil
		}
		return "damaged (" + p + ")", nil
	}
	if ok, seen := s.present[d]; seen && ok {
		return "", nil
	}
	fi, err := s.r.driver.Stat(ctx, blobDataPath(d))
	switch {
	case err == nil && !fi.IsDir():
		// Pushed since the store was walked: a new blob, whole
		// (uploads are verified before they land).
		if len(s.present) < maxPresentMemo {
			s.present[d] = true
		}
		return "", nil
	case err == nil || isNotFound(err):
		if q, _ := s.r.driver.List(ctx, quarantineDir(d)); len(q) > 0 {
			return "missing from the store (quarantined earlier)", nil
		}
		return "missing from the store", nil
	}
	return "", fmt.Errorf("blob %s: %w", d, storageErr(err))
}

// readLink reads the link at p whose path names want: the digest it
// holds, and what is wrong with it ("" for nothing). A missing link is
// reported as missing ("", "missing").
func (s *scrub) readLink(ctx context.Context, p string, want digest.Digest) (digest.Digest, string, error) {
	b, err := s.r.driver.GetContent(ctx, p)
	if isNotFound(err) {
		return "", "missing", nil
	}
	if err != nil {
		if fatal(ctx, err) {
			return "", "", storageErr(err)
		}
		return "", fmt.Sprintf("cannot be read (%v)", err), nil
	}
	s.report.Links++
	text := strings.TrimSpace(string(b))
	if text == "" {
		return "", "empty link file (torn by a crash)", nil
	}
	d, err := digest.Parse(text)
	if err != nil {
		return "", fmt.Sprintf("torn link file (%q is no digest)", clip(text)), nil
	}
	if want != "" && d != want {
		return d, fmt.Sprintf("names %s, not the %s of its path", d, want), nil
	}
	return d, "", nil
}

// subdigests lists the <alg>/<hex> directories below root as digests.
func (s *scrub) subdigests(ctx context.Context, root string) ([]digest.Digest, error) {
	algs, err := s.r.driver.List(ctx, root)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		if fi, serr := s.r.driver.Stat(ctx, root); serr == nil && !fi.IsDir() {
			return nil, nil
		}
		return nil, storageErr(err)
	}
	var out []digest.Digest
	for _, a := range algs {
		hexes, err := s.r.driver.List(ctx, a)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			if fi, serr := s.r.driver.Stat(ctx, a); serr == nil && !fi.IsDir() {
				continue
			}
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

// repoScrub is the state of one repository's check.
type repoScrub struct {
	*scrub
	repo *Repository
	// layers: blobs linked into the repository whose link is sound
	// (after repair, also those rewritten); tornLayers: what is wrong with
	// the others' links.
	layers     map[digest.Digest]bool
	tornLayers map[digest.Digest]string
	// revisions: manifests of the repository whose link is sound, with
	// what is wrong with each ("" for nothing) once checked.
	revisions map[digest.Digest]*revision
}

type revision struct {
	problems []string
	removed  bool            // its link was removed (Repair: the manifest is gone)
	children []digest.Digest // of an index
	checked  bool
	visiting bool
}

// fixLink repairs a damaged link: it is written again from its path when
// the content its path names is there and whole (restore true), and
// removed otherwise. It returns what was done.
func (s *scrub) fixLink(ctx context.Context, dir, file string, d digest.Digest, restore bool) (string, error) {
	if !s.opts.Repair {
		return "", nil
	}
	if restore {
		if err := s.r.writeLink(ctx, path.Join(dir, file), d); err != nil {
			return "", storageErr(err)
		}
		return "rewritten", nil
	}
	if err := driver.DeleteDir(ctx, s.r.driver, dir, file); err != nil && !isNotFound(err) {
		return "", storageErr(err)
	}
	return "removed", nil
}

func (s *scrub) checkRepository(repo *Repository) error {
	ctx := s.ctx
	s.report.Repositories++
	rs := &repoScrub{scrub: s, repo: repo, layers: map[digest.Digest]bool{}, tornLayers: map[digest.Digest]string{}, revisions: map[digest.Digest]*revision{}}
	if err := rs.checkLayerLinks(ctx); err != nil {
		return err
	}
	if err := rs.checkRevisionLinks(ctx); err != nil {
		return err
	}
	// Manifests in the order of their digests, so reports repeat.
	ds := make([]digest.Digest, 0, len(rs.revisions))
	for d := range rs.revisions {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	for _, d := range ds {
		if err := rs.checkManifest(ctx, d); err != nil {
			return err
		}
	}
	tagsOf, err := rs.checkTags(ctx)
	if err != nil {
		return err
	}
	if err := rs.checkReferrers(ctx); err != nil {
		return err
	}
	// The images, each once, with the tags that reach them directly or
	// through an index that is damaged for their sake.
	for _, d := range ds {
		rev := rs.revisions[d]
		if len(rev.problems) == 0 {
			continue
		}
		s.found(Damage{Kind: DamageImage, Repository: repo.name, Digest: d, Problems: rev.problems, Tags: rs.reachingTags(d, tagsOf)})
	}
	return nil
}

// reachingTags returns the tags that point at d or at an index that
// contains it, sorted.
func (rs *repoScrub) reachingTags(d digest.Digest, tagsOf map[digest.Digest][]string) []string {
	var out []string
	seen := map[digest.Digest]bool{}
	var visit func(digest.Digest)
	visit = func(x digest.Digest) {
		if seen[x] {
			return
		}
		seen[x] = true
		out = append(out, tagsOf[x]...)
		for parent, rev := range rs.revisions {
			if slices.Contains(rev.children, x) {
				visit(parent)
			}
		}
	}
	visit(d)
	sort.Strings(out)
	return slices.Compact(out)
}

func (rs *repoScrub) checkLayerLinks(ctx context.Context) error {
	ds, err := rs.subdigests(ctx, path.Join(repoPath(rs.repo.name), "_layers"))
	if err != nil {
		return err
	}
	for _, d := range ds {
		_, problem, err := rs.readLink(ctx, layerLinkPath(rs.repo.name, d), d)
		if err != nil {
			return err
		}
		if problem == "missing" {
			continue // a directory without a link is no link
		}
		state, err := rs.blobState(ctx, d)
		if err != nil {
			return err
		}
		if problem == "" && state == "" {
			rs.layers[d] = true
			continue
		}
		if _, bad := rs.bad[d]; problem == "" && bad && !rs.opts.Repair {
			// A sound link to a damaged blob: the blob's damage, and
			// the images', say it all.
			continue
		}
		var problems []string
		if problem != "" {
			problems = append(problems, problem)
		}
		if state != "" {
			problems = append(problems, "the blob is "+state)
		}
		done, err := rs.fixLink(ctx, layerLinkDir(rs.repo.name, d), "link", d, state == "")
		if err != nil {
			return err
		}
		if done == "rewritten" {
			rs.layers[d] = true
		} else if problem != "" {
			rs.tornLayers[d] = problem
		}
		rs.found(Damage{Kind: DamageLink, Link: "layer", Repository: rs.repo.name, Digest: d, Problems: problems, Repaired: done})
	}
	return nil
}

func (rs *repoScrub) checkRevisionLinks(ctx context.Context) error {
	ds, err := rs.subdigests(ctx, revisionsRoot(rs.repo.name))
	if err != nil {
		return err
	}
	for _, d := range ds {
		_, problem, err := rs.readLink(ctx, revisionLinkPath(rs.repo.name, d), d)
		if err != nil {
			return err
		}
		if problem == "missing" {
			continue // not a revision (the reference deletes only the link)
		}
		rs.report.Manifests++
		state, err := rs.blobState(ctx, d)
		if err != nil {
			return err
		}
		rev := &revision{}
		rs.revisions[d] = rev
		if state != "" {
			// The manifest is damaged or gone: the image's damage,
			// reported with its tags. Its link names nothing (it is
			// removed, with the tags that point at it).
			rev.problems = []string{"manifest is " + state}
			rev.checked = true
			if rs.opts.Repair {
				if _, err := rs.fixLink(ctx, revisionDir(rs.repo.name, d), "link", d, false); err != nil {
					return err
				}
				rev.removed = true
				rev.problems[0] += " [revision link removed]"
			}
			if problem != "" {
				done := ""
				if rev.removed {
					done = "removed"
				}
				rs.found(Damage{Kind: DamageLink, Link: "revision", Repository: rs.repo.name, Digest: d, Problems: []string{problem}, Repaired: done})
			}
			continue
		}
		if problem == "" {
			continue
		}
		// A torn link to a whole manifest: pulls by digest fail until it
		// is written again from its path.
		done, err := rs.fixLink(ctx, revisionDir(rs.repo.name, d), "link", d, true)
		if err != nil {
			return err
		}
		rs.found(Damage{Kind: DamageLink, Link: "revision", Repository: rs.repo.name, Digest: d, Problems: []string{problem}, Repaired: done})
	}
	return nil
}

// revisionNow tells whether d is a revision of the repository now: one
// listed at the start of the check, or one pushed since (an online scrub
// races with pushes, and a manifest pushed meanwhile is no damage). The
// revision is added to those known when it is new.
func (rs *repoScrub) revisionNow(ctx context.Context, d digest.Digest) (*revision, error) {
	if rev, ok := rs.revisions[d]; ok {
		return rev, nil
	}
	if d.Validate() != nil {
		return nil, nil
	}
	_, problem, err := rs.readLink(ctx, revisionLinkPath(rs.repo.name, d), d)
	if err != nil || problem != "" {
		return nil, err
	}
	state, err := rs.blobState(ctx, d)
	if err != nil || state != "" {
		return nil, err
	}
	rev := &revision{}
	rs.revisions[d] = rev
	return rev, rs.checkManifest(ctx, d)
}

// linkedNow tells whether blob d is linked into the repository now (see
// revisionNow).
func (rs *repoScrub) linkedNow(ctx context.Context, d digest.Digest) (bool, error) {
	if rs.layers[d] {
		return true, nil
	}
	_, problem, err := rs.readLink(ctx, layerLinkPath(rs.repo.name, d), d)
	if err != nil || problem != "" {
		return false, err
	}
	rs.layers[d] = true
	return true, nil
}

// scrubManifest holds every field through which a manifest references
// content, with what tells required references from optional ones.
type scrubManifest struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Config        *struct {
		Digest digest.Digest `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest digest.Digest `json:"digest"`
		URLs   []string      `json:"urls"`
	} `json:"layers"`
	Blobs []struct {
		Digest digest.Digest `json:"digest"`
	} `json:"blobs"`
	Manifests []struct {
		Digest digest.Digest `json:"digest"`
	} `json:"manifests"`
	FSLayers []struct {
		BlobSum digest.Digest `json:"blobSum"`
	} `json:"fsLayers"`
}

// checkManifest checks revision d: its content, what it references, and
// (for an index) its children, recursively.
func (rs *repoScrub) checkManifest(ctx context.Context, d digest.Digest) error {
	rev := rs.revisions[d]
	if rev.checked || rev.visiting {
		return nil
	}
	rev.visiting = true
	defer func() { rev.visiting, rev.checked = false, true }()
	state, err := rs.blobState(ctx, d)
	if err != nil {
		return err
	}
	if state != "" {
		rev.problems = append(rev.problems, "manifest is "+state)
		return nil
	}
	rc, err := rs.r.driver.Reader(ctx, blobDataPath(d), 0)
	if err != nil {
		if isNotFound(err) {
			rev.problems = append(rev.problems, "manifest missing from the store")
			return nil
		}
		return storageErr(err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxStoredManifestBytes+1))
	rc.Close()
	if err != nil {
		return storageErr(err)
	}
	if len(b) > maxStoredManifestBytes {
		rev.problems = append(rev.problems, fmt.Sprintf("manifest larger than %d bytes", maxStoredManifestBytes))
		return nil
	}
	var m scrubManifest
	if err := json.Unmarshal(b, &m); err != nil {
		rev.problems = append(rev.problems, "manifest is not JSON")
		return nil
	}
	need := func(what string, bd digest.Digest) error {
		if bd.Validate() != nil {
			rev.problems = append(rev.problems, fmt.Sprintf("%s %q is not a digest", what, clip(string(bd))))
			return nil
		}
		state, err := rs.blobState(ctx, bd)
		if err != nil {
			return err
		}
		if state != "" {
			rev.problems = append(rev.problems, fmt.Sprintf("%s %s is %s", what, bd, state))
			return nil
		}
		linked, err := rs.linkedNow(ctx, bd)
		if err != nil {
			return err
		}
		switch torn, isTorn := rs.tornLayers[bd]; {
		case linked:
		case isTorn:
			rev.problems = append(rev.problems, fmt.Sprintf("%s %s is linked by a damaged link (%s)", what, bd, torn))
		default:
			rev.problems = append(rev.problems, fmt.Sprintf("%s %s is not linked into the repository", what, bd))
		}
		return nil
	}
	if m.Config != nil {
		if err := need("config", m.Config.Digest); err != nil {
			return err
		}
	}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			continue // foreign: pulled from elsewhere
		}
		if err := need("layer", l.Digest); err != nil {
			return err
		}
	}
	for _, l := range m.Blobs {
		if err := need("blob", l.Digest); err != nil {
			return err
		}
	}
	for _, l := range m.FSLayers {
		if err := need("layer", l.BlobSum); err != nil {
			return err
		}
	}
	for _, c := range m.Manifests {
		if c.Digest.Validate() != nil {
			rev.problems = append(rev.problems, fmt.Sprintf("child manifest %q is not a digest", clip(string(c.Digest))))
			continue
		}
		rev.children = append(rev.children, c.Digest)
		child, err := rs.revisionNow(ctx, c.Digest)
		if err != nil {
			return err
		}
		if child == nil {
			rev.problems = append(rev.problems, fmt.Sprintf("child manifest %s is not in the repository", c.Digest))
			continue
		}
		if err := rs.checkManifest(ctx, c.Digest); err != nil {
			return err
		}
		if len(child.problems) > 0 {
			rev.problems = append(rev.problems, fmt.Sprintf("child manifest %s is damaged", c.Digest))
		}
	}
	return nil
}

// checkTags checks every tag's current link and history, and returns the
// tags by the manifest they point at.
func (rs *repoScrub) checkTags(ctx context.Context) (map[digest.Digest][]string, error) {
	tagsOf := map[digest.Digest][]string{}
	root := tagsRoot(rs.repo.name)
	dirs, err := rs.r.driver.List(ctx, root)
	if isNotFound(err) {
		return tagsOf, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	for _, dir := range dirs {
		tag := path.Base(dir)
		if !ValidTag(tag) {
			continue
		}
		rs.report.Tags++
		history, err := rs.subdigests(ctx, path.Join(tagDir(rs.repo.name, tag), "index"))
		if err != nil {
			return nil, err
		}
		for _, h := range history {
			_, problem, err := rs.readLink(ctx, tagIndexPath(rs.repo.name, tag, h), h)
			if err != nil {
				return nil, err
			}
			if problem == "" || problem == "missing" {
				continue
			}
			done, err := rs.fixLink(ctx, path.Dir(tagIndexPath(rs.repo.name, tag, h)), "link", h, true)
			if err != nil {
				return nil, err
			}
			rs.found(Damage{Kind: DamageLink, Link: "tag history", Repository: rs.repo.name, Digest: h, Tag: tag, Problems: []string{problem}, Repaired: done})
		}
		target, problem, err := rs.readLink(ctx, tagCurrentPath(rs.repo.name, tag), "")
		if err != nil {
			return nil, err
		}
		if problem == "" {
			rev, err := rs.revisionNow(ctx, target)
			if err != nil {
				return nil, err
			}
			if rev != nil {
				tagsOf[target] = append(tagsOf[target], tag)
				if !rev.removed {
					continue
				}
				problem = fmt.Sprintf("points at %s, whose damaged manifest was removed", target)
			} else {
				problem = fmt.Sprintf("points at %s, which is no manifest of the repository", target)
			}
		} else if problem == "missing" {
			empty, err := rs.emptyTree(ctx, tagDir(rs.repo.name, tag))
			if err != nil {
				return nil, err
			}
			if empty {
				rs.leftover(ctx, tagDir(rs.repo.name, tag))
				continue
			}
			problem = "has no current link"
		}
		// A tag whose target cannot be told, or is not there, is removed
		// whole (as DELETE of the tag would): listing it would promise
		// what GET cannot serve.
		done := ""
		if rs.opts.Repair {
			if err := rs.r.driver.Delete(ctx, tagDir(rs.repo.name, tag)); err != nil && !isNotFound(err) {
				return nil, storageErr(err)
			}
			done = "removed"
		}
		rs.found(Damage{Kind: DamageTag, Repository: rs.repo.name, Tag: tag, Digest: target, Problems: []string{problem}, Repaired: done})
	}
	return tagsOf, nil
}

// checkReferrers checks the referrer links: each names a manifest of the
// repository.
func (rs *repoScrub) checkReferrers(ctx context.Context) error {
	subjects, err := rs.subdigests(ctx, path.Join(repoPath(rs.repo.name), "_referrers"))
	if err != nil {
		return err
	}
	for _, subject := range subjects {
		refs, err := rs.subdigests(ctx, referrersDir(rs.repo.name, subject))
		if err != nil {
			return err
		}
		for _, d := range refs {
			_, problem, err := rs.readLink(ctx, referrerLinkPath(rs.repo.name, subject, d), d)
			if err != nil {
				return err
			}
			if problem == "missing" {
				continue
			}
			rev, err := rs.revisionNow(ctx, d)
			if err != nil {
				return err
			}
			ok := rev != nil && !rev.removed
			if problem == "" && ok {
				continue
			}
			problems := []string{}
			if problem != "" {
				problems = append(problems, problem)
			}
			if !ok {
				problems = append(problems, "names no manifest of the repository")
			}
			done, err := rs.fixLink(ctx, path.Dir(referrerLinkPath(rs.repo.name, subject, d)), "link", d, ok)
			if err != nil {
				return err
			}
			rs.found(Damage{Kind: DamageLink, Link: "referrer", Repository: rs.repo.name, Digest: d, Problems: problems, Repaired: done})
		}
	}
	return nil
}

// emptyTree reports whether the directory p holds no file, at any depth.
func (rs *repoScrub) emptyTree(ctx context.Context, p string) (bool, error) {
	empty := true
	err := rs.r.driver.Walk(ctx, p, func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			empty = false
			return driver.ErrSkipDir
		}
		return nil
	})
	if err != nil && !isNotFound(err) && empty {
		return false, storageErr(err)
	}
	return empty, nil
}

// leftover counts (and with Repair removes) the directories an
// interrupted push left.
func (rs *repoScrub) leftover(ctx context.Context, p string) {
	rs.report.Leftovers++
	if rs.opts.Repair {
		_ = rs.r.driver.Delete(ctx, p)
	}
}
