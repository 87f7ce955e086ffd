package ui

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
)

type manifestPage struct {
	Repo      string
	Crumbs    []crumb
	Tag       string // the tag the page was opened by, if any
	Digest    string
	MediaType string
	Kind      Kind
	Size      int64 // of the manifest itself
	// RepoDigest is host/repo@digest, for copying.
	RepoDigest  string
	Pull        []pullCmd
	Index       *indexView
	Image       *imageView // the image, or the selected platform's
	Artifact    *artifactView
	Annotations []kv
	Subject     *subjectView
	Referrers   []refView
	Raw         string
	CanDelete   bool
	Refusal     string
}

func (p *manifestPage) title() string {
	if p.Tag != "" {
		return p.Repo + ":" + p.Tag
	}
	return p.Repo + "@" + shortDigest(p.Digest)
}
func (p *manifestPage) nav() string { return "catalog" }

type pullCmd struct{ Tool, Cmd string }

type indexView struct {
	Platforms    []platformTab
	Attestations []platformTab
}

type platformTab struct {
	Platform string
	Digest   string
	Size     int64
	Selected bool
	URL      string
}

type imageView struct {
	Digest       string
	Platform     string
	Created      *time.Time
	Author       string
	Entrypoint   []string
	Cmd          []string
	WorkingDir   string
	User         string
	Env          []kv
	Labels       []kv
	ExposedPorts []string
	Volumes      []string
	StopSignal   string
	Layers       []layerView
	LayersSize   int64
	History      []historyView
	ConfigDigest string
	ConfigSize   int64
	RawConfig    string
	ConfigErr    string
	Missing      bool // an index entry whose manifest is not in the repository
	Annotations  []kv
	Referrers    []refView
	Raw          string
}

type layerView struct {
	N         int
	Digest    string
	MediaType string
	Size      int64
	CreatedBy string
	Title     string
	Foreign   bool // non-distributable, fetched from its URLs
}

type historyView struct {
	Created    *time.Time
	CreatedBy  string
	Comment    string
	EmptyLayer bool
}

type artifactView struct {
	ArtifactType string
	ConfigType   string
	ConfigDigest string
	ConfigSize   int64
	Files        []layerView
	FilesSize    int64
}

type subjectView struct {
	Digest string
	URL    string
	Kind   Kind
}

type refView struct {
	Digest       string
	ArtifactType string
	Kind         Kind
	Size         int64
	Created      string
	URL          string
}

// manifest is the page of one manifest or index, by tag or digest. For
// an index it shows one tab per platform (?platform=DIGEST selects one;
// the first by default), and BuildKit's attestation entries apart.
func (u *UI) manifest(w http.ResponseWriter, r *http.Request, v *viewer, repo *storage.Repository, ref string) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	if !storage.IsDigest(ref) && !storage.ValidTag(ref) {
		u.notFound(w, r, v)
		return
	}
	m, err := repo.GetManifest(ctx, ref)
	if err != nil {
		u.storageError(w, r, v, err)
		return
	}
	pm, err := parseManifest(m.Content, m.MediaType)
	if err != nil {
		u.errorPage(w, r, v, http.StatusInternalServerError, "The stored manifest is not valid JSON.")
		return
	}
	name := repo.Name()
	p := &manifestPage{
		Repo: name, Crumbs: crumbsOf(name), Digest: m.Digest.String(), MediaType: m.MediaType,
		Kind: pm.kind(), Size: int64(len(m.Content)), Raw: prettyJSON(m.Content),
		Annotations: sortedKV(pm.Annotations),
	}
	if !storage.IsDigest(ref) {
		p.Tag = ref
		if k, subject, ok := tagKind(ref); ok && pm.Subject == nil {
			p.Kind = k
			p.Subject = &subjectView{Digest: subject, URL: u.base + "r/" + name + "/-/m/" + subject}
		}
	}
	p.Refusal = v.deleteRefusal(name)
	p.CanDelete = p.Refusal == ""
	host := u.pullHost(r)
	p.RepoDigest = host + "/" + name + "@" + p.Digest
	p.Pull = u.pullCommands(r, host, name, p.Tag, p.Digest, p.Kind)
	if pm.Subject != nil {
		p.Subject = &subjectView{Digest: pm.Subject.Digest.String(), URL: u.base + "r/" + name + "/-/m/" + pm.Subject.Digest.String()}
		if sm, err := repo.GetManifest(ctx, pm.Subject.Digest.String()); err == nil {
			if sp, err := parseManifest(sm.Content, sm.MediaType); err == nil {
				p.Subject.Kind = sp.kind()
			}
		}
	}
	p.Referrers = u.referrers(ctx, repo, m.Digest)

	switch {
	case isIndex(pm.MediaType):
		p.Index = &indexView{}
		sel := r.URL.Query().Get("platform")
		var first *platformTab
		for _, d := range pm.Manifests {
			tab := platformTab{Platform: platformString(d.Platform), Digest: d.Digest.String(), Size: d.Size}
			q := url.Values{"platform": {tab.Digest}}
			tab.URL = r.URL.Path + "?" + q.Encode()
			if isAttestationEntry(d) {
				tab.Platform = "attestation for " + shortDigest(d.Annotations["vnd.docker.reference.digest"])
				p.Index.Attestations = append(p.Index.Attestations, tab)
				continue
			}
			if tab.Platform == "" {
				tab.Platform = kindOf(d.MediaType, d.ArtifactType, "").Label
			}
			p.Index.Platforms = append(p.Index.Platforms, tab)
		}
		pick := func(tabs []platformTab) {
			for i := range tabs {
				if tabs[i].Digest == sel {
					tabs[i].Selected = true
					first = &tabs[i]
				}
			}
		}
		pick(p.Index.Platforms)
		pick(p.Index.Attestations)
		if first == nil && len(p.Index.Platforms) > 0 {
			first = &p.Index.Platforms[0]
			first.Selected = true
		}
		if first != nil {
			p.Image = u.childImage(ctx, repo, first.Digest, first.Platform)
		}
	case p.Kind == kindImage:
		p.Image = u.imageOf(ctx, repo, m.Digest, pm)
	default:
		p.Artifact = artifactOf(pm)
	}
	u.render(w, r, v, http.StatusOK, "manifest", p)
}

// childImage describes an index entry; one that is missing from the
// repository is shown as such, never as a failed page.
func (u *UI) childImage(ctx context.Context, repo *storage.Repository, d, platform string) *imageView {
	m, err := repo.GetManifest(ctx, d)
	if err != nil {
		return &imageView{Digest: d, Platform: platform, Missing: true}
	}
	pm, err := parseManifest(m.Content, m.MediaType)
	if err != nil {
		return &imageView{Digest: d, Platform: platform, Missing: true}
	}
	iv := u.imageOf(ctx, repo, m.Digest, pm)
	if iv.Platform == "" {
		iv.Platform = platform
	}
	iv.Raw = prettyJSON(m.Content)
	iv.Annotations = sortedKV(pm.Annotations)
	iv.Referrers = u.referrers(ctx, repo, m.Digest)
	return iv
}

// imageOf reads an image manifest's config and matches its history to
// the layers.
func (u *UI) imageOf(ctx context.Context, repo *storage.Repository, d digest.Digest, pm *parsed) *imageView {
	iv := &imageView{Digest: d.String()}
	for i, l := range pm.Layers {
		iv.Layers = append(iv.Layers, layerView{
			N: i + 1, Digest: l.Digest.String(), MediaType: l.MediaType, Size: l.Size,
			Title: l.Annotations[ocispec.AnnotationTitle], Foreign: len(l.URLs) > 0,
		})
		iv.LayersSize += l.Size
	}
	if pm.Config == nil {
		return iv
	}
	iv.ConfigDigest, iv.ConfigSize = pm.Config.Digest.String(), pm.Config.Size
	cfg, raw, err := u.readConfig(ctx, repo, pm.Config.Digest)
	if raw != nil {
		iv.RawConfig = prettyJSON(raw)
	}
	if err != nil {
		iv.ConfigErr = "The image config could not be read: " + err.Error()
		return iv
	}
	iv.Platform = platformString(&cfg.Platform)
	iv.Created, iv.Author = cfg.Created, cfg.Author
	c := cfg.Config
	iv.Entrypoint, iv.Cmd, iv.WorkingDir, iv.User, iv.StopSignal = c.Entrypoint, c.Cmd, c.WorkingDir, c.User, c.StopSignal
	for _, e := range c.Env {
		k, val, _ := strings.Cut(e, "=")
		iv.Env = append(iv.Env, kv{k, val})
	}
	iv.Labels = sortedKV(c.Labels)
	for p := range c.ExposedPorts {
		iv.ExposedPorts = append(iv.ExposedPorts, p)
	}
	sort.Strings(iv.ExposedPorts)
	for p := range c.Volumes {
		iv.Volumes = append(iv.Volumes, p)
	}
	sort.Strings(iv.Volumes)
	// History entries that made a layer are matched to the layers in
	// order; empty-layer ones (ENV, CMD...) have none.
	li := 0
	for _, h := range cfg.History {
		iv.History = append(iv.History, historyView{Created: h.Created, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer})
		if !h.EmptyLayer && li < len(iv.Layers) {
			iv.Layers[li].CreatedBy = h.CreatedBy
			li++
		}
	}
	return iv
}

func artifactOf(pm *parsed) *artifactView {
	a := &artifactView{ArtifactType: pm.ArtifactType}
	if pm.Config != nil {
		a.ConfigType, a.ConfigDigest, a.ConfigSize = pm.Config.MediaType, pm.Config.Digest.String(), pm.Config.Size
	}
	for i, l := range pm.Layers {
		a.Files = append(a.Files, layerView{
			N: i + 1, Digest: l.Digest.String(), MediaType: l.MediaType, Size: l.Size,
			Title: l.Annotations[ocispec.AnnotationTitle], Foreign: len(l.URLs) > 0,
		})
		a.FilesSize += l.Size
	}
	for _, d := range pm.Manifests {
		a.Files = append(a.Files, layerView{N: len(a.Files) + 1, Digest: d.Digest.String(), MediaType: d.MediaType, Size: d.Size})
		a.FilesSize += d.Size
	}
	return a
}

// referrers lists what refers to d, each as what it is.
func (u *UI) referrers(ctx context.Context, repo *storage.Repository, d digest.Digest) []refView {
	descs, err := repo.Referrers(ctx, d, "")
	if err != nil {
		return nil
	}
	out := make([]refView, 0, len(descs))
	for _, rd := range descs {
		out = append(out, refView{
			Digest: rd.Digest.String(), ArtifactType: rd.ArtifactType, Size: rd.Size,
			Kind:    kindOf(rd.MediaType, rd.ArtifactType, rd.ArtifactType),
			Created: rd.Annotations[ocispec.AnnotationCreated],
			URL:     u.base + "r/" + repo.Name() + "/-/m/" + rd.Digest.String(),
		})
	}
	return out
}

// pullHost is the registry's host as clients name it: ui.pullhost, else
// http.host's, else what the browser asked for.
func (u *UI) pullHost(r *http.Request) string {
	if u.opts.PullHost != "" {
		return u.opts.PullHost
	}
	if u.opts.HTTPHost != "" {
		if h, err := url.Parse(u.opts.HTTPHost); err == nil && h.Host != "" {
			return h.Host
		}
	}
	if validHost(r.Host) {
		return r.Host
	}
	return "registry.example.com"
}

// validHost accepts host[:port] without anything that would change a
// command's meaning when pasted into a shell.
func validHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// plainHTTP tells whether clients reach the registry without TLS, so that
// the commands carry their "insecure" flag. Loopback hosts need none for
// docker and podman, but crane, oras and helm want to be told.
func (u *UI) plainHTTP(r *http.Request, host string) bool {
	if u.opts.PullHost != "" || u.opts.HTTPHost != "" {
		return strings.HasPrefix(u.opts.HTTPHost, "http://")
	}
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		return false
	}
	return true
}

// pullCommands offers the commands that fetch this thing, the fitting
// tool first: docker/podman for images, helm for charts, oras for other
// artifacts (signatures, SBOMs...), crane too.
func (u *UI) pullCommands(r *http.Request, host, repo, tag, d string, k Kind) []pullCmd {
	ref := host + "/" + repo + "@" + d
	if tag != "" {
		ref = host + "/" + repo + ":" + tag
	}
	plain := u.plainHTTP(r, host)
	flag := func(f string) string {
		if plain {
			return " " + f
		}
		return ""
	}
	crane := pullCmd{"crane", "crane pull" + flag("--insecure") + " " + ref + " image.tar"}
	oras := pullCmd{"oras", "oras pull" + flag("--plain-http") + " " + ref}
	switch k.Key {
	case "image", "index":
		return []pullCmd{{"docker", "docker pull " + ref}, {"podman", "podman pull" + flag("--tls-verify=false") + " " + ref}, crane}
	case "helm":
		cmd := "helm pull" + flag("--plain-http") + " oci://" + host + "/" + repo
		if tag != "" {
			cmd += " --version " + tag
		} else {
			cmd = "helm pull" + flag("--plain-http") + " oci://" + ref
		}
		return []pullCmd{{"helm", cmd}, oras}
	}
	return []pullCmd{oras, {"crane", "crane manifest" + flag("--insecure") + " " + ref}}
}
