package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
)

// Media types the client reads.
const (
	MediaTypeOCIManifest    = storage.MediaTypeOCIManifest
	MediaTypeOCIIndex       = storage.MediaTypeOCIIndex
	MediaTypeDockerManifest = storage.MediaTypeDockerManifest
	MediaTypeDockerList     = storage.MediaTypeDockerList
	mediaTypeSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeEmpty          = "application/vnd.oci.empty.v1+json"
)

// ManifestAccept is the Accept header for manifests: every manifest type,
// indexes included. A HEAD without the index types is what makes a
// registry answer with another digest (a converted, single-platform one,
// or none) than the one a delete needs.
var ManifestAccept = strings.Join([]string{
	MediaTypeOCIIndex, MediaTypeOCIManifest, MediaTypeDockerList, MediaTypeDockerManifest,
	mediaTypeSchema1Signed, mediaTypeSchema1,
}, ", ")

// IsIndex reports whether mt is an image index (manifest list).
func IsIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// maxManifest bounds a manifest read (registries refuse bigger ones: 4 MiB
// in distribution and registryd).
const maxManifest = 8 << 20

// Repositories lists every repository of host, following the catalog's
// pagination (each page n=1000, then Link rel="next" as the registry says).
func (c *Client) Repositories(ctx context.Context, host string) ([]string, error) {
	type page struct {
		Repositories []string `json:"repositories"`
	}
	return paginate(ctx, c, request{host: host, path: "/v2/_catalog", query: url.Values{"n": {"1000"}}, scopes: []string{catalogScope}},
		func(p *page) []string { return p.Repositories })
}

// Tags lists the tags of repository r, following pagination. A repository
// that does not exist is an error IsNotFound recognizes.
func (c *Client) Tags(ctx context.Context, r Reference) ([]string, error) {
	type page struct {
		Tags []string `json:"tags"`
	}
	return paginate(ctx, c, request{host: r.Host, path: "/v2/" + r.Repository + "/tags/list", query: url.Values{"n": {"1000"}}, scopes: []string{pullScope(r.Repository)}},
		func(p *page) []string { return p.Tags })
}

// paginate GETs a paginated JSON listing from r and every page its Link
// headers lead to, collecting what items finds in each page.
func paginate[P, E any](ctx context.Context, c *Client, r request, items func(*P) []E) ([]E, error) {
	var all []E
	for r.path != "" {
		var page P
		h, err := c.getJSON(ctx, r, &page)
		if err != nil {
			return nil, err
		}
		got := items(&page)
		all = append(all, got...)
		next, q := nextLink(h)
		if next != "" && len(got) == 0 {
			break // a registry that keeps linking to empty pages
		}
		r.path, r.query = next, q
	}
	return all, nil
}

// Descriptor is what a HEAD of a manifest says.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// Head resolves a reference to its manifest's descriptor: HEAD with every
// manifest media type accepted; if the registry sends no
// Docker-Content-Digest, a GET, whose body's digest is the answer.
func (c *Client) Head(ctx context.Context, r Reference) (Descriptor, error) {
	resp, err := c.do(ctx, request{method: http.MethodHead, host: r.Host, path: "/v2/" + r.Repository + "/manifests/" + r.Ref(),
		header: http.Header{"Accept": {ManifestAccept}}, scopes: []string{pullScope(r.Repository)}})
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	d := Descriptor{MediaType: mediaTypeOf(resp.Header), Size: resp.ContentLength}
	if dg, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
		d.Digest = dg
	}
	if r.Digest != "" {
		d.Digest = r.Digest // by digest, the digest is what was asked
	}
	if d.Digest == "" {
		m, err := c.Manifest(ctx, r)
		if err != nil {
			return Descriptor{}, err
		}
		return m.Descriptor, nil
	}
	return d, nil
}

func mediaTypeOf(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.TrimSpace(mt)
}

// Manifest is a manifest or index as served: its exact bytes and what is
// parsed from them.
type Manifest struct {
	Descriptor Descriptor
	Raw        []byte
	ManifestBody
}

// ManifestBody holds the fields of an image manifest or of an index (the
// other kind's are empty), and schema 1's layers.
type ManifestBody struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	ArtifactType  string               `json:"artifactType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	Subject       *ocispec.Descriptor  `json:"subject,omitempty"`
	Annotations   map[string]string    `json:"annotations,omitempty"`
	FSLayers      []struct {
		BlobSum digest.Digest `json:"blobSum"`
	} `json:"fsLayers,omitempty"`
}

// IsIndex reports whether m is an index.
func (m *Manifest) IsIndex() bool {
	return IsIndex(m.Descriptor.MediaType) || (m.Descriptor.MediaType == "" && len(m.Manifests) > 0)
}

// Manifest GETs the manifest r names. Its digest is computed from the bytes
// (the bytes are what a delete and a pull by digest address) and, when r
// names a digest, checked against it.
func (c *Client) Manifest(ctx context.Context, r Reference) (*Manifest, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, host: r.Host, path: "/v2/" + r.Repository + "/manifests/" + r.Ref(),
		header: http.Header{"Accept": {ManifestAccept}}, scopes: []string{pullScope(r.Repository)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", r, err)
	}
	m := &Manifest{Raw: b}
	if err := json.Unmarshal(b, &m.ManifestBody); err != nil {
		return nil, fmt.Errorf("manifest %s: not JSON: %w", r, err)
	}
	alg := digest.SHA256
	if r.Digest != "" {
		alg = r.Digest.Algorithm()
	}
	m.Descriptor = Descriptor{MediaType: mediaTypeOf(resp.Header), Digest: alg.FromBytes(b), Size: int64(len(b))}
	if m.Descriptor.MediaType == "" || m.Descriptor.MediaType == "application/json" {
		m.Descriptor.MediaType = m.MediaType
	}
	if r.Digest != "" && m.Descriptor.Digest != r.Digest {
		return nil, fmt.Errorf("manifest %s: the registry sent content with digest %s", r, m.Descriptor.Digest)
	}
	return m, nil
}

// Blob GETs a small blob (an image config) of at most limit bytes, checking
// its digest.
func (c *Client) Blob(ctx context.Context, r Reference, d digest.Digest, limit int64) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, host: r.Host, path: "/v2/" + r.Repository + "/blobs/" + string(d),
		scopes: []string{pullScope(r.Repository)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if d.Algorithm().Available() && d.Algorithm().FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s: the registry sent other content", d)
	}
	return b, nil
}

// Referrers lists the manifests whose subject is d in repository r: the
// referrers API, or, where a registry lacks it (404), the tag schema's
// sha256-<hex> tag. ok is false when neither exists.
func (c *Client) Referrers(ctx context.Context, r Reference, d digest.Digest) ([]ocispec.Descriptor, error) {
	var idx ocispec.Index
	_, err := c.getJSON(ctx, request{host: r.Host, path: "/v2/" + r.Repository + "/referrers/" + string(d),
		scopes: []string{pullScope(r.Repository)}}, &idx)
	if err == nil {
		return idx.Manifests, nil
	}
	if !IsNotFound(err) && StatusOf(err) != http.StatusBadRequest && StatusOf(err) != http.StatusMethodNotAllowed {
		return nil, err
	}
	// The fallback: the referrers tag.
	m, err := c.Manifest(ctx, r.WithTag(ReferrersTag(d)))
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return m.Manifests, nil
}

// ReferrersTag is the tag schema's tag for the referrers of d.
func ReferrersTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// DeleteManifest sends DELETE /v2/REPO/manifests/<ref> (a digest, or a tag
// where the registry supports the OCI delete by tag).
func (c *Client) DeleteManifest(ctx context.Context, r Reference) error {
	resp, err := c.do(ctx, request{method: http.MethodDelete, host: r.Host, path: "/v2/" + r.Repository + "/manifests/" + r.Ref(),
		scopes: []string{pullDeleteScope(r.Repository)}, ok: []int{http.StatusAccepted, http.StatusOK, http.StatusNoContent}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PutManifest uploads a manifest under r's tag or digest and returns the
// digest the registry stored.
func (c *Client) PutManifest(ctx context.Context, r Reference, mediaType string, body []byte) (digest.Digest, error) {
	resp, err := c.do(ctx, request{method: http.MethodPut, host: r.Host, path: "/v2/" + r.Repository + "/manifests/" + r.Ref(),
		header: http.Header{"Content-Type": {mediaType}}, body: body,
		scopes: []string{pushScope(r.Repository)}, ok: []int{http.StatusCreated, http.StatusOK, http.StatusAccepted}})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	d := digest.FromBytes(body)
	if got, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil && got != d {
		return got, nil
	}
	return d, nil
}

// PutBlob uploads a small blob into repository r, unless the registry has
// it there already: a POST, then a PUT with the whole body (the two-step
// monolithic upload every registry supports).
func (c *Client) PutBlob(ctx context.Context, r Reference, body []byte) (digest.Digest, error) {
	d := digest.FromBytes(body)
	scopes := []string{pushScope(r.Repository)}
	if resp, err := c.do(ctx, request{method: http.MethodHead, host: r.Host, path: "/v2/" + r.Repository + "/blobs/" + string(d), scopes: scopes}); err == nil {
		resp.Body.Close()
		return d, nil
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, host: r.Host, path: "/v2/" + r.Repository + "/blobs/uploads/",
		scopes: scopes, ok: []int{http.StatusAccepted}})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", fmt.Errorf("upload to %s: no usable Location in the answer", r.Repository)
	}
	q := loc.Query()
	q.Set("digest", string(d))
	resp, err = c.do(ctx, request{method: http.MethodPut, host: r.Host, path: loc.Path, query: q,
		header: http.Header{"Content-Type": {"application/octet-stream"}, "Content-Length": {strconv.Itoa(len(body))}},
		body:   body, scopes: scopes, ok: []int{http.StatusCreated}})
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return d, nil
}

// IsUnsupported reports whether err is the registry refusing an operation
// it does not have (405, UNSUPPORTED), or a delete by tag refused as an
// invalid digest (distribution 2.x answers DIGEST_INVALID or 400).
func IsUnsupported(err error) bool {
	s := StatusOf(err)
	if s == http.StatusMethodNotAllowed || s == http.StatusNotImplemented {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Has(errcode.Unsupported) || e.Has(errcode.DigestInvalid) || (s == http.StatusBadRequest && len(e.Errors) == 0)
	}
	return false
}
