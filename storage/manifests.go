package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage/driver"
)

// Manifest media types registryd stores.
const (
	MediaTypeOCIManifest    = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex       = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

func isManifestType(mt string) bool {
	return mt == MediaTypeOCIManifest || mt == MediaTypeDockerManifest
}

// Manifest is a stored manifest: its exact bytes and what was parsed from them.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Content   []byte
	// Subject is the digest of the manifest's subject, if any.
	Subject digest.Digest
}

// parsedManifest holds the fields of any manifest or index registryd reads.
type parsedManifest struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
	FSLayers      json.RawMessage      `json:"fsLayers"`
}

func manifestInvalid(format string, args ...any) error {
	return errcode.Newf(errcode.ManifestInvalid, "manifest invalid: "+format, args...)
}

func manifestUnknown(ref string) error {
	return errcode.New(errcode.ManifestUnknown).WithDetail(map[string]string{"reference": clip(ref)})
}

// parseManifest parses a manifest body and settles its media type from the
// body's mediaType field, the request's Content-Type and its structure.
func parseManifest(content []byte, contentType string) (*parsedManifest, string, error) {
	var m parsedManifest
	if err := json.Unmarshal(content, &m); err != nil {
		return nil, "", manifestInvalid("not valid JSON: %v", err)
	}
	if m.SchemaVersion == nil {
		return nil, "", manifestInvalid("schemaVersion is missing")
	}
	if *m.SchemaVersion == 1 || m.MediaType == mediaTypeSchema1 || m.MediaType == mediaTypeSchema1Signed || len(m.FSLayers) > 0 {
		return nil, "", manifestInvalid("Docker image manifest schema 1 is deprecated and not supported; push with schema 2 or OCI (docker and other current clients do by default)")
	}
	if *m.SchemaVersion != 2 {
		return nil, "", manifestInvalid("schemaVersion must be 2, got %d", *m.SchemaVersion)
	}
	ct := contentType
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	mt := m.MediaType
	if mt == "" {
		// OCI allows the field to be absent; the structure tells which one it is.
		if m.Manifests != nil {
			mt = MediaTypeOCIIndex
		} else {
			mt = MediaTypeOCIManifest
		}
		if (isIndexType(ct) || isManifestType(ct)) && ct != mt {
			if isIndexType(ct) == isIndexType(mt) && ct != MediaTypeDockerManifest && ct != MediaTypeDockerList {
				mt = ct
			} else {
				return nil, "", manifestInvalid("Content-Type %q does not match the manifest's structure (%s)", clip(ct), mt)
			}
		}
	} else if ct != "" && (isIndexType(ct) || isManifestType(ct)) && ct != mt {
		return nil, "", manifestInvalid("Content-Type %q does not match the manifest's mediaType %q", clip(ct), clip(mt))
	}
	switch {
	case isManifestType(mt):
		if m.Config == nil {
			return nil, "", manifestInvalid("an image manifest needs a config descriptor")
		}
		if m.Manifests != nil {
			return nil, "", manifestInvalid("an image manifest cannot have a manifests list")
		}
		if err := checkDescriptor("config", *m.Config); err != nil {
			return nil, "", err
		}
		for i, l := range m.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return nil, "", err
			}
		}
	case isIndexType(mt):
		if m.Config != nil || m.Layers != nil {
			return nil, "", manifestInvalid("an index cannot have config or layers")
		}
		for i, c := range m.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), c); err != nil {
				return nil, "", err
			}
		}
	default:
		return nil, "", manifestInvalid("unsupported manifest media type %q", clip(mt))
	}
	if m.Subject != nil {
		if err := checkDescriptor("subject", *m.Subject); err != nil {
			return nil, "", err
		}
	}
	return &m, mt, nil
}

func checkDescriptor(where string, d ocispec.Descriptor) error {
	if _, err := digest.Parse(string(d.Digest)); err != nil {
		return manifestInvalid("%s: invalid digest %q", where, clip(string(d.Digest)))
	}
	if d.Size < 0 {
		return manifestInvalid("%s: negative size", where)
	}
	if d.MediaType == "" {
		return manifestInvalid("%s: mediaType is required", where)
	}
	return nil
}

// GetManifest resolves a tag or digest to the stored manifest.
func (repo *Repository) GetManifest(ctx context.Context, ref string) (*Manifest, error) {
	d, err := repo.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if repo.gcManifestSwept(ctx, d) {
		return nil, manifestUnknown(ref)
	}
	b, err := repo.reg.getContent(ctx, d)
	if isNotFound(err) {
		return nil, manifestUnknown(ref)
	}
	if err != nil {
		return nil, storageErr(err)
	}
	// The bytes are immutable: their media type and subject are parsed
	// once while they stay in the cache.
	if mt, subject, ok := repo.reg.manifests.manifestInfo(d); ok {
		return &Manifest{Digest: d, MediaType: mt, Content: b, Subject: subject}, nil
	}
	m, mt, err := parseStored(b)
	if err != nil {
		return nil, err
	}
	out := &Manifest{Digest: d, MediaType: mt, Content: b}
	if m.Subject != nil {
		out.Subject = m.Subject.Digest
	}
	repo.reg.manifests.setManifestInfo(d, out.MediaType, out.Subject)
	return out, nil
}

// parseStored reads back the media type of stored bytes, which passed
// validation when they were put (or were written by the reference).
func parseStored(b []byte) (*parsedManifest, string, error) {
	var m parsedManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", errcode.Newf(errcode.Unknown, "stored manifest is not JSON").Wrap(err)
	}
	mt := m.MediaType
	if mt == "" {
		if m.Manifests != nil {
			mt = MediaTypeOCIIndex
		} else if m.SchemaVersion != nil && *m.SchemaVersion == 1 {
			mt = mediaTypeSchema1Signed
		} else {
			mt = MediaTypeOCIManifest
		}
	}
	return &m, mt, nil
}

// resolve turns a reference into the digest of a revision of this repository.
func (repo *Repository) resolve(ctx context.Context, ref string) (digest.Digest, error) {
	var d digest.Digest
	if IsDigest(ref) {
		var err error
		if d, err = ParseDigest(ref); err != nil {
			return "", err
		}
	} else {
		if !ValidTag(ref) {
			return "", manifestUnknown(ref)
		}
		var err error
		d, err = repo.reg.readLink(ctx, tagCurrentPath(repo.name, ref))
		if isNotFound(err) {
			return "", manifestUnknown(ref)
		}
		if err != nil {
			return "", storageErr(err)
		}
	}
	// The revision link is what makes a manifest part of the repository;
	// a tag left pointing at a deleted revision resolves to nothing.
	linked, err := repo.reg.readLink(ctx, revisionLinkPath(repo.name, d))
	if isNotFound(err) || (err == nil && linked != d) {
		return "", manifestUnknown(ref)
	}
	if err != nil {
		return "", storageErr(err)
	}
	return d, nil
}

// PutManifest validates and stores a manifest. ref is the tag or digest of
// the URL; tags are further tags to point at it (the ?tag= parameters).
func (repo *Repository) PutManifest(ctx context.Context, ref, contentType string, content []byte, tags []string) (*Manifest, error) {
	if int64(len(content)) > repo.reg.maxManifest {
		return nil, manifestTooLarge(repo.reg.maxManifest)
	}
	alg := digest.SHA256
	var want digest.Digest
	if IsDigest(ref) {
		var err error
		if want, err = ParseDigest(ref); err != nil {
			return nil, err
		}
		alg = want.Algorithm()
	} else {
		if err := ValidateTag(ref); err != nil {
			return nil, err
		}
		tags = append([]string{ref}, tags...)
	}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
	}
	d := alg.FromBytes(content)
	if want != "" && want != d {
		return nil, errcode.Newf(errcode.DigestInvalid, "manifest digest %s does not match the reference %s", d, want).WithDetail(map[string]string{"digest": want.String()})
	}
	m, mt, err := parseManifest(content, contentType)
	if err != nil {
		return nil, err
	}
	refs, children := manifestRefs(m, mt)
	t, err := repo.gcManifestTicket(ctx, d, refs, children)
	if err != nil {
		return nil, err
	}
	if err := repo.checkReferences(ctx, m, mt); err != nil {
		return nil, err
	}
	// One driver batch (driver.Batch): the content, the revision link,
	// the referrer link and the tags' index links, then, once those are
	// durable, the tags' push records and current links. A tag never
	// names a manifest that a crash could take away.
	reg := repo.reg
	listed, err := reg.beforeRevision(ctx, repo.name)
	if err != nil {
		return nil, err
	}
	ops := []driver.BatchOp{reg.contentOp(ctx, d, content), linkPut(revisionLinkPath(repo.name, d), d)}
	out := &Manifest{Digest: d, MediaType: mt, Content: content}
	if m.Subject != nil {
		out.Subject = m.Subject.Digest
		ops = append(ops, linkPut(referrerLinkPath(repo.name, m.Subject.Digest, d), d))
	}
	tagOps, err := repo.tagOps(ctx, tags, d)
	if err != nil {
		return nil, err
	}
	// The online collector's protocol: the whole batch is the commit that
	// relies on the ticket's decision (the content, every reference, the
	// tags), so the decision is checked right before it and its age right
	// after it.
	if err := t.beforeCommit(ctx); err != nil {
		if swept(err) {
			return nil, errcode.Newf(errcode.ManifestBlobUnknown, "%s is not in repository %s (it was garbage collected; push it again)", err.(errGCSwept).d, repo.name).
				WithDetail(map[string]string{"digest": err.(errGCSwept).d.String()})
		}
		return nil, err
	}
	if err := driver.Batch(ctx, reg.driver, append(ops, tagOps...)...); err != nil {
		return nil, storageErr(err)
	}
	// The protocol's age check measures the batch alone; the catalog
	// marker follows the revision whatever it says (the revision is there).
	late := t.afterCommit(ctx)
	if listed != nil {
		listed(ctx) // the catalog index's marker, after the revision (catalogindex.go)
	}
	if late != nil {
		return nil, late
	}
	reg.manifests.add(d, content)
	reg.invalidateSizes(repo.name)
	// The manifest and its tags are stored: a change log entry that cannot
	// be written (a full disk) must not turn that into an error the client
	// retries; the other instances see the change at their periodic
	// re-read instead (noteChange).
	_ = reg.noteChange(ctx, repo.name, tags, false)
	return out, nil
}

// manifestRefs is what a manifest being put relies on, for the online
// collector's protocol: its config and layers (not those with URLs, which
// clients fetch elsewhere) and its children.
func manifestRefs(m *parsedManifest, mt string) (refs, children []digest.Digest) {
	if isIndexType(mt) {
		for _, c := range m.Manifests {
			if d, err := digest.Parse(string(c.Digest)); err == nil {
				children = append(children, d)
			}
		}
		return children, children
	}
	for i, l := range append([]ocispec.Descriptor{*m.Config}, m.Layers...) {
		if i > 0 && len(l.URLs) > 0 {
			continue
		}
		if d, err := digest.Parse(string(l.Digest)); err == nil {
			refs = append(refs, d)
		}
	}
	return refs, nil
}

func manifestTooLarge(limit int64) error {
	return errcode.Newf(errcode.SizeInvalid, "manifest is larger than the limit of %d bytes", limit).WithStatus(413)
}

// checkReferences makes sure everything the manifest points at can be
// pulled from this repository: blobs linked here, child manifests stored
// here. Layers with URLs (non-distributable, foreign) are fetched from
// elsewhere by clients and are not required. The subject need not exist.
func (repo *Repository) checkReferences(ctx context.Context, m *parsedManifest, mt string) error {
	missing := func(d digest.Digest, what string) error {
		return errcode.Newf(errcode.ManifestBlobUnknown, "%s %s is not in repository %s", what, d, repo.name).WithDetail(map[string]string{"digest": d.String()})
	}
	if isIndexType(mt) {
		for _, c := range m.Manifests {
			if _, err := repo.resolve(ctx, string(c.Digest)); err != nil {
				if errcode.Is(err, errcode.ManifestUnknown) || errcode.Is(err, errcode.DigestInvalid) {
					return missing(c.Digest, "manifest")
				}
				return err
			}
		}
		return nil
	}
	descs := append([]ocispec.Descriptor{*m.Config}, m.Layers...)
	for i, l := range descs {
		if i > 0 && len(l.URLs) > 0 {
			continue
		}
		what := "layer"
		if i == 0 {
			what = "config blob"
		}
		if _, err := ParseDigest(string(l.Digest)); err != nil {
			return missing(l.Digest, what)
		}
		if _, err := repo.statBlob(ctx, l.Digest); err != nil {
			if errcode.Is(err, errcode.BlobUnknown) {
				return missing(l.Digest, what)
			}
			return err
		}
	}
	return nil
}

func (repo *Repository) tag(ctx context.Context, tag string, d digest.Digest) error {
	ops, err := repo.tagOps(ctx, []string{tag}, d)
	if err != nil {
		return err
	}
	return storageErr(driver.Batch(ctx, repo.reg.driver, ops...))
}

// tagOps are the batch operations that point tags at d, starting with a
// barrier: what comes before them in the batch is durable before any tag
// moves. Within the part after it, renames happen in the order given.
func (repo *Repository) tagOps(ctx context.Context, tags []string, d digest.Digest) ([]driver.BatchOp, error) {
	reg := repo.reg
	tags = slices.Compact(slices.Sorted(slices.Values(tags))) // one operation per path
	var index, after []driver.BatchOp
	for _, tag := range tags {
		rec, err := repo.pushedRecord(d)
		if err != nil {
			return nil, storageErr(err)
		}
		current, pushed, idx := linkPut(tagCurrentPath(repo.name, tag), d), driver.PutOp(tagPushedPath(repo.name, tag), rec), linkPut(tagIndexPath(repo.name, tag, d), d)
		cur, err := reg.readLink(ctx, tagCurrentPath(repo.name, tag))
		switch {
		case isNotFound(err):
			// A new tag: current first, so that a push failing after it
			// (the storage full or away) leaves a tag that resolves to d,
			// stored whole before, and never a tag directory without
			// current, which tags/list would show and a pull could not
			// serve (a failed batch also removes the directories it made
			// that stayed empty). Only a delete of the tag in the instant
			// between current and the record could still leave one
			// (scrub --repair removes it).
			after = append(after, current, pushed, idx)
		case err != nil || cur != d:
			// The index link first, with the manifest: it records every
			// digest the tag has had, which the reference's garbage
			// collector and registryd's use.
			index = append(index, idx)
			fallthrough
		default:
			// Then the push record and current, even when current
			// already names d (a push is a push): renamed last, current
			// re-creates a tag directory that a concurrent delete removed
			// after the record, so the record is never left alone in a
			// directory tags/list would show (times.go).
			after = append(after, pushed, current)
		}
	}
	ops := append(index, driver.Barrier)
	return append(ops, after...), nil
}

// DeleteManifest removes a manifest revision from the repository, with
// every tag that points at it and its entry in the referrers of its
// subject. The content stays until garbage collection.
func (repo *Repository) DeleteManifest(ctx context.Context, d digest.Digest) error {
	reg := repo.reg
	defer reg.invalidateSizes(repo.name)
	if _, err := repo.resolve(ctx, d.String()); err != nil {
		return err
	}
	tags, err := repo.allTags(ctx)
	if err != nil {
		return err
	}
	var deleted []string
	// Told to the indexes however far the delete got.
	defer func() { _ = reg.noteChange(ctx, repo.name, deleted, false) }()
	for _, t := range tags {
		cur, err := reg.readLink(ctx, tagCurrentPath(repo.name, t))
		if err == nil && cur == d {
			deleted = append(deleted, t)
			if err := reg.driver.Delete(ctx, tagDir(repo.name, t)); err != nil && !isNotFound(err) {
				return storageErr(err)
			}
		}
	}
	if b, err := reg.getContent(ctx, d); err == nil {
		if m, _, err := parseStored(b); err == nil && m.Subject != nil {
			if _, err := digest.Parse(string(m.Subject.Digest)); err == nil {
				err := reg.driver.Delete(ctx, path.Dir(referrerLinkPath(repo.name, m.Subject.Digest, d)))
				if err != nil && !isNotFound(err) {
					return storageErr(err)
				}
			}
		}
	}
	if err := reg.unsure(ctx, repo.name); err != nil {
		return err
	}
	err = reg.driver.Delete(ctx, revisionDir(repo.name, d))
	if isNotFound(err) {
		return manifestUnknown(d.String())
	}
	if err != nil {
		return storageErr(err)
	}
	if err := reg.unsure(ctx, repo.name); err != nil {
		return err
	}
	// Its pull record goes too: pushed again later, it starts unpulled.
	return repo.forgetPulls(ctx, d)
}

// DeleteTag removes one tag; the manifest it pointed at stays.
func (repo *Repository) DeleteTag(ctx context.Context, tag string) (err error) {
	defer repo.reg.invalidateSizes(repo.name)
	if !ValidTag(tag) {
		return manifestUnknown(tag)
	}
	if _, err := repo.reg.driver.Stat(ctx, tagCurrentPath(repo.name, tag)); err != nil {
		if isNotFound(err) {
			return manifestUnknown(tag)
		}
		return storageErr(err)
	}
	// Told to the indexes however far the delete got.
	defer func() { _ = repo.reg.noteChange(ctx, repo.name, []string{tag}, false) }()
	err = repo.reg.driver.Delete(ctx, tagDir(repo.name, tag))
	if isNotFound(err) {
		return manifestUnknown(tag)
	}
	return storageErr(err)
}

func (repo *Repository) allTags(ctx context.Context) ([]string, error) {
	repo.reg.syncWatches(ctx)
	ps, err := repo.reg.list(ctx, tagsRoot(repo.name))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	tags := make([]string, 0, len(ps))
	for _, p := range ps {
		if t := path.Base(p); ValidTag(t) {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// Tags returns up to n tags after last, in lexical order, and whether more
// follow. n < 0 means no limit. A repository that does not exist is
// NAME_UNKNOWN; one that exists with no tags has an empty list. The listing
// comes sorted (and cached for large repositories), so a page costs a
// binary search and the page itself.
func (repo *Repository) Tags(ctx context.Context, last string, n int) ([]string, bool, error) {
	if pl, ok := repo.reg.pager(); ok {
		return repo.tagsPaged(ctx, pl, last, n)
	}
	root := tagsRoot(repo.name)
	repo.reg.syncWatches(ctx)
	ps, err := repo.reg.list(ctx, root)
	if err != nil && !isNotFound(err) {
		return nil, false, storageErr(err)
	}
	if len(ps) == 0 {
		ok, err := repo.Exists(ctx)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": repo.name})
		}
	}
	prefix := root + "/"
	i := 0
	if last != "" {
		i = sort.SearchStrings(ps, prefix+last)
		if i < len(ps) && ps[i] == prefix+last {
			i++
		}
	}
	size := len(ps) - i
	if n >= 0 {
		size = min(size, n)
	}
	tags := make([]string, 0, size)
	for ; i < len(ps); i++ {
		// Children come as prefix+name (the driver's List): cut, not
		// compared, which was a third of a whole list's time.
		t := ps[i]
		if len(t) > len(prefix) && t[len(prefix)-1] == '/' {
			t = t[len(prefix):]
		}
		if !ValidTag(t) {
			continue
		}
		if n >= 0 && len(tags) == n {
			return tags, true, nil
		}
		// A push interrupted between making a new tag's directories and
		// renaming its current link into them (a crash, a full disk)
		// leaves a directory without current: not a tag, since no pull
		// could serve it (scrub counts and removes such leftovers).
		if _, err := repo.reg.driver.Stat(ctx, tagCurrentPath(repo.name, t)); err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, false, storageErr(err)
		}
		tags = append(tags, t)
	}
	return tags, false, nil
}

// Referrers lists the manifests in this repository whose subject is d, as
// descriptors for an OCI image index, filtered by artifactType when given.
func (repo *Repository) Referrers(ctx context.Context, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	reg := repo.reg
	algs, err := reg.driver.List(ctx, referrersDir(repo.name, d))
	if isNotFound(err) {
		return []ocispec.Descriptor{}, nil
	}
	if err != nil {
		return nil, storageErr(err)
	}
	out := []ocispec.Descriptor{}
	for _, a := range algs {
		hexes, err := reg.driver.List(ctx, a)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, storageErr(err)
		}
		for _, h := range hexes {
			rd := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(a)), path.Base(h))
			if rd.Validate() != nil {
				continue
			}
			m, err := repo.GetManifest(ctx, rd.String())
			if err != nil {
				if errcode.Is(err, errcode.ManifestUnknown) {
					continue // deleted since; the link is swept with it
				}
				return nil, err
			}
			pm, _, err := parseStored(m.Content)
			if err != nil {
				continue
			}
			at := pm.ArtifactType
			if at == "" && pm.Config != nil {
				at = pm.Config.MediaType
			}
			if artifactType != "" && at != artifactType {
				continue
			}
			out = append(out, ocispec.Descriptor{
				MediaType:    m.MediaType,
				Digest:       m.Digest,
				Size:         int64(len(m.Content)),
				ArtifactType: at,
				Annotations:  pm.Annotations,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// ErrNotFound reports whether err is one of the "unknown" errors.
func ErrNotFound(err error) bool {
	e := errcode.From(err)
	return e != nil && (e.Code == errcode.ManifestUnknown || e.Code == errcode.BlobUnknown || e.Code == errcode.NameUnknown || e.Code == errcode.BlobUploadUnknown)
}
