package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
)

// AdminPrefix is where the cache's admin endpoints live, beside the admin
// extension API (docs/admin-api.md):
//
//	GET    /v2/_registryd/v1/cache                          upstreams, usage, fills
//	POST   /v2/_registryd/v1/cache/evict                    an eviction pass now
//	DELETE /v2/_registryd/v1/cache/<name>[?ns=host]         purge a cached repository
//	DELETE /v2/_registryd/v1/cache/<name>/manifests/<ref>   purge a tag or a digest
//
// <name> is spelled as clients pull it (with ?ns= or a path prefix) or as
// the cache repository is stored. A purge needs the delete action on the
// name, the others registry-wide admin (registry:catalog:admin), as the
// admin API's maintenance; storage.delete.enabled plays no part (the cache
// is the mirror's own). A purge removes tags and manifests (and, for
// a whole repository, its blob links); garbage collection reclaims the
// bytes, and the next pull fetches from the upstream again.
const AdminPrefix = "/v2/_registryd/v1/cache"

// PurgeReport is the answer to a purge.
type PurgeReport struct {
	Repository string   `json:"repository"`
	Upstream   string   `json:"upstream"`
	Tags       []string `json:"tags"`
	Manifests  []string `json:"manifests"`
	BlobLinks  int      `json:"blobLinks"`
}

// Purge removes cached content of r: everything (ref ""), a tag (its tag,
// and its manifest with its untagged children unless another tag points
// at it), or a manifest by digest (with the tags pointing at it).
func (r *Repo) Purge(ctx context.Context, ref string) (PurgeReport, error) {
	rep := PurgeReport{Repository: r.local.Name(), Upstream: r.up.name, Tags: []string{}, Manifests: []string{}}
	defer r.p.forgetRepo(r.local.Name())
	tags, err := r.local.TagsAndTargets(ctx)
	if err != nil {
		return rep, err
	}
	var roots []digest.Digest
	switch {
	case ref == "":
		for t := range tags {
			rep.Tags = append(rep.Tags, t)
		}
		err = r.local.Revisions(ctx, func(d digest.Digest) error { roots = append(roots, d); return nil })
		if err != nil {
			return rep, err
		}
	case storage.IsDigest(ref):
		d, err := storage.ParseDigest(ref)
		if err != nil {
			return rep, err
		}
		for t, td := range tags {
			if td == d {
				rep.Tags = append(rep.Tags, t)
			}
		}
		roots = []digest.Digest{d}
	default:
		d, ok := tags[ref]
		if !ok {
			return rep, errcode.New(errcode.ManifestUnknown).WithDetail(map[string]string{"reference": clip(ref, 200)})
		}
		rep.Tags = append(rep.Tags, ref)
		shared := false
		for t, td := range tags {
			shared = shared || t != ref && td == d
		}
		if !shared {
			roots = []digest.Digest{d}
		}
	}
	for _, t := range rep.Tags {
		if err := r.local.DeleteTag(ctx, t); err != nil && !errcode.Is(err, errcode.ManifestUnknown) {
			return rep, err
		}
	}
	// The manifests, with the children of indexes that no tag keeps.
	tagged := map[digest.Digest]bool{}
	if ref != "" {
		if now, err := r.local.TagsAndTargets(ctx); err == nil {
			for _, d := range now {
				tagged[d] = true
			}
		}
	}
	seen := map[digest.Digest]bool{}
	for len(roots) > 0 {
		d := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if seen[d] || tagged[d] {
			continue
		}
		seen[d] = true
		if b, err := r.p.reg.ManifestContent(ctx, d); err == nil {
			if refs, err := storage.ParseReferences(b); err == nil {
				roots = append(roots, refs.Manifests...)
			}
		}
		err := r.local.DeleteManifest(ctx, d)
		switch {
		case err == nil:
			rep.Manifests = append(rep.Manifests, d.String())
		case errcode.Is(err, errcode.ManifestUnknown):
			if ref != "" && len(rep.Manifests) == 0 && len(rep.Tags) == 0 {
				return rep, err
			}
		default:
			return rep, err
		}
	}
	if ref == "" {
		var links []digest.Digest
		if err := r.local.LayerLinks(ctx, func(d digest.Digest) error { links = append(links, d); return nil }); err != nil {
			return rep, err
		}
		for _, d := range links {
			if err := r.local.UnlinkLayer(ctx, d); err != nil {
				return rep, err
			}
		}
		rep.BlobLinks = len(links)
	}
	r.p.m.evictions.WithLabelValues(r.up.name, "purge").Add(float64(len(rep.Manifests)))
	if len(rep.Manifests) > 0 || len(rep.Tags) > 0 || rep.BlobLinks > 0 {
		r.p.afterEvict()
	}
	return rep, nil
}

// Status is GET /v2/_registryd/v1/cache.
type Status struct {
	Upstreams     []UpstreamStatus `json:"upstreams"`
	FillsInFlight int              `json:"fillsInFlight"`
	MaxSize       int64            `json:"maxSize,omitempty"`
	TTL           string           `json:"ttl,omitempty"`
	// Usage is the cached bytes and Images the cached images the last
	// eviction pass counted (at LastPass), when eviction is on.
	Usage    int64      `json:"usage,omitempty"`
	Images   int        `json:"images,omitempty"`
	LastPass *time.Time `json:"lastPass,omitempty"`
}

// UpstreamStatus is one upstream in Status.
type UpstreamStatus struct {
	Name      string   `json:"name"`
	URL       string   `json:"url"`
	Names     []string `json:"names"`
	Namespace string   `json:"namespace"`
	Default   bool     `json:"default"`
	// Unavailable is set while its circuit breaker is open, with when it
	// will be tried again.
	Unavailable bool       `json:"unavailable"`
	RetryAt     *time.Time `json:"retryAt,omitempty"`
	// RateLimit and RateRemaining are its last ratelimit-* headers.
	RateLimit     *int `json:"rateLimit,omitempty"`
	RateRemaining *int `json:"rateRemaining,omitempty"`
}

// Status reports the upstreams' state.
func (p *Proxy) Status() Status {
	st := Status{Upstreams: []UpstreamStatus{}, MaxSize: p.opts.MaxSize}
	if p.opts.TTL > 0 {
		st.TTL = p.opts.TTL.String()
	}
	p.fills.mu.Lock()
	st.FillsInFlight = len(p.fills.m)
	p.fills.mu.Unlock()
	p.evict.mu.Lock()
	if !p.evict.lastAt.IsZero() {
		at := p.evict.lastAt
		st.LastPass, st.Usage, st.Images = &at, p.evict.last.After, p.evict.last.Images-len(p.evict.last.Evicted)
	}
	p.evict.mu.Unlock()
	for _, u := range p.upstreams {
		us := UpstreamStatus{Name: u.name, URL: u.base.String(), Names: u.names, Namespace: u.namespace, Default: u == p.def}
		u.mu.Lock()
		if u.breaker.isOpen() {
			us.Unavailable = true
			t := u.breaker.openUntil
			us.RetryAt = &t
		}
		if u.rlLimit >= 0 {
			l := u.rlLimit
			us.RateLimit = &l
		}
		if u.rlLeft >= 0 {
			l := u.rlLeft
			us.RateRemaining = &l
		}
		u.mu.Unlock()
		st.Upstreams = append(st.Upstreams, us)
	}
	return st
}

// AdminHandler serves AdminPrefix, asking authz (nil: everyone may) as
// the V2 API does.
func (p *Proxy) AdminHandler(authz auth.Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if err := p.serveAdmin(w, r, authz); err != nil {
			errcode.ServeJSON(w, err)
		}
	})
}

func (p *Proxy) serveAdmin(w http.ResponseWriter, r *http.Request, authz auth.Authorizer) error {
	allow := func(access auth.Access) error {
		if authz == nil {
			return nil
		}
		var err error
		r, err = authz.Authorize(w, r, access)
		return err
	}
	rest := strings.TrimPrefix(r.URL.Path, AdminPrefix)
	switch {
	case rest == "" || rest == "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return errcode.Newf(errcode.Unsupported, "method %s is not supported on %s", r.Method, AdminPrefix)
		}
		if err := allow(auth.Admin); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, p.Status())
	case rest == "/evict":
		if r.Method != http.MethodPost {
			return errcode.Newf(errcode.Unsupported, "method %s is not supported on %s/evict", r.Method, AdminPrefix)
		}
		if err := allow(auth.Admin); err != nil {
			return err
		}
		rep, err := p.Evict(r.Context())
		if err != nil {
			return err
		}
		if rep.Evicted == nil {
			rep.Evicted = []EvictedImage{}
		}
		return writeJSON(w, http.StatusOK, rep)
	}
	if r.Method != http.MethodDelete {
		return errcode.Newf(errcode.Unsupported, "method %s is not supported on %s/<name>", r.Method, AdminPrefix)
	}
	name, ref := strings.TrimPrefix(rest, "/"), ""
	if i := strings.LastIndex(name, "/manifests/"); i >= 0 {
		name, ref = name[:i], name[i+len("/manifests/"):]
		if ref == "" {
			return errcode.Newf(errcode.ManifestUnknown, "no reference after /manifests/")
		}
	}
	if err := storage.ValidateName(name); err != nil {
		return err
	}
	if err := allow(auth.Repository(name, auth.ActionDelete)); err != nil {
		return err
	}
	repo, err := p.Route(r, name)
	if err != nil {
		return err
	}
	if repo == nil {
		return errcode.Newf(errcode.NameUnknown, "%s is not a cached repository (it is hosted here)", name).WithDetail(map[string]string{"name": name})
	}
	rep, err := repo.Purge(r.Context(), ref)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, rep)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}
