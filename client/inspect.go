package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is what `image inspect` shows of a manifest or an index.
type Image struct {
	Reference    string            `json:"reference"`
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     string            `json:"platform,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Size is the image's bytes in the registry: manifest, config and
	// layers; for an index, itself and all its children.
	Size int64 `json:"size"`
	// ManifestSize is the manifest's own bytes.
	ManifestSize int64        `json:"manifestSize"`
	Config       *ImageConfig `json:"config,omitempty"`
	ConfigDigest string       `json:"configDigest,omitempty"`
	ConfigSize   int64        `json:"configSize,omitempty"`
	Layers       []Layer      `json:"layers,omitempty"`
	// Manifests are an index's children, each inspected.
	Manifests []Image    `json:"manifests,omitempty"`
	Subject   string     `json:"subject,omitempty"`
	Referrers []Referrer `json:"referrers"`
	Raw       []byte     `json:"-"`
}

// ImageConfig is the part of an image's configuration people look at.
type ImageConfig struct {
	Created      *time.Time        `json:"created,omitempty"`
	Author       string            `json:"author,omitempty"`
	Architecture string            `json:"architecture,omitempty"`
	OS           string            `json:"os,omitempty"`
	Variant      string            `json:"variant,omitempty"`
	User         string            `json:"user,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	Env          []string          `json:"env,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	History      []History         `json:"history,omitempty"`
}

// History is one step of how the image was built.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"createdBy,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"emptyLayer,omitempty"`
}

// Layer is one layer of an image.
type Layer struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
}

// Referrer is a manifest that refers to another (a signature, an SBOM).
type Referrer struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// maxConfig bounds an image config read.
const maxConfig = 16 << 20

// Inspect reads the manifest r names, its config, its layers and, for an
// index, each child; and the referrers of the top manifest.
func (c *Client) Inspect(ctx context.Context, r Reference) (*Image, error) {
	m, err := c.Manifest(ctx, r)
	if err != nil {
		return nil, err
	}
	img, err := c.inspectManifest(ctx, r, m, 0)
	if err != nil {
		return nil, err
	}
	img.Reference = r.String()
	img.Raw = m.Raw
	refs, err := c.Referrers(ctx, r, m.Descriptor.Digest)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", m.Descriptor.Digest, err)
	}
	img.Referrers = []Referrer{}
	for _, d := range refs {
		img.Referrers = append(img.Referrers, Referrer{Digest: d.Digest, MediaType: d.MediaType, ArtifactType: d.ArtifactType, Size: d.Size, Annotations: d.Annotations})
	}
	return img, nil
}

func (c *Client) inspectManifest(ctx context.Context, r Reference, m *Manifest, depth int) (*Image, error) {
	img := &Image{
		Digest:       m.Descriptor.Digest,
		MediaType:    m.Descriptor.MediaType,
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
		ManifestSize: m.Descriptor.Size,
		Size:         m.Descriptor.Size,
	}
	if m.Subject != nil {
		img.Subject = string(m.Subject.Digest)
	}
	if m.IsIndex() {
		if depth > 2 {
			return nil, fmt.Errorf("manifest %s: indexes nested too deep", m.Descriptor.Digest)
		}
		for _, d := range m.Manifests {
			cm, err := c.Manifest(ctx, r.WithDigest(d.Digest))
			if err != nil {
				return nil, fmt.Errorf("child %s of %s: %w", d.Digest, m.Descriptor.Digest, err)
			}
			child, err := c.inspectManifest(ctx, r, cm, depth+1)
			if err != nil {
				return nil, err
			}
			child.Platform = PlatformString(d.Platform, d.Annotations)
			img.Size += child.Size
			img.Manifests = append(img.Manifests, *child)
		}
		return img, nil
	}
	for _, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{Digest: l.Digest, MediaType: l.MediaType, Size: l.Size})
		if stored(l) {
			img.Size += l.Size
		}
	}
	for _, l := range m.FSLayers { // schema 1: no sizes in the manifest
		img.Layers = append(img.Layers, Layer{Digest: l.BlobSum, MediaType: "application/vnd.docker.container.image.rootfs.diff+x-gtar", Size: -1})
	}
	if m.Config == nil {
		return img, nil
	}
	img.ConfigDigest, img.ConfigSize = string(m.Config.Digest), m.Config.Size
	img.Size += m.Config.Size
	if !isImageConfig(m.Config.MediaType) {
		return img, nil // an artifact's config is not an image's
	}
	b, err := c.Blob(ctx, r, m.Config.Digest, maxConfig)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	cfg, err := parseImageConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	img.Config = cfg
	img.Platform = PlatformString(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil)
	return img, nil
}

func isImageConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == "application/vnd.docker.container.image.v1+json"
}

// stored reports whether a layer's bytes are in the registry: foreign
// (non-distributable) layers with URLs are fetched from elsewhere.
func stored(d ocispec.Descriptor) bool {
	return len(d.URLs) == 0 && !strings.Contains(d.MediaType, "nondistributable") && !strings.Contains(d.MediaType, "foreign")
}

func parseImageConfig(b []byte) (*ImageConfig, error) {
	var img ocispec.Image // docker's image config has the same fields
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("not an image configuration: %w", err)
	}
	c := img.Config
	cfg := &ImageConfig{
		Created: img.Created, Author: img.Author, Architecture: img.Architecture, OS: img.OS, Variant: img.Variant,
		User: c.User, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir, Env: c.Env, Labels: c.Labels,
	}
	for p := range c.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p)
	}
	slices.Sort(cfg.ExposedPorts)
	for _, h := range img.History {
		cfg.History = append(cfg.History, History{Created: h.Created, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer})
	}
	return cfg, nil
}

// PlatformString is os/arch[/variant]; buildx's attestation manifests
// (platform unknown/unknown) are named as what they are.
func PlatformString(p *ocispec.Platform, annotations map[string]string) string {
	if annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return "attestation"
	}
	if p == nil || (p.OS == "" && p.Architecture == "") {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Created is when the image r names was built: its config's "created"; for
// an index, its newest platform's. nil when the image does not say (an
// artifact, or a config without the field).
func (c *Client) Created(ctx context.Context, r Reference) (*time.Time, error) {
	m, err := c.Manifest(ctx, r)
	if err != nil {
		return nil, err
	}
	return c.created(ctx, r, m, 0)
}

func (c *Client) created(ctx context.Context, r Reference, m *Manifest, depth int) (*time.Time, error) {
	if m.IsIndex() {
		if depth > 2 {
			return nil, fmt.Errorf("manifest %s: indexes nested too deep", m.Descriptor.Digest)
		}
		var newest *time.Time
		for _, d := range m.Manifests {
			if PlatformString(d.Platform, d.Annotations) == "attestation" {
				continue
			}
			cm, err := c.Manifest(ctx, r.WithDigest(d.Digest))
			if err != nil {
				return nil, err
			}
			t, err := c.created(ctx, r, cm, depth+1)
			if err != nil {
				return nil, err
			}
			if t != nil && (newest == nil || t.After(*newest)) {
				newest = t
			}
		}
		return newest, nil
	}
	if m.Config == nil || !isImageConfig(m.Config.MediaType) {
		return nil, nil
	}
	b, err := c.Blob(ctx, r, m.Config.Digest, maxConfig)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	cfg, err := parseImageConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return cfg.Created, nil
}
