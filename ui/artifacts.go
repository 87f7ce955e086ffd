package ui

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Kind is what a manifest is, for people: an image, a multi-platform
// image, a Helm chart, a signature, an SBOM... It decides the badge, the
// pull command offered and how the page shows the content.
type Kind struct {
	Key   string // image, index, helm, signature, sbom, attestation, vuln, wasm, artifact
	Label string
}

var (
	kindImage       = Kind{"image", "Image"}
	kindIndex       = Kind{"index", "Multi-platform image"}
	kindHelm        = Kind{"helm", "Helm chart"}
	kindWasm        = Kind{"wasm", "Wasm module"}
	kindArtifact    = Kind{"artifact", "Artifact"}
	kindSBOM        = Kind{"sbom", "SBOM"}
	kindAttestation = Kind{"attestation", "Attestation"}
	kindVuln        = Kind{"vuln", "Vulnerability report"}
)

func signatureKind(tool string) Kind { return Kind{"signature", "Signature (" + tool + ")"} }

// artifactKinds maps artifact types (or config media types of artifacts
// that predate artifactType) to kinds. Media type parameters are cut
// before the lookup.
var artifactKinds = map[string]Kind{
	"application/vnd.cncf.helm.config.v1+json":             kindHelm,
	"application/vnd.dev.cosign.artifact.sig.v1+json":      signatureKind("cosign"),
	"application/vnd.dev.cosign.simplesigning.v1+json":     signatureKind("cosign"),
	"application/vnd.cncf.notary.signature":                signatureKind("Notation"),
	"application/vnd.dev.sigstore.bundle.v0.3+json":        signatureKind("Sigstore bundle"),
	"application/vnd.dev.sigstore.bundle+json":             signatureKind("Sigstore bundle"),
	"application/vnd.dev.cosign.artifact.sbom.v1+json":     kindSBOM,
	"application/spdx+json":                                kindSBOM,
	"text/spdx":                                            kindSBOM,
	"text/spdx+json":                                       kindSBOM,
	"application/vnd.cyclonedx+json":                       kindSBOM,
	"application/vnd.cyclonedx+xml":                        kindSBOM,
	"application/vnd.cyclonedx":                            kindSBOM,
	"application/vnd.syft+json":                            kindSBOM,
	"application/vnd.in-toto+json":                         kindAttestation,
	"application/vnd.dsse.envelope.v1+json":                kindAttestation,
	"application/vnd.dev.cosign.attestation.v1+json":       kindAttestation,
	"application/vnd.dev.cosign.artifact.att.v1+json":      kindAttestation,
	"application/sarif+json":                               kindVuln,
	"application/vnd.cncf.openvex.v0.2.0+json":             kindVuln,
	"application/vnd.openvex+json":                         kindVuln,
	"application/vnd.security.vulnerability.report+json":   kindVuln,
	"application/vnd.aquasec.trivy.report.sarif.v1+json":   kindVuln,
	"application/vnd.wasm.config.v0+json":                  kindWasm,
	"application/vnd.wasm.config.v1+json":                  kindWasm,
	"application/vnd.module.wasm.config.v1+json":           kindWasm,
	"application/vnd.docker.container.image.v1+json":       kindImage,
	"application/vnd.oci.image.config.v1+json":             kindImage,
	"application/vnd.oci.empty.v1+json":                    kindArtifact,
	"application/vnd.unknown.config.v1+json":               kindArtifact,
	"application/vnd.docker.distribution.manifest.v2+json": kindImage,
}

func cutParams(mt string) string {
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.ToLower(strings.TrimSpace(mt))
}

// kindOf tells what a manifest is from its media type, artifact type and
// config media type.
func kindOf(mediaType, artifactType, configType string) Kind {
	if isIndex(mediaType) {
		if k, ok := artifactKinds[cutParams(artifactType)]; ok && artifactType != "" && k != kindImage {
			return k
		}
		return kindIndex
	}
	if artifactType != "" {
		if k, ok := artifactKinds[cutParams(artifactType)]; ok {
			return k
		}
		return kindArtifact
	}
	if k, ok := artifactKinds[cutParams(configType)]; ok {
		return k
	}
	return kindArtifact
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// cosignTag matches the tags cosign writes without the referrers API:
// sha256-<hex>.sig / .att / .sbom next to the image they sign.
var cosignTag = regexp.MustCompile(`^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$`)

// tagKind classifies a tag by cosign's naming scheme; ok is false for an
// ordinary tag. subject is the digest the tag is about.
func tagKind(tag string) (k Kind, subject string, ok bool) {
	m := cosignTag.FindStringSubmatch(tag)
	if m == nil {
		return Kind{}, "", false
	}
	switch m[3] {
	case "sig":
		k = signatureKind("cosign")
	case "att":
		k = kindAttestation
	default:
		k = kindSBOM
	}
	return k, m[1] + ":" + m[2], true
}

// parsed is a manifest or index as the pages read it.
type parsed struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

func parseManifest(b []byte, mediaType string) (*parsed, error) {
	var p parsed
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	if p.MediaType == "" {
		p.MediaType = mediaType
	}
	return &p, nil
}

func (p *parsed) configType() string {
	if p.Config == nil {
		return ""
	}
	return p.Config.MediaType
}

func (p *parsed) kind() Kind { return kindOf(p.MediaType, p.ArtifactType, p.configType()) }

// isAttestationEntry tells an index entry that is not a platform image but
// BuildKit's attestation manifest for one ("unknown/unknown" platform).
func isAttestationEntry(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
}

// platformString is os/arch[/variant][ (os.version)].
func platformString(p *ocispec.Platform) string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " (" + p.OSVersion + ")"
	}
	return s
}

// kv is one row of a key/value table (labels, annotations, env).
type kv struct{ K, V string }

func sortedKV(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

// prettyJSON indents b for display; b unchanged when it is not JSON.
func prettyJSON(b []byte) string {
	var out strings.Builder
	var v json.RawMessage = b
	ind, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(b)
	}
	out.Write(ind)
	return out.String()
}
